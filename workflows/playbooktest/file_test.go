package playbooktest

import (
	"strings"
	"testing"

	"github.com/soar-dev/soar/alert"
)

func TestParseFileReportsEveryProblemWithItsLine(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // the problems, in order, as FILE:LINE:COLUMN: FIELD: MESSAGE
	}{
		{
			name: "an unknown field is an error",
			src: `cases:
  - name: a
    alert: a.json
    expect: {match: true}
    alerts: 2
`,
			want: []string{"x_test.yaml:5:5: cases[0].alerts: unknown field"},
		},
		{
			name: "a case takes alert or alertJSON, not both",
			src: `cases:
  - name: a
    alert: a.json
    alertJSON: '{"rule": "r"}'
    expect: {match: true}
`,
			want: []string{"x_test.yaml:4:16: cases[0].alertJSON: a case takes one of alert and alertJSON, not both"},
		},
		{
			name: "a case needs an alert and an expect",
			src: `cases:
  - name: a
    repeat: 2
`,
			want: []string{
				"x_test.yaml:2:5: cases[0].expect: required field is missing",
				"x_test.yaml:2:5: cases[0]: a case needs an alert: alert (a file, relative to this test file) or alertJSON (the JSON inline)",
			},
		},
		{
			name: "expect needs match",
			src: `cases:
  - name: a
    alert: a.json
    expect:
      incidentKey: k
`,
			want: []string{"x_test.yaml:5:7: cases[0].expect.match: required field is missing"},
		},
		{
			name: "case names are unique",
			src: `cases:
  - {name: a, alert: a.json, expect: {match: false}}
  - {name: a, alert: b.json, expect: {match: false}}
`,
			want: []string{`x_test.yaml:3:12: cases[1].name: duplicate case name "a" (first at line 2)`},
		},
		{
			name: "values of the wrong kind",
			src: `cases:
  - name: a
    alertJSON: {rule: r}
    repeat: 0
    decisions: {ask: maybe}
    expect:
      match: yes
      severity: loud
      status: closed
`,
			want: []string{
				`x_test.yaml:3:16: cases[0].alertJSON: must be the alert's JSON as a string, not a mapping: quote it, as in alertJSON: '{"rule": "..."}'`,
				"x_test.yaml:4:13: cases[0].repeat: must be a whole number from 1 to 100",
				`x_test.yaml:5:22: cases[0].decisions.ask: "maybe" is not approve, deny or expire`,
				"x_test.yaml:7:14: cases[0].expect.match: must be true or false",
				`x_test.yaml:8:17: cases[0].expect.severity: "loud" is not a severity such as notice, warning or critical`,
				`x_test.yaml:9:15: cases[0].expect.status: "closed" is not a status after the steps: use contained, failed, planned, released`,
			},
		},
		{
			name: "steps are checked one by one",
			src: `cases:
  - name: a
    alert: a.json
    expect:
      match: true
      steps:
        - {id: contain, status: done}
        - {id: ask, status: succeeded, errorType: ApprovalDenied}
        - {id: ask, status: failed, with: [1]}
        - {status: skipped}
`,
			want: []string{
				`x_test.yaml:7:33: cases[0].expect.steps[0].status: "done" is not succeeded, failed or skipped`,
				"x_test.yaml:8:51: cases[0].expect.steps[1].errorType: only a failed step has an error type",
				`x_test.yaml:9:16: cases[0].expect.steps[2].id: duplicate step id "ask" (first at line 8)`,
				"x_test.yaml:9:43: cases[0].expect.steps[2].with: must be a mapping of parameter names to values, not a list",
				"x_test.yaml:10:11: cases[0].expect.steps[3].id: required field is missing",
			},
		},
		{
			name: "what only a match has is refused with match: false",
			src: `cases:
  - name: a
    alert: a.json
    expect:
      match: false
      incidentKey: k
      steps: []
`,
			want: []string{
				"x_test.yaml:6:7: cases[0].expect.incidentKey: only with match: true: an alert that does not match opens no incident",
				"x_test.yaml:7:7: cases[0].expect.steps: only with match: true: an alert that does not match opens no incident",
			},
		},
		{
			name: "a file needs cases",
			src:  "cases: []\n",
			want: []string{"x_test.yaml:1:8: cases: must be a non-empty list of cases"},
		},
		{
			name: "an empty file",
			src:  "# nothing yet\n",
			want: []string{"x_test.yaml: file is empty"},
		},
		{
			name: "a YAML syntax error",
			src:  "cases:\n  - name: a\n    alert: b: c\n",
			want: []string{"x_test.yaml:3: invalid YAML: mapping values are not allowed in this context"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFile("x_test.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("ParseFile accepted the file: %+v", f)
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestParseFileDecodesACase(t *testing.T) {
	src := `# x_test.yaml
cases:
  - name: approved and contained
    alert: ../alerts/shell.json
    repeat: 3
    decisions:
      ask: approve
    expect:
      match: true
      incidentKey: payments/web-1
      severity: warning
      steps:
        - id: ask
          status: succeeded
        - id: contain
          status: succeeded
          with: {namespace: payments, replicas: 2, force: true, reason: "true", note: null}
      approvals: [ask]
      status: contained
`
	f, err := ParseFile("x_test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Cases[0]
	if c.Name != "approved and contained" || c.Line != 3 || c.AlertFile != "../alerts/shell.json" || c.AlertLine != 4 || c.Repeat != 3 {
		t.Errorf("case = %+v", c)
	}
	if c.Decisions["ask"] != DecisionApprove || c.DecisionLines["ask"] != 7 {
		t.Errorf("decisions = %v at %v", c.Decisions, c.DecisionLines)
	}
	e := c.Expect
	if !e.Match || *e.IncidentKey != "payments/web-1" || *e.Severity != alert.SeverityWarning || *e.Status != "contained" {
		t.Errorf("expect = %+v", e)
	}
	if e.LineOf("steps") != 12 || e.LineOf("status") != 19 || e.Has("nothing") || e.LineOf("nothing") != 8 {
		t.Errorf("lines: steps %d, status %d, absent %d", e.LineOf("steps"), e.LineOf("status"), e.LineOf("nothing"))
	}
	if len(e.Steps) != 2 || e.Steps[1].Line != 15 || e.Steps[0].With != nil {
		t.Fatalf("steps = %+v", e.Steps)
	}
	// YAML scalars keep their YAML types; numbers are float64, as in the
	// workflow's result.
	want := map[string]any{"namespace": "payments", "replicas": 2.0, "force": true, "reason": "true", "note": nil}
	for k, v := range want {
		if got, ok := e.Steps[1].With[k]; !ok || got != v {
			t.Errorf("with.%s = %#v, want %#v", k, got, v)
		}
	}
	if len(e.Approvals) != 1 || e.Approvals[0] != "ask" {
		t.Errorf("approvals = %v", e.Approvals)
	}
}
