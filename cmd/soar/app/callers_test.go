package app

import (
	"context"
	"errors"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/activities/contract"
)

// runs answers DescribeWorkflowExecution from a map of run ID → task
// queue; a run it does not know is an error.
type runs struct {
	queue map[string]string
	calls int
}

func (r *runs) DescribeWorkflowExecution(_ context.Context, _, run string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	r.calls++
	q, ok := r.queue[run]
	if !ok {
		return nil, errors.New("unavailable")
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		TaskQueue: q, Type: &commonpb.WorkflowType{Name: "Respond"},
	}}, nil
}

func TestCallersRunOnlyWhatSoarsIncidentsSchedule(t *testing.T) {
	r := &runs{queue: map[string]string{"soar-run": "soar", "other-run": "elsewhere"}}
	c := newCallers(r, "soar", "Respond")
	info := func(typ, run string, local bool) activity.Info {
		return activity.Info{
			ActivityType: activity.Type{Name: "kubernetes.quarantine"}, IsLocalActivity: local,
			WorkflowType: &workflow.Type{Name: typ}, WorkflowExecution: workflow.Execution{ID: "w", RunID: run},
		}
	}
	unproven := func(err error) bool {
		var appErr *temporal.ApplicationError
		return errors.As(err, &appErr) && appErr.Type() == contract.ErrTypeUnprovenCaller && appErr.NonRetryable()
	}
	ctx := context.Background()
	for range 2 {
		if err := c.check(ctx, info("Respond", "soar-run", false)); err != nil {
			t.Errorf("soar's incident: %v", err)
		}
		if err := c.check(ctx, info("Respond", "other-run", false)); !unproven(err) {
			t.Errorf("a Respond on another queue: %v, want %s", err, contract.ErrTypeUnprovenCaller)
		}
	}
	if r.calls != 2 {
		t.Errorf("Temporal asked %d times for 2 runs checked twice each, want 2", r.calls)
	}
	if err := c.check(ctx, info("Evil", "soar-run", false)); !unproven(err) {
		t.Errorf("a workflow of another type: %v", err)
	}
	if err := c.check(ctx, info("Evil", "any", true)); err != nil {
		t.Errorf("a local activity, run by its own workflow's worker: %v", err)
	}
	err := c.check(ctx, info("Respond", "unknown-run", false))
	if err == nil || unproven(err) {
		t.Errorf("Temporal unable to tell: %v, want a retryable error", err)
	}
}
