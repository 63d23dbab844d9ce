package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/testenv"
)

// TestDispatchExitsWhenItsConsumerIsDeleted: someone who may delete
// consumers on the NATS account deletes the dispatcher's. The dispatcher
// can pull nothing more, so 'soar dispatch' exits with an error that says
// why (a supervisor restarts it, and the restart creates the consumer
// again) instead of running on, ready and dispatching nothing.
func TestDispatchExitsWhenItsConsumerIsDeleted(t *testing.T) {
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
	partEnv(t)
	addr := fmt.Sprintf("127.0.0.1:%d", ports.http)
	root := newRootCmd()
	root.SetArgs([]string{"dispatch", "--http-addr", addr, "--log-level", "warn",
		"--temporal-address", ts.Address(), "--nats-url", ns.ClientURL(),
		"--playbooks", filepath.Join("..", "..", "playbooks", "library")})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	testenv.Eventually(t, time.Minute, "dispatcher ready", func() error {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /readyz = %d", resp.StatusCode)
		}
		return nil
	})

	_, js := testenv.Connect(t, ns.ClientURL())
	if err := js.DeleteConsumer(ctx, dispatch.DefaultStream, dispatch.DefaultConsumer); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errDispatcherEnded) {
			t.Fatalf("soar dispatch returned %v, want %v", err, errDispatcherEnded)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("soar dispatch still running 30 s after its consumer was deleted")
	}
}
