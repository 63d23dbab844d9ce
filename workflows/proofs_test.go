package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/internal/proof"
)

var testKeys = func() *proof.Keys {
	k, err := proof.Parse("workflows-test-signing-key-0123456789")
	if err != nil {
		panic(err)
	}
	return k
}()

// newProvenEnv is newEnv with a worker that holds keys, as soar's workers
// do: the incident checks every proof.
func newProvenEnv(t *testing.T) env {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	e := s.NewTestWorkflowEnvironment()
	e.RegisterWorkflowWithOptions(Responder{Keys: testKeys}.Respond, workflow.RegisterOptions{Name: RespondName})
	e.RegisterActivity(&activities.Activities{})
	activities.Register(e, &activities.Activities{})
	e.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: input().IncidentID})
	return env{e, t}
}

// signedStart is in as the dispatcher sends it, first alert included.
func (e env) signedStart(in RespondInput) RespondInput {
	e.t.Helper()
	in.First = &AlertSignal{Alert: shellAlert(), DeliveryID: "SOAR_ALERTS:1"}
	if err := SignStart(testKeys, &in, e.Now()); err != nil {
		e.t.Fatal(err)
	}
	return in
}

// signedAlert delivers an alert signal with the dispatcher's proof.
func (e env) signedAlert(delay time.Duration, deliveryID string) {
	e.RegisterDelayedCallback(func() {
		sig := AlertSignal{Alert: shellAlert(), DeliveryID: deliveryID}
		if err := SignAlert(testKeys, input().IncidentID, &sig); err != nil {
			e.t.Error(err)
		}
		e.SignalWorkflow(SignalAlert, sig)
	}, delay)
}

// update sends an Update after delay and records how the validator
// answered.
func (e env) update(delay time.Duration, name, id string, arg func() any, res *voteResult) {
	e.RegisterDelayedCallback(func() {
		e.UpdateWorkflow(name, id, &testsuite.TestUpdateCallback{
			OnAccept:   func() {},
			OnReject:   func(err error) { res.rejected = err },
			OnComplete: func(any, error) {},
		}, arg())
	}, delay)
}

func TestAStartWithoutSoarsProofNeverActs(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   func(e env) RespondInput
		want string
	}{
		{"no proof", func(env) RespondInput { return playbookOf(containStep, killStep) }, "refused: the start carries no proof from soar"},
		{"a proof made with another key", func(e env) RespondInput {
			in := playbookOf(containStep, killStep)
			other, _ := proof.Parse(proof.Generate())
			if err := SignStart(other, &in, e.Now()); err != nil {
				t.Fatal(err)
			}
			return in
		}, "which this soar does not hold"},
		{"a signed playbook with a step added", func(e env) RespondInput {
			in := e.signedStart(playbookOf(containStep))
			in.Playbook.Steps = append(in.Playbook.Steps, killStep)
			return in
		}, "the start carries an invalid proof: it does not match the start"},
		{"a start replayed an hour later", func(e env) RespondInput {
			in := playbookOf(containStep)
			if err := SignStart(testKeys, &in, e.Now().Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
			return in
		}, "a replayed start"},
		{"another incident's start", func(e env) RespondInput {
			in := playbookOf(containStep)
			in.IncidentID = "soar-some-other-incident"
			if err := SignStart(testKeys, &in, e.Now()); err != nil {
				t.Fatal(err)
			}
			return in
		}, `names incident "soar-some-other-incident", not this workflow`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newProvenEnv(t)
			reqs := e.releaseMocks()
			e.signedAlert(0, "SOAR_ALERTS:1")
			e.ExecuteWorkflow(RespondName, tc.in(e))
			st := e.result()
			if !strings.Contains(st.CloseReason, tc.want) || st.Status != StatusClosed || st.Refused != 1 {
				t.Errorf("status %s, reason %q, refused %d; want closed, %q, 1", st.Status, st.CloseReason, st.Refused, tc.want)
			}
			for action, r := range reqs {
				if len(*r) > 0 {
					t.Errorf("%s ran %d times on a refused start", action, len(*r))
				}
			}
			if len(st.Steps) > 0 || st.FirstAlert != nil || st.Playbook != "" {
				t.Errorf("a refused start keeps what it claimed: %+v", st)
			}
		})
	}
}

func TestForgedAlertsAndStopRequestsAreRefused(t *testing.T) {
	e := newProvenEnv(t)
	reqs := e.releaseMocks()
	in := e.signedStart(playbookOf(containStep))

	// An alert signal without the dispatcher's proof, and one whose
	// signed alert was altered, are not counted; a proven one is.
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalAlert, AlertSignal{Alert: shellAlert(), DeliveryID: "forged:1"}) }, time.Minute)
	e.RegisterDelayedCallback(func() {
		sig := AlertSignal{Alert: shellAlert(), DeliveryID: "SOAR_ALERTS:7"}
		if err := SignAlert(testKeys, input().IncidentID, &sig); err != nil {
			t.Error(err)
		}
		sig.Alert.Kubernetes.Pod = "payments-db-0"
		e.SignalWorkflow(SignalAlert, sig)
	}, 90*time.Second)
	e.signedAlert(2*time.Minute, "SOAR_ALERTS:2")
	// The release signal is refused outright; so are a stop Update without
	// serve's proof and one proven for another occurrence.
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalRelease, "forged") }, 3*time.Minute)
	var unproven, otherOccurrence, proven voteResult
	e.update(4*time.Minute, UpdateStop, "stop-unproven", func() any {
		return StopRequest{Release: true, Reason: "forged", By: "api:mallory", OpenedAt: e.Now().Add(-4 * time.Minute)}
	}, &unproven)
	e.update(5*time.Minute, UpdateStop, "stop-other", func() any {
		r := StopRequest{Release: true, Reason: "old", By: "api:alice", OpenedAt: e.Now().Add(-time.Hour)}
		if err := SignStop(testKeys, input().IncidentID, &r); err != nil {
			t.Error(err)
		}
		return r
	}, &otherOccurrence)
	e.update(6*time.Minute, UpdateStop, "stop-proven", func() any {
		st := e.state()
		r := StopRequest{Release: true, Reason: "false positive", By: "api:alice", OpenedAt: st.OpenedAt}
		if err := SignStop(testKeys, input().IncidentID, &r); err != nil {
			t.Error(err)
		}
		return r
	}, &proven)
	e.ExecuteWorkflow(RespondName, in)
	st := e.result()

	if st.AlertCount != 2 || st.Refused != 3 {
		t.Errorf("alerts %d, refused %d; want 2 (the first and the proven one) and 3 (two forged alerts, the release signal)", st.AlertCount, st.Refused)
	}
	if st.LatestAlert.Kubernetes.Pod != "checkout-7d9f8b6c5-x2lqp" {
		t.Errorf("latest alert names pod %s: the altered alert was taken", st.LatestAlert.Kubernetes.Pod)
	}
	if unproven.rejected == nil || !strings.Contains(unproven.rejected.Error(), "carries no proof from soar") {
		t.Errorf("stop without proof: %v", unproven.rejected)
	}
	if otherOccurrence.rejected == nil || !strings.Contains(otherOccurrence.rejected.Error(), "the request is for the occurrence opened at") {
		t.Errorf("stop proven for another occurrence: %v", otherOccurrence.rejected)
	}
	if proven.rejected != nil {
		t.Errorf("the proven stop: %v", proven.rejected)
	}
	if got := stepIDs(st); !slices.Equal(got, []string{"contain", "contain.release"}) || len(*reqs[activities.ActionRelease]) != 1 {
		t.Errorf("steps %v: want the quarantine released once, by the proven request", got)
	}
	if st.CloseReason != "false positive (by api:alice)" || st.ClosedAt.Sub(st.OpenedAt) != 6*time.Minute {
		t.Errorf("closed %s after opening for %q; want at 6m for the proven request", st.ClosedAt.Sub(st.OpenedAt), st.CloseReason)
	}
}

// state is the incident's state as the state query answers it.
func (e env) state() *IncidentState {
	e.t.Helper()
	v, err := e.QueryWorkflow(QueryState)
	if err != nil {
		e.t.Fatal(err)
	}
	var st IncidentState
	if err := v.Get(&st); err != nil {
		e.t.Fatal(err)
	}
	return &st
}

func TestAVoteCountsOnlyWithServesProof(t *testing.T) {
	e := newProvenEnv(t)
	calls := e.quarantines()
	in := e.signedStart(approvalThenQuarantine(2, "deny"))
	sign := func(d Decision, incident string) Decision {
		a := e.state().OpenApproval("")
		if a == nil {
			t.Error("no open approval")
			return d
		}
		d.Step = a.Step
		if err := SignDecision(testKeys, incident, a, &d); err != nil {
			t.Error(err)
		}
		return d
	}
	var unproven, claimed, elsewhere, first, second voteResult
	// Anyone reaching Temporal can send a decide Update that names an
	// approver; without serve's proof it is refused.
	e.update(time.Minute, UpdateDecide, "unproven", func() any { return Decision{User: "U1", Approve: true} }, &unproven)
	// A proven vote whose groups were widened after serve signed it.
	e.update(2*time.Minute, UpdateDecide, "claimed", func() any {
		d := sign(Decision{User: "mallory", Approve: true}, input().IncidentID)
		d.Groups = []string{"U1"}
		d.User = "U2"
		return d
	}, &claimed)
	// A vote proven for the same step of another incident.
	e.update(3*time.Minute, UpdateDecide, "elsewhere", func() any { return sign(Decision{User: "U1", Approve: true}, "soar-another-incident") }, &elsewhere)
	e.update(4*time.Minute, UpdateDecide, "first", func() any { return sign(Decision{User: "U1", Approve: true}, input().IncidentID) }, &first)
	e.update(5*time.Minute, UpdateDecide, "second", func() any { return sign(Decision{User: "U3", Approve: true}, input().IncidentID) }, &second)
	e.ExecuteWorkflow(RespondName, in)
	st := e.result()

	for name, r := range map[string]voteResult{"unproven": unproven, "altered": claimed, "another incident's": elsewhere} {
		if r.rejected == nil || !strings.Contains(r.rejected.Error(), "the vote is refused") {
			t.Errorf("the %s vote: %v", name, r.rejected)
		}
	}
	if first.rejected != nil || second.rejected != nil {
		t.Errorf("proven votes: %v, %v", first.rejected, second.rejected)
	}
	a := st.Approvals[0]
	if a.Outcome != "approved" || len(a.Votes) != 2 || a.DecidedAt.Sub(a.OpenedAt) != 5*time.Minute || len(*calls) != 1 {
		t.Errorf("approval %s with %d votes after %s, %d quarantines; want approved by the two proven votes at 5m, then one quarantine",
			a.Outcome, len(a.Votes), a.DecidedAt.Sub(a.OpenedAt), len(*calls))
	}
}

// A continue-as-new is signed by the worker, and the next run checks it as
// it checks the dispatcher's start.
func TestAContinuedRunCarriesTheWorkersProof(t *testing.T) {
	e := newProvenEnv(t)
	e.releaseMocks()
	in := e.signedStart(playbookOf(containStep))
	// One callback sends them all: the test environment's callback queue is
	// too small for a thousand.
	e.RegisterDelayedCallback(func() {
		for i := range continueAfter {
			sig := AlertSignal{Alert: shellAlert(), DeliveryID: fmt.Sprintf("SOAR_ALERTS:%d", i+2)}
			if err := SignAlert(testKeys, input().IncidentID, &sig); err != nil {
				t.Error(err)
			}
			e.SignalWorkflow(SignalAlert, sig)
		}
	}, time.Second)
	e.ExecuteWorkflow(RespondName, in)
	var cont *workflow.ContinueAsNewError
	if err := e.GetWorkflowError(); !errors.As(err, &cont) {
		t.Fatalf("want a continue-as-new, got %v", err)
	}
	var next RespondInput
	if err := converterFromPayloads(cont, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || next.State.AlertCount != continueAfter+1 {
		t.Fatalf("continued state %+v", next.State)
	}
	if got := refusedStart(testKeys, input().IncidentID, next.SignedAt, next); got != "" {
		t.Errorf("the continued input is refused: %s", got)
	}
	next.State.Approvals = append(next.State.Approvals, &ApprovalState{Step: "forged", Outcome: "approved"})
	if got := refusedStart(testKeys, input().IncidentID, next.SignedAt, next); !strings.Contains(got, "an invalid proof") {
		t.Errorf("a continued input with a forged approval: %q", got)
	}
}

// TestTheBaselineIsLeftOutOfTheProof: a worker from before baselines decodes
// a start without its baseline, and must still find the dispatcher's proof
// good; a start signed without one stays good with one.
func TestTheBaselineIsLeftOutOfTheProof(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	in := RespondInput{IncidentID: "soar-x", IncidentKey: "payments/web", Baseline: Baseline}
	if err := SignStart(testKeys, &in, now); err != nil {
		t.Fatal(err)
	}
	if in.Baseline != Baseline {
		t.Fatalf("signing changed the baseline to %d", in.Baseline)
	}
	old := in
	old.Baseline = 0 // as an older worker decodes it
	for _, c := range []RespondInput{in, old} {
		if why := refusedStart(testKeys, "soar-x", now, c); why != "" {
			t.Errorf("baseline %d: refused: %s", c.Baseline, why)
		}
	}
	// Everything else stays proven.
	forged := in
	forged.IncidentKey = "payments/other"
	if why := refusedStart(testKeys, "soar-x", now, forged); why == "" {
		t.Error("a changed incident key was accepted")
	}
}
