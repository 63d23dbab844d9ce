package playbooks

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/soar-dev/soar/alert"
)

func TestLibraryMatchesFalcoAlerts(t *testing.T) {
	set := mustLoad(t, "library", LoadOptions{})
	tests := []struct {
		name     string
		alert    alert.Alert
		wantName string // the one playbook that matches
		wantKey  string // empty: no match
	}{
		{"terminal shell in a pod", terminalShellAlert(), "terminal-shell-in-container", "payments/checkout-7d9f8b6c5-x2lqp"},
		{"crypto miner", cryptoMinerAlert(), "crypto-miner-pool-connection", "shop/web-5c7d9f6b8-qz8kd"},
		{"terminal shell outside Kubernetes", terminalShellAlert(withPod("", "")), "", ""},
		{"terminal shell with a namespace but no pod", terminalShellAlert(withPod("payments", "")), "", ""},
		{"same rule in another pod", terminalShellAlert(withPod("shop", "web-1")), "terminal-shell-in-container", "shop/web-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			matches, errs := set.Match(tt.alert)
			if len(errs) > 0 {
				t.Fatalf("Match errors: %v", errs)
			}
			if tt.wantKey == "" {
				if len(matches) != 0 {
					t.Fatalf("Match = %+v, want none", matches)
				}
				return
			}
			if len(matches) != 1 {
				t.Fatalf("Match = %+v, want one", matches)
			}
			m := matches[0]
			if m.Playbook.Name != tt.wantName || m.IncidentKey != tt.wantKey {
				t.Errorf("Match = %s with key %q, want %s with key %q", m.Playbook.Name, m.IncidentKey, tt.wantName, tt.wantKey)
			}
			if got, want := m.IncidentID(), IncidentID(tt.wantName, tt.wantKey); got != want {
				t.Errorf("IncidentID() = %q, want %q", got, want)
			}
		})
	}
}

func TestMatchRuntimeErrorDoesNotStopOtherPlaybooks(t *testing.T) {
	set := loadPlaybooks(t, map[string]string{
		"a.yaml": playbookYAML("a-broken-match", `alert.fields["x"] > 3`),
		"b.yaml": playbookYAML("b-shell", `alert.fields["proc.name"] == "sh"`),
		"c.yaml": "name: c-empty-key\nmatch: true\nincidentKey: alert.hostname\n" +
			"steps:\n  - id: s\n    action: a\n",
		"d.yaml": "name: d-untyped-key\nmatch: true\nincidentKey: alert.fields[\"proc.tty\"]\n" +
			"steps:\n  - id: s\n    action: a\n",
		"e.yaml": playbookYAML("e-shell-too", `'"shell" in alert.tags'`),
	})
	a := terminalShellAlert(withField("x", "a string"), func(a *alert.Alert) { a.Hostname = "" })

	matches, errs := set.Match(a)

	var got []string
	for _, m := range matches {
		got = append(got, m.Playbook.Name+" "+m.IncidentKey)
	}
	want := []string{"b-shell payments/checkout-7d9f8b6c5-x2lqp", "e-shell-too payments/checkout-7d9f8b6c5-x2lqp"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("matches = %q, want %q", got, want)
	}

	wantErrs := []struct{ playbook, field, msg string }{
		{"a-broken-match", "match", "invalid operation: string > int"},
		{"c-empty-key", "incidentKey", ErrEmptyIncidentKey.Error()},
		{"d-untyped-key", "incidentKey", "result is int64, not string"},
	}
	if len(errs) != len(wantErrs) {
		t.Fatalf("errors = %v, want %d", errs, len(wantErrs))
	}
	for i, err := range errs {
		var me *MatchError
		if !errors.As(err, &me) {
			t.Fatalf("error %d is %T, want *MatchError", i, err)
		}
		w := wantErrs[i]
		if me.Playbook != w.playbook || me.AlertID != a.ID || me.Field != w.field || !strings.Contains(err.Error(), w.msg) {
			t.Errorf("error %d = %v, want playbook %q, alert %q, field %q, containing %q", i, err, w.playbook, a.ID, w.field, w.msg)
		}
		if !strings.Contains(err.Error(), a.ID) || !strings.Contains(err.Error(), w.playbook) {
			t.Errorf("error %q does not name the playbook and the alert", err)
		}
	}
}

// TestMatchConcurrently runs Match from many goroutines on different alerts;
// run it with -race.
func TestMatchConcurrently(t *testing.T) {
	set := mustLoad(t, "library", LoadOptions{})
	const goroutines, rounds = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				pod := fmt.Sprintf("pod-%d-%d", g, i)
				matches, matchErrs := set.Match(terminalShellAlert(withPod("ns", pod)))
				if len(matchErrs) > 0 || len(matches) != 1 || matches[0].IncidentKey != "ns/"+pod {
					errs <- fmt.Errorf("alert for %s: matches %+v, errors %v", pod, matches, matchErrs)
					return
				}
				if matches, _ := set.Match(cryptoMinerAlert()); len(matches) != 1 || matches[0].Playbook.Name != "crypto-miner-pool-connection" {
					errs <- fmt.Errorf("crypto miner matched %+v, want only crypto-miner-pool-connection", matches)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
