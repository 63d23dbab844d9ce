package main

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/testenv"
)

// TestDispatchExitsWhenItsStreamIsDeleted: someone who may delete streams
// on the NATS account deletes the alert stream, and with it the
// dispatcher's consumer. The dispatcher cannot create its consumer again
// (a deleted consumer alone it creates again:
// dispatch.TestADeletedAlertConsumerIsCreatedAgain) and can pull nothing
// more, so 'soar dispatch' exits with an error that says why (a supervisor
// restarts it, and the restart creates both) instead of running on, ready
// and dispatching nothing.
func TestDispatchExitsWhenItsStreamIsDeleted(t *testing.T) {
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
	if err := js.DeleteStream(context.Background(), dispatch.DefaultStream); err != nil {
		t.Fatal(err)
	}
	if err := run.exited(30 * time.Second); !errors.Is(err, errDispatcherEnded) {
		t.Fatalf("soar dispatch returned %v, want %v", err, errDispatcherEnded)
	}
}
