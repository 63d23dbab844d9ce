package console

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/workflows"
)

// Entry is one line of an incident's timeline.
type Entry struct {
	At time.Time
	// Kind is the entry's class: opened, alert, alerts (a count per
	// interval), step, approval, vote, download, closed.
	Kind string
	// Title is the line's text; Status colours it (succeeded, failed,
	// approved, denied, …).
	Title, Status string
	// Detail is a longer text, shown as is (escaped).
	Detail string
	// Alert is the alert of an alert entry.
	Alert *alert.Alert
	// Step is the step of a step entry, with Params and Output as indented
	// JSON and its Duration.
	Step           *workflows.StepResult
	Params, Output string
	Duration       time.Duration
	// Evidence is set on a snapshot step's entry.
	Evidence *EvidenceRef
	// Vote is the vote of a vote entry.
	Vote *workflows.Vote
}

// EvidenceRef is where a step stored its evidence bundle.
type EvidenceRef struct {
	Step     string
	Location string
	SHA256   string
	// Artifacts and Failed count them.
	Artifacts, Failed int
}

// Timeline orders what the incident's state records by time: its opening,
// its first and latest alerts, every step, every approval with its votes,
// and its close. (The ticket and the Slack thread are links beside it.)
func Timeline(st *workflows.IncidentState) []Entry {
	var out []Entry
	add := func(e Entry) {
		if !e.At.IsZero() {
			out = append(out, e)
		}
	}
	pinned := "playbook " + st.Playbook + " version " + short(st.PlaybookVersion)
	if st.PlaybookCommit != "" {
		pinned += ", commit " + short(st.PlaybookCommit)
		if st.PlaybookModified {
			pinned += " (file modified)"
		}
	}
	add(Entry{At: st.OpenedAt, Kind: "opened", Title: "Incident opened", Detail: pinned})
	if st.FirstAlert != nil {
		add(Entry{At: alertTime(st.FirstAlert, st.OpenedAt), Kind: "alert", Title: "First alert: " + st.FirstAlert.Rule, Alert: st.FirstAlert})
	}
	if st.Intervals != nil {
		for i, n := range st.Intervals.Counts {
			if n == 0 {
				continue
			}
			from := st.Intervals.Start.Add(time.Duration(i) * st.Intervals.Width)
			at := from
			if at.Before(st.OpenedAt) {
				at = st.OpenedAt // the first interval began before the incident opened
			}
			add(Entry{
				At: at, Kind: "alerts",
				Title: fmt.Sprintf("%d %s joined between %s and %s", n, plural(n, "alert"), from.UTC().Format(time.TimeOnly), from.Add(st.Intervals.Width).UTC().Format(time.TimeOnly)),
			})
		}
	}
	if st.LatestAlert != nil && st.AlertCount > 1 {
		add(Entry{
			At: st.LastAlertAt, Kind: "alert", Alert: st.LatestAlert,
			Title: fmt.Sprintf("Latest alert: %s — %d alerts in all, %d after the first over %s", st.LatestAlert.Rule, st.AlertCount, st.AlertCount-1, roundDuration(st.LastAlertAt.Sub(st.OpenedAt))),
		})
	}
	for i := range st.Steps {
		s := &st.Steps[i]
		e := Entry{At: s.StartedAt, Kind: "step", Step: s, Status: s.Status, Params: indent(s.Params), Output: indent(s.Output)}
		if !s.FinishedAt.IsZero() {
			e.Duration = s.FinishedAt.Sub(s.StartedAt)
		}
		e.Title = "Step " + s.ID
		if s.Action != "" {
			e.Title += " (" + s.Action + ")"
		}
		e.Title += " " + s.Status
		if s.Degraded != "" {
			e.Detail = "degraded: " + s.Degraded
		}
		if dry, _ := s.Output["dryRun"].(bool); dry {
			e.Title += " — plan mode: what would have happened"
		}
		e.Evidence = evidenceOf(s)
		add(e)
	}
	for _, a := range st.Approvals {
		add(Entry{
			At: a.OpenedAt, Kind: "approval", Status: "pending",
			Title:  fmt.Sprintf("Approval %s requested: %d of %s, plan %s", a.Step, a.Quorum, strings.Join(a.Approvers, ", "), a.PlanHash),
			Detail: a.Message,
		})
		for j := range a.Votes {
			v := &a.Votes[j]
			verb, status := "denied", "denied"
			if v.Approve {
				verb, status = "approved", "approved"
			}
			title := fmt.Sprintf("%s %s step %s", v.User, verb, a.Step)
			if v.Source != "" {
				title += " (" + v.Source + ")"
			}
			if v.Via != "" {
				title += " as a member of " + v.Via
			}
			if v.Person != "" && v.Person != v.User {
				title += ", Slack user " + v.Person
			}
			add(Entry{At: v.At, Kind: "vote", Status: status, Title: title, Detail: v.Comment, Vote: v})
		}
		if a.Escalated {
			add(Entry{At: a.EscalatedAt, Kind: "approval", Title: "Approval " + a.Step + " escalated"})
		}
		if a.Outcome != "" {
			add(Entry{At: a.DecidedAt, Kind: "approval", Status: a.Outcome, Title: "Approval " + a.Step + " " + a.Outcome})
		}
	}
	if !st.ClosedAt.IsZero() {
		title := "Incident closed"
		if st.Outcome == workflows.OutcomeReleased || st.Status == workflows.StatusReleased || strings.Contains(st.CloseReason, "release") {
			title = "Incident released and closed"
		}
		add(Entry{At: st.ClosedAt, Kind: "closed", Title: title, Detail: st.CloseReason})
	}
	sortEntries(out)
	return out
}

// withDownloads adds the recorded downloads of the incident's evidence to
// its timeline.
func withDownloads(tl []Entry, ev []evidenceView) []Entry {
	n := len(tl)
	for _, e := range ev {
		for _, a := range e.Downloads {
			title := fmt.Sprintf("%s downloaded %s from step %s's evidence", cmp.Or(a.User, "(unknown)"), a.Name, e.Ref.Step)
			tl = append(tl, Entry{At: a.At, Kind: "download", Title: title})
		}
		if e.MoreDownloads {
			tl = append(tl, Entry{At: e.Downloads[len(e.Downloads)-1].At, Kind: "download",
				Title: fmt.Sprintf("… and later downloads from step %s's evidence, not shown (more than %d)", e.Ref.Step, maxDownloads)})
		}
	}
	if len(tl) > n {
		sortEntries(tl)
	}
	return tl
}

func sortEntries(tl []Entry) {
	slices.SortStableFunc(tl, func(a, b Entry) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return rank[a.Kind] - rank[b.Kind]
	})
}

// rank orders entries of the same instant by cause and effect: the votes
// that decide an approval, the decision, then the steps it lets run.
var rank = map[string]int{"opened": 0, "alert": 1, "alerts": 1, "vote": 2, "approval": 3, "step": 4, "download": 5, "closed": 6}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// evidenceOf returns where a snapshot step stored its bundle.
func evidenceOf(s *workflows.StepResult) *EvidenceRef {
	loc, _ := s.Output["location"].(string)
	sum, _ := s.Output["sha256"].(string)
	if loc == "" || sum == "" {
		return nil
	}
	n, _ := s.Output["artifacts"].(float64)
	f, _ := s.Output["failed"].(float64)
	return &EvidenceRef{Step: s.ID, Location: loc, SHA256: sum, Artifacts: int(n), Failed: int(f)}
}

// alertTime is when the detector saw the alert, or at when it did not say.
func alertTime(a *alert.Alert, at time.Time) time.Time {
	if a.Time.IsZero() {
		return at
	}
	return a.Time
}

func indent(m map[string]any) string {
	if len(m) == 0 {
		return ""
	}
	return indentAny(m)
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// indentAny is v as indented JSON for people: '<' stays '<' (the page's
// template escapes it).
func indentAny(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// ago says how long before now t was, for people.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// left says how long from now until t.
func left(now, t time.Time) string {
	d := t.Sub(now)
	if d <= 0 {
		return "expired"
	}
	if d < time.Minute {
		return fmt.Sprintf("%ds left", int(d.Seconds()))
	}
	return d.Round(time.Minute).String() + " left"
}
