package workflows

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/playbooks"
)

// shellAlert is the terminal-shell sample, reduced to what the workflow reads.
func shellAlert(mods ...func(*alert.Alert)) alert.Alert {
	a := alert.Alert{
		ID:       "5d1f3c0e-8a57-4b43-9a8e-1f2b7f0c4a11",
		Source:   "syscall",
		Rule:     "Terminal shell in container",
		Severity: alert.SeverityNotice,
		Time:     time.Date(2026, 11, 20, 13, 44, 5, 0, time.UTC),
		Kubernetes: alert.Kubernetes{
			Namespace: "payments", Pod: "checkout-7d9f8b6c5-x2lqp", Container: "shell", Node: "worker-2",
		},
		Format: "falco",
	}
	for _, m := range mods {
		m(&a)
	}
	return a
}

func quarantinePlaybook() playbooks.Spec {
	return playbooks.Spec{
		Name:     "terminal-shell-in-container",
		Version:  "sha256:0123456789abcdef",
		Workflow: RespondName,
		Window:   10 * time.Minute,
		Steps: []playbooks.StepSpec{{
			ID: "contain", Action: activities.ActionQuarantine,
			With: map[string]string{"namespace": "alert.k8s.namespace", "pod": "alert.k8s.pod"},
		}},
	}
}

func input() RespondInput {
	return RespondInput{IncidentID: "soar-terminal-shell-in-container-abc", IncidentKey: "payments/checkout-7d9f8b6c5-x2lqp", Playbook: quarantinePlaybook()}
}

type env struct {
	*testsuite.TestWorkflowEnvironment
	t *testing.T
}

func newEnv(t *testing.T) env {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	e := s.NewTestWorkflowEnvironment()
	e.RegisterWorkflowWithOptions(Respond, workflow.RegisterOptions{Name: RespondName})
	// The Quarantine method is what incidents from before generic actions
	// call; every catalogue action is an activity named after it. Both are
	// registered so that mocks have something to replace; with nil clients
	// an unmocked action fails rather than reach a cluster.
	e.RegisterActivity(&activities.Activities{})
	activities.Register(e, &activities.Activities{})
	return env{e, t}
}

// reply is how a mocked action answers a request.
type reply func(req activities.ActionRequest) (map[string]any, error)

// onAction mocks the activity of action with r and returns the requests it
// receives, retries included, in order.
//
// Every request must name the incident's occurrence; the requests recorded
// leave it out, so that tests compare what differs between them.
func (e env) onAction(action string, r reply) *[]activities.ActionRequest {
	var reqs []activities.ActionRequest
	e.OnActivity(action, mock.Anything, mock.Anything).Return(
		func(_ context.Context, req activities.ActionRequest) (map[string]any, error) {
			if _, err := time.Parse("20060102T150405Z", req.Occurrence); err != nil {
				e.t.Errorf("%s: occurrence %q is not when the incident opened: %v", req.Action, req.Occurrence, err)
			}
			req.Occurrence = ""
			reqs = append(reqs, req)
			return r(req)
		})
	return &reqs
}

// quarantined answers a quarantine as the real action does when it isolated
// the pod: the pod, the label and the incident's policy.
func quarantined(req activities.ActionRequest) (map[string]any, error) {
	return map[string]any{
		"namespace": req.Params["namespace"], "pod": req.Params["pod"],
		"label": "soar.dev/quarantine=true", "labeled": true,
		"policy": "soar-quarantine-" + req.IncidentID, "policyCreated": true,
		"dryRun": req.DryRun,
	}, nil
}

// succeeds answers any action with an empty output.
func succeeds(activities.ActionRequest) (map[string]any, error) { return map[string]any{}, nil }

// fails answers any action with err.
func fails(err error) reply {
	return func(activities.ActionRequest) (map[string]any, error) { return nil, err }
}

// statuses records every status the workflow sets, in order, as the
// search attributes see them: "lifecycle/outcome" (SoarStatus/SoarOutcome),
// or the lifecycle alone before an outcome.
func (e env) statuses() *[]string {
	var got []string
	e.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if sa, ok := args.Get(0).(temporal.SearchAttributes); ok {
			if s, ok := sa.GetKeyword(SearchStatus); ok {
				if o, ok := sa.GetKeyword(SearchOutcome); ok {
					s += "/" + o
				}
				got = append(got, s)
			}
		}
	}).Return().Maybe()
	return &got
}

// sendAlert delivers an alert signal after delay of workflow time.
func (e env) sendAlert(delay time.Duration, a alert.Alert, deliveryID string) {
	e.RegisterDelayedCallback(func() {
		e.SignalWorkflow(SignalAlert, AlertSignal{Alert: a, DeliveryID: deliveryID})
	}, delay)
}

func (e env) result() *IncidentState {
	e.t.Helper()
	if !e.IsWorkflowCompleted() {
		e.t.Fatal("workflow did not complete")
	}
	if err := e.GetWorkflowError(); err != nil {
		e.t.Fatalf("workflow failed: %v", err)
	}
	var st IncidentState
	if err := e.GetWorkflowResult(&st); err != nil {
		e.t.Fatal(err)
	}
	return &st
}

func TestRespondQuarantinesThenCountsJoiningAlertsUntilQuiet(t *testing.T) {
	e := newEnv(t)
	reqs := e.onAction(activities.ActionQuarantine, quarantined)
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.sendAlert(time.Minute, shellAlert(), "SOAR_ALERTS:2")
	e.sendAlert(2*time.Minute, shellAlert(), "SOAR_ALERTS:3")
	e.ExecuteWorkflow(Respond, input())

	st := e.result()
	want := activities.ActionRequest{
		Action: activities.ActionQuarantine, IncidentID: input().IncidentID, Step: "contain",
		Params: map[string]any{"namespace": "payments", "pod": "checkout-7d9f8b6c5-x2lqp"},
	}
	if len(*reqs) != 1 || !reflect.DeepEqual((*reqs)[0], want) {
		t.Errorf("quarantine requests = %+v, want once %+v", *reqs, want)
	}
	if st.Status != StatusClosed || st.AlertCount != 3 || !st.StepsDone {
		t.Errorf("state = status %q, alerts %d, stepsDone %v; want closed, 3, true", st.Status, st.AlertCount, st.StepsDone)
	}
	if len(st.Steps) != 1 || st.Steps[0].Status != StepSucceeded || st.Steps[0].Output["policy"] != "soar-quarantine-"+input().IncidentID {
		t.Errorf("steps = %+v", st.Steps)
	}
	if st.Steps[0].Params["pod"] != "checkout-7d9f8b6c5-x2lqp" {
		t.Errorf("resolved params = %v", st.Steps[0].Params)
	}
	// The window is measured from the last alert (at 2m), not the first.
	if got := st.ClosedAt.Sub(st.OpenedAt); got != 12*time.Minute {
		t.Errorf("closed %s after opening, want 12m (last alert + window)", got)
	}
	if st.PlaybookVersion != "sha256:0123456789abcdef" {
		t.Errorf("playbook version = %q", st.PlaybookVersion)
	}
}

func TestRespondSettlesDegradedWhenTheQuarantineCannotCutTraffic(t *testing.T) {
	e := newEnv(t)
	why := "the pod uses its node's network (hostNetwork), where NetworkPolicies do not apply"
	e.onAction(activities.ActionQuarantine, func(activities.ActionRequest) (map[string]any, error) {
		return map[string]any{"labeled": true, "hostNetwork": true, "degraded": why}, nil
	})
	statuses := e.statuses()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.ExecuteWorkflow(Respond, input())
	st := e.result()
	if len(st.Steps) != 1 || st.Steps[0].Status != StepSucceeded || st.Steps[0].Degraded != why {
		t.Fatalf("steps = %+v, want the quarantine succeeded but degraded", st.Steps)
	}
	if !slices.Contains(*statuses, "open/degraded") || slices.Contains(*statuses, "open/contained") {
		t.Errorf("statuses = %v, want degraded and never contained", *statuses)
	}
}

func TestRespondCountsARedeliveredAlertOnce(t *testing.T) {
	e := newEnv(t)
	reqs := e.onAction(activities.ActionQuarantine, quarantined)
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:7")
	e.sendAlert(time.Second, shellAlert(), "SOAR_ALERTS:7")
	e.sendAlert(2*time.Second, shellAlert(), "SOAR_ALERTS:8")
	e.ExecuteWorkflow(Respond, input())
	if st := e.result(); st.AlertCount != 2 || len(*reqs) != 1 {
		t.Errorf("alert count = %d, quarantines %d; want 2 (delivery 7 twice counts once) and 1", st.AlertCount, len(*reqs))
	}
}

func TestRespondRecordsANonRetryableFailure(t *testing.T) {
	e := newEnv(t)
	reqs := e.onAction(activities.ActionQuarantine, fails(
		temporal.NewNonRetryableApplicationError(`namespace "kube-system" is protected`, activities.ErrTypeProtectedNamespace, nil)))
	e.sendAlert(0, shellAlert(func(a *alert.Alert) { a.Kubernetes.Namespace = "kube-system" }), "SOAR_ALERTS:1")
	e.ExecuteWorkflow(Respond, input())
	st := e.result()
	if len(*reqs) != 1 || (*reqs)[0].Params["namespace"] != "kube-system" {
		t.Errorf("quarantine requests = %+v, want one, for kube-system", *reqs)
	}
	if len(st.Steps) != 1 || st.Steps[0].Status != StepFailed || st.Steps[0].ErrorType != activities.ErrTypeProtectedNamespace {
		t.Fatalf("steps = %+v", st.Steps)
	}
	if st.Steps[0].Error != `namespace "kube-system" is protected` {
		t.Errorf("error = %q", st.Steps[0].Error)
	}
	if st.Status != StatusClosed {
		t.Errorf("status = %q", st.Status)
	}
}

func TestRespondRetriesTransientFailures(t *testing.T) {
	e := newEnv(t)
	calls := 0
	e.onAction(activities.ActionQuarantine, func(req activities.ActionRequest) (map[string]any, error) {
		calls++
		if calls < 3 {
			return nil, errors.New("the server is currently unable to handle the request")
		}
		return quarantined(req)
	})
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.ExecuteWorkflow(Respond, input())
	st := e.result()
	if calls != 3 || st.Steps[0].Status != StepSucceeded {
		t.Errorf("calls = %d, step = %+v; want 3 calls and success", calls, st.Steps[0])
	}
}

func TestRespondClosesOnRequest(t *testing.T) {
	e := newEnv(t)
	e.onAction(activities.ActionQuarantine, quarantined)
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalClose, "false positive: admin debugging") }, time.Minute)
	e.ExecuteWorkflow(Respond, input())
	st := e.result()
	if st.CloseReason != "false positive: admin debugging" || st.ClosedAt.Sub(st.OpenedAt) != time.Minute {
		t.Errorf("closed %s after opening, reason %q", st.ClosedAt.Sub(st.OpenedAt), st.CloseReason)
	}
}

func TestRespondWithoutAlertClosesAfterWindow(t *testing.T) {
	e := newEnv(t)
	e.ExecuteWorkflow(Respond, input())
	st := e.result()
	if st.AlertCount != 0 || len(st.Steps) != 0 || st.CloseReason != "no alert arrived" {
		t.Errorf("state = %+v", st)
	}
}

func TestRespondBadParameterFailsTheStepNotTheWorkflow(t *testing.T) {
	e := newEnv(t)
	in := input()
	in.Playbook.Steps[0].With = map[string]string{"pod": "alert.fields.missing.deeper"}
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.ExecuteWorkflow(Respond, in)
	st := e.result()
	if len(st.Steps) != 1 || st.Steps[0].Status != StepFailed || st.Steps[0].ErrorType != "InvalidParameters" {
		t.Errorf("steps = %+v", st.Steps)
	}
}

func TestRespondContinuesAsNewAfterAStorm(t *testing.T) {
	e := newEnv(t)
	reqs := e.onAction(activities.ActionQuarantine, quarantined)
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:0")
	// One callback sends the whole storm: the test environment's callback
	// queue is too small for a thousand delayed callbacks.
	e.RegisterDelayedCallback(func() {
		for i := 1; i <= continueAfter; i++ {
			e.SignalWorkflow(SignalAlert, AlertSignal{Alert: shellAlert(), DeliveryID: fmt.Sprintf("SOAR_ALERTS:%d", i)})
		}
	}, time.Second)
	e.ExecuteWorkflow(Respond, input())
	var can *workflow.ContinueAsNewError
	if !errors.As(e.GetWorkflowError(), &can) {
		t.Fatalf("workflow error = %v, want continue-as-new", e.GetWorkflowError())
	}
	// The next run must carry the state over: steps done, every alert counted.
	var next RespondInput
	if err := converterFromPayloads(can, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || !next.State.StepsDone || next.State.AlertCount != continueAfter+1 || len(next.State.Seen) != maxSeen {
		t.Fatalf("carried state = %+v", next.State)
	}
	if len(*reqs) != 1 {
		t.Errorf("quarantine ran %d times, want once", len(*reqs))
	}
}

func TestRespondReportsRespondingWhileStepsRun(t *testing.T) {
	e := newEnv(t)
	var during string
	e.onAction(activities.ActionQuarantine, func(req activities.ActionRequest) (map[string]any, error) {
		v, err := e.QueryWorkflow(QueryState)
		if err != nil {
			return nil, err
		}
		var st IncidentState
		if err := v.Get(&st); err != nil {
			return nil, err
		}
		during = st.Status
		return quarantined(req)
	})
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.RegisterDelayedCallback(func() {
		v, err := e.QueryWorkflow(QueryState)
		if err != nil {
			t.Error(err)
			return
		}
		var st IncidentState
		_ = v.Get(&st)
		if st.Status != StatusContained {
			t.Errorf("status after the steps = %q, want contained", st.Status)
		}
	}, time.Minute)
	e.ExecuteWorkflow(Respond, input())
	if during != StatusResponding {
		t.Errorf("status while the quarantine ran = %q, want responding", during)
	}
}

// batchSignal is a coalesced signal for the messages seqs, as the
// dispatcher sends it.
func batchSignal(floor uint64, seqs ...uint64) AlertSignal {
	first, latest := shellAlert(), shellAlert()
	latest.ID = fmt.Sprintf("latest-%d", seqs[len(seqs)-1])
	return AlertSignal{
		Alert: first, Latest: &latest, Count: len(seqs),
		Deliveries: &Deliveries{Stream: "SOAR_ALERTS", Epoch: "1", Floor: floor, Seqs: NewSeqList(seqs)},
	}
}

func TestRespondCountsCoalescedAlertsOncePerMessage(t *testing.T) {
	e := newEnv(t)
	e.onAction(activities.ActionQuarantine, quarantined)
	signals := []AlertSignal{
		batchSignal(0, 1),
		batchSignal(1, 3, 4, 5, 9),
		// A dispatcher died holding 4 and 5: they come again in another
		// batch, with 12 and 13 that are new.
		batchSignal(1, 4, 5, 12, 13),
		// 3 was acknowledged long ago (under the floor); 20 is new.
		batchSignal(10, 3, 20),
	}
	for i, s := range signals {
		e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalAlert, s) }, time.Duration(i)*time.Minute)
	}
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalClose, "done") }, 10*time.Minute)
	e.ExecuteWorkflow(Respond, input())
	st := e.result()
	if st.AlertCount != 8 {
		t.Errorf("alert count %d, want 8 distinct messages (1 3 4 5 9 12 13 20)", st.AlertCount)
	}
	if st.LatestAlert == nil || st.LatestAlert.ID != "latest-20" || st.FirstAlert == nil || st.FirstAlert.ID != shellAlert().ID {
		t.Errorf("first %+v, latest %+v", st.FirstAlert, st.LatestAlert)
	}
	if st.Counted == nil || st.Counted.Floor != 10 || !slices.Equal(st.Counted.Seqs, SeqList{12, 13, 20}) {
		t.Errorf("counted set %+v: want floor 10 and 12 13 20 above it", st.Counted)
	}
}
