package incidents_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/incidents"
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
	c := testenv.Temporal(t)
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

// TestListReadsLifecycleOutcomeAndCountsOldAndNew lists, from a real
// Temporal, an incident recorded before the lifecycle and the outcome were
// split (its outcome in SoarStatus) and one recorded after (SoarStatus,
// SoarOutcome and the published alert count).
func TestListReadsLifecycleOutcomeAndCountsOldAndNew(t *testing.T) {
	c := testenv.Temporal(t)
	ctx := context.Background()
	if err := incidents.EnsureSearchAttributes(ctx, c, "default"); err != nil {
		t.Fatal(err)
	}
	last := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for id, sa := range map[string]temporal.SearchAttributes{
		"soar-old": temporal.NewSearchAttributes(workflows.SearchStatus.ValueSet(workflows.StatusContained)),
		"soar-new": temporal.NewSearchAttributes(workflows.SearchStatus.ValueSet(workflows.LifecycleOpen), workflows.SearchOutcome.ValueSet(workflows.OutcomeDenied),
			workflows.SearchAlertCount.ValueSet(7), workflows.SearchLastAlert.ValueSet(last)),
	} {
		// No worker runs them: the list reads visibility only.
		if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue, TypedSearchAttributes: sa}, workflows.RespondName); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 30*time.Second, "both incidents listed as they were recorded", func() error {
		got, err := incidents.List(ctx, c, "default", "", 10)
		if err != nil {
			return err
		}
		rows := map[string]incidents.Summary{}
		for _, s := range got {
			rows[s.ID] = s
		}
		old, nw := rows["soar-old"], rows["soar-new"]
		if old.Status != workflows.LifecycleOpen || old.Outcome != workflows.OutcomeContained || old.AlertCount != 0 {
			return fmt.Errorf("the old incident: %+v, want open, contained, no count", old)
		}
		if nw.Status != workflows.LifecycleOpen || nw.Outcome != workflows.OutcomeDenied || nw.AlertCount != 7 || !nw.LastAlertAt.Equal(last) {
			return fmt.Errorf("the new incident: %+v, want open, denied, 7 alerts, the last at %s", nw, last)
		}
		return nil
	})
}
