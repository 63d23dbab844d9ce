package activities

import (
	"context"
	"errors"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/activities/contract"
)

// pollers answers DescribeTaskQueue from a map of queue → poller count.
type pollers struct {
	n     map[string]int
	calls int
}

func (p *pollers) DescribeTaskQueue(_ context.Context, q string, typ enumspb.TaskQueueType) (*workflowservice.DescribeTaskQueueResponse, error) {
	p.calls++
	if typ != enumspb.TASK_QUEUE_TYPE_ACTIVITY {
		return nil, errors.New("not the activity queue")
	}
	resp := &workflowservice.DescribeTaskQueueResponse{}
	for range p.n[q] {
		resp.Pollers = append(resp.Pollers, &taskqueuepb.PollerInfo{Identity: "w"})
	}
	return resp, nil
}

func TestClusterCheck(t *testing.T) {
	p := &pollers{n: map[string]int{"soar-cluster-a": 2}}
	a := &Activities{TaskQueues: p}
	ctx := context.Background()
	for range 3 {
		if err := a.ClusterCheck(ctx, contract.ClusterCheckRequest{Cluster: "a", TaskQueue: "soar-cluster-a"}); err != nil {
			t.Fatalf("a served cluster: %v", err)
		}
		err := a.ClusterCheck(ctx, contract.ClusterCheckRequest{Cluster: "b", TaskQueue: "soar-cluster-b"})
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != contract.ErrTypeClusterUnavailable || !appErr.NonRetryable() {
			t.Fatalf("a cluster nobody serves: %v, want a non-retryable %s", err, contract.ErrTypeClusterUnavailable)
		}
	}
	if p.calls != 2 {
		t.Errorf("Temporal asked %d times for 2 queues checked 3 times each within the TTL, want 2", p.calls)
	}
	if err := (&Activities{}).ClusterCheck(ctx, contract.ClusterCheckRequest{Cluster: "a", TaskQueue: "q"}); err == nil {
		t.Error("a worker without a Temporal client answered")
	}
}
