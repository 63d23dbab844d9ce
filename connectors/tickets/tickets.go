package tickets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Ticket is a ticket soar opened for an incident.
type Ticket struct {
	// Provider is "jira", "github" or "webhook".
	Provider string `json:"provider"`
	// ID is the Jira issue id, the GitHub issue number or the webhook
	// receiver's id (which may be "").
	ID string `json:"id"`
	// Key is "SEC-123", "owner/repo#45", or the webhook receiver's key or
	// else the idempotency key of the open call.
	Key string `json:"key"`
	// URL is the page a human opens to see the ticket.
	URL string `json:"url,omitempty"`
}

// Content is what a new ticket says. Title and the text of Body are plain
// text that may hold attacker-controlled alert text; every provider renders
// them inert in its markup.
type Content struct {
	// IncidentID identifies the incident; the ticket is found again by it.
	IncidentID string
	// Title is the ticket's one-line summary.
	Title string
	// Body is rendered in order.
	Body []Block
	// Severity is the alert's severity in lower case ("critical", "high",
	// "error", "warning", "notice", "info", ...). Jira maps it to a priority.
	Severity string
	// Labels are extra labels, from the playbook.
	Labels []string
	// Components are Jira component names; other providers ignore them.
	Components []string
	// Assignees are GitHub logins; other providers ignore them.
	Assignees []string
	// Fields are Jira fields by id ("customfield_10010": value), sent as
	// they are; other providers ignore them.
	Fields map[string]any
}

// Block is one piece of a ticket body or comment: a heading, a paragraph, a
// bullet list, a code block or a link. Set one of the fields. All text is
// plain and untrusted.
type Block struct {
	// Heading, when set, is a heading.
	Heading string
	// Text is a paragraph; newlines in it are line breaks.
	Text string
	// Items is a bullet list.
	Items []string
	// Code is preformatted text.
	Code string
	// Link is a link.
	Link *Link
}

// Link is a link in a ticket. URL is trusted (it comes from soar's
// configuration, e.g. the incident's page); Text is untrusted and shown as
// plain text. An empty Text shows the URL.
type Link struct{ Text, URL string }

// Provider opens exactly one ticket per incident. Implementations are safe
// for concurrent use.
type Provider interface {
	// Name is "jira", "github" or "webhook".
	Name() string
	// Find returns the ticket carrying incidentID, or nil when there is
	// none. It only reads, and it is the idempotency lookup that Open runs
	// before every Create.
	Find(ctx context.Context, incidentID string) (*Ticket, error)
	// Create opens a ticket for c.IncidentID. It is not idempotent by
	// itself: call it through Open.
	Create(ctx context.Context, c Content) (Ticket, error)
	// Comment adds body to t. A retry after an answer was lost may comment
	// twice.
	Comment(ctx context.Context, t Ticket, incidentID string, body []Block) error
	// Resolve closes or resolves t, with body as the final comment when it
	// is not empty. Resolving a resolved ticket is not an error.
	Resolve(ctx context.Context, t Ticket, incidentID string, body []Block) error
}

// Open returns the incident's ticket, creating it when Find finds none; it is
// what the ticket.open action runs. created is false when Find found the
// ticket. Open is idempotent as far as Find can see: a retry after a Create
// whose answer was lost finds that ticket instead of opening a second one
// (Jira's search index can lag a few seconds behind a create, see NewJira).
//
// On error, t is still set when the ticket was created but something about it
// needs the operator (see NewGitHub).
func Open(ctx context.Context, p Provider, c Content) (t Ticket, created bool, err error) {
	found, err := p.Find(ctx, c.IncidentID)
	if err != nil {
		return Ticket{}, false, err
	}
	if found != nil {
		return *found, false, nil
	}
	t, err = p.Create(ctx, c)
	return t, t.Key != "", err
}

// IncidentLabel is the label (and the marker in webhook idempotency keys)
// carrying the incident: "soar-" and the first 16 hex digits of the SHA-256 of
// incidentID. Incident IDs can be longer than GitHub's 50-character label
// limit and hold characters labels cannot, so the label is a hash; ticket
// bodies also hold the full incident ID for humans.
func IncidentLabel(incidentID string) string {
	return "soar-" + hash16(incidentID)
}

// hash16 returns the first 16 hex digits of the SHA-256 of s.
func hash16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// incidentLine is the last paragraph of every ticket body, so that humans
// (and full-text search) see the incident ID the label stands for.
func incidentLine(incidentID string) Block {
	return Block{Text: fmt.Sprintf("soar incident %s (label %s)", incidentID, IncidentLabel(incidentID))}
}

// checkIncident refuses an empty incident ID before any request: all tickets
// of incidents without an ID would share one label, and Open would hand one
// incident another's ticket.
func checkIncident(provider, op, incidentID string) error {
	if incidentID != "" {
		return nil
	}
	return &Error{Provider: provider, Op: op, Hint: "the incident ID is empty; this is a bug in the caller, report it"}
}

// checkTicket refuses, before any request, a ticket without a key or one
// that another provider opened (the playbook's ticket provider changed
// while the incident was open).
func checkTicket(provider, op string, t Ticket) error {
	switch {
	case t.Key == "":
		return &Error{Provider: provider, Op: op, Hint: "the ticket has no key; pass the ticket that ticket.open returned"}
	case t.Provider != "" && t.Provider != provider:
		return &Error{Provider: provider, Op: op, Hint: fmt.Sprintf("ticket %s was opened in %s, not %s; use the provider that opened it", t.Key, t.Provider, provider)}
	}
	return nil
}
