package workflows

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/playbooks"
)

// TestTicketGetsOneBatchedCommentAndIsResolvedOnRelease: alerts that join
// and the release go to the ticket in batches, and the release resolves it.
func TestTicketGetsOneBatchedCommentAndIsResolvedOnRelease(t *testing.T) {
	e := newEnv(t)
	e.quarantines()
	e.onAction(activities.ActionRelease, succeeds)
	opens := e.onAction(activities.ActionTicketOpen, func(activities.ActionRequest) (map[string]any, error) {
		return map[string]any{"ticket": map[string]any{"provider": "webhook", "id": "1", "key": "SEC-1", "url": "https://t.example/SEC-1"}, "created": true}, nil
	})
	var updates []activities.TicketUpdateRequest
	e.OnActivity("TicketUpdate", mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.TicketUpdateRequest) error {
		updates = append(updates, req)
		return nil
	})
	in := input()
	in.Playbook.TicketCommentEvery = time.Minute
	in.Playbook.Steps = append(in.Playbook.Steps, playbooks.StepSpec{ID: "ticket", Kind: playbooks.KindAction, Action: activities.ActionTicketOpen, OnError: playbooks.OnErrorContinue})
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	for i := range 30 {
		e.sendAlert(10*time.Second, shellAlert(), fmt.Sprintf("SOAR_ALERTS:%d", i+2))
	}
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalRelease, "false positive") }, 5*time.Minute)
	e.ExecuteWorkflow(Respond, in)
	st := e.result()

	if len(*opens) != 1 || (*opens)[0].Incident == nil || (*opens)[0].Incident.Ticket == nil || (*opens)[0].Incident.Ticket.Actions[0] != "contain (kubernetes.quarantine): succeeded" {
		t.Fatalf("ticket.open requests %+v", *opens)
	}
	if len(updates) != 2 || updates[0].Resolve || !updates[1].Resolve {
		t.Fatalf("ticket updates %+v, want a comment then the resolution", updates)
	}
	if got := strings.Join(updates[0].Lines, "\n"); !strings.Contains(got, "30 more alert(s) joined; 31 in all") {
		t.Errorf("the comment says %q", got)
	}
	last := strings.Join(updates[1].Lines, "\n")
	if !strings.Contains(last, "contain.release (kubernetes.release): succeeded") || !strings.Contains(last, "Incident closed (released): false positive") {
		t.Errorf("the resolution says %q", last)
	}
	if st.Ticket == nil || !st.Ticket.Resolved || st.Ticket.Comments != 2 || st.Ticket.Key != "SEC-1" {
		t.Errorf("ticket %+v", st.Ticket)
	}
}

// TestTicketOutageDoesNotHoldUpTheStepsAfterIt: ticket.open waits a minute
// for the ticket system, then the playbook goes on; the ticket opens when
// the system answers.
func TestTicketOutageDoesNotHoldUpTheStepsAfterIt(t *testing.T) {
	e := newEnv(t)
	calls := e.quarantines()
	attempts := 0
	e.onAction(activities.ActionTicketOpen, func(activities.ActionRequest) (map[string]any, error) {
		attempts++
		if attempts == 1 {
			return nil, temporal.NewApplicationErrorWithOptions("503 maintenance", activities.ErrTypeTicketUnavailable, temporal.ApplicationErrorOptions{NextRetryDelay: 3 * time.Minute})
		}
		return map[string]any{"ticket": map[string]any{"provider": "jira", "key": "SEC-9"}, "created": true}, nil
	})
	in := input()
	in.Playbook.Steps = append([]playbooks.StepSpec{{ID: "ticket", Kind: playbooks.KindAction, Action: activities.ActionTicketOpen, OnError: playbooks.OnErrorContinue}}, in.Playbook.Steps...)
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.ExecuteWorkflow(Respond, in)
	st := e.result()

	ticketStep, contain := st.Steps[0], st.Steps[1]
	if ticketStep.Status != StepSucceeded || ticketStep.Output["pending"] == nil {
		t.Fatalf("ticket step %+v", ticketStep)
	}
	if wait := contain.StartedAt.Sub(ticketStep.StartedAt); wait != ticketStepWait || len(*calls) != 1 {
		t.Errorf("containment started %s after the ticket step (want %s), %d quarantines", wait, ticketStepWait, len(*calls))
	}
	if st.Ticket == nil || st.Ticket.Key != "SEC-9" || attempts != 2 || st.TicketError != "" {
		t.Errorf("ticket %+v after %d attempts (error %q)", st.Ticket, attempts, st.TicketError)
	}
}
