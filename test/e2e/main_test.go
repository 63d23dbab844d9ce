// Package e2e tests soar end to end on real parts: an in-process NATS server
// with JetStream, an embedded Temporal server, and a kube-apiserver with etcd,
// wired exactly as 'soar dev' wires them.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.temporal.io/sdk/client"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/workflows"
)

// The Temporal server and the API server take seconds to start, so one of each
// serves the whole package; tests keep apart by namespace and pod names.
var (
	temporalAddr string
	kubeConfig   *rest.Config
	kubeClient   *kube.Client
	kubeCS       kubernetes.Interface
	// kubeconfigPath is an administrator's kubeconfig for the API server.
	kubeconfigPath string
	// runDir holds the run's files (Temporal's database, the soar binary);
	// it is removed when the run ends.
	runDir string
)

func TestMain(m *testing.M) {
	maybeRunScaleChild() // Temporal or a NATS node of the scale-out test, in a process of its own
	// kube-apiserver and etcd start through this binary as a shim that
	// gives them a parent-death signal: a test binary killed by a timeout
	// or by hand leaves neither running.
	devstack.MaybeRunChildShim()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// A file-backed database, as 'soar dev' uses, so that benchmarks measure
	// what a user gets.
	dir, err := os.MkdirTemp("", "soar-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	runDir = dir
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{DBPath: filepath.Join(dir, "temporal.db"), Namespaces: []string{"default"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start temporal:", err)
		return 1
	}
	defer func() { _ = ts.Stop() }()
	temporalAddr = ts.Address()

	k, err := devstack.StartKube(devstack.KubeOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start kube-apiserver (run 'make kube-tools'):", err)
		return 1
	}
	defer func() { _ = k.Stop() }()
	// soar processes the tests start act on the same API server.
	kc, err := k.Kubeconfig()
	if err == nil {
		kubeconfigPath = filepath.Join(dir, "kubeconfig")
		err = os.WriteFile(kubeconfigPath, kc, 0o600)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg := *k.Config
	cfg.QPS, cfg.Burst = kube.DefaultQPS, kube.DefaultBurst
	cfg.WrapTransport = apiCalls.wrap // benchmarks see where an alert's time goes
	kubeConfig = &cfg
	if kubeClient, err = kube.NewForConfig(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if kubeCS, err = kubernetes.NewForConfig(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: temporalAddr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial temporal:", err)
		return 1
	}
	err = incidents.EnsureSearchAttributes(ctx, c, "default")
	c.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// temporalClient dials the shared Temporal server.
func temporalClient(t testing.TB) client.Client {
	t.Helper()
	c, err := app.DialTemporal(context.Background(), app.TemporalOptions{Address: temporalAddr, Namespace: "default"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// stack is one soar worker and one dispatcher, as 'soar dev' runs them.
type stack struct {
	worker     interface{ Stop() }
	dispatcher *app.Dispatcher
	metrics    *metrics.Metrics
	playbooks  *app.Playbooks
}

// startSoar starts a worker and a dispatcher on js with the playbooks in dir.
func startSoar(t testing.TB, js jetstream.JetStream, tc client.Client, playbookDir string, cfg dispatch.Config) *stack {
	t.Helper()
	return startSoarOn(t, kubeClient, js, tc, playbookDir, cfg)
}

// startSoarOn is startSoar with a worker acting through kc.
func startSoarOn(t testing.TB, kc *kube.Client, js jetstream.JetStream, tc client.Client, playbookDir string, cfg dispatch.Config) *stack {
	t.Helper()
	return startSoarWith(t, app.WorkerConfig{Kube: kc}, js, tc, playbookDir, cfg)
}

// startSoarWith is startSoar with a worker configured as wc, whose
// evidence store, collector and protected namespaces are the tests'.
func startSoarWith(t testing.TB, wc app.WorkerConfig, js jetstream.JetStream, tc client.Client, playbookDir string, cfg dispatch.Config) *stack {
	t.Helper()
	wc.Evidence = evidence.NewLocal(evidenceDir(t))
	wc.Collector = evidence.Collector{Tool: "soar", Version: "e2e", Identity: "soar-worker@e2e"}
	wc.ProtectedNamespaces = app.ProtectedNamespaces(nil)
	wc.Keys = testenv.SigningKeys()
	w, err := app.StartWorker(tc, wc)
	if err != nil {
		t.Fatal(err)
	}
	s := startDispatcher(t, js, tc, playbookDir, cfg)
	s.worker = w
	return s
}

// evidenceDir is the evidence store of the test's workers: one per test, so
// that a restarted worker finds what the first one stored.
func evidenceDir(t testing.TB) string {
	t.Helper()
	if d, ok := evidenceDirs.Load(t.Name()); ok {
		return d.(string)
	}
	d := t.TempDir()
	evidenceDirs.Store(t.Name(), d)
	// A benchmark runs under the same name more than once, each run with a
	// temporary directory of its own that is removed when the run ends.
	t.Cleanup(func() { evidenceDirs.Delete(t.Name()) })
	return d
}

var evidenceDirs sync.Map

// startDispatcher starts only a dispatcher.
func startDispatcher(t testing.TB, js jetstream.JetStream, tc client.Client, playbookDir string, cfg dispatch.Config) *stack {
	t.Helper()
	pb, err := app.LoadPlaybooks(playbookDir)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	cfg.Keys = testenv.SigningKeys()
	d, err := app.StartDispatcher(context.Background(), js, tc, pb, m, testLogger(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{dispatcher: d, metrics: m, playbooks: pb}
	t.Cleanup(s.stop)
	return s
}

func (s *stack) stop() {
	if s.dispatcher != nil {
		_ = s.dispatcher.Stop()
		s.dispatcher = nil
	}
	if s.worker != nil {
		s.worker.Stop()
		s.worker = nil
	}
}

// soarService votes, closes and releases as serve does, with the tests'
// signing keys.
func soarService(t testing.TB, tc client.Client) *incidents.Service {
	return &incidents.Service{Temporal: tc, Keys: testenv.SigningKeys(), Log: testLogger(t)}
}

// stopIncident closes the incident, or releases it, as serve does for
// 'soar incident close|release'.
func stopIncident(ctx context.Context, t testing.TB, tc client.Client, id string, release bool, reason string) error {
	_, err := soarService(t, tc).Stop(ctx, id, workflows.StopRequest{Release: release, Reason: reason, By: "api:e2e"})
	return err
}

// testLogger logs into the test's output, shown when it fails. Benchmarks log
// only warnings, so that their table stays readable.
func testLogger(t testing.TB) zerolog.Logger {
	level := zerolog.InfoLevel
	if _, isBench := t.(*testing.B); isBench {
		level = zerolog.WarnLevel
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(level)
}

// sharedAlert reads a sample from ../shared/testdata/alerts, as published by
// the project's detectors.
func sharedAlert(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "testdata", "alerts", name))
	if err != nil {
		t.Fatalf("read shared sample (CI checks out ../shared beside the repo): %v", err)
	}
	return b
}
