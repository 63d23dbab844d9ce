package playbooks

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soar-dev/soar/alert"
)

// explainAlert decodes one of the repository's sample alerts.
func explainAlert(t *testing.T, name string) alert.Alert {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "alerts", name))
	if err != nil {
		t.Fatal(err)
	}
	a, err := alert.Decode(data, alert.Limits{})
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return a
}

// explainLibraryPlaybook loads the shipped playbook.
func explainLibraryPlaybook(t *testing.T) *Playbook {
	t.Helper()
	set, err := LoadDir("library", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, ok := set.Get("terminal-shell-in-container")
	if !ok {
		t.Fatal("the library has no terminal-shell-in-container")
	}
	return p
}

// explainPlaybook loads a playbook with the given match and incidentKey
// expressions (YAML scalars, quoted as needed).
func explainPlaybook(t *testing.T, match, incidentKey string) *Playbook {
	t.Helper()
	dir := t.TempDir()
	body := "name: explain\nmatch: " + match + "\nincidentKey: " + incidentKey +
		"\nsteps:\n  - id: contain\n    action: kubernetes.quarantine\n"
	if err := os.WriteFile(filepath.Join(dir, "explain.yaml"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := LoadDir(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := set.Get("explain")
	return p
}

// explainRows flattens a tree into one line per sub-expression, pre-order:
// indentation by depth, the connective, the text and what it evaluated to.
func explainRows(s *Subexpr) []string {
	var out []string
	var walk func(s *Subexpr, depth int)
	walk = func(s *Subexpr, depth int) {
		text := s.Expr
		if s.Connective != "" {
			text = s.Connective + " " + text
		}
		out = append(out, strings.Repeat("  ", depth)+text+" => "+describe(s))
		for _, c := range s.Children {
			walk(c, depth+1)
		}
	}
	walk(s, 0)
	return out
}

func diffExplainRows(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot:\n%s\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestExplainLibraryPlaybook(t *testing.T) {
	const match = `alert.rule == "Terminal shell in container" && alert.k8s.namespace != "" && alert.k8s.pod != ""`
	tests := []struct {
		name        string
		alert       string
		matched     bool
		match       []string
		incidentKey []string // nil: not evaluated
		key         string
	}{
		{
			name:    "a terminal shell in a named pod matches, keyed by namespace and pod",
			alert:   "falco-terminal-shell.json",
			matched: true,
			match: []string{
				match + " => true",
				`  alert.rule == "Terminal shell in container" => true`,
				`    alert.rule => "Terminal shell in container"`,
				`  && alert.k8s.namespace != "" => true`,
				`    alert.k8s.namespace => "payments"`,
				`  && alert.k8s.pod != "" => true`,
				`    alert.k8s.pod => "checkout-7d9f8b6c5-x2lqp"`,
			},
			incidentKey: []string{
				`alert.k8s.namespace + "/" + alert.k8s.pod => "payments/checkout-7d9f8b6c5-x2lqp"`,
				`  alert.k8s.namespace + "/" => "payments/"`,
				`    alert.k8s.namespace => "payments"`,
				`  alert.k8s.pod => "checkout-7d9f8b6c5-x2lqp"`,
			},
			key: "payments/checkout-7d9f8b6c5-x2lqp",
		},
		{
			name:  "a crypto miner fails the rule test and short-circuits the rest",
			alert: "falco-crypto-miner.json",
			match: []string{
				match + " => false",
				`  alert.rule == "Terminal shell in container" => false`,
				`    alert.rule => "Detect outbound connections to common miner pool ports"`,
				`  && alert.k8s.namespace != "" => not evaluated (short-circuit)`,
				`  && alert.k8s.pod != "" => not evaluated (short-circuit)`,
			},
		},
	}
	p := explainLibraryPlaybook(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := explainAlert(t, tc.alert)
			e, err := Explain(p, a)
			if err != nil {
				t.Fatal(err)
			}
			if e.Matched != tc.matched || e.Key != tc.key || e.Err != nil {
				t.Errorf("Matched, Key, Err = %v, %q, %v; want %v, %q, nil", e.Matched, e.Key, e.Err, tc.matched, tc.key)
			}
			if want := map[bool]string{true: "true", false: "false"}[tc.matched]; e.Match.Result != want {
				t.Errorf("Match.Result = %q, want %q", e.Match.Result, want)
			}
			diffExplainRows(t, "match", explainRows(e.Match.Tree), tc.match)
			if tc.incidentKey == nil {
				if e.IncidentKey != nil {
					t.Errorf("incidentKey explained although match is false: %+v", e.IncidentKey)
				}
				return
			}
			if e.IncidentKey == nil {
				t.Fatal("incidentKey not explained")
			}
			diffExplainRows(t, "incidentKey", explainRows(e.IncidentKey.Tree), tc.incidentKey)
			if want := IncidentID(p.Name, tc.key); e.IncidentID != want {
				t.Errorf("IncidentID = %q, want %q", e.IncidentID, want)
			}
			// Explain agrees with what the dispatcher does.
			set := newSet([]*Playbook{p})
			matches, errs := set.Match(a)
			if len(errs) > 0 || len(matches) != 1 || matches[0].IncidentKey != e.Key {
				t.Errorf("Set.Match = %+v, %v; Explain says key %q", matches, errs, e.Key)
			}
		})
	}
}

func TestExplainSubexpressions(t *testing.T) {
	tests := []struct {
		name  string
		match string // YAML scalar
		alert alert.Alert
		want  []string
		// result is Match.Result, or error is Match.Error.
		result, error string
	}{
		{
			name:   "in, not and a severity comparison",
			match:  `'"T1059" in alert.tags && not ("T1496" in alert.tags) && alert.severity >= Warning'`,
			alert:  terminalShellAlert(withSeverity(alert.SeverityError)),
			result: "true",
			want: []string{
				`"T1059" in alert.tags && not ("T1496" in alert.tags) && alert.severity >= Warning => true`,
				`  "T1059" in alert.tags => true`,
				`    alert.tags => ["T1059", "container", "maturity_stable", "mitre_execution", "shell"]`,
				`  && not ("T1496" in alert.tags) => true`,
				`    "T1496" in alert.tags => false`,
				`      alert.tags => ["T1059", "container", "maturity_stable", "mitre_execution", "shell"]`,
				`  && alert.severity >= Warning => true`,
				`    alert.severity => error`,
			},
		},
		{
			name:   "a severity below the threshold stops the chain",
			match:  `alert.severity >= Warning && alert.fields["proc.name"] == "sh"`,
			alert:  terminalShellAlert(),
			result: "false",
			want: []string{
				`alert.severity >= Warning && alert.fields["proc.name"] == "sh" => false`,
				`  alert.severity >= Warning => false`,
				`    alert.severity => notice`,
				`  && alert.fields["proc.name"] == "sh" => not evaluated (short-circuit)`,
			},
		},
		{
			name:   "a fields lookup and an or whose first operand is true",
			match:  `alert.fields["proc.name"] in ["sh", "bash"] || alert.fields["user.uid"] == 0`,
			alert:  terminalShellAlert(),
			result: "true",
			want: []string{
				`alert.fields["proc.name"] in ["sh", "bash"] || alert.fields["user.uid"] == 0 => true`,
				`  alert.fields["proc.name"] in ["sh", "bash"] => true`,
				`    alert.fields["proc.name"] => "sh"`,
				`  || alert.fields["user.uid"] == 0 => not evaluated (short-circuit)`,
			},
		},
		{
			name:   "not in, nested chains and a missing field",
			match:  `'alert.rule not in ["a", "b"] && (alert.fields["missing"] == nil || alert.k8s.pod == "")'`,
			alert:  terminalShellAlert(),
			result: "true",
			want: []string{
				`not (alert.rule in ["a", "b"]) && (alert.fields.missing == nil || alert.k8s.pod == "") => true`,
				`  not (alert.rule in ["a", "b"]) => true`,
				`    alert.rule in ["a", "b"] => false`,
				`      alert.rule => "Terminal shell in container"`,
				`  && (alert.fields.missing == nil || alert.k8s.pod == "") => true`,
				`    alert.fields.missing == nil => true`,
				`      alert.fields.missing => nil`,
				`    || alert.k8s.pod == "" => not evaluated (short-circuit)`,
			},
		},
		{
			name:  "a run-time error is reported on its node and stops evaluation",
			match: `alert.rule != "" && alert.fields["x"] > 3 || alert.k8s.pod != ""`,
			alert: terminalShellAlert(withField("x", "three")),
			error: "invalid operation: string > int (1:39)",
			want: []string{
				`(alert.rule != "" && alert.fields.x > 3) || alert.k8s.pod != "" => error (in a sub-expression)`,
				`  alert.rule != "" && alert.fields.x > 3 => error (in a sub-expression)`,
				`    alert.rule != "" => true`,
				`      alert.rule => "Terminal shell in container"`,
				`    && alert.fields.x > 3 => error: invalid operation: string > int`,
				`      alert.fields.x => "three"`,
				`  || alert.k8s.pod != "" => not evaluated (evaluation stopped at an earlier error)`,
			},
		},
		{
			name:   "a conditional reports the branch it did not take",
			match:  `'alert.k8s.pod != "" ? alert.severity > Notice : alert.fields["proc.name"] == "sh"'`,
			alert:  terminalShellAlert(),
			result: "false",
			want: []string{
				`alert.k8s.pod != "" ? alert.severity > Notice : alert.fields["proc.name"] == "sh" => false`,
				`  alert.k8s.pod != "" => true`,
				`    alert.k8s.pod => "checkout-7d9f8b6c5-x2lqp"`,
				`  alert.severity > Notice => false`,
				`    alert.severity => notice`,
				`  alert.fields["proc.name"] == "sh" => not evaluated (branch not taken)`,
			},
		},
		{
			name:   "?? skips its right operand when the left is not nil, and builtins show their arguments",
			match:  `'(alert.fields["user.name"] ?? alert.hostname) == "root" && len(alert.tags) > 3 && any(alert.tags, # startsWith "T10")'`,
			alert:  terminalShellAlert(),
			result: "true",
			want: []string{
				`(alert.fields["user.name"] ?? alert.hostname) == "root" && len(alert.tags) > 3 && any(alert.tags, # startsWith "T10") => true`,
				`  (alert.fields["user.name"] ?? alert.hostname) == "root" => true`,
				`    alert.fields["user.name"] ?? alert.hostname => "root"`,
				`      alert.fields["user.name"] => "root"`,
				`      alert.hostname => not evaluated (short-circuit)`,
				`  && len(alert.tags) > 3 => true`,
				`    len(alert.tags) => 5`,
				`      alert.tags => ["T1059", "container", "maturity_stable", "mitre_execution", "shell"]`,
				`  && any(alert.tags, # startsWith "T10") => true`,
				`    alert.tags => ["T1059", "container", "maturity_stable", "mitre_execution", "shell"]`,
			},
		},
		{
			name:   "a variable's uses are evaluated with its value",
			match:  `'let ns = alert.k8s.namespace; ns startsWith "pay" && ns != "kube-system"'`,
			alert:  terminalShellAlert(),
			result: "true",
			want: []string{
				`let ns = alert.k8s.namespace; ns startsWith "pay" && ns != "kube-system" => true`,
				`  let ns = alert.k8s.namespace => "payments"`,
				`  ns startsWith "pay" && ns != "kube-system" => true`,
				`    ns startsWith "pay" => true`,
				`      ns => "payments"`,
				`    && ns != "kube-system" => true`,
				`      ns => "payments"`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := explainPlaybook(t, tc.match, "alert.id")
			e, err := Explain(p, tc.alert)
			if err != nil {
				t.Fatal(err)
			}
			diffExplainRows(t, "match", explainRows(e.Match.Tree), tc.want)
			if tc.error != "" {
				if e.Match.Error != tc.error || e.Err == nil || e.Matched {
					t.Errorf("Match.Error = %q, Err = %v, Matched = %v; want error %q", e.Match.Error, e.Err, e.Matched, tc.error)
				}
				return
			}
			if e.Match.Result != tc.result || e.Err != nil {
				t.Errorf("Match.Result = %q, Err = %v; want %q", e.Match.Result, e.Err, tc.result)
			}
			// The root, evaluated from its printed text, agrees with the
			// playbook's own program: printing the tree back loses nothing.
			if got := e.Match.Tree.Text; got != tc.result {
				t.Errorf("root evaluated on its own to %s, Set.Match to %s", got, tc.result)
			}
		})
	}
}

func TestExplainIncidentKeyErrors(t *testing.T) {
	tests := []struct {
		name, incidentKey string
		alert             alert.Alert
		error             string
		root              string
	}{
		{
			name:        "an empty key",
			incidentKey: "alert.k8s.pod",
			alert:       terminalShellAlert(withPod("", "")),
			error:       ErrEmptyIncidentKey.Error(),
			root:        `alert.k8s.pod => ""`,
		},
		{
			name:        "a key that is not a string",
			incidentKey: `alert.fields["proc.tty"]`,
			alert:       terminalShellAlert(),
			error:       "result is int64, not string",
			root:        `alert.fields["proc.tty"] => 34816`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := explainPlaybook(t, "'true'", tc.incidentKey)
			e, err := Explain(p, tc.alert)
			if err != nil {
				t.Fatal(err)
			}
			if e.Matched || e.Match.Result != "true" || e.IncidentKey == nil || e.IncidentKey.Error != tc.error {
				t.Fatalf("Matched = %v, match = %q, incidentKey = %+v; want not matched, match true, error %q", e.Matched, e.Match.Result, e.IncidentKey, tc.error)
			}
			diffExplainRows(t, "incidentKey", explainRows(e.IncidentKey.Tree), []string{tc.root})
		})
	}
}

func TestExplainWriteText(t *testing.T) {
	p := explainPlaybook(t, `alert.fields["x"] > 3 || alert.k8s.pod != ""`, "alert.id")
	e, err := Explain(p, terminalShellAlert(withField("x", "three")))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := e.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `playbook explain (` + p.File + `)
alert "5d1f3c0e-8a57-4b43-9a8e-1f2b7f0c4a11" (rule "Terminal shell in container")
match: error: invalid operation: string > int (1:19)
  alert.fields.x > 3       error: invalid operation: string > int
    alert.fields.x         "three"
  || alert.k8s.pod != ""   not evaluated (evaluation stopped at an earlier error)
result: error, the dispatcher skips this playbook for this alert: playbook "explain": alert "5d1f3c0e-8a57-4b43-9a8e-1f2b7f0c4a11": match: invalid operation: string > int (1:19)
`
	if b.String() != want {
		t.Errorf("WriteText:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestExplainJSON(t *testing.T) {
	e, err := Explain(explainLibraryPlaybook(t), explainAlert(t, "falco-terminal-shell.json"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Matched bool   `json:"matched"`
		Key     string `json:"key"`
		Match   struct {
			Tree struct {
				Outcome  string `json:"outcome"`
				Value    bool   `json:"value"`
				Children []struct {
					Connective string `json:"connective"`
					Children   []struct {
						Expr  string `json:"expr"`
						Value string `json:"value"`
						Type  string `json:"type"`
					} `json:"children"`
				} `json:"children"`
			} `json:"tree"`
		} `json:"match"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	tree := got.Match.Tree
	if !got.Matched || got.Key != "payments/checkout-7d9f8b6c5-x2lqp" || tree.Outcome != "evaluated" || !tree.Value ||
		len(tree.Children) != 3 || tree.Children[1].Connective != "&&" ||
		tree.Children[2].Children[0].Value != "checkout-7d9f8b6c5-x2lqp" || tree.Children[2].Children[0].Type != "string" {
		t.Errorf("JSON does not carry the explanation:\n%s", data)
	}
}

func TestExplainNeedsALoadedPlaybook(t *testing.T) {
	if _, err := Explain(&Playbook{Name: "x", Match: "true", IncidentKey: "alert.id"}, alert.Alert{}); err == nil {
		t.Error("Explain of a playbook that was not loaded: no error")
	}
}

// TestExplainPrintsEveryExpressionBack guards the way Explain evaluates
// sub-expressions: it prints each one back from expr's syntax tree and
// compiles the text on its own, which must work for every construct and
// agree with the playbook's own program.
func TestExplainPrintsEveryExpressionBack(t *testing.T) {
	tests := []struct{ name, match string }{
		{"in a list", `alert.rule in ["Terminal shell in container", "x"] && not (alert.k8s.namespace in ["kube-system", "falco"])`},
		{"not in", `alert.rule not in ["a", "b"]`},
		{"severity names", `alert.severity >= Notice && alert.severity in [Critical, Alert, Emergency] || Emergency > Alert`},
		{"fields with dots and keywords", `alert.fields["proc.name"] in ["sh", "bash"] && alert.fields["in"] == nil && alert.fields["not"] == nil && alert.fields["true"] == nil`},
		{"negative numbers", `alert.fields["user.loginuid"] == -1 || -alert.fields["user.loginuid"] == 1`},
		{"a field as the condition", `alert.fields["nope"]`},
		{"a field of the wrong type as the condition", `alert.fields["proc.name"]`},
		{"and, or and a literal", `alert.fields["fd.rport"] > 1024 and alert.fields["fd.rport"] < 4000 or false`},
		{"a literal first operand", `true && alert.rule != ""`},
		{"incident", `incident.id == "" && incident.alertCount == 0`},
		{"builtins", `duration("1h") > duration("30m") && lower(alert.rule) contains "shell" && len(alert.tags) > 0`},
		{"$env", `$env.alert.rule == "x" || $env["alert"].k8s.pod != ""`},
		{"methods", `alert.time.Year() > 2000 && (alert.time).Day() > 0`},
		{"index and slice", `alert.tags[0] == "T1059" && alert.tags[1:3] == ["container", "maturity_stable"]`},
		{"predicates and pipes", `len(filter(alert.tags, # startsWith "T")) > 0 && (alert.tags | any(# == "shell")) && all(alert.tags, {let t = #; len(t) > 0})`},
		{"map and list literals with values", `{a: alert.rule}.a == "x" || [alert.rule, alert.hostname][0] != ""`},
		{"optional chaining and ??", `alert?.k8s?.pod != "" && (alert.fields?.["x"] ?? "d") == "d" && ("x" ?? alert.rule) == "x"`},
		{"chained comparison", `1 < len(alert.tags) < 10`},
		{"conditionals", `(if alert.k8s.pod != "" { alert.severity > Debug } else { false }) && (true ? alert.rule != "" : false)`},
		{"variables", `let x = len(alert.tags); let y = x + 1; y > x`},
		{"regular expressions and ranges", `alert.rule matches "^Term" || alert.fields["fd.rport"] in 3000..4000`},
		{"escapes", `alert.rule != "tab\there \"q\" é \u2028"`},
	}
	alerts := map[string]alert.Alert{"terminal shell": terminalShellAlert(), "crypto miner": cryptoMinerAlert()}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := explainPlaybook(t, "'"+strings.ReplaceAll(tc.match, "'", "''")+"'", "alert.id")
			for name, a := range alerts {
				e, err := Explain(p, a)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for _, r := range explainRows(e.Match.Tree) {
					if strings.Contains(r, "on its own") {
						t.Errorf("%s: %s", name, r)
					}
				}
				if root := e.Match.Tree; root.Type == "bool" && e.Match.Error == "" && root.Text != e.Match.Result {
					t.Errorf("%s: the root evaluated on its own to %s, Set.Match to %s", name, root.Text, e.Match.Result)
				}
			}
		})
	}
}
