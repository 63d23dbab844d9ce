package main

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/testenv"
)

// TestDispatchExitsWhenItsStreamIsReplaced: someone who may delete streams
// on the NATS account deletes the alert stream, and with it the
// dispatcher's consumer, and creates one in its place that keeps alerts in
// memory only. The dispatcher cannot use it (a deleted stream or consumer
// alone it creates again: dispatch.TestADeletedAlertStreamIsCreatedAgain)
// and can pull nothing more, so 'soar dispatch' exits with an error that
// says why (a supervisor restarts it, and the restart says what to do)
// instead of running on, ready and dispatching nothing.
func TestDispatchExitsWhenItsStreamIsReplaced(t *testing.T) {
	ports := freePorts(t)
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{Port: ports.temporal, Namespaces: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Stop() })
	ns, err := devstack.StartNATS(devstack.NATSOptions{Port: ports.nats, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	run, _, _ := partRun(t, "dispatch", "--temporal-address", ts.Address(), "--nats-url", ns.ClientURL(),
		"--playbooks", filepath.Join("..", "..", "playbooks", "library"))

	_, js := testenv.Connect(t, ns.ClientURL())
	testenv.ReplaceStream(t, js, dispatch.DefaultStream, func(cfg *jetstream.StreamConfig) { cfg.Storage = jetstream.MemoryStorage })
	if err := run.exited(30 * time.Second); !errors.Is(err, errDispatcherEnded) {
		t.Fatalf("soar dispatch returned %v, want %v", err, errDispatcherEnded)
	}
}
