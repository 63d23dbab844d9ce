package workflows

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/playbooks"
)

// testQueue is the test suite's task queue, where the incident runs.
const testQueue = "default-test-taskqueue"

// queues records, for each action, the task queue each of its activities
// ran on.
func (e env) queues(reply func(string, activities.ActionRequest) (map[string]any, error), actions ...string) map[string][]string {
	got := map[string][]string{}
	for _, a := range actions {
		e.OnActivity(a, mock.Anything, mock.Anything).Return(func(ctx context.Context, req activities.ActionRequest) (map[string]any, error) {
			got[a] = append(got[a], activity.GetInfo(ctx).TaskQueue)
			return reply(a, req)
		})
	}
	return got
}

func TestAClusterIncidentActsOnKubernetesOnlyThroughItsClustersQueue(t *testing.T) {
	e := newEnv(t)
	var checks []contract.ClusterCheckRequest
	e.OnActivity(contract.ClusterCheckActivity, mock.Anything, mock.Anything).Return(func(_ context.Context, req contract.ClusterCheckRequest) error {
		checks = append(checks, req)
		return nil
	})
	notify := playbooks.StepSpec{ID: "notify", Action: activities.ActionSlackNotify, With: map[string]string{"text": `"x"`}}
	queues := e.queues(func(a string, req activities.ActionRequest) (map[string]any, error) {
		switch a {
		case activities.ActionQuarantine:
			return quarantined(req)
		case activities.ActionSnapshot:
			return nil, temporal.NewNonRetryableApplicationError("gone", activities.ErrTypeTargetNotFound, nil)
		}
		return map[string]any{}, nil
	}, activities.ActionQuarantine, activities.ActionLabelPod, activities.ActionSnapshot, activities.ActionRelease, activities.ActionRestoreLabels, activities.ActionSlackNotify)
	var thread contract.SlackThreadRequest
	e.OnActivity(contract.SlackThreadActivity, mock.Anything, mock.Anything).Return(func(_ context.Context, req contract.SlackThreadRequest) (contract.SlackThreadResult, error) {
		thread = req
		return contract.SlackThreadResult{Channel: "C1", TS: "1.1"}, nil
	})
	e.sendAlert(0, shellAlert(func(a *alert.Alert) { a.Cluster = "eu-1" }), "SOAR_ALERTS:1")
	e.ExecuteWorkflow(Respond, playbookOf(containStep, labelStep, notify, evidenceStep))
	st := e.result()
	if thread.View.Target.Cluster != "eu-1" {
		t.Errorf("the Slack thread's target %+v names no cluster eu-1", thread.View.Target)
	}

	if want := []string{"contain", "label", "notify", "evidence", "label.release", "contain.release"}; !slices.Equal(stepIDs(st), want) {
		t.Fatalf("steps %v, want %v", stepIDs(st), want)
	}
	queue := contract.ClusterTaskQueue(testQueue, "eu-1")
	for _, a := range []string{activities.ActionQuarantine, activities.ActionLabelPod, activities.ActionSnapshot, activities.ActionRelease, activities.ActionRestoreLabels} {
		if got := queues[a]; len(got) != 1 || got[0] != queue {
			t.Errorf("%s ran on %v, want once on %s", a, got, queue)
		}
	}
	if got := queues[activities.ActionSlackNotify]; len(got) != 1 || got[0] == queue {
		t.Errorf("slack.notify ran on %v, want once on the incident's own queue", got)
	}
	if len(checks) != 1 || checks[0] != (contract.ClusterCheckRequest{Cluster: "eu-1", TaskQueue: queue}) {
		t.Errorf("cluster checks %+v, want one for eu-1 on %s", checks, queue)
	}
}

func TestAClusterWithoutWorkerFailsItsKubernetesStepsAndActsNowhere(t *testing.T) {
	e := newEnv(t)
	e.OnActivity(contract.ClusterCheckActivity, mock.Anything, mock.Anything).Return(
		temporal.NewNonRetryableApplicationError("no worker serves cluster gone", ErrTypeClusterUnavailable, nil))
	queues := e.queues(func(string, activities.ActionRequest) (map[string]any, error) { return map[string]any{}, nil },
		activities.ActionQuarantine, activities.ActionLabelPod)
	e.sendAlert(0, shellAlert(func(a *alert.Alert) { a.Cluster = "gone" }), "SOAR_ALERTS:1")
	e.ExecuteWorkflow(Respond, playbookOf(containStep))
	st := e.result()
	if len(queues) != 0 {
		t.Errorf("actions ran: %v", queues)
	}
	if r := st.Steps[0]; r.Status != StepFailed || r.ErrorType != ErrTypeClusterUnavailable {
		t.Errorf("contain = %+v, want failed as %s", r, ErrTypeClusterUnavailable)
	}
	if st.Outcome != OutcomeFailed {
		t.Errorf("outcome %s, want %s", st.Outcome, OutcomeFailed)
	}
}

func TestAnIncidentWithoutClusterNeverChecksOne(t *testing.T) {
	e := newEnv(t)
	checked := false
	e.OnActivity(contract.ClusterCheckActivity, mock.Anything, mock.Anything).Return(func(context.Context, contract.ClusterCheckRequest) error {
		checked = true
		return nil
	})
	queues := e.queues(func(_ string, req activities.ActionRequest) (map[string]any, error) { return quarantined(req) }, activities.ActionQuarantine)
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.ExecuteWorkflow(Respond, playbookOf(containStep))
	e.result()
	if checked {
		t.Error("an incident without a cluster checked one")
	}
	if got := queues[activities.ActionQuarantine]; len(got) != 1 || got[0] != testQueue {
		t.Errorf("quarantine ran on %v, want once on %s", got, testQueue)
	}
}
