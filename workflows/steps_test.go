package workflows

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/playbooks"
)

// vote sends a decision after delay and records how the validator answered.
type voteResult struct{ rejected error }

func (e env) vote(delay time.Duration, d Decision, res *voteResult) {
	e.RegisterDelayedCallback(func() {
		// Temporal deduplicates updates by ID, so every vote gets its own.
		e.UpdateWorkflow(UpdateDecide, fmt.Sprintf("vote-%s-%s", d.User, delay), &testsuite.TestUpdateCallback{
			OnAccept:   func() {},
			OnReject:   func(err error) { res.rejected = err },
			OnComplete: func(any, error) {},
		}, d)
	}, delay)
}

func approvalThenQuarantine(quorum int, onExpiry string) RespondInput {
	in := input()
	in.Playbook.Steps = append([]playbooks.StepSpec{{
		ID: "ask", Kind: playbooks.KindApproval,
		Approval: &playbooks.Approval{Approvers: []string{"U1", "U2", "U3"}, Quorum: quorum, Timeout: 30 * time.Minute, OnExpiry: onExpiry},
	}}, in.Playbook.Steps...)
	in.Playbook.Steps[1].Kind = playbooks.KindAction
	return in
}

// quarantines mocks the quarantine and returns the requests it receives.
func (e env) quarantines() *[]activities.ActionRequest {
	return e.onAction(activities.ActionQuarantine, quarantined)
}

func TestApprovalWithQuorumThenAction(t *testing.T) {
	e := newEnv(t)
	calls := e.quarantines()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	var stranger, twice, first, second voteResult
	e.vote(time.Minute, Decision{User: "mallory", Approve: true}, &stranger)
	e.vote(2*time.Minute, Decision{User: "U1", Approve: true, Comment: "seen it"}, &first)
	e.vote(3*time.Minute, Decision{User: "U1", Approve: true}, &twice)
	e.vote(4*time.Minute, Decision{Step: "ask", User: "U3", Approve: true}, &second)
	e.ExecuteWorkflow(Respond, approvalThenQuarantine(2, "deny"))
	st := e.result()

	if stranger.rejected == nil || twice.rejected == nil || first.rejected != nil || second.rejected != nil {
		t.Errorf("validator: stranger %v, double vote %v, first %v, second %v", stranger.rejected, twice.rejected, first.rejected, second.rejected)
	}
	if len(*calls) != 1 || st.Steps[0].Status != StepSucceeded || st.Steps[1].Status != StepSucceeded {
		t.Fatalf("quarantine calls %d, steps %+v", len(*calls), st.Steps)
	}
	if got := st.Steps[0].FinishedAt.Sub(st.Steps[0].StartedAt); got != 4*time.Minute {
		t.Errorf("approval decided after %s, want 4m (the second approver)", got)
	}
	ap := st.Approvals[0]
	if ap.Outcome != playbooks.OutcomeApproved || len(ap.Votes) != 2 || ap.Votes[0].User != "U1" || ap.Votes[0].Comment != "seen it" {
		t.Errorf("approval = %+v", ap)
	}
	if st.Steps[0].Output["outcome"] != playbooks.OutcomeApproved {
		t.Errorf("approval output = %v", st.Steps[0].Output)
	}
}

func TestApprovalDeniedStopsThePlaybook(t *testing.T) {
	e := newEnv(t)
	calls := e.quarantines()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	var r voteResult
	e.vote(time.Minute, Decision{User: "U2", Approve: false, Comment: "admin debugging"}, &r)
	e.ExecuteWorkflow(Respond, approvalThenQuarantine(2, "deny"))
	st := e.result()
	if len(*calls) != 0 || len(st.Steps) != 1 || st.Steps[0].ErrorType != ErrTypeApprovalDenied {
		t.Fatalf("calls %d steps %+v", len(*calls), st.Steps)
	}
	if st.Approvals[0].Outcome != playbooks.OutcomeDenied {
		t.Errorf("outcome %q", st.Approvals[0].Outcome)
	}
}

func TestApprovalExpiry(t *testing.T) {
	for _, tc := range []struct {
		onExpiry  string
		wantCalls int
		wantType  string
	}{
		{"deny", 0, ErrTypeApprovalExpired},
		{"approve", 1, ""},
	} {
		t.Run("onExpiry "+tc.onExpiry, func(t *testing.T) {
			e := newEnv(t)
			calls := e.quarantines()
			e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
			var late voteResult
			e.vote(31*time.Minute, Decision{User: "U1", Approve: true}, &late)
			in := approvalThenQuarantine(1, tc.onExpiry)
			in.Playbook.Window = 2 * time.Hour // the incident outlives the approval
			e.ExecuteWorkflow(Respond, in)
			st := e.result()
			if len(*calls) != tc.wantCalls || st.Steps[0].ErrorType != tc.wantType || st.Approvals[0].Outcome != playbooks.OutcomeExpired {
				t.Errorf("calls %d, steps %+v, approval %+v", len(*calls), st.Steps, st.Approvals[0])
			}
			if late.rejected == nil {
				t.Error("a vote after expiry was accepted")
			}
		})
	}
}

func TestWaitIsADurableTimer(t *testing.T) {
	e := newEnv(t)
	var calledAt time.Time
	e.onAction(activities.ActionQuarantine, func(req activities.ActionRequest) (map[string]any, error) {
		calledAt = e.Now()
		return quarantined(req)
	})
	in := input()
	in.Playbook.Steps = append([]playbooks.StepSpec{{ID: "settle", Kind: playbooks.KindWait, Wait: 5 * time.Minute}}, in.Playbook.Steps...)
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	start := e.Now()
	e.ExecuteWorkflow(Respond, in)
	st := e.result()
	if got := calledAt.Sub(start); got < 5*time.Minute || got > 5*time.Minute+time.Second {
		t.Errorf("action ran %s after the alert, want after the 5m wait", got)
	}
	if st.Steps[0].Kind != playbooks.KindWait || st.Steps[0].Status != StepSucceeded {
		t.Errorf("steps %+v", st.Steps)
	}
}

func TestConditionIsReevaluatedAsAlertsJoin(t *testing.T) {
	e := newEnv(t)
	var at time.Time
	reqs := e.onAction(activities.ActionQuarantine, func(req activities.ActionRequest) (map[string]any, error) {
		at = e.Now()
		return quarantined(req)
	})
	in := input()
	in.Playbook.Steps[0].If = "incident.alertCount >= 3"
	start := e.Now()
	for i := range 4 {
		e.sendAlert(time.Duration(i)*time.Minute, shellAlert(), fmt.Sprintf("SOAR_ALERTS:%d", i))
	}
	e.ExecuteWorkflow(Respond, in)
	st := e.result()
	if got := at.Sub(start); got < 2*time.Minute || got >= 3*time.Minute {
		t.Errorf("escalation ran %s after the first alert, want when the third arrived (2m)", got)
	}
	if len(st.Steps) != 1 || st.Steps[0].Status != StepSucceeded || st.Steps[0].Params["pod"] != "checkout-7d9f8b6c5-x2lqp" || len(st.Pending) != 0 {
		t.Errorf("steps %+v pending %v", st.Steps, st.Pending)
	}
	if len(*reqs) != 1 {
		t.Errorf("escalation ran %d times, want once", len(*reqs))
	}
}

func TestOnErrorContinueAndRelease(t *testing.T) {
	for _, tc := range []struct {
		onError    string
		wantCalls  int
		wantStatus string
	}{
		{playbooks.OnErrorAbort, 1, StatusFailed},
		{playbooks.OnErrorContinue, 2, StatusFailed},
		{playbooks.OnErrorRelease, 1, StatusReleased},
	} {
		t.Run(tc.onError, func(t *testing.T) {
			e := newEnv(t)
			calls := 0
			e.onAction(activities.ActionQuarantine, func(req activities.ActionRequest) (map[string]any, error) {
				calls++
				if calls == 1 {
					return nil, errors.New("boom")
				}
				return quarantined(req)
			})
			in := input()
			first := in.Playbook.Steps[0]
			first.OnError = tc.onError
			first.Retry = &playbooks.Retry{MaxAttempts: 1}
			second := in.Playbook.Steps[0]
			second.ID = "again"
			in.Playbook.Steps = []playbooks.StepSpec{first, second}
			e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
			statuses := []string{}
			e.RegisterDelayedCallback(func() {
				v, _ := e.QueryWorkflow(QueryState)
				var st IncidentState
				_ = v.Get(&st)
				statuses = append(statuses, st.Status)
			}, time.Minute)
			e.ExecuteWorkflow(Respond, in)
			e.result()
			if calls != tc.wantCalls || len(statuses) != 1 || statuses[0] != tc.wantStatus {
				t.Errorf("calls %d (want %d), status %v (want %s)", calls, tc.wantCalls, statuses, tc.wantStatus)
			}
		})
	}
}

func TestRetryPolicyFromThePlaybook(t *testing.T) {
	e := newEnv(t)
	calls := 0
	e.onAction(activities.ActionQuarantine, func(activities.ActionRequest) (map[string]any, error) {
		calls++
		return nil, errors.New("the server is currently unable to handle the request")
	})
	in := input()
	in.Playbook.Steps[0].Retry = &playbooks.Retry{MaxAttempts: 3, InitialInterval: time.Second}
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.ExecuteWorkflow(Respond, in)
	st := e.result()
	if calls != 3 || st.Steps[0].Status != StepFailed {
		t.Errorf("calls %d, step %+v; want 3 attempts then failure", calls, st.Steps[0])
	}
}

func TestPlanModeRunsActionsAsDryRuns(t *testing.T) {
	e := newEnv(t)
	reqs := e.quarantines()
	in := input()
	in.Playbook.Mode = playbooks.ModePlan
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	var status string
	e.RegisterDelayedCallback(func() {
		v, _ := e.QueryWorkflow(QueryState)
		var st IncidentState
		_ = v.Get(&st)
		status = st.Status
	}, time.Minute)
	e.ExecuteWorkflow(Respond, in)
	st := e.result()
	if len(*reqs) != 1 || !(*reqs)[0].DryRun || status != StatusPlanned || st.Steps[0].Output["dryRun"] != true {
		t.Errorf("requests %+v, status %q, output %v; want one dry run, planned", *reqs, status, st.Steps[0].Output)
	}
}

func TestEscalationAfterAnUnansweredApproval(t *testing.T) {
	e := newEnv(t)
	calls := e.quarantines()
	in := approvalThenQuarantine(1, "deny")
	in.Playbook.Steps[0].OnError = playbooks.OnErrorContinue
	in.Playbook.Steps[0].Approval.Timeout = 10 * time.Minute
	in.Playbook.Steps[1].If = `steps.ask.output.outcome == "approved" || incident.alertCount >= 3`
	in.Playbook.Window = time.Hour
	for i := range 3 {
		e.sendAlert(time.Duration(i)*15*time.Minute, shellAlert(), fmt.Sprintf("SOAR_ALERTS:%d", i))
	}
	e.ExecuteWorkflow(Respond, in)
	st := e.result()
	if len(*calls) != 1 {
		t.Fatalf("quarantine ran %d times, want once the third alert arrived after the approval expired; steps %+v", len(*calls), st.Steps)
	}
	if st.Steps[0].ErrorType != ErrTypeApprovalExpired || st.Steps[1].Status != StepSucceeded {
		t.Errorf("steps %+v", st.Steps)
	}
}

func TestAbortStopsReevaluation(t *testing.T) {
	e := newEnv(t)
	calls := e.quarantines()
	in := approvalThenQuarantine(1, "deny")
	// The quarantine comes first and is skipped; then the approval expires
	// and aborts (the default onError): the skipped step must stay skipped.
	in.Playbook.Steps[0], in.Playbook.Steps[1] = in.Playbook.Steps[1], in.Playbook.Steps[0]
	in.Playbook.Steps[0].If = `incident.alertCount >= 3`
	in.Playbook.Steps[1].Approval.Timeout = 10 * time.Minute
	for i := range 3 {
		e.sendAlert(time.Duration(i)*15*time.Minute, shellAlert(), fmt.Sprintf("SOAR_ALERTS:%d", i))
	}
	e.ExecuteWorkflow(Respond, in)
	st := e.result()
	if len(*calls) != 0 || !st.Stopped || st.Steps[0].Status != StepSkipped || len(st.Pending) != 1 {
		t.Errorf("quarantine ran %d times after an abort; stopped %v, steps %+v, pending %v", len(*calls), st.Stopped, st.Steps, st.Pending)
	}
}

func TestActionParamsAreFilledFromTheAlert(t *testing.T) {
	const uid = "6f1c8e0e-3b7a-4e8e-9a51-0c6a1f3d2b9e"
	withUID := func(a *alert.Alert) { a.Kubernetes.PodUID = uid }
	tests := []struct {
		name  string
		step  playbooks.StepSpec
		alert alert.Alert
		want  map[string]any
	}{
		{
			name:  "a step without parameters gets the alert's namespace and pod, and no podUID when the alert has none",
			step:  playbooks.StepSpec{ID: "contain", Action: activities.ActionQuarantine},
			alert: shellAlert(),
			want:  map[string]any{"namespace": "payments", "pod": "checkout-7d9f8b6c5-x2lqp"},
		},
		{
			name:  "the alert's pod UID when it has one",
			step:  quarantinePlaybook().Steps[0],
			alert: shellAlert(withUID),
			want:  map[string]any{"namespace": "payments", "pod": "checkout-7d9f8b6c5-x2lqp", "podUID": uid},
		},
		{
			name: "what the step sets wins over the alert",
			step: playbooks.StepSpec{ID: "contain", Action: activities.ActionQuarantine,
				With: map[string]string{"pod": `"checkout-7d9f8b6c5-other"`, "detach": "true"}},
			alert: shellAlert(withUID),
			want:  map[string]any{"namespace": "payments", "pod": "checkout-7d9f8b6c5-other", "podUID": uid, "detach": true},
		},
		{
			// The node comes from the live pod (after its UID guard), never
			// from what the alert says.
			name:  "cordon_node gets the alert's pod and not its node",
			step:  playbooks.StepSpec{ID: "cordon", Action: activities.ActionCordonNode},
			alert: shellAlert(),
			want:  map[string]any{"namespace": "payments", "pod": "checkout-7d9f8b6c5-x2lqp"},
		},
		{
			name:  "a parameter the catalogue does not fill from the alert stays unset",
			step:  playbooks.StepSpec{ID: "uncordon", Action: activities.ActionUncordonNode},
			alert: shellAlert(),
			want:  map[string]any{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			reqs := e.onAction(tc.step.Action, succeeds)
			in := input()
			in.Playbook.Steps = []playbooks.StepSpec{tc.step}
			e.sendAlert(0, tc.alert, "SOAR_ALERTS:1")
			e.ExecuteWorkflow(Respond, in)
			st := e.result()
			if len(*reqs) != 1 || !maps.Equal((*reqs)[0].Params, tc.want) {
				t.Errorf("requests %+v, want one with params %v", *reqs, tc.want)
			}
			if len(st.Steps) != 1 || st.Steps[0].Status != StepSucceeded || !maps.Equal(st.Steps[0].Params, tc.want) {
				t.Errorf("steps %+v, want one that succeeded with params %v", st.Steps, tc.want)
			}
		})
	}
}

// approvalThenDelete is a spec that lint would refuse (or that came another
// way than through soar's loader): a delete after an approval whose expiry
// approves and whose denial goes on.
func approvalThenDelete() RespondInput {
	in := input()
	facts := playbooks.ActionFacts{Destructive: true, FromAlert: []playbooks.AlertParam{{Param: "namespace", Field: "namespace"}, {Param: "pod", Field: "pod"}}}
	in.Playbook.Steps = []playbooks.StepSpec{
		{ID: "ask", Kind: playbooks.KindApproval, OnError: playbooks.OnErrorContinue,
			Approval: &playbooks.Approval{Approvers: []string{"U1", "U2"}, Quorum: 1, Timeout: 30 * time.Minute, OnExpiry: "approve"}},
		{ID: "wipe", Kind: playbooks.KindAction, Action: activities.ActionDeletePod, Facts: &facts},
	}
	return in
}

func TestDestructiveActionRunsOnlyOnVotesWhateverThePlaybookSays(t *testing.T) {
	for name, tc := range map[string]struct {
		vote   *Decision
		delete bool
	}{
		"expired, though onExpiry approves": {},
		"denied, though onError continues":  {vote: &Decision{User: "U1", Approve: false}},
		"approved by a vote":                {vote: &Decision{User: "U2", Approve: true}, delete: true},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			deletes := e.onAction(activities.ActionDeletePod, succeeds)
			e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
			var unhashed, hashed voteResult
			if tc.vote != nil {
				if tc.vote.Approve {
					// An approval of a destructive plan must name it.
					e.vote(30*time.Second, *tc.vote, &unhashed)
				}
				e.RegisterDelayedCallback(func() {
					d := *tc.vote
					if d.Approve {
						v, err := e.QueryWorkflow(QueryState)
						var st IncidentState
						if err == nil {
							err = v.Get(&st)
						}
						if err != nil || len(st.Approvals) == 0 {
							t.Errorf("state: %v", err)
							return
						}
						d.PlanHash = st.Approvals[0].PlanHash
					}
					e.UpdateWorkflow(UpdateDecide, "vote", &testsuite.TestUpdateCallback{
						OnAccept: func() {}, OnReject: func(err error) { hashed.rejected = err }, OnComplete: func(any, error) {},
					}, d)
				}, time.Minute)
			}
			e.ExecuteWorkflow(Respond, approvalThenDelete())
			st := e.result()
			wipe := st.Steps[len(st.Steps)-1]
			if !tc.delete {
				if len(*deletes) != 0 || wipe.ID != "wipe" || wipe.ErrorType != ErrTypeNotApproved {
					t.Fatalf("deletes %d, wipe %+v: want it refused as NotApproved", len(*deletes), wipe)
				}
				return
			}
			if unhashed.rejected == nil || !strings.Contains(unhashed.rejected.Error(), "must name it by its hash") || hashed.rejected != nil {
				t.Errorf("votes: without the plan's hash %v, with it %v", unhashed.rejected, hashed.rejected)
			}
			if len(*deletes) != 1 || wipe.Status != StepSucceeded {
				t.Fatalf("deletes %d, wipe %+v", len(*deletes), wipe)
			}
			// What ran is what the approvers saw.
			if plan := st.Approvals[0].Plan[0].Params; !maps.Equal(plan, (*deletes)[0].Params) {
				t.Errorf("ran %v, approved %v", (*deletes)[0].Params, plan)
			}
		})
	}
}
