package activities

import (
	"fmt"
	"strings"

	"github.com/soar-dev/soar/connectors/slack"
)

// render writes the note as mrkdwn: user IDs become mentions, times Slack
// dates; nothing in a note comes from an alert.
func renderNote(n Note) string {
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
