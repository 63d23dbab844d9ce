package activities

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/connectors/tickets"
)

// Ticket actions.
const (
	ActionTicketOpen    = contract.ActionTicketOpen
	ActionTicketComment = "ticket.comment"
	ActionTicketResolve = contract.ActionTicketResolve
)

var ticketOpen = Define(Action{
	Name:     ActionTicketOpen,
	Summary:  "Open the incident's ticket (Jira, GitHub or a webhook), exactly once: a ticket carrying the incident is looked up first.",
	Attempt:  time.Minute,
	RetryFor: 30 * time.Minute,
	Lane:     LaneTicket,
	Role:     RoleNone,
}, (*Activities).ticketOpen)

var ticketComment = Define(Action{
	Name:     ActionTicketComment,
	Summary:  "Add a comment to the incident's ticket. soar also comments on its own, batched, as alerts join and steps run.",
	RetryFor: 30 * time.Minute,
	Lane:     LaneTicket,
	Role:     RoleNone,
}, (*Activities).ticketComment)

var ticketResolve = Define(Action{
	Name:     ActionTicketResolve,
	Summary:  "Resolve the incident's ticket now, with a comment. soar resolves it anyway when the incident is released or closed.",
	RetryFor: 30 * time.Minute,
	Lane:     LaneTicket,
	Role:     RoleNone,
}, (*Activities).ticketResolve)

// Error types of ticket failures.
const (
	// ErrTypeTicket: the ticket system refused the call for a reason
	// retrying cannot fix (credentials, permissions, project not found, a
	// field it rejects); the message says what to fix.
	ErrTypeTicket = "Ticket"
	// ErrTypeTicketUnavailable: the ticket system is down, slow or rate
	// limiting; retried, after Retry-After when it sends one.
	ErrTypeTicketUnavailable = "TicketUnavailable"
)

func ticketOf(r TicketRef) tickets.Ticket { return tickets.Ticket(r) }

func refOf(t tickets.Ticket) *TicketRef {
	r := TicketRef(t)
	return &r
}

// TicketOpenParams are ticket.open's parameters.
type TicketOpenParams struct {
	Title      string         `json:"title" default:"the alert's rule" doc:"the ticket's title; alert text in it is escaped for the ticket system"`
	Text       string         `json:"text" doc:"a paragraph before the incident's facts (what happened, target, actions, evidence, approvals)"`
	Labels     []string       `json:"labels" doc:"labels to add (Jira, GitHub, webhook)"`
	Components []string       `json:"components" doc:"Jira components"`
	Assignees  []string       `json:"assignees" doc:"GitHub logins to assign"`
	Fields     map[string]any `json:"fields" doc:"Jira custom fields by ID (customfield_10010: value)"`
}

// TicketTextParams are ticket.comment's and ticket.resolve's parameters.
type TicketTextParams struct {
	Text string `json:"text" required:"true" doc:"the comment; alert text in it is escaped"`
}

// TicketResult is the output of the ticket actions.
type TicketResult struct {
	Ticket  *TicketRef `json:"ticket,omitempty" doc:"the ticket: provider, id, key (SEC-123, owner/repo#45) and url"`
	Created bool       `json:"created" doc:"whether this step created it (false: it existed, found by the incident's label)"`
	Skipped string     `json:"skipped,omitempty" doc:"why nothing was done: no provider on the worker, or no ticket yet"`
	DryRun  bool       `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
	// Pending is set by the workflow, not the activity, when the ticket
	// system did not answer within a minute: the ticket opens later.
	Pending string `json:"pending,omitempty" doc:"ticket.open only: the ticket system did not answer within a minute; the step went on and the ticket opens when it answers"`
}

// noTicketProvider is why ticket actions skip on a worker without one.
const noTicketProvider = "no ticket provider is configured on the worker (--ticket-provider)"

func (a *Activities) ticketOpen(ctx context.Context, p TicketOpenParams, req ActionRequest) (TicketResult, error) {
	if a.Tickets == nil {
		activity.GetLogger(ctx).Info("ticket step skipped: "+noTicketProvider, "incident_id", req.IncidentID, "step", req.Step)
		return TicketResult{Skipped: noTicketProvider}, nil
	}
	c := ticketContext(req)
	if c.Ticket != nil {
		return TicketResult{Ticket: c.Ticket}, nil // opened by an earlier step
	}
	content := tickets.Content{
		IncidentID: ticketKey(c, req.IncidentID),
		Title:      p.Title,
		Body:       ticketBody(req.IncidentID, c, p.Text, a.IncidentURL),
		Severity:   c.Severity,
		Labels:     p.Labels, Components: p.Components, Assignees: p.Assignees, Fields: p.Fields,
	}
	if content.Title == "" {
		content.Title = c.Title
	}
	if req.DryRun {
		return TicketResult{DryRun: true}, nil
	}
	t, created, err := tickets.Open(ctx, a.Tickets, content)
	if err != nil {
		return TicketResult{}, ticketError(err)
	}
	return TicketResult{Ticket: refOf(t), Created: created}, nil
}

func (a *Activities) ticketComment(ctx context.Context, p TicketTextParams, req ActionRequest) (TicketResult, error) {
	return a.ticketText(ctx, p, req, false)
}

func (a *Activities) ticketResolve(ctx context.Context, p TicketTextParams, req ActionRequest) (TicketResult, error) {
	return a.ticketText(ctx, p, req, true)
}

func (a *Activities) ticketText(ctx context.Context, p TicketTextParams, req ActionRequest, resolve bool) (TicketResult, error) {
	if p.Text == "" {
		return TicketResult{}, invalid("%s needs a text", req.Action)
	}
	c := ticketContext(req)
	switch {
	case a.Tickets == nil:
		return TicketResult{Skipped: noTicketProvider}, nil
	case c.Ticket == nil:
		return TicketResult{Skipped: "the incident has no ticket: run ticket.open first"}, nil
	case req.DryRun:
		return TicketResult{Ticket: c.Ticket, DryRun: true}, nil
	}
	body := []tickets.Block{{Text: p.Text}}
	var err error
	if resolve {
		err = a.Tickets.Resolve(ctx, ticketOf(*c.Ticket), ticketKey(c, req.IncidentID), body)
	} else {
		err = a.Tickets.Comment(ctx, ticketOf(*c.Ticket), ticketKey(c, req.IncidentID), body)
	}
	if err != nil {
		return TicketResult{}, ticketError(err)
	}
	return TicketResult{Ticket: c.Ticket}, nil
}

func ticketKey(c TicketContext, incidentID string) string {
	if c.Key != "" {
		return c.Key
	}
	return incidentID
}

func ticketContext(req ActionRequest) TicketContext {
	if req.Incident == nil || req.Incident.Ticket == nil {
		return TicketContext{}
	}
	return *req.Incident.Ticket
}

// ticketBody is a new ticket's description: what happened, to what, what
// soar did so far, the evidence, the approvals and where to look.
func ticketBody(incidentID string, c TicketContext, text, incidentURL string) []tickets.Block {
	var body []tickets.Block
	if text != "" {
		body = append(body, tickets.Block{Text: text})
	}
	facts := []string{"Incident: " + incidentID, "Severity: " + c.Severity, "Rule: " + c.Rule, "Target: " + c.Target, fmt.Sprintf("Alerts so far: %d", c.Alerts)}
	body = append(body, tickets.Block{Heading: "What happened"}, tickets.Block{Text: c.Summary}, tickets.Block{Items: facts})
	if len(c.Actions) > 0 {
		body = append(body, tickets.Block{Heading: "What soar did"}, tickets.Block{Items: c.Actions})
	}
	if len(c.Evidence) > 0 {
		body = append(body, tickets.Block{Heading: "Evidence"}, tickets.Block{Items: c.Evidence})
	}
	if len(c.Approval) > 0 {
		body = append(body, tickets.Block{Heading: "Approvals"}, tickets.Block{Items: c.Approval})
	}
	body = append(body, tickets.Block{Heading: "More"}, tickets.Block{Code: "soar incident show " + incidentID})
	if incidentURL != "" {
		body = append(body, tickets.Block{Link: &tickets.Link{Text: "The incident in the Temporal UI", URL: incidentURL + url.PathEscape(incidentID)}})
	}
	return body
}

// TicketUpdate posts one comment with the lines, or resolves the ticket
// with them: the workflow batches what happens so that a storm of alerts
// costs a comment per interval, not one per alert.
func (a *Activities) TicketUpdate(ctx context.Context, req TicketUpdateRequest) error {
	if a.Tickets == nil {
		return temporal.NewNonRetryableApplicationError("this worker has no ticket provider (--ticket-provider): the ticket "+req.Ticket.Key+" was not updated", ErrTypeTicket, nil)
	}
	var body []tickets.Block
	if len(req.Lines) > 0 {
		body = []tickets.Block{{Items: req.Lines}}
	}
	var err error
	if req.Resolve {
		err = a.Tickets.Resolve(ctx, ticketOf(req.Ticket), req.IncidentID, body)
	} else if len(body) > 0 {
		err = a.Tickets.Comment(ctx, ticketOf(req.Ticket), req.IncidentID, body)
	}
	return ticketError(err)
}

// ticketError turns a ticket connector error into Temporal's terms.
func ticketError(err error) error {
	if err == nil {
		return nil
	}
	var te *tickets.Error
	if !errors.As(err, &te) {
		return temporal.NewApplicationErrorWithCause(err.Error(), ErrTypeTicketUnavailable, err)
	}
	return classified(te.Error(), te.Retryable, te.RetryAfter, ErrTypeTicket, ErrTypeTicketUnavailable)
}
