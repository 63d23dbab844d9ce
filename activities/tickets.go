package activities

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/connectors/tickets"
)

// Ticket actions.
const (
	ActionTicketOpen    = "ticket.open"
	ActionTicketComment = "ticket.comment"
	ActionTicketResolve = "ticket.resolve"
)

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

// TicketContext is what the incident tells ticket actions: the facts a
// ticket shows, and the ticket once one is open. The workflow fills it.
type TicketContext struct {
	// Key identifies this occurrence of the incident to the ticket system
	// (the incident ID and when it opened); empty means the incident ID.
	Key      string   `json:"key,omitempty"`
	Title    string   `json:"title,omitempty"`
	Severity string   `json:"severity,omitempty"`
	Summary  string   `json:"summary,omitempty"`
	Target   string   `json:"target,omitempty"`
	Rule     string   `json:"rule,omitempty"`
	Alerts   int      `json:"alerts,omitempty"`
	Actions  []string `json:"actions,omitempty"`
	Evidence []string `json:"evidence,omitempty"`
	Approval []string `json:"approvals,omitempty"`
	// Ticket is the incident's ticket, once opened.
	Ticket *tickets.Ticket `json:"ticket,omitempty"`
}

// TicketOpenParams are ticket.open's parameters.
type TicketOpenParams struct {
	Title      string         `json:"title"`
	Text       string         `json:"text"`
	Labels     []string       `json:"labels"`
	Components []string       `json:"components"`
	Assignees  []string       `json:"assignees"`
	Fields     map[string]any `json:"fields"`
}

// TicketTextParams are ticket.comment's and ticket.resolve's parameters.
type TicketTextParams struct {
	Text string `json:"text"`
}

// TicketResult is the output of the ticket actions.
type TicketResult struct {
	Ticket  *tickets.Ticket `json:"ticket,omitempty"`
	Created bool            `json:"created"`
	Skipped string          `json:"skipped,omitempty"`
	DryRun  bool            `json:"dryRun,omitempty"`
	// Pending is set by the workflow, not the activity, when the ticket
	// system did not answer within a minute: the ticket opens later.
	Pending string `json:"pending,omitempty"`
}

// noTicketProvider is why ticket actions skip on a worker without one.
const noTicketProvider = "no ticket provider is configured on the worker (--ticket-provider)"

func ticketOpen(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
	var p TicketOpenParams
	if err := decodeParams(req, &p); err != nil {
		return nil, err
	}
	if a.Tickets == nil {
		activity.GetLogger(ctx).Info("ticket step skipped: "+noTicketProvider, "incident_id", req.IncidentID, "step", req.Step)
		return TicketResult{Skipped: noTicketProvider}, nil
	}
	c := req.ticketContext()
	if c.Ticket != nil {
		return TicketResult{Ticket: c.Ticket}, nil // opened by an earlier step
	}
	content := tickets.Content{
		IncidentID: c.key(req.IncidentID),
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
		return nil, ticketError(err)
	}
	return TicketResult{Ticket: &t, Created: created}, nil
}

func ticketComment(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
	return ticketText(a, ctx, req, false)
}

func ticketResolve(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
	return ticketText(a, ctx, req, true)
}

func ticketText(a *Activities, ctx context.Context, req ActionRequest, resolve bool) (any, error) {
	var p TicketTextParams
	if err := decodeParams(req, &p); err != nil {
		return nil, err
	}
	if p.Text == "" {
		return nil, invalid("%s needs a text", req.Action)
	}
	c := req.ticketContext()
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
		err = a.Tickets.Resolve(ctx, *c.Ticket, c.key(req.IncidentID), body)
	} else {
		err = a.Tickets.Comment(ctx, *c.Ticket, c.key(req.IncidentID), body)
	}
	if err != nil {
		return nil, ticketError(err)
	}
	return TicketResult{Ticket: c.Ticket}, nil
}

func (c TicketContext) key(incidentID string) string {
	if c.Key != "" {
		return c.Key
	}
	return incidentID
}

func (req ActionRequest) ticketContext() TicketContext {
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

// TicketUpdateRequest carries what happened to an incident since its
// ticket's last comment, and whether to resolve it now.
type TicketUpdateRequest struct {
	IncidentID string         `json:"incidentID"`
	Ticket     tickets.Ticket `json:"ticket"`
	Lines      []string       `json:"lines,omitempty"`
	Resolve    bool           `json:"resolve,omitempty"`
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
		err = a.Tickets.Resolve(ctx, req.Ticket, req.IncidentID, body)
	} else if len(body) > 0 {
		err = a.Tickets.Comment(ctx, req.Ticket, req.IncidentID, body)
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
