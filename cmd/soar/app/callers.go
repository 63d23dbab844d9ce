package app

import (
	"context"
	"fmt"
	"sync"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/activities/contract"
)

// callerDescriber is the part of Temporal's client that callers uses.
type callerDescriber interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// callers refuses every activity task that soar's own incidents did not
// schedule. Anyone who reaches Temporal can run a worker of their own whose
// workflow schedules kubernetes.delete_pod on soar's task queue, where
// soar's workers would run it: no proof, no approval, no incident. So a
// worker runs an activity only for a workflow of type workflowType that
// runs on the task queue queue, which only soar's workers poll and whose
// workflow checks the proof of its start (workflows/proofs.go). Local
// activities are run by the worker that runs their workflow and are not
// checked. What a workflow's run is never changes, so the answer is kept
// per run.
//
// What this does not stop: a worker of someone else's polling soar's own
// task queue runs soar's workflow tasks as it likes. Temporal's
// authorizer must keep others off the queue (deploy/README.md).
type callers struct {
	interceptor.WorkerInterceptorBase
	temporal            callerDescriber
	queue, workflowType string

	mu    sync.Mutex
	known map[string]error // run ID → nil (soar's) or why not
}

// maxKnownCallers bounds the runs callers remembers; past it, it forgets
// them all.
const maxKnownCallers = 16384

func newCallers(c callerDescriber, queue, workflowType string) *callers {
	return &callers{temporal: c, queue: queue, workflowType: workflowType, known: map[string]error{}}
}

func (c *callers) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &callerCheck{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, callers: c}
}

type callerCheck struct {
	interceptor.ActivityInboundInterceptorBase
	callers *callers
}

func (i *callerCheck) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	if err := i.callers.check(ctx, activity.GetInfo(ctx)); err != nil {
		activity.GetLogger(ctx).Warn("activity refused: not scheduled by one of soar's incidents", "error", err)
		return nil, err
	}
	return i.Next.ExecuteActivity(ctx, in)
}

// check returns nil for an activity of one of soar's incidents, a
// non-retryable ErrTypeUnprovenCaller error for any other, and a retryable
// error when Temporal cannot tell.
func (c *callers) check(ctx context.Context, info activity.Info) error {
	if info.IsLocalActivity {
		return nil
	}
	refuse := func(format string, args ...any) error {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), contract.ErrTypeUnprovenCaller, nil)
	}
	if info.WorkflowType == nil || info.WorkflowType.Name != c.workflowType {
		name := "?"
		if info.WorkflowType != nil {
			name = info.WorkflowType.Name
		}
		return refuse("activity %s scheduled by a workflow of type %q, not by soar's %s", info.ActivityType.Name, name, c.workflowType)
	}
	run := info.WorkflowExecution.RunID
	c.mu.Lock()
	known, ok := c.known[run]
	c.mu.Unlock()
	if ok {
		return known
	}
	resp, err := c.temporal.DescribeWorkflowExecution(ctx, info.WorkflowExecution.ID, run)
	if err != nil {
		return fmt.Errorf("describe the workflow that scheduled activity %s: %w", info.ActivityType.Name, err)
	}
	wf := resp.GetWorkflowExecutionInfo()
	var verdict error
	if q, t := wf.GetTaskQueue(), wf.GetType().GetName(); q != c.queue || t != c.workflowType {
		verdict = refuse("activity %s scheduled by workflow %s (type %q on task queue %q), not by soar's %s on %q", info.ActivityType.Name, info.WorkflowExecution.ID, t, q, c.workflowType, c.queue)
	}
	c.mu.Lock()
	if len(c.known) >= maxKnownCallers {
		clear(c.known)
	}
	c.known[run] = verdict
	c.mu.Unlock()
	return verdict
}
