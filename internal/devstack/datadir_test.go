package devstack

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// helperEnv makes the test binary a helper process instead of running tests.
const helperEnv = "DEVSTACK_TEST_HELPER"

func TestMain(m *testing.M) {
	MaybeRunChildShim()
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "ignore-sigterm":
		// A process that only SIGKILL stops.
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Hour)
	case "shim-parent":
		shimParent()
	}
	os.Exit(2)
}

func requireLinux(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("finding and stopping processes needs Linux's /proc and parent-death signal")
	}
}

// start runs cmd until the test ends, and returns it with the PID-file line
// that describes it under role. A helper (this test binary) is waited for
// until it says it is ready.
func start(t *testing.T, role string, cmd *exec.Cmd, helper bool) (*exec.Cmd, pidEntry) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if helper {
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("helper said %q, %v", line, err)
		}
	}
	p, ok := readProc(cmd.Process.Pid)
	if !ok {
		t.Fatalf("process %d not found in /proc", cmd.Process.Pid)
	}
	return cmd, pidEntry{role: role, pid: cmd.Process.Pid, start: p.start, exe: p.exe}
}

func sleeper(t *testing.T, role string) (*exec.Cmd, pidEntry) {
	t.Helper()
	return start(t, role, exec.Command("sleep", "300"), false)
}

// exited waits up to d for cmd to end and returns how it ended, or fails.
func exited(t *testing.T, cmd *exec.Cmd, d time.Duration) *os.ProcessState {
	t.Helper()
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
		return cmd.ProcessState
	case <-time.After(d):
		t.Fatalf("process %d still running after %s", cmd.Process.Pid, d)
		return nil
	}
}

func stillRunning(t *testing.T, e pidEntry) {
	t.Helper()
	if !e.running() {
		t.Errorf("%s (pid %d) was stopped", e.role, e.pid)
	}
}

// deadOwner returns the line of a soar dev that has exited.
func deadOwner(t *testing.T) pidEntry {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return pidEntry{role: ownerRole, pid: cmd.Process.Pid, start: 1, exe: "/usr/local/bin/soar"}
}

func writeEntries(t *testing.T, dir string, entries ...pidEntry) {
	t.Helper()
	var b strings.Builder
	b.WriteString(pidFileHeader)
	for _, e := range entries {
		b.WriteString(e.String())
	}
	if err := os.WriteFile(filepath.Join(dir, PIDFileName), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testLog(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t))
}

func TestLockDataDirStopsWhatADeadSoarDevLeft(t *testing.T) {
	requireLinux(t)
	dir := t.TempDir()
	etcd, etcdEntry := sleeper(t, "etcd")
	apiserver, apiserverEntry := sleeper(t, "kube-apiserver")
	gone := deadOwner(t)
	writeEntries(t, dir, gone, etcdEntry, apiserverEntry, pidEntry{role: "etcd", pid: gone.pid, start: 2, exe: "/bin/etcd"})

	d, err := LockDataDir(dir, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []*exec.Cmd{etcd, apiserver} {
		st := exited(t, cmd, time.Second)
		if ws, ok := st.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGTERM {
			t.Errorf("process %d ended with %v, want SIGTERM", cmd.Process.Pid, st)
		}
	}
	data, err := os.ReadFile(d.PIDFile())
	if err != nil {
		t.Fatal(err)
	}
	entries := parsePIDFile(data)
	self, _ := os.Executable()
	if len(entries) != 1 || entries[0].role != ownerRole || entries[0].pid != os.Getpid() || entries[0].exe != self || !entries[0].running() {
		t.Errorf("PID file after lock:\n%s", data)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(d.PIDFile()); err != nil || len(data) != 0 {
		t.Errorf("PID file after close: %q, %v", data, err)
	}
}

func TestLockDataDirKillsWhatIgnoresSIGTERM(t *testing.T) {
	requireLinux(t)
	defer func(d time.Duration) { staleTermGrace = d }(staleTermGrace)
	staleTermGrace = 200 * time.Millisecond
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=ignore-sigterm")
	stubborn, e := start(t, "etcd", cmd, true)
	writeEntries(t, dir, deadOwner(t), e)

	d, err := LockDataDir(dir, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	st := exited(t, stubborn, time.Second)
	if ws, ok := st.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Errorf("ended with %v, want SIGKILL", st)
	}
}

func TestLockDataDirLeavesOtherProgramsAlone(t *testing.T) {
	requireLinux(t)
	dir := t.TempDir()
	_, other := sleeper(t, "etcd")
	_, restarted := sleeper(t, "kube-apiserver")
	// The PIDs run, but not the processes the file recorded: one runs
	// another executable, the other started at another time (a PID reused).
	wrongExe := other
	wrongExe.exe = "/work/bin/k8s/etcd"
	wrongStart := restarted
	wrongStart.start--
	writeEntries(t, dir, deadOwner(t), wrongExe, wrongStart)

	d, err := LockDataDir(dir, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	stillRunning(t, other)
	stillRunning(t, restarted)
}

func TestLockDataDirRefusesWhileItsSoarDevRuns(t *testing.T) {
	requireLinux(t)
	dir := t.TempDir()
	_, owner := sleeper(t, ownerRole)
	_, etcd := sleeper(t, "etcd")
	writeEntries(t, dir, owner, etcd)

	_, err := LockDataDir(dir, testLog(t))
	want := fmt.Sprintf("another soar dev (pid %d) is using %s; stop it first", owner.pid, dir)
	if err == nil || err.Error() != want {
		t.Fatalf("LockDataDir: %v, want %q", err, want)
	}
	stillRunning(t, etcd)
	stillRunning(t, owner)
}

func TestLockDataDirIsExclusive(t *testing.T) {
	requireLinux(t)
	dir := t.TempDir()
	d, err := LockDataDir(dir, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockDataDir(dir, testLog(t))
	want := fmt.Sprintf("another soar dev (pid %d) is using %s; stop it first", os.Getpid(), dir)
	if err == nil || err.Error() != want {
		t.Fatalf("second LockDataDir: %v, want %q", err, want)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = LockDataDir(dir, testLog(t))
	if err != nil {
		t.Fatalf("LockDataDir after Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParsePIDFile(t *testing.T) {
	got := parsePIDFile([]byte(pidFileHeader + "soar-dev 10 20 /opt/my tools/soar\netcd 11 21 /bin/etcd\n\nbroken line\netcd x 1 /bin/etcd\n"))
	want := []pidEntry{{ownerRole, 10, 20, "/opt/my tools/soar"}, {"etcd", 11, 21, "/bin/etcd"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestCheckEtcdDataFreeNamesTheHolder(t *testing.T) {
	requireLinux(t)
	dir := t.TempDir()
	if err := checkEtcdDataFree(dir); err != nil {
		t.Fatalf("fresh directory: %v", err)
	}
	db := filepath.Join(dir, "member", "snap", "db")
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkEtcdDataFree(dir); err != nil {
		t.Fatalf("unlocked database: %v", err)
	}
	// As etcd's bbolt does, on another open file.
	holder, err := os.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := tryLock(holder); err != nil {
		t.Fatal(err)
	}
	err = checkEtcdDataFree(dir)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("is in use by process %d (", os.Getpid())) ||
		!strings.Contains(err.Error(), fmt.Sprintf("stop it (kill %d)", os.Getpid())) {
		t.Errorf("locked database: %v", err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	if err := checkEtcdDataFree(dir); err != nil {
		t.Errorf("after unlock: %v", err)
	}
}
