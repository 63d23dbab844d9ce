package console

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// BenchmarkRenderList renders the incident list with 10,000 rows: two
// hundred times the page the console serves (PageSize), so the template
// and its escaping, not Temporal, are measured. (BenchmarkConsoleList in
// test/e2e measures a page of the list against a Temporal holding 10,000
// incidents.)
func BenchmarkRenderList(b *testing.B) {
	now := time.Now()
	c := benchConsole(b, now)
	rows := make([]incidents.Summary, 10_000)
	for i := range rows {
		rows[i] = incidents.Summary{
			ID: fmt.Sprintf("soar-terminal-shell-in-container-%020d", i), Playbook: "terminal-shell-in-container", PlaybookVersion: "sha256:0123456789abcdef",
			Status: workflows.LifecycleOpen, Outcome: workflows.OutcomeContained, Severity: "critical", Namespace: "payments", Pod: fmt.Sprintf("checkout-%d", i),
			Running: i%2 == 0, OpenedAt: now.Add(-time.Duration(i) * time.Second),
		}
	}
	b.ResetTimer()
	for b.Loop() {
		v := &view{Title: "Incidents", Me: &Identity{User: "api:me"}, Data: listData{Rows: rowsOf(rows, now), Statuses: statuses, Outcomes: outcomes, Refresh: "/console/"}}
		if err := c.tmpl["list.html"].ExecuteTemplate(io.Discard, "layout", v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderIncident renders the page of an incident that took 10,000
// alerts over hours, with ten steps, an approval with votes, and its
// evidence downloaded 100 times: what the incident records of its alerts
// (first, latest, count, at most 120 intervals) does not grow with them, so
// neither does the page.
func BenchmarkRenderIncident(b *testing.B) {
	now := time.Now()
	c := benchConsole(b, now)
	st := hostileState(now)
	st.AlertCount = 10_000
	st.Intervals = &workflows.Intervals{Start: now.Add(-16 * time.Hour), Width: 8 * time.Minute, Counts: make([]int, 120)}
	for i := range st.Intervals.Counts {
		st.Intervals.Counts[i] = 10_000 / 120
	}
	for i := range 8 {
		st.Steps = append(st.Steps, workflows.StepResult{ID: fmt.Sprintf("s%d", i), Action: "slack.note", Status: workflows.StepSucceeded,
			Params: map[string]any{"text": "note"}, Output: map[string]any{"ts": "1"}, StartedAt: now, FinishedAt: now})
	}
	tl := Timeline(st)
	ev := []evidenceView{{Ref: *evidenceOf(&st.Steps[1])}}
	for i := range maxDownloads {
		ev[0].Downloads = append(ev[0].Downloads, evidence.Access{At: now.Add(time.Duration(i) * time.Minute), User: "user:alice", Name: "logs/app.log"})
	}
	ev[0].MoreDownloads = true
	tl = withDownloads(tl, ev)
	v := &view{Title: "Incident", Me: &Identity{User: "api:me"}, CSRF: "t", Data: incidentData{
		Detail: &incidents.Detail{Summary: incidents.Summary{ID: st.IncidentID, Running: true}, State: st}, Timeline: tl, Running: true, Open: st.Approvals,
		Pinned: &playbooks.Spec{Name: "p", Source: "name: p\n"}, Evidence: ev,
	}}
	b.ResetTimer()
	for b.Loop() {
		if err := c.tmpl["incident.html"].ExecuteTemplate(io.Discard, "layout", v); err != nil {
			b.Fatal(err)
		}
	}
}

func benchConsole(b *testing.B, now time.Time) *Console {
	b.Helper()
	c, err := New(Config{Auth: Local{User: "api:me"}, Log: zerolog.Nop(), Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	return c
}
