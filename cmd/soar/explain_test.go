package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	explainLibrary = "../../playbooks/library/terminal-shell-in-container.yaml"
	explainAlerts  = "../../testdata/alerts/"
)

// runExplain runs "soar playbook explain" with args and stdin, and returns
// its output and error.
func runExplain(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newPlaybookExplainCmd()
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestPlaybookExplain(t *testing.T) {
	shell, err := os.ReadFile(explainAlerts + "falco-terminal-shell.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
		lines []string // each must appear as a whole line, in this order
	}{
		{
			name: "the library playbook explains a terminal shell it matches",
			args: []string{explainLibrary, explainAlerts + "falco-terminal-shell.json"},
			lines: []string{
				"playbook terminal-shell-in-container (" + explainLibrary + ")",
				`alert "5d1f3c0e-8a57-4b43-9a8e-1f2b7f0c4a11" (rule "Terminal shell in container")`,
				"match: true",
				`  alert.rule == "Terminal shell in container"   true`,
				`    alert.rule                                  "Terminal shell in container"`,
				`  && alert.k8s.namespace != ""                  true`,
				`    alert.k8s.namespace                         "payments"`,
				`  && alert.k8s.pod != ""                        true`,
				`    alert.k8s.pod                               "checkout-7d9f8b6c5-x2lqp"`,
				`incidentKey: "payments/checkout-7d9f8b6c5-x2lqp"`,
				`  alert.k8s.namespace + "/" + alert.k8s.pod   "payments/checkout-7d9f8b6c5-x2lqp"`,
				"result: matched, incident soar-terminal-shell-in-container-",
			},
		},
		{
			name: "the library playbook explains why a crypto miner does not match",
			args: []string{explainLibrary, explainAlerts + "falco-crypto-miner.json"},
			lines: []string{
				"match: false",
				`  alert.rule == "Terminal shell in container"   false`,
				`    alert.rule                                  "Detect outbound connections to common miner pool ports"`,
				`  && alert.k8s.namespace != ""                  not evaluated (short-circuit)`,
				`  && alert.k8s.pod != ""                        not evaluated (short-circuit)`,
				"incidentKey: not evaluated (match is false)",
				"result: not matched",
			},
		},
		{
			name:  "the alert can come from standard input",
			stdin: string(shell),
			args:  []string{explainLibrary, "-"},
			lines: []string{"match: true", "result: matched, incident soar-terminal-shell-in-container-"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runExplain(t, tc.stdin, tc.args...)
			if err != nil {
				t.Fatalf("explain: %v\n%s", err, out)
			}
			rest := strings.Split(out, "\n")
			for _, want := range tc.lines {
				i := 0
				for i < len(rest) && !strings.HasPrefix(rest[i], want) {
					i++
				}
				if i == len(rest) {
					t.Fatalf("output lacks the line %q (in order):\n%s", want, out)
				}
				// A line must match whole unless it names the incident ID,
				// whose hash the test does not repeat.
				if rest[i] != want && !strings.HasSuffix(want, "-") {
					t.Fatalf("line %q, want %q:\n%s", rest[i], want, out)
				}
				rest = rest[i+1:]
			}
		})
	}
}

func TestPlaybookExplainJSON(t *testing.T) {
	out, err := runExplain(t, "", "-o", "json", explainLibrary, explainAlerts+"falco-crypto-miner.json")
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	var got struct {
		Playbook string `json:"playbook"`
		File     string `json:"file"`
		Matched  bool   `json:"matched"`
		Match    struct {
			Result string `json:"result"`
			Tree   struct {
				Value    *bool `json:"value"`
				Children []struct {
					Outcome string `json:"outcome"`
					Reason  string `json:"reason"`
				} `json:"children"`
			} `json:"tree"`
		} `json:"match"`
		IncidentKey json.RawMessage `json:"incidentKey"`
	}
	if !strings.Contains(out, `"source": "alert.rule == \"Terminal shell in container\" && alert.k8s.namespace`) {
		t.Errorf("JSON escapes the expressions' operators:\n%s", out)
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	c := got.Match.Tree.Children
	if got.Playbook != "terminal-shell-in-container" || got.File != explainLibrary || got.Matched ||
		got.Match.Result != "false" || got.Match.Tree.Value == nil || *got.Match.Tree.Value ||
		len(c) != 3 || c[0].Outcome != "evaluated" || c[1].Outcome != "not-evaluated" || c[2].Reason != "short-circuit" ||
		got.IncidentKey != nil {
		t.Errorf("unexpected JSON:\n%s", out)
	}
}

func TestPlaybookExplainErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good.yaml", "name: good\nmatch: alert.fields[\"x\"] > 3\nincidentKey: alert.id\nsteps:\n  - id: s\n    action: kubernetes.quarantine\n")
	bad := write("bad.yaml", "name: bad\nmatch: alert.rule ==\nincidentKey: alert.id\nsteps:\n  - id: s\n    action: kubernetes.quarantine\n")
	notJSON := write("alert.json", "{not json")
	stringX := write("x.json", `{"rule":"r","fields":{"x":"three"}}`)

	tests := []struct {
		name    string
		args    []string
		wantErr string // empty: must succeed
		wantOut string
	}{
		{
			name:    "an alert that does not decode fails with its reason",
			args:    []string{good, notJSON},
			wantErr: "decode alert " + notJSON + ": alert: invalid_json",
		},
		{
			name:    "a playbook that does not load fails with its own path and position",
			args:    []string{bad, stringX},
			wantErr: bad + ":2:",
		},
		{
			name:    "a missing playbook fails",
			args:    []string{filepath.Join(dir, "nope.yaml"), stringX},
			wantErr: "no such file",
		},
		{
			name:    "an unknown output format fails",
			args:    []string{"-o", "yaml", good, stringX},
			wantErr: "unknown output format",
		},
		{
			name: "a broken playbook next to the file does not get in the way, and a run-time error is explained, not failed",
			args: []string{good, stringX},
			wantOut: "match: error: invalid operation: string > int (1:19)\n" +
				"  alert.fields.x > 3   error: invalid operation: string > int\n" +
				"    alert.fields.x     \"three\"\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runExplain(t, "", tc.args...)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("explain: %v", err)
				}
				if !strings.Contains(out, tc.wantOut) {
					t.Errorf("output lacks\n%s\ngot:\n%s", tc.wantOut, out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
