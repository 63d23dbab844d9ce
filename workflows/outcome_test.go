package workflows

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/playbooks"
)

// The issue that asked for lifecycle and outcome: "approval denied but the
// pod was already contained" must not read as a bare failure.
func TestDeniedApprovalAfterContainmentIsOpenThenClosedWithOutcomeDenied(t *testing.T) {
	e := newEnv(t)
	calls := e.quarantines()
	statuses := e.statuses()
	in := input()
	in.Playbook.Steps = append(in.Playbook.Steps, playbooks.StepSpec{
		ID: "ask", Kind: playbooks.KindApproval, OnError: playbooks.OnErrorContinue,
		Approval: &playbooks.Approval{Approvers: []string{"U1"}, Quorum: 1, Timeout: 30 * time.Minute, OnExpiry: "deny"},
	})
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	var r voteResult
	e.vote(time.Minute, Decision{User: "U1", Approve: false, Comment: "not now"}, &r)
	e.ExecuteWorkflow(Respond, in)
	st := e.result()
	if r.rejected != nil || len(*calls) != 1 || st.Steps[0].Status != StepSucceeded {
		t.Fatalf("vote %v, quarantines %d, steps %+v", r.rejected, len(*calls), st.Steps)
	}
	want := []string{"awaiting_approval", "responding", "open/denied", "closed/denied"}
	if !slices.Equal(*statuses, want) {
		t.Errorf("statuses %v, want %v", *statuses, want)
	}
	if st.Status != StatusClosed || st.Lifecycle != LifecycleClosed || st.Outcome != OutcomeDenied {
		t.Errorf("status %q lifecycle %q outcome %q, want closed, closed, denied", st.Status, st.Lifecycle, st.Outcome)
	}
}

func TestOutcomeOfFailedSteps(t *testing.T) {
	step := func(errType string) StepResult { return StepResult{Status: StepFailed, ErrorType: errType} }
	ok := StepResult{Status: StepSucceeded}
	for _, tc := range []struct {
		name  string
		steps []StepResult
		want  string
	}{
		{"an action failed", []StepResult{ok, step(ErrTypeInvalidParameters)}, OutcomeFailed},
		{"a denial after containment", []StepResult{ok, step(ErrTypeApprovalDenied)}, OutcomeDenied},
		{"an expiry", []StepResult{step(ErrTypeApprovalExpired)}, OutcomeExpired},
		{"a denial outweighs an expiry", []StepResult{step(ErrTypeApprovalDenied), step(ErrTypeApprovalExpired)}, OutcomeDenied},
		{"an expiry, then a denial", []StepResult{step(ErrTypeApprovalExpired), step(ErrTypeApprovalDenied)}, OutcomeDenied},
		{"a failed action outweighs a denial", []StepResult{step(ErrTypeApprovalDenied), step("")}, OutcomeFailed},
		{"a destructive step refused after a denial", []StepResult{ok, step(ErrTypeApprovalDenied), step(ErrTypeNotApproved)}, OutcomeDenied},
		{"an interruption alone", []StepResult{step(ErrTypeInterrupted)}, OutcomeFailed},
	} {
		if got := failedOutcome(tc.steps); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestSplitReadsOldAndNewStatuses(t *testing.T) {
	for status, want := range map[string][2]string{
		StatusResponding:       {LifecycleResponding, ""},
		StatusAwaitingApproval: {LifecycleAwaitingApproval, ""},
		StatusContained:        {LifecycleOpen, OutcomeContained},
		StatusDegraded:         {LifecycleOpen, OutcomeDegraded},
		StatusFailed:           {LifecycleOpen, OutcomeFailed},
		StatusPlanned:          {LifecycleOpen, OutcomePlanned},
		StatusReleased:         {LifecycleOpen, OutcomeReleased},
		StatusClosed:           {LifecycleClosed, ""},
		LifecycleOpen:          {LifecycleOpen, ""},
	} {
		if l, o := Split(status); l != want[0] || o != want[1] {
			t.Errorf("Split(%q) = %q, %q, want %q, %q", status, l, o, want[0], want[1])
		}
	}
}

func TestIntervalsCountPerMinuteAndStayBounded(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 30, 0, time.UTC)
	var iv Intervals
	iv.add(t0, 1)
	iv.add(t0.Add(10*time.Second), 5)
	iv.add(t0.Add(3*time.Minute), 2)
	if !iv.Start.Equal(t0.Truncate(time.Minute)) || iv.Width != time.Minute || !slices.Equal(iv.Counts, []int{6, 0, 0, 2}) {
		t.Fatalf("intervals %+v, want from 10:00, a minute wide: 6 0 0 2", iv)
	}
	// Ten hours of one alert a minute: the width doubles until 120
	// intervals hold them, and no alert is lost.
	for m := 4; m < 600; m++ {
		iv.add(t0.Add(time.Duration(m)*time.Minute), 1)
	}
	total := 0
	for _, c := range iv.Counts {
		total += c
	}
	if len(iv.Counts) > maxIntervals || iv.Width != 8*time.Minute || total != 6+2+596 {
		t.Errorf("%d intervals of %s holding %d alerts, want at most %d of 8m holding %d", len(iv.Counts), iv.Width, total, maxIntervals, 6+2+596)
	}
	if iv.Counts[0] != 6+2+4 { // 10:00-10:08: the first six, the two at 10:03, and 10:04..10:07
		t.Errorf("first interval %d, want 12", iv.Counts[0])
	}
}

func TestRespondCountsAlertsPerInterval(t *testing.T) {
	e := newEnv(t)
	e.quarantines()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.sendAlert(30*time.Second, shellAlert(), "SOAR_ALERTS:2")
	e.sendAlert(5*time.Minute, shellAlert(), "SOAR_ALERTS:3")
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalAlert, batchSignal(3, 4, 5, 6, 7)) }, 6*time.Minute)
	e.ExecuteWorkflow(Respond, input())
	st := e.result()
	if st.Intervals == nil {
		t.Fatal("no intervals")
	}
	total := 0
	for _, c := range st.Intervals.Counts {
		total += c
	}
	if total != st.AlertCount || st.AlertCount != 7 || st.Intervals.Width != time.Minute {
		t.Errorf("alert count %d, intervals %+v, want 7 alerts a minute wide", st.AlertCount, st.Intervals)
	}
}

// A storm costs one search-attribute update per 30 seconds, not one per
// alert, and the count in the search attributes catches up within them.
func TestRespondPublishesAlertCountsAtMostEvery30Seconds(t *testing.T) {
	e := newEnv(t)
	e.quarantines()
	var start time.Time
	var published []string
	e.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa, _ := args.Get(0).(temporal.SearchAttributes)
		n, ok := sa.GetInt64(SearchAlertCount)
		if !ok {
			return
		}
		last, _ := sa.GetTime(SearchLastAlert)
		if start.IsZero() {
			start = e.Now()
		}
		published = append(published, fmt.Sprintf("%d alerts, last at %s, published at %s", n, last.Sub(start), e.Now().Sub(start)))
	}).Return().Maybe()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	for i, at := range []time.Duration{5 * time.Second, 10 * time.Second, 50 * time.Second} {
		e.sendAlert(at, shellAlert(), fmt.Sprintf("SOAR_ALERTS:%d", i+2))
	}
	e.ExecuteWorkflow(Respond, input())
	st := e.result()
	want := []string{
		"1 alerts, last at 0s, published at 0s",
		"3 alerts, last at 10s, published at 30s",
		"4 alerts, last at 50s, published at 1m0s",
	}
	if !slices.Equal(published, want) || st.AlertCount != 4 || st.PublishedCount != 4 {
		t.Errorf("published\n %q\nwant\n %q\n(alert count %d, published %d)", published, want, st.AlertCount, st.PublishedCount)
	}
}

func TestRespondPublishesTheLastAlertCountWhenItCloses(t *testing.T) {
	e := newEnv(t)
	e.quarantines()
	counts := e.alertCounts()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.sendAlert(5*time.Second, shellAlert(), "SOAR_ALERTS:2")
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalClose, "done") }, 10*time.Second)
	e.ExecuteWorkflow(Respond, input())
	if st := e.result(); !slices.Equal(*counts, []int64{1, 2}) || st.CloseReason != "done" {
		t.Errorf("published %v, want 1 then 2 at the close (closed: %q)", *counts, st.CloseReason)
	}
}

// While an approval waits, the alerts that join still publish their count:
// an alert that finds the last publication 30 seconds old publishes it.
func TestRespondPublishesAlertCountsWhileAnApprovalWaits(t *testing.T) {
	e := newEnv(t)
	e.quarantines()
	counts := e.alertCounts()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	for i, at := range []time.Duration{10 * time.Second, 40 * time.Second, 45 * time.Second, 2 * time.Minute} {
		e.sendAlert(at, shellAlert(), fmt.Sprintf("SOAR_ALERTS:%d", i+2))
	}
	var r voteResult
	e.vote(5*time.Minute, Decision{User: "U1", Approve: true}, &r)
	e.ExecuteWorkflow(Respond, approvalThenQuarantine(1, "deny"))
	st := e.result()
	if !slices.Equal(*counts, []int64{1, 3, 5}) || st.AlertCount != 5 || r.rejected != nil {
		t.Errorf("published %v, want 1, 3 (at 40 s) and 5 (at 2 min) during the approval; alert count %d, vote %v", *counts, st.AlertCount, r.rejected)
	}
}

// alertCounts records every alert count the workflow publishes, in order.
func (e env) alertCounts() *[]int64 {
	var counts []int64
	e.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa, _ := args.Get(0).(temporal.SearchAttributes)
		if n, ok := sa.GetInt64(SearchAlertCount); ok {
			counts = append(counts, n)
		}
	}).Return().Maybe()
	return &counts
}
