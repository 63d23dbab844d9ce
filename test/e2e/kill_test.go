package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
)

var (
	soarBinOnce sync.Once
	soarBin     string
	soarBinErr  error
)

// soarBinary builds the soar command once per test run, for tests that run
// soar as the operator does: as separate processes. It goes in the run's
// directory, which TestMain removes at the end (a quarter of a gigabyte per
// run otherwise stayed behind in the system's temporary directory).
func soarBinary(t testing.TB) string {
	t.Helper()
	soarBinOnce.Do(func() {
		soarBin = filepath.Join(runDir, "bin", "soar")
		out, err := exec.Command("go", "build", "-o", soarBin, "../../cmd/soar").CombinedOutput()
		if err != nil {
			soarBinErr = fmt.Errorf("go build soar: %w\n%s", err, out)
		}
	})
	if soarBinErr != nil {
		t.Fatal(soarBinErr)
	}
	return soarBin
}

// process is a soar subcommand running as a child process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProcess(t *testing.T, log string, args ...string) *process {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(soarBinary(t), args...)
	cmd.Env = append(os.Environ(), "SOAR_SIGNING_KEYS="+testenv.SigningKey)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = f.Close(); close(p.done) }()
	t.Cleanup(func() { p.kill(t) })
	return p
}

// kill sends SIGKILL and waits until the process is gone.
func (p *process) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("soar %v did not die after SIGKILL", p.cmd.Args[1])
	}
}

// soarProcesses starts `soar dispatch` and `soar worker` as child
// processes against the test's NATS server, Temporal and API server, each
// logging to its own file in dir.
type soarProcesses struct {
	t            *testing.T
	dir, natsURL string
}

func (p soarProcesses) common() []string {
	return []string{"--temporal-address", temporalAddr, "--http-addr", "", "--log-format", "json"}
}

// dispatcher starts the nth dispatcher with the library's playbooks and extra flags.
func (p soarProcesses) dispatcher(n int, extra ...string) *process {
	args := append([]string{"dispatch", "--nats-url", p.natsURL, "--playbooks", libraryDir}, extra...)
	return startProcess(p.t, filepath.Join(p.dir, fmt.Sprintf("dispatch-%d.log", n)), append(args, p.common()...)...)
}

// worker starts the nth worker, all of them sharing one evidence store.
func (p soarProcesses) worker(n int) *process {
	return startProcess(p.t, filepath.Join(p.dir, fmt.Sprintf("worker-%d.log", n)),
		append([]string{"worker", "--kubeconfig", kubeconfigPath, "--evidence-dir", filepath.Join(p.dir, "evidence")}, p.common()...)...)
}

// stormIncident is the incident ID that set gives stormAlert's alerts for
// ns/pod.
func stormIncident(t *testing.T, set *app.Playbooks, ns, pod string) string {
	t.Helper()
	a, err := alert.Decode(stormAlert(ns, pod, 0), alert.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	matches, _ := set.Current().Match(a)
	if len(matches) == 0 {
		t.Fatalf("no playbook matches %s/%s", ns, pod)
	}
	return matches[0].IncidentID()
}

// TestKilledDispatcherAndWorkerLoseAndDoubleNoAlert runs soar as separate
// processes, one `soar dispatch` and one `soar worker`, kills both with
// SIGKILL while they drain a backlog of 6,000 alerts over 20 pods, starts
// them again, and checks that every incident counted exactly the alerts
// published for its pod, one incident per pod.
//
// It runs in parallel with the package's other long waits (see
// waitsInParallel).
func TestKilledDispatcherAndWorkerLoseAndDoubleNoAlert(t *testing.T) {
	waitsInParallel(t)
	ctx := context.Background()
	s, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	dir := t.TempDir()
	ns := fmt.Sprintf("kill-%d", time.Now().UnixNano())
	testenv.Namespace(t, kubeCS, ns)
	const pods, perPod = 20, 300
	for i := range pods {
		testenv.Pod(t, kubeCS, ns, fmt.Sprintf("web-%d", i))
	}
	// The stream exists before the first dispatcher, so the backlog can
	// be published first and the kill lands in the middle of its drain.
	if err := dispatch.New(js, nil, nil, nil, testLogger(t), dispatch.Config{}).EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for n := range pods * perPod {
		pod := fmt.Sprintf("web-%d", n%pods)
		if _, err := js.PublishAsync("falco.notice.terminal_shell_in_container", stormAlert(ns, pod, n)); err != nil {
			t.Fatal(err)
		}
		want[pod]++
	}
	<-js.PublishAsyncComplete()

	procs := soarProcesses{t: t, dir: dir, natsURL: s.ClientURL()}
	d1, w1 := procs.dispatcher(1), procs.worker(1)
	backlog := func() dispatch.Backlog {
		b, err := dispatch.ReadBacklog(ctx, js, dispatch.DefaultStream, dispatch.DefaultConsumer)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	testenv.Eventually(t, time.Minute, "the drain to be under way", func() error {
		if b := backlog(); b.Waiting == uint64(pods*perPod) || b.InFlight == 0 {
			return fmt.Errorf("%d waiting, %d in flight", b.Waiting, b.InFlight)
		}
		return nil
	})
	d1.kill(t)
	w1.kill(t)
	b := backlog()
	t.Logf("killed with %d alerts waiting, %d in flight", b.Waiting, b.InFlight)
	if b.Waiting == 0 {
		t.Fatal("the backlog was drained before the kill: the test proves nothing")
	}

	procs.dispatcher(2)
	procs.worker(2)
	// What the killed dispatcher held comes back after the ack wait (30 s).
	testenv.Eventually(t, 3*time.Minute, "the backlog drained after the restart", func() error {
		if b := backlog(); b.Waiting > 0 {
			return fmt.Errorf("%d waiting, %d in flight, %d redelivering", b.Waiting, b.InFlight, b.Redelivering)
		}
		return nil
	})
	set, err := app.LoadPlaybooks(libraryDir)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, "every incident counted its alerts exactly", func() error {
		for pod, n := range want {
			id := stormIncident(t, set, ns, pod)
			st, err := incidentState(ctx, tc, id)
			if err != nil {
				return err
			}
			if st.AlertCount != n {
				return fmt.Errorf("%s: counted %d of %d", pod, st.AlertCount, n)
			}
			if r, err := runs(ctx, tc, id); err != nil || r != 1 {
				return fmt.Errorf("%s: %d runs (%w), want one incident", pod, r, err)
			}
		}
		return nil
	})
}

// TestKilledDispatcherWithWaitingPhantomsLosesAndDoublesNoAlert: a
// `soar dispatch` with a pod index and a lane one wide is killed with
// SIGKILL while most of 150 pods that do not exist (two alerts each) wait
// for their lane: in its memory, or, with room for 10 there, parked in the
// parked stream (some of them pulled and in its hands). Another dispatcher
// takes over: every phantom incident and the real pods' still count
// exactly their alerts, once each. Both cases run in parallel with the
// package's other long waits (see waitsInParallel).
func TestKilledDispatcherWithWaitingPhantomsLosesAndDoublesNoAlert(t *testing.T) {
	waitsInParallel(t)
	t.Run("waiting in memory", func(t *testing.T) {
		waitsInParallel(t)
		killWithWaitingPhantoms(t)
	})
	t.Run("parked", func(t *testing.T) {
		waitsInParallel(t)
		killWithWaitingPhantoms(t, "--unknown-pod-max-waiting", "10")
	})
}

// waitsInParallel marks one of the few tests that spend most of their time
// waiting, mostly for JetStream to hand back what a killed dispatcher held
// (the ack wait, 30 s), as parallel: they run after the sequential tests,
// two at a time (go test's -parallel, GOMAXPROCS by default), which took
// test/e2e from 312–321 s to 253–267 s on two cores. Only tests that share
// nothing a parallel neighbour could disturb may call it. Each has its own
// NATS server and namespace. TestScaleOut has its own Temporal too, and
// counts only its own workers' writes (through its proxy); the lock list it
// shares with the kill tests' workers may answer a conflict, which the
// workers retry and the test allows. The kill tests share the package's
// Temporal, so one test's worker may run the other's tasks. That is all
// right, because every worker runs the same build with the same playbooks,
// and these tests check only what the incidents counted and how many runs
// they made, not where an activity ran. A worker killed while it holds the
// other test's task delays that task by the task timeout and loses nothing.
func waitsInParallel(t *testing.T) {
	t.Helper()
	t.Parallel()
}

func killWithWaitingPhantoms(t *testing.T, args ...string) {
	ctx := context.Background()
	s, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	dir := t.TempDir()
	ns := fmt.Sprintf("kill-phantoms-%d", time.Now().UnixNano())
	testenv.Namespace(t, kubeCS, ns)
	if err := dispatch.New(js, nil, nil, nil, testLogger(t), dispatch.Config{}).EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	const phantoms, real, each = 150, 3, 2
	want := map[string]int{}
	for i := range real {
		testenv.Pod(t, kubeCS, ns, fmt.Sprintf("real-%d", i))
	}
	for n := range each * (phantoms + real) {
		pod := fmt.Sprintf("ghost-%d", n%(phantoms+real))
		if n%(phantoms+real) >= phantoms {
			pod = fmt.Sprintf("real-%d", n%(phantoms+real)-phantoms)
		}
		if _, err := js.PublishAsync("falco.notice.terminal_shell_in_container", stormAlert(ns, pod, n)); err != nil {
			t.Fatal(err)
		}
		want[pod]++
	}
	<-js.PublishAsyncComplete()

	procs := soarProcesses{t: t, dir: dir, natsURL: s.ClientURL()}
	dispatcher := func(n int) *process {
		return procs.dispatcher(n, append([]string{"--pod-index", kubeconfigPath, "--unknown-pod-concurrency", "1"}, args...)...)
	}
	procs.worker(1)
	set, err := app.LoadPlaybooks(libraryDir)
	if err != nil {
		t.Fatal(err)
	}
	id := func(pod string) string { return stormIncident(t, set, ns, pod) }
	opened := func() int {
		n := 0
		for i := range phantoms {
			if _, err := tc.DescribeWorkflowExecution(ctx, id(fmt.Sprintf("ghost-%d", i)), ""); err == nil {
				n++
			}
		}
		return n
	}
	d1 := dispatcher(1)
	// Phantoms open one at a time, in order, so a few in the rest wait.
	testenv.Eventually(t, time.Minute, "the first phantom incidents opened", func() error {
		_, err := tc.DescribeWorkflowExecution(ctx, id("ghost-2"), "")
		return err
	})
	d1.kill(t)
	before := opened()
	parked, err := dispatch.ReadParked(ctx, js, dispatch.DefaultParkedStream, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed after %d of %d phantom incidents opened, %d alerts parked", before, phantoms, parked.Waiting)
	if before == phantoms {
		t.Fatal("every phantom incident opened before the kill: the test proves nothing")
	}
	if (parked.Waiting > 0) != (len(args) > 0) {
		t.Fatalf("%d alerts parked at the kill, with %v", parked.Waiting, args)
	}

	dispatcher(2)
	// What the killed dispatcher held comes back after the ack wait (30 s).
	testenv.Eventually(t, 3*time.Minute, "every incident counted its alerts exactly, once", func() error {
		for pod, n := range want {
			st, err := incidentState(ctx, tc, id(pod))
			if err != nil {
				return fmt.Errorf("%s: %w", pod, err)
			}
			if st.AlertCount != n {
				return fmt.Errorf("%s: counted %d of %d", pod, st.AlertCount, n)
			}
			if r, err := runs(ctx, tc, id(pod)); err != nil || r != 1 {
				return fmt.Errorf("%s: %d runs (%w), want one incident", pod, r, err)
			}
		}
		return nil
	})
}
