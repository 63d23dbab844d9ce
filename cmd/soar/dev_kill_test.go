package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/testenv"
)

// runMainEnv makes this test binary run soar's main instead of the tests, so
// that a test can run soar as a process of its own, as a user does, and kill
// it. (Not SOAR_…: those are flags.)
const runMainEnv = "CMD_SOAR_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	// The kube-apiserver and etcd of the tests that run soar dev in this
	// process start through the shim too, and die with the test binary.
	devstack.MaybeRunChildShim()
	os.Exit(m.Run())
}

// devProcess is 'soar dev --local-kube' running as a process of its own.
type devProcess struct {
	cmd            *exec.Cmd
	stdout, stderr testenv.SyncBuffer
	done           chan struct{}
}

// startDevProcess runs 'soar dev --local-kube' on dataDir and returns once
// it says it is running, failing the test if that takes longer than within.
func startDevProcess(t *testing.T, dataDir, assets string, p devPorts, within time.Duration) *devProcess {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := &devProcess{done: make(chan struct{})}
	d.cmd = exec.Command(self, "dev", "--local-kube", "--data-dir", dataDir, "--playbooks", "../../playbooks/library",
		"--nats-port", fmt.Sprint(p.nats), "--temporal-port", fmt.Sprint(p.temporal),
		"--ui-port", fmt.Sprint(p.ui), "--http-port", fmt.Sprint(p.http), "--log-format", "json")
	d.cmd.Env = append(os.Environ(), runMainEnv+"=1", devstack.KubeAssetsEnv+"="+assets)
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
	})
	deadline := time.After(within)
	for !strings.Contains(d.stdout.String(), "Press Ctrl-C to stop.") {
		select {
		case <-d.done:
			t.Fatalf("soar dev exited: %v\nstdout:\n%s\nstderr:\n%s", d.cmd.ProcessState, d.stdout.String(), d.stderr.String())
		case <-deadline:
			t.Fatalf("soar dev not ready in %s\nstdout:\n%s\nstderr:\n%s", within, d.stdout.String(), d.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return d
}

// wait waits up to within for soar dev to exit.
func (d *devProcess) wait(t *testing.T, within time.Duration) *os.ProcessState {
	t.Helper()
	select {
	case <-d.done:
		return d.cmd.ProcessState
	case <-time.After(within):
		t.Fatalf("soar dev still running after %s\nstderr:\n%s", within, d.stderr.String())
		return nil
	}
}

// devChild is a process soar dev recorded in its PID file.
type devChild struct {
	role  string
	pid   int
	start string
}

// running says whether the recorded process still runs: same PID and start
// time (field 22 of /proc/PID/stat), and not a zombie, which is all a killed
// process whose new parent does not reap it leaves.
func (c devChild) running() bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(f) > 19 && f[0] != "Z" && f[0] != "X" && f[19] == c.start
}

// runningChildren returns the processes listed in dataDir's PID file, but for
// soar dev itself, that still run.
func runningChildren(t *testing.T, dataDir string) []devChild {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dataDir, devstack.PIDFileName))
	if err != nil {
		t.Fatal(err)
	}
	var children []devChild
	for line := range strings.Lines(string(data)) {
		f := strings.SplitN(strings.TrimSpace(line), " ", 4)
		if len(f) != 4 || strings.HasPrefix(f[0], "#") || f[0] == "soar-dev" {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("PID file line %q", line)
		}
		if c := (devChild{role: f[0], pid: pid, start: f[2]}); c.running() {
			children = append(children, c)
		}
	}
	return children
}

func kubeClient(t *testing.T, dataDir string) *kubernetes.Clientset {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// TestDevRestartsAfterSIGKILL kills soar dev --local-kube with SIGKILL, which
// it cannot catch: its kube-apiserver and etcd must die with it, and a new
// soar dev on the same data directory must start, with etcd's data.
func TestDevRestartsAfterSIGKILL(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("children die with soar dev only on Linux (parent-death signal), and are found through /proc")
	}
	assets, err := devstack.FindKubeAssets()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	p := freePorts(t)
	first := startDevProcess(t, dataDir, assets, p, 2*time.Minute)

	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: "default"}, Data: map[string]string{"k": "v"}}
	if _, err := kubeClient(t, dataDir).CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	children := runningChildren(t, dataDir)
	var roles []string
	for _, c := range children {
		roles = append(roles, c.role)
	}
	if strings.Join(roles, ",") != "etcd,kube-apiserver" {
		t.Fatalf("running children in the PID file: %v", children)
	}

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.wait(t, 5*time.Second)
	testenv.Eventually(t, 5*time.Second, "kube-apiserver and etcd gone with soar dev", func() error {
		for _, c := range children {
			if c.running() {
				return fmt.Errorf("%s (pid %d) still runs", c.role, c.pid)
			}
		}
		return nil
	})

	began := time.Now()
	second := startDevProcess(t, dataDir, assets, p, time.Minute)
	t.Logf("soar dev ready %s after restart on the data directory of the killed one", time.Since(began).Round(time.Millisecond))
	got, err := kubeClient(t, dataDir).CoreV1().ConfigMaps("default").Get(ctx, "kept", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Errorf("ConfigMap made before the kill: %v, %v", got, err)
	}
	children = runningChildren(t, dataDir)
	if len(children) != 2 {
		t.Errorf("running children of the second soar dev: %v", children)
	}

	// A third cannot share the directory.
	third := exec.Command(first.cmd.Path, "dev", "--local-kube", "--data-dir", dataDir, "--playbooks", "../../playbooks/library")
	third.Env = first.cmd.Env
	out, _ := third.CombinedOutput()
	if want := fmt.Sprintf("soar: another soar dev (pid %d) is using %s; stop it first\n", second.cmd.Process.Pid, dataDir); string(out) != want {
		t.Errorf("a second soar dev on the data directory printed %q, want %q", out, want)
	}

	if err := second.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if st := second.wait(t, time.Minute); !st.Success() {
		t.Errorf("soar dev stopped with %v\nstderr:\n%s", st, second.stderr.String())
	}
	for _, c := range children {
		if c.running() {
			t.Errorf("%s (pid %d) runs after soar dev stopped", c.role, c.pid)
		}
	}
	if data, err := os.ReadFile(filepath.Join(dataDir, devstack.PIDFileName)); err != nil || len(data) != 0 {
		t.Errorf("PID file after a clean stop: %q, %v", data, err)
	}
}
