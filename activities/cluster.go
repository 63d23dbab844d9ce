package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
//
// Answers are remembered for clusterCheckTTL, for at most
// maxClusterChecks queues: a flood of incidents in one cluster, or naming
// one that does not exist, asks Temporal once per queue and interval.
func (a *Activities) ClusterCheck(ctx context.Context, req contract.ClusterCheckRequest) error {
	if a.TaskQueues == nil {
		return errors.New("this worker cannot describe task queues")
	}
	served, known := a.clusterChecks.get(req.TaskQueue)
	if !known {
		resp, err := a.TaskQueues.DescribeTaskQueue(ctx, req.TaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
		if err != nil {
			return fmt.Errorf("describe task queue %s: %w", req.TaskQueue, err)
		}
		served = len(resp.GetPollers()) > 0
		a.clusterChecks.put(req.TaskQueue, served)
	}
	if !served {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("no worker serves cluster %s: nobody polls task queue %s (start soar worker --cluster %s with that cluster's kubeconfig)", req.Cluster, req.TaskQueue, req.Cluster),
			contract.ErrTypeClusterUnavailable, nil)
	}
	return nil
}

// clusterCheckTTL is how long ClusterCheck trusts an answer. Temporal
// itself forgets a poller only minutes after it left.
const clusterCheckTTL = 5 * time.Second

// maxClusterChecks bounds the answers remembered: past it they are all
// forgotten, so names made up by alerts cannot grow the memory.
const maxClusterChecks = 1024

// clusterChecks remembers ClusterCheck's answers per task queue.
type clusterChecks struct {
	mu      sync.Mutex
	answers map[string]clusterAnswer
}

type clusterAnswer struct {
	served bool
	at     time.Time
}

func (c *clusterChecks) get(queue string) (served, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.answers[queue]
	if !ok || time.Since(a.at) > clusterCheckTTL {
		return false, false
	}
	return a.served, true
}

func (c *clusterChecks) put(queue string, served bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answers == nil || len(c.answers) >= maxClusterChecks {
		c.answers = map[string]clusterAnswer{}
	}
	c.answers[queue] = clusterAnswer{served: served, at: time.Now()}
}
