package incidents_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/logging"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/workflows"
)

// continueOnce continues as new once, as an incident does after many alerts,
// then waits for the signal "stop".
func continueOnce(ctx workflow.Context, continued bool) error {
	if !continued {
		return workflow.NewContinueAsNewError(ctx, continueOnce, true)
	}
	workflow.GetSignalChannel(ctx, "stop").Receive(ctx, nil)
	return nil
}

func TestListShowsAnIncidentThatContinuedAsNewOnce(t *testing.T) {
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{Namespaces: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Stop() })
	c, err := client.Dial(client.Options{HostPort: ts.Address(), Logger: logging.Temporal{L: zerolog.Nop()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	w.RegisterWorkflow(continueOnce)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)

	ctx := context.Background()
	const id = "soar-continued-0123456789abcdef0123"
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, continueOnce, false); err != nil {
		t.Fatal(err)
	}
	// Both runs are visible: the first closed as ContinuedAsNew, the second
	// running.
	testenv.Eventually(t, 30*time.Second, "two runs in visibility", func() error {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", Query: "WorkflowId = '" + id + "'"})
		if err != nil {
			return err
		}
		statuses := map[string]int{}
		for _, e := range resp.GetExecutions() {
			statuses[e.GetStatus().String()]++
		}
		if len(resp.GetExecutions()) != 2 || statuses["ContinuedAsNew"] != 1 || statuses["Running"] != 1 {
			return fmt.Errorf("runs %v", statuses)
		}
		return nil
	})

	list := func() []incidents.Summary {
		t.Helper()
		got, err := incidents.List(ctx, c, "default", "", 50)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := list(); len(got) != 1 || got[0].ID != id || !got[0].Running || got[0].WorkflowStatus != "Running" {
		t.Fatalf("incident list = %+v, want one running row for %s", got, id)
	}

	if err := c.SignalWorkflow(ctx, id, "", "stop", nil); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "one completed row", func() error {
		if got := list(); len(got) != 1 || got[0].ID != id || got[0].Running || got[0].WorkflowStatus != "Completed" {
			return fmt.Errorf("incident list = %+v", got)
		}
		return nil
	})
}
