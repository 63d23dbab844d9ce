package devstack

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shimParent is a helper: it starts "sleep 300" through the child shim, as
// StartKube starts etcd, says the child's PID and waits to be killed.
func shimParent() {
	sleep, err := exec.LookPath("sleep")
	if err == nil {
		sleep, err = filepath.Abs(sleep)
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	dir := os.Getenv("DEVSTACK_TEST_DIR")
	_, links, err := newShimDir(dir, map[string]string{"sleep": sleep}, filepath.Join(dir, PIDFileName))
	if err != nil {
		fmt.Println(err)
		return
	}
	var cmd *exec.Cmd
	newLockedThread().do(func() {
		cmd = exec.Command(links["sleep"], "300")
		err = cmd.Start()
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cmd.Process.Pid)
	time.Sleep(time.Hour)
}

func TestChildShimDiesWithItsParent(t *testing.T) {
	requireLinux(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, PIDFileName)
	if err := os.WriteFile(pidFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	parent := exec.Command(os.Args[0])
	parent.Env = append(os.Environ(), helperEnv+"=shim-parent", "DEVSTACK_TEST_DIR="+dir)
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = parent.Process.Kill()
		_ = parent.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("helper said %q, %v", line, err)
	}
	// The shim has recorded the child, and become sleep.
	var child pidEntry
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(pidFile)
		entries := parsePIDFile(data)
		if len(entries) == 1 && entries[0].pid == pid && entries[0].role == "sleep" && entries[0].running() {
			p, _ := readProc(pid)
			if p.cmdline == entries[0].exe+" 300" {
				child = entries[0]
				break
			}
		}
		if time.Now().After(deadline) {
			p, _ := readProc(pid)
			t.Fatalf("PID file %q, process %d: %+v", data, pid, p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	if left := waitGone([]pidEntry{child}, 5*time.Second); len(left) > 0 {
		t.Fatalf("sleep (pid %d) still runs 5s after its parent was killed", pid)
	}
}

func TestChildShimRefusesAnOrphanedStart(t *testing.T) {
	requireLinux(t)
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A shim whose parent is not the soar that configured it: that soar
	// died before the shim could ask for the parent-death signal.
	cfg, _ := json.Marshal(shimConfig{Parent: os.Getpid() + 1_000_000, Binaries: map[string]string{"sleep": "/bin/sleep"}})
	if err := os.WriteFile(filepath.Join(dir, shimConfigName), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(dir, "sleep")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "sleep"), "300")
	cmd.Env = append(os.Environ(), shimEnv+"=1")
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 127 || !strings.Contains(string(out), "has exited") {
		t.Errorf("orphaned shim: %v, %q", err, out)
	}
}

// TestStartKubeRecordsAndCleansUp starts the control plane through the shim,
// as soar dev does, and directly, as programs that do not install the shim
// (test binaries) do.
func TestStartKubeRecordsAndCleansUp(t *testing.T) {
	requireLinux(t)
	for _, shim := range []bool{true, false} {
		t.Run(fmt.Sprintf("shim=%v", shim), func(t *testing.T) {
			defer shimInstalled.Store(shimInstalled.Load())
			shimInstalled.Store(shim)
			dir := t.TempDir()
			d, err := LockDataDir(dir, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			runDir := filepath.Join(dir, "kube-run")
			k, err := StartKube(KubeOptions{EtcdDir: filepath.Join(dir, "etcd"), RunDir: runDir, PIDFile: d.PIDFile()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = k.Stop() })
			if _, err := k.Kubeconfig(); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(d.PIDFile())
			if err != nil {
				t.Fatal(err)
			}
			var running []pidEntry
			for _, e := range parsePIDFile(data) {
				if e.role != ownerRole && e.running() {
					running = append(running, e)
				}
			}
			if shim && (len(running) != 2 || running[0].role != "etcd" || running[1].role != "kube-apiserver") {
				t.Errorf("running children in the PID file:\n%s", data)
			}
			if !shim && len(running) != 0 {
				t.Errorf("children recorded without the shim:\n%s", data)
			}
			if entries, err := os.ReadDir(runDir); err != nil || len(entries) != 1 || entries[0].Name() != "apiserver" {
				t.Errorf("run directory while running: %v, %v", entries, err)
			}
			if err := k.Stop(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(runDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("run directory after Stop: %v", err)
			}
			for _, e := range running {
				if e.running() {
					t.Errorf("%s (pid %d) runs after Stop", e.role, e.pid)
				}
			}
		})
	}
}
