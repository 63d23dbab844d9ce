package workflows

import (
	"testing"
	"time"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/playbooks"
)

// queryCount returns the incident's alert count as the state query sees it.
func (e env) queryCount() int {
	e.t.Helper()
	return e.state().AlertCount
}

func TestRespondCountsAlertsWhileAnApprovalWaits(t *testing.T) {
	e := newEnv(t)
	calls := e.quarantines()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	for i := range 5 {
		e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalAlert, batchSignal(0, uint64(10+i))) }, time.Duration(i+1)*time.Minute)
	}
	var during int
	e.RegisterDelayedCallback(func() { during = e.queryCount() }, 10*time.Minute)
	var vote voteResult
	e.vote(20*time.Minute, Decision{User: "U1", Approve: true}, &vote)
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalClose, "done") }, 25*time.Minute)
	e.ExecuteWorkflow(Respond, approvalThenQuarantine(1, "deny"))
	st := e.result()
	if during != 6 {
		t.Errorf("10 minutes into a 30-minute approval the incident counted %d alerts, want 6", during)
	}
	if st.AlertCount != 6 || len(*calls) != 1 || vote.rejected != nil {
		t.Errorf("count %d, quarantines %d, vote %v", st.AlertCount, len(*calls), vote.rejected)
	}
}

func TestRespondClosesAtOnceWhileAnApprovalWaits(t *testing.T) {
	e := newEnv(t)
	calls := e.quarantines()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalClose, "false positive: a debugging session") }, 5*time.Minute)
	start := e.Now()
	e.ExecuteWorkflow(Respond, approvalThenQuarantine(1, "approve"))
	st := e.result()
	if took := st.ClosedAt.Sub(start); took > 6*time.Minute {
		t.Errorf("closed %s after the start, want at the close 5 minutes in (the approval had 30)", took)
	}
	if st.Status != StatusClosed || st.CloseReason != "false positive: a debugging session" {
		t.Errorf("status %s, reason %q", st.Status, st.CloseReason)
	}
	if len(*calls) != 0 {
		t.Errorf("the quarantine behind the interrupted approval ran %d times", len(*calls))
	}
	if len(st.Approvals) != 1 || st.Approvals[0].Outcome != OutcomeInterrupted {
		t.Errorf("approvals %+v, want one interrupted", st.Approvals)
	}
	if len(st.Steps) != 1 || st.Steps[0].ErrorType != ErrTypeInterrupted {
		t.Errorf("steps %+v, want the approval interrupted", st.Steps)
	}
}

func TestRespondReleasesAtOnceDuringAWait(t *testing.T) {
	e := newEnv(t)
	reqs := e.releaseMocks()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalRelease, "owner confirmed the shell") }, 5*time.Minute)
	in := playbookOf(containStep, playbooks.StepSpec{ID: "pause", Kind: playbooks.KindWait, Wait: 2 * time.Hour}, labelStep)
	start := e.Now()
	e.ExecuteWorkflow(Respond, in)
	st := e.result()
	if took := st.ClosedAt.Sub(start); took > 6*time.Minute {
		t.Errorf("released %s after the start, want at the release 5 minutes in (the wait was 2 hours)", took)
	}
	if len(*reqs[activities.ActionRelease]) != 1 || len(*reqs[activities.ActionLabelPod]) != 0 {
		t.Errorf("release ran %d times, the step after the wait %d times", len(*reqs[activities.ActionRelease]), len(*reqs[activities.ActionLabelPod]))
	}
	if st.Status != StatusClosed || st.CloseReason != "owner confirmed the shell" {
		t.Errorf("status %s, reason %q", st.Status, st.CloseReason)
	}
}
