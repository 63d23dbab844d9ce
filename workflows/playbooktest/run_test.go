package playbooktest

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Playbooks the tests run, one behaviour each.
const (
	containPlaybook = `name: contain
match: alert.rule == "Terminal shell in container" && alert.k8s.pod != ""
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: contain
    action: kubernetes.quarantine
    with:
      namespace: alert.k8s.namespace
      pod: alert.k8s.pod
`
	escalatePlaybook = `name: escalate
match: alert.rule == "Terminal shell in container"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: contain
    if: incident.alertCount >= 3
    action: kubernetes.quarantine
    with:
      pod: alert.k8s.pod
`
	approvePlaybook = `name: approve
match: alert.rule == "Terminal shell in container"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: ask
    approval:
      approvers: [U1, U2, U3]
      quorum: 2
      timeout: 30m
  - id: contain
    action: kubernetes.quarantine
    with:
      pod: alert.k8s.pod
`
	planPlaybook = `name: plan
match: alert.rule == "Terminal shell in container"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
severity: Critical
mode: plan
steps:
  - id: contain
    action: kubernetes.quarantine
`
)

// shopShell is an inline generic alert for a shell in shop/web-1.
const shopShell = `'{"rule": "Terminal shell in container", "severity": "warning", "kubernetes": {"namespace": "shop", "pod": "web-1"}}'`

// testDir writes files into a new temporary directory, with the sample
// alerts of the repository under alerts/, and returns the directory.
func testDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range map[string]string{
		"alerts/shell.json": "../../testdata/alerts/falco-terminal-shell.json",
		"alerts/miner.json": "../../testdata/alerts/falco-crypto-miner.json",
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(data)
	}
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var durations = regexp.MustCompile(`\(\d+\.\d\ds\)`)

// run runs the tests in dir and returns the report, with durations set to
// (0.00s) and dir written as DIR.
func run(t *testing.T, dir string, opts Options) (string, Result) {
	t.Helper()
	var out strings.Builder
	res, err := Run(context.Background(), &out, dir, withCatalogue(opts))
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	report := durations.ReplaceAllString(out.String(), "(0.00s)")
	return strings.ReplaceAll(report, dir, "DIR"), res
}

// hasLines checks that each of want is a line of report, in this order; a
// want ending in "..." only has to start a line.
func hasLines(t *testing.T, report string, want ...string) {
	t.Helper()
	lines := strings.Split(report, "\n")
	i := 0
	for _, w := range want {
		prefix, isPrefix := strings.CutSuffix(w, "...")
		for ; i < len(lines); i++ {
			if lines[i] == w || isPrefix && strings.HasPrefix(lines[i], prefix) {
				break
			}
		}
		if i == len(lines) {
			t.Errorf("report lacks the line %q (in this order):\n%s", w, report)
			return
		}
		i++
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		opts   Options
		want   Result
		report []string
	}{
		{
			name: "matches, keys, severities and resolved parameters pass, from alert files and inline alerts",
			files: map[string]string{
				"contain.yaml": containPlaybook,
				"contain_test.yaml": `cases:
  - name: a shell in a payments pod is contained
    alert: alerts/shell.json
    expect:
      match: true
      incidentKey: payments/checkout-7d9f8b6c5-x2lqp
      severity: notice
      steps:
        - id: contain
          status: succeeded
          with: {namespace: payments, pod: checkout-7d9f8b6c5-x2lqp}
      approvals: []
      status: contained
  - name: an inline alert from another detector is contained too
    alertJSON: ` + shopShell + `
    expect:
      match: true
      incidentKey: shop/web-1
      severity: warning
      steps:
        - {id: contain, status: succeeded, with: {namespace: shop, pod: web-1}}
  - name: a miner alert does not match
    alert: alerts/miner.json
    expect:
      match: false
`,
			},
			want: Result{Cases: 3},
			report: []string{
				"=== RUN   contain/a shell in a payments pod is contained",
				"--- PASS: contain/a shell in a payments pod is contained (0.00s)",
				"=== RUN   contain/an inline alert from another detector is contained too",
				"--- PASS: contain/an inline alert from another detector is contained too (0.00s)",
				"=== RUN   contain/a miner alert does not match",
				"--- PASS: contain/a miner alert does not match (0.00s)",
				"ok  \tDIR\t3 cases",
			},
		},
		{
			name: "each failing expectation names its line",
			files: map[string]string{
				"contain.yaml": containPlaybook,
				"contain_test.yaml": `cases:
  - name: a miner alert is expected to match
    alert: alerts/miner.json
    expect:
      match: true
  - name: a shell is expected not to match
    alert: alerts/shell.json
    expect:
      match: false
  - name: wrong key, severity, parameters, approvals and status
    alert: alerts/shell.json
    expect:
      match: true
      incidentKey: payments/other
      severity: critical
      steps:
        - id: contain
          status: succeeded
          with: {namespace: payments, pod: other}
      approvals: [ask]
      status: failed
  - name: a step that ran is not listed
    alert: alerts/shell.json
    expect:
      match: true
      steps: []
  - name: an alert that is not JSON
    alertJSON: 'not json'
    expect:
      match: true
  - name: an alert file that does not exist
    alert: alerts/nope.json
    expect: {match: false}
`,
			},
			want: Result{Cases: 6, Failed: 6},
			report: []string{
				"--- FAIL: contain/a miner alert is expected to match (0.00s)",
				"    contain_test.yaml:5: match: got false, want true",
				"    got:",
				"      match: false",
				"--- FAIL: contain/a shell is expected not to match (0.00s)",
				"    contain_test.yaml:9: match: got true, want false",
				"--- FAIL: contain/wrong key, severity, parameters, approvals and status (0.00s)",
				`    contain_test.yaml:14: incidentKey: got "payments/checkout-7d9f8b6c5-x2lqp", want "payments/other"`,
				"    contain_test.yaml:15: severity: got notice, want critical",
				"    contain_test.yaml:17: steps[0] contain: with: got {namespace: payments, pod: checkout-7d9f8b6c5-x2lqp}, want {namespace: payments, pod: other}",
				"    contain_test.yaml:20: approvals: got [], want [ask]",
				"    contain_test.yaml:21: status: got contained, want failed",
				"    got:",
				"      match: true",
				"      incidentKey: payments/checkout-7d9f8b6c5-x2lqp # incident soar-contain-...",
				"      severity: notice",
				"      steps:",
				"        - {id: contain, status: succeeded, with: {namespace: payments, pod: checkout-7d9f8b6c5-x2lqp}}",
				"      approvals: []",
				"      status: contained # 1 alert",
				"--- FAIL: contain/a step that ran is not listed (0.00s)",
				"    contain_test.yaml:26: steps: got [contain], want []",
				"--- FAIL: contain/an alert that is not JSON (0.00s)",
				"    contain_test.yaml:28: alertJSON: not an alert soar can decode (invalid_json): ...",
				"--- FAIL: contain/an alert file that does not exist (0.00s)",
				"    contain_test.yaml:32: alert: open DIR/alerts/nope.json: no such file or directory",
				"FAIL\tDIR\t6 cases, 6 failed",
			},
		},
		{
			name: "a condition skips a step until repeated alerts make it true",
			files: map[string]string{
				"escalate.yaml": escalatePlaybook,
				"escalate_test.yaml": `cases:
  - name: one shell is only watched
    alert: alerts/shell.json
    expect:
      match: true
      steps:
        - {id: contain, status: skipped}
      status: contained
  - name: the third shell contains the pod
    alert: alerts/shell.json
    repeat: 3
    expect:
      match: true
      steps:
        - {id: contain, status: succeeded, with: {namespace: payments, pod: checkout-7d9f8b6c5-x2lqp}}
      status: contained
  - name: two shells are expected to contain it
    alert: alerts/shell.json
    repeat: 2
    expect:
      match: true
      steps:
        - {id: contain, status: succeeded}
`,
			},
			want: Result{Cases: 3, Failed: 1},
			report: []string{
				"--- PASS: escalate/one shell is only watched (0.00s)",
				"--- PASS: escalate/the third shell contains the pod (0.00s)",
				"--- FAIL: escalate/two shells are expected to contain it (0.00s)",
				"    escalate_test.yaml:23: steps[0] contain: status: got skipped (condition is false: incident.alertCount >= 3), want succeeded",
				"        - {id: contain, status: skipped} # condition is false: incident.alertCount >= 3",
				"      status: contained # 2 alerts",
				"FAIL\tDIR\t3 cases, 1 failed",
			},
		},
		{
			name: "approvals are approved, denied or left to expire",
			files: map[string]string{
				"approve.yaml": approvePlaybook,
				"approve_test.yaml": `cases:
  - name: two approvers contain the pod
    alert: alerts/shell.json
    decisions: {ask: approve}
    expect:
      match: true
      steps:
        - {id: ask, status: succeeded}
        - {id: contain, status: succeeded, with: {namespace: payments, pod: checkout-7d9f8b6c5-x2lqp}}
      approvals: [ask]
      status: contained
  - name: a denial stops the playbook
    alert: alerts/shell.json
    decisions: {ask: deny}
    expect:
      match: true
      steps:
        - {id: ask, status: failed, errorType: ApprovalDenied}
      approvals: [ask]
      status: failed
      outcome: denied
  - name: an approval nobody answers expires
    alert: alerts/shell.json
    decisions: {ask: expire}
    expect:
      match: true
      steps:
        - {id: ask, status: failed, errorType: ApprovalExpired}
      status: failed
      outcome: expired
  - name: an approval without a decision expires too
    alert: alerts/shell.json
    repeat: 2
    expect:
      match: true
      steps:
        - {id: ask, status: failed, errorType: ApprovalExpired}
  - name: a denial is expected to be approved
    alert: alerts/shell.json
    decisions: {ask: deny}
    expect:
      match: true
      steps:
        - {id: ask, status: succeeded}
        - {id: contain, status: succeeded}
      outcome: contained
  - name: a decision for a step that is no approval
    alert: alerts/shell.json
    decisions:
      ask: approve
      contain: approve
    expect:
      match: true
`,
			},
			want: Result{Cases: 6, Failed: 2},
			report: []string{
				"--- PASS: approve/two approvers contain the pod (0.00s)",
				"--- PASS: approve/a denial stops the playbook (0.00s)",
				"--- PASS: approve/an approval nobody answers expires (0.00s)",
				"--- PASS: approve/an approval without a decision expires too (0.00s)",
				"--- FAIL: approve/a denial is expected to be approved (0.00s)",
				"    approve_test.yaml:43: steps: got [ask], want [ask, contain]",
				"    approve_test.yaml:46: outcome: got denied, want contained",
				`        - {id: ask, status: failed, errorType: ApprovalDenied} # approval "ask" denied`,
				"      status: failed # 1 alert",
				"      outcome: denied",
				"--- FAIL: approve/a decision for a step that is no approval (0.00s)",
				`    approve_test.yaml:51: decisions.contain: playbook approve has no approval step "contain"`,
				"FAIL\tDIR\t6 cases, 2 failed",
			},
		},
		{
			name: "plan mode ends planned, with the severity override",
			files: map[string]string{
				"plan.yaml": planPlaybook,
				"plan_test.yaml": `cases:
  - name: a shell is only planned for
    alert: alerts/shell.json
    expect:
      match: true
      severity: critical
      steps: [{id: contain, status: succeeded, with: {namespace: payments, pod: checkout-7d9f8b6c5-x2lqp}}]
      status: planned
`,
			},
			opts: Options{Verbose: true},
			want: Result{Cases: 1},
			report: []string{
				"--- PASS: plan/a shell is only planned for (0.00s)",
				"    got:",
				"      match: true",
				"      incidentKey: payments/checkout-7d9f8b6c5-x2lqp # incident soar-plan-...",
				"      severity: critical",
				"      steps:",
				"        - {id: contain, status: succeeded, with: {namespace: payments, pod: checkout-7d9f8b6c5-x2lqp}}",
				"      approvals: []",
				"      status: planned # 1 alert",
				"ok  \tDIR\t1 case",
			},
		},
		{
			name: "repeated alerts that come after the window are reported",
			files: map[string]string{
				"contain.yaml": strings.Replace(containPlaybook, "steps:", "window: 30s\nsteps:", 1),
				"contain_test.yaml": `cases:
  - name: three shells a minute apart
    alert: alerts/shell.json
    repeat: 3
    expect:
      match: true
`,
			},
			want: Result{Cases: 1, Failed: 1},
			report: []string{
				"--- FAIL: contain/three shells a minute apart (0.00s)",
				"    contain_test.yaml:2: repeat: the incident closed after its 30s window before alert 2 of 3 arrived; in production that alert would open a new incident",
			},
		},
		{
			name: "an expression that fails on the alert fails the case",
			files: map[string]string{
				"user.yaml": `name: user
match: alert.rule == "Terminal shell in container"
incidentKey: alert.fields["user.name"]
steps:
  - id: contain
    action: kubernetes.quarantine
`,
				"user_test.yaml": `cases:
  - name: a Falco alert names the user
    alert: alerts/shell.json
    expect: {match: true, incidentKey: root}
  - name: an alert without a user
    alertJSON: ` + shopShell + `
    expect:
      match: false
`,
			},
			want: Result{Cases: 2, Failed: 1},
			report: []string{
				"--- PASS: user/a Falco alert names the user (0.00s)",
				"--- FAIL: user/an alert without a user (0.00s)",
				"    user_test.yaml:8: incidentKey failed on the alert: result is <nil>, not string (the dispatcher would skip this playbook for it and count an error)",
			},
		},
		{
			name: "problems in test files are reported with their line and the good files still run",
			files: map[string]string{
				"contain.yaml":  containPlaybook,
				"escalate.yaml": escalatePlaybook,
				"contain_test.yaml": `cases:
  - name: unknown field
    alert: alerts/shell.json
    expect: {match: true}
    extra: 1
  - name: both alerts
    alert: alerts/shell.json
    alertJSON: '{}'
    expect: {match: true}
  - name: no expect
    alert: alerts/shell.json
`,
				"escalate_test.yaml": "cases:\n  - {name: one shell, alert: alerts/shell.json, expect: {match: true}}\n",
				"ghost_test.yml":     "cases:\n  - {name: nothing, alert: alerts/shell.json, expect: {match: false}}\n",
			},
			want: Result{Cases: 1, Problems: 4},
			report: []string{
				"DIR/contain_test.yaml:5:5: cases[0].extra: unknown field",
				"DIR/contain_test.yaml:8:16: cases[1].alertJSON: a case takes one of alert and alertJSON, not both",
				"DIR/contain_test.yaml:10:5: cases[2].expect: required field is missing",
				"DIR/ghost_test.yml: no playbook file ghost.yaml or ghost.yml next to this test file",
				"=== RUN   escalate/one shell",
				"--- PASS: escalate/one shell (0.00s)",
				"FAIL\tDIR\t1 case, 0 failed, 4 problems in test files",
			},
		},
		{
			name: "a playbook that does not load fails the run",
			files: map[string]string{
				"contain.yaml":      strings.Replace(containPlaybook, "alert.k8s.pod\n", "alert.k8s.pood\n", 1),
				"contain_test.yaml": "cases:\n  - {name: one shell, alert: alerts/shell.json, expect: {match: true}, extra: 1}\n",
			},
			want: Result{Problems: 2},
			report: []string{
				"DIR/contain.yaml:3:...",
				"DIR/contain_test.yaml:2:72: cases[0].extra: unknown field",
				"FAIL\tDIR [load failed]",
			},
		},
		{
			name:   "playbooks without tests",
			files:  map[string]string{"contain.yaml": containPlaybook},
			want:   Result{NoTestFiles: true},
			report: []string{"?   \tDIR\t[no test files]"},
		},
		{
			name: "--run selects cases by playbook and name",
			files: map[string]string{
				"contain.yaml":  containPlaybook,
				"escalate.yaml": escalatePlaybook,
				"contain_test.yaml": `cases:
  - {name: a shell, alert: alerts/shell.json, expect: {match: true}}
  - {name: a miner, alert: alerts/miner.json, expect: {match: true}}
`,
				"escalate_test.yaml": "cases:\n  - {name: a shell, alert: alerts/shell.json, expect: {match: false}}\n",
			},
			opts:   Options{Run: regexp.MustCompile(`^contain/a shell$`)},
			want:   Result{Cases: 1},
			report: []string{"=== RUN   contain/a shell", "--- PASS: contain/a shell (0.00s)", "ok  \tDIR\t1 case"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			report, res := run(t, testDir(t, tc.files), tc.opts)
			if res != tc.want {
				t.Errorf("result = %+v, want %+v\n%s", res, tc.want, report)
			}
			if res.OK() != (tc.want.Failed == 0 && tc.want.Problems == 0) {
				t.Errorf("OK() = %v", res.OK())
			}
			hasLines(t, report, tc.report...)
		})
	}
}

func TestRunReportsADirectoryItCannotRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	report, res := run(t, dir, Options{})
	if res.OK() || res.Problems != 1 {
		t.Errorf("result = %+v", res)
	}
	hasLines(t, report, "open DIR: no such file or directory", "FAIL\tDIR [load failed]")
}

func TestRunStopsWhenTheContextIsDone(t *testing.T) {
	dir := testDir(t, map[string]string{
		"contain.yaml":      containPlaybook,
		"contain_test.yaml": "cases:\n  - {name: a shell, alert: alerts/shell.json, expect: {match: true}}\n",
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out strings.Builder
	if _, err := Run(ctx, &out, dir, withCatalogue(Options{})); err == nil {
		t.Errorf("Run with a cancelled context returned no error:\n%s", out.String())
	}
}
