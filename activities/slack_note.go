package activities

import (
	"fmt"
	"strings"
	"time"

	"github.com/soar-dev/soar/connectors/slack"
)

// Kinds of Note.
const (
	// NoteReminder: an approval still needs Missing votes from Users
	// before At.
	NoteReminder = "reminder"
	// NoteEscalated: nobody decided in After; Users may now vote too.
	NoteEscalated = "escalated"
	// NoteApproved and NoteDenied: Users decided; Plan runs, or not.
	NoteApproved = "approved"
	NoteDenied   = "denied"
	// NoteExpired: nobody decided by At; Outcome is what expiry decided.
	NoteExpired = "expired"
)

// Note is one of soar's own notes in an incident's thread, as the workflow
// states it: facts, not text. SlackNote renders it, so that the wording,
// mentions and dates are Slack's business, not the workflow's.
type Note struct {
	Kind string `json:"kind"`
	Step string `json:"step"`
	// Users are the approvers still to vote (reminder), added by the
	// escalation, or who decided (approved, denied).
	Users   []string      `json:"users,omitempty"`
	Missing int           `json:"missing,omitempty"`
	At      time.Time     `json:"at,omitzero"`
	After   time.Duration `json:"after,omitempty"`
	// Plan names the planned steps as "step (action)".
	Plan    []string `json:"plan,omitempty"`
	Outcome string   `json:"outcome,omitempty"`
}

// render writes the note as mrkdwn: user IDs become mentions, times Slack
// dates; nothing in a note comes from an alert.
func (n Note) render() string {
	switch n.Kind {
	case NoteReminder:
		return fmt.Sprintf("Reminder: step %s still needs %d more approval(s) from %s before %s.",
			n.Step, n.Missing, mentions(n.Users), slack.Date(n.At))
	case NoteEscalated:
		return fmt.Sprintf("Escalated: nobody decided step %s in %s; %s may now vote too.", n.Step, n.After, mentions(n.Users))
	case NoteApproved:
		return fmt.Sprintf("Step %s approved by %s: running %s.", n.Step, mentions(n.Users), planned(n.Plan))
	case NoteDenied:
		return fmt.Sprintf("Step %s denied by %s: %s will not run.", n.Step, mentions(n.Users), planned(n.Plan))
	case NoteExpired:
		return fmt.Sprintf("Step %s expired with no decision at %s: %s by default.", n.Step, slack.Date(n.At), n.Outcome)
	default:
		return fmt.Sprintf("Step %s: %s.", n.Step, slack.Escape(n.Kind))
	}
}

func mentions(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = slack.Mention(id)
	}
	return strings.Join(out, ", ")
}

func planned(steps []string) string {
	if len(steps) == 0 {
		return "nothing"
	}
	return strings.Join(steps, ", ")
}
