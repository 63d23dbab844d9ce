package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/workflows"
)

func TestCleanTextEscapesWhatDrivesATerminal(t *testing.T) {
	for in, want := range map[string]string{
		"web-1":                   "web-1",
		"\x1b[2J\x1b]0;pwned\x07": `\x1b[2J\x1b]0;pwned\a`,
		"a\nStatus:\treleased\r":  `a\nStatus:\treleased\r`,
		"evil\u202etxt.exe":       `evil\u202etxt.exe`,
		"c1\u009bcsi":             `c1\u009bcsi`,
		"bad\xffbyte":             `bad\xffbyte`,
		"grüße ✓":                 "grüße ✓",
	} {
		if got := cleanText(in); got != want {
			t.Errorf("cleanText(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIncidentShowPrintsHostileAlertContentAsText renders an incident whose
// alert, close reason and step error were written by an attacker: nothing
// of it reaches the terminal as a control character, and it cannot forge a
// line of the output.
func TestIncidentShowPrintsHostileAlertContentAsText(t *testing.T) {
	hostile := "\x1b[2J\x1b]0;owned\x07\nStatus:\treleased"
	a := alert.Alert{ID: "a-1", Rule: "Terminal shell" + hostile, Kubernetes: alert.Kubernetes{Namespace: "payments", Pod: "web" + hostile}}
	d := &incidents.Detail{
		Summary: incidents.Summary{ID: "soar-x", Playbook: "p", Status: "contained"},
		State: &workflows.IncidentState{
			IncidentKey: "payments/web" + hostile, FirstAlert: &a, LatestAlert: &a, AlertCount: 1,
			CloseReason: "closed" + hostile,
			Steps:       []workflows.StepResult{{ID: "contain", Action: "kubernetes.quarantine", Status: "failed", ErrorType: "KubernetesAPI", Error: "pod web" + hostile + " not found"}},
		},
	}
	var out strings.Builder
	cmd := &cobra.Command{}
	cmd.SetOut(&out)
	printIncident(cmd, d)
	got := out.String()
	if strings.ContainsFunc(got, func(r rune) bool { return r != '\n' && unsafeRune(r) }) {
		t.Errorf("control characters reach the terminal:\n%q", got)
	}
	if n := strings.Count(got, "\nStatus:"); n != 1 && !strings.HasPrefix(got, "Status:") {
		t.Errorf("%d lines start with Status:, want the incident's own only:\n%s", n, got)
	}
	if !strings.Contains(got, `web\x1b[2J\x1b]0;owned\a\nStatus:\treleased`) {
		t.Errorf("the pod name is not shown escaped:\n%s", got)
	}
}
