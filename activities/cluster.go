package activities

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/activities/contract"
)

// TaskQueueDescriber is the part of Temporal's client that ClusterCheck
// uses.
type TaskQueueDescriber interface {
	DescribeTaskQueue(ctx context.Context, taskQueue string, taskQueueType enumspb.TaskQueueType) (*workflowservice.DescribeTaskQueueResponse, error)
}

// ClusterCheck succeeds when some worker polls the activity task queue of
// a cluster (Temporal lists the pollers it heard from in the last few
// minutes), and fails with the non-retryable ErrTypeClusterUnavailable when
// none does: the cluster is unknown or all its workers are gone, and the
// incident's Kubernetes action must run nowhere rather than wait.
func (a *Activities) ClusterCheck(ctx context.Context, req contract.ClusterCheckRequest) error {
	if a.TaskQueues == nil {
		return errors.New("this worker cannot describe task queues")
	}
	resp, err := a.TaskQueues.DescribeTaskQueue(ctx, req.TaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		return fmt.Errorf("describe task queue %s: %w", req.TaskQueue, err)
	}
	if len(resp.GetPollers()) == 0 {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("no worker serves cluster %s: nobody polls task queue %s (start soar worker --cluster %s with that cluster's kubeconfig)", req.Cluster, req.TaskQueue, req.Cluster),
			contract.ErrTypeClusterUnavailable, nil)
	}
	return nil
}
