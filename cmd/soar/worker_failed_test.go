package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/workflows"
)

// TestWorkerExitsWhenTemporalRefusesItForGood: the worker's namespace is
// deleted under it. The SDK retries its polls for its grace period (2
// minutes), then stops the worker for good; 'soar worker' then exits with
// an error that says why instead of running on, polling nothing, while
// incidents wait. (It takes about three minutes: the grace period cannot be
// shortened from outside the SDK.) A cluster's worker, which needs no
// signing keys, stands for every worker: StartWorker does the same for both.
func TestWorkerExitsWhenTemporalRefusesItForGood(t *testing.T) {
	const namespace, cluster = "doomed", "c1"
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{Namespaces: []string{namespace}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Stop() })
	kubeconfig := unreachableKubeconfig(t)
	run := runBackground(t, nil, "worker", "--cluster", cluster, "--kubeconfig", kubeconfig, "--http-addr", "", "--log-level", "error",
		"--temporal-address", ts.Address(), "--temporal-namespace", namespace)
	ctx := context.Background()

	tc, err := client.Dial(client.Options{HostPort: ts.Address(), Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	queue := contract.ClusterTaskQueue(workflows.TaskQueue, cluster)
	testenv.Eventually(t, time.Minute, "the worker polls its queue", func() error {
		resp, err := tc.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
			Namespace: namespace, TaskQueue: &taskqueue.TaskQueue{Name: queue}, TaskQueueType: enums.TASK_QUEUE_TYPE_ACTIVITY,
		})
		if err != nil {
			return err
		}
		if len(resp.GetPollers()) == 0 {
			return errors.New("no poller yet")
		}
		return nil
	})
	if _, err := tc.OperatorService().DeleteNamespace(ctx, &operatorservice.DeleteNamespaceRequest{Namespace: namespace}); err != nil {
		t.Fatal(err)
	}
	err = run.exited(6 * time.Minute)
	if err == nil || !strings.Contains(err.Error(), "the worker stopped on its own") || !strings.Contains(err.Error(), "Namespace "+namespace+" is not found") {
		t.Errorf("soar worker returned %v, want the worker stopped on its own, namespace not found", err)
	}
}
