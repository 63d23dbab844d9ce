package activities

import (
	"strings"
	"testing"

	"github.com/soar-dev/soar/connectors/tickets"
)

// TestTicketBodyHasTheIncidentsFacts: summary, target, actions, evidence,
// approvals, how to look it up, and the Temporal UI link.
func TestTicketBodyHasTheIncidentsFacts(t *testing.T) {
	c := TicketContext{
		Title: "Terminal shell in container: pod payments/web", Severity: "notice", Summary: "A shell was spawned",
		Target: "pod payments/web", Rule: "Terminal shell in container", Alerts: 3,
		Actions:  []string{"contain (kubernetes.quarantine): succeeded"},
		Evidence: []string{"evidence: manifest file:///e/manifest.json, sha256 abc"},
		Approval: []string{"ask: approved; U1 approved (slack)"},
	}
	body := ticketBody("soar-x-1", c, "Look at it.", "https://temporal.example/namespaces/default/workflows/")
	var text []string
	var link *tickets.Link
	for _, b := range body {
		text = append(text, b.Heading, b.Text, b.Code)
		text = append(text, b.Items...)
		if b.Link != nil {
			link = b.Link
		}
	}
	joined := ""
	for _, s := range text {
		joined += s + "\n"
	}
	for _, want := range []string{"Look at it.", "A shell was spawned", "Target: pod payments/web", "Alerts so far: 3",
		"contain (kubernetes.quarantine): succeeded", "sha256 abc", "U1 approved", "soar incident show soar-x-1"} {
		if !strings.Contains(joined, want) {
			t.Errorf("body lacks %q:\n%s", want, joined)
		}
	}
	if link == nil || link.URL != "https://temporal.example/namespaces/default/workflows/soar-x-1" {
		t.Errorf("link %+v", link)
	}
}
