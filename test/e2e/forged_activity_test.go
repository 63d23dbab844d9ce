package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/workflows"
)

// TestAnActivityScheduledByAnotherWorkflowIsRefused: someone who reaches
// Temporal runs a worker of their own whose workflow schedules soar's
// kubernetes.label_pod on soar's task queue, once as a workflow of another
// type and once as a workflow they named Respond on their own queue. soar's
// worker takes both tasks and runs neither: the pod keeps its labels, and
// the attacker's workflow gets UnprovenCaller.
func TestAnActivityScheduledByAnotherWorkflowIsRefused(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	startSoar(t, js, tc, libraryDir, dispatch.Config{})
	ns := fmt.Sprintf("forged-%d", time.Now().UnixNano())
	testenv.Namespace(t, kubeCS, ns)
	testenv.Pod(t, kubeCS, ns, "web-1")

	// The attacker's workflow: one attempt of the action on soar's queue.
	attack := func(ctx workflow.Context) (string, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:           workflows.TaskQueue,
			StartToCloseTimeout: 10 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
		})
		req := contract.ActionRequest{Action: activities.ActionLabelPod, IncidentID: "soar-forged", Step: "x",
			Params: map[string]any{"namespace": ns, "pod": "web-1", "labels": map[string]any{"owned": "yes"}}}
		err := workflow.ExecuteActivity(ctx, activities.ActionLabelPod, req).Get(ctx, nil)
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return appErr.Type() + ": " + appErr.Message(), nil
		}
		return fmt.Sprint(err), nil
	}
	queue := fmt.Sprintf("attacker-%d", time.Now().UnixNano())
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(attack, workflow.RegisterOptions{Name: "Evil"})
	w.RegisterWorkflowWithOptions(attack, workflow.RegisterOptions{Name: workflows.RespondName})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)

	for _, typ := range []string{"Evil", workflows.RespondName} {
		run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: queue + "-" + typ, TaskQueue: queue, WorkflowExecutionTimeout: time.Minute}, typ)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := run.Get(ctx, &got); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s", typ, got)
		if want := contract.ErrTypeUnprovenCaller + ": activity " + activities.ActionLabelPod + " scheduled by "; len(got) < len(want) || got[:len(want)] != want {
			t.Errorf("the attack as a workflow of type %s got %q, want %q…", typ, got, want)
		}
	}
	pod, err := kubeCS.CoreV1().Pods(ns).Get(ctx, "web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Labels["owned"] != "" {
		t.Errorf("the forged activity ran: labels %v", pod.Labels)
	}
}
