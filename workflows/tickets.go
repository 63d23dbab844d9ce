package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/playbooks"
)

// TicketState is the incident's ticket, once ticket.open opened one, and
// what it has been told.
type TicketState struct {
	contract.TicketRef
	// Pending lines wait for the next batched comment.
	Pending []string `json:"pending,omitempty"`
	// Alerts is the alert count the ticket was last told of.
	Alerts   int  `json:"alerts"`
	Comments int  `json:"comments,omitempty"`
	Resolved bool `json:"resolved,omitempty"`
	// Error is the last failure to update it.
	Error string `json:"error,omitempty"`
}

// ticketStepWait is how long a ticket.open step waits for the ticket
// system: past it, the step succeeds as pending and the ticket opens in the
// background when the system answers, so that an outage never holds up the
// steps after it (an approval, a containment).
const ticketStepWait = time.Minute

// openTicket runs ticket.open in the ticket outbox and waits for it at
// most ticketStepWait.
func (s *steps) openTicket(req contract.ActionRequest, opts workflow.ActivityOptions) (map[string]any, error) {
	done, set := workflow.NewFuture(s.ctx)
	s.ticketBox.add(s.ctx, func(ctx workflow.Context) {
		var out map[string]any
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), req.Action, req).Get(ctx, &out)
		if err == nil {
			s.recordTicket(out)
			s.st.TicketError = ""
		} else {
			s.st.TicketError = errorMessage(err)
			workflow.GetLogger(ctx).Error("ticket not opened", "incident_id", s.st.IncidentID, "error", s.st.TicketError)
		}
		set.Set(out, err)
	})
	if _, err := workflow.AwaitWithTimeout(s.ctx, ticketStepWait, done.IsReady); err != nil {
		return nil, err
	}
	if !done.IsReady() {
		return map[string]any{"pending": fmt.Sprintf("the ticket system did not answer within %s; the ticket opens when it does (soar incident show)", ticketStepWait)}, nil
	}
	var out map[string]any
	err := done.Get(s.ctx, &out)
	return out, err
}

// ticketKey identifies this occurrence of the incident to the ticket
// system: an incident that closes and later opens again (same playbook,
// same key) gets a ticket of its own.
func (st *IncidentState) ticketKey() string {
	return st.IncidentID + "@" + st.occurrence()
}

// occurrence names this occurrence of the incident by when it opened.
func (st *IncidentState) occurrence() string {
	return st.OpenedAt.UTC().Format("20060102T150405Z")
}

// maxPendingLines bounds what one batched comment lists; the rest is
// counted.
const maxPendingLines = 50

// DefaultTicketCommentEvery is how often, at most, soar comments on an
// incident's ticket when the playbook does not say.
const DefaultTicketCommentEvery = 5 * time.Minute

// ticketOptions: tickets wait for an outage for up to half an hour.
var ticketOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    30 * time.Second,
	ScheduleToCloseTimeout: 30 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    2 * time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
	},
}

// ticketLine queues a line for the ticket's next comment, if there is a
// ticket still open.
func (st *IncidentState) ticketLine(ctx workflow.Context, format string, args ...any) {
	t := st.Ticket
	if t == nil || t.Resolved {
		return
	}
	line := workflow.Now(ctx).UTC().Format(time.RFC3339) + " " + fmt.Sprintf(format, args...)
	if len(t.Pending) < maxPendingLines {
		t.Pending = append(t.Pending, line)
		return
	}
	t.Pending[maxPendingLines-1] = "… and more: soar incident show " + st.IncidentID
}

// ticketDue reports whether the ticket has news: lines, or alerts it was
// not told of.
func (st *IncidentState) ticketDue() bool {
	t := st.Ticket
	return t != nil && !t.Resolved && (len(t.Pending) > 0 || st.AlertCount != t.Alerts)
}

// commentEvery is the playbook's batching interval.
func (s *steps) commentEvery() time.Duration {
	if d := s.in.Playbook.TicketCommentEvery; d > 0 {
		return d
	}
	return DefaultTicketCommentEvery
}

// flushTicket queues one comment with everything pending (or, with
// resolve, the resolution); the ticket outbox posts it beside the steps.
func (s *steps) flushTicket(resolve bool, reason string) {
	st := s.st
	t := st.Ticket
	if t == nil || t.Resolved {
		return
	}
	lines := t.Pending
	if n := st.AlertCount - t.Alerts; n > 0 {
		lines = append(lines, fmt.Sprintf("%d more alert(s) joined; %d in all, the latest at %s", n, st.AlertCount, st.LastAlertAt.UTC().Format(time.RFC3339)))
	}
	if resolve {
		lines = append(lines, fmt.Sprintf("Incident closed (%s): %s", st.Status, reason))
		t.Resolved = true
	}
	t.Pending, t.Alerts = nil, st.AlertCount
	if len(lines) == 0 && !resolve {
		return
	}
	req := contract.TicketUpdateRequest{IncidentID: st.ticketKey(), Ticket: t.TicketRef, Lines: lines, Resolve: resolve}
	s.ticketBox.add(s.ctx, func(ctx workflow.Context) {
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ticketOptions), contract.TicketUpdateActivity, req).Get(ctx, nil)
		if err != nil {
			t.Error = errorMessage(err)
			workflow.GetLogger(ctx).Error("ticket update failed", "incident_id", st.IncidentID, "ticket", t.Key, "error", t.Error)
			if !resolve {
				// Told again with the next comment.
				t.Pending = append(slices.Clone(req.Lines), t.Pending...)
			}
			return
		}
		t.Error = ""
		t.Comments++
	})
}

// closeTicket resolves the ticket as the incident ends, giving the ticket
// system up to ten minutes.
func (s *steps) closeTicket(reason string) error {
	if s.st.Ticket == nil {
		return nil
	}
	s.flushTicket(true, reason)
	return s.ticketBox.flush(s.ctx, 10*time.Minute)
}

// ticketContext is what ticket actions see of the incident.
func (s *steps) ticketContext() *contract.TicketContext {
	st := s.st
	first := st.FirstAlert
	c := &contract.TicketContext{
		Key:   st.ticketKey(),
		Title: first.Rule, Severity: s.severity(), Summary: first.Summary, Rule: first.Rule, Alerts: st.AlertCount,
	}
	if k := first.Kubernetes; k.Pod != "" {
		c.Target = fmt.Sprintf("pod %s/%s", k.Namespace, k.Pod)
		if k.Node != "" {
			c.Target += " on node " + k.Node
		}
		if first.Cluster != "" {
			c.Target += " in cluster " + first.Cluster
		}
	}
	if c.Target != "" {
		c.Title += ": " + c.Target
	}
	for _, r := range st.Steps {
		if r.Kind != playbooks.KindAction || strings.HasPrefix(r.Action, "ticket.") {
			continue
		}
		line := fmt.Sprintf("%s (%s): %s", r.ID, r.Action, r.Status)
		if r.Error != "" {
			line += " — " + r.ErrorType + ": " + r.Error
		}
		c.Actions = append(c.Actions, line)
		if loc, ok := r.Output["location"].(string); ok && r.Action == contract.ActionSnapshot {
			sum, _ := r.Output["sha256"].(string)
			c.Evidence = append(c.Evidence, fmt.Sprintf("%s: manifest %s, sha256 %s", r.ID, loc, sum))
		}
	}
	for _, a := range st.Approvals {
		line := fmt.Sprintf("%s: %s", a.Step, a.Outcome)
		if a.Outcome == "" {
			line += "open"
		}
		for _, v := range a.Votes {
			verb := "denied"
			if v.Approve {
				verb = "approved"
			}
			line += fmt.Sprintf("; %s %s (%s)", v.User, verb, v.Source)
		}
		c.Approval = append(c.Approval, line)
	}
	if st.Ticket != nil {
		t := st.Ticket.TicketRef
		c.Ticket = &t
	}
	return c
}

// recordTicket keeps the ticket a ticket.open step returned.
func (s *steps) recordTicket(out map[string]any) {
	m, ok := out["ticket"].(map[string]any)
	if !ok || s.st.Ticket != nil {
		return
	}
	str := func(k string) string { v, _ := m[k].(string); return v }
	s.st.Ticket = &TicketState{
		TicketRef: contract.TicketRef{Provider: str("provider"), ID: str("id"), Key: str("key"), URL: str("url")},
		Alerts:    s.st.AlertCount,
	}
}

// settle finishes the incident's outside work before it closes: Slack
// notes, then the ticket's last comment and its resolution.
func (s *steps) settle(reason string) error {
	if err := s.flushSlack(); err != nil {
		return err
	}
	return s.closeTicket(reason)
}
