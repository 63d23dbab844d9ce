package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// playbookTestDir writes the library's playbook and a test file for it into
// a temporary directory, with the sample shell alert beside them.
func playbookTestDir(t *testing.T, tests string) string {
	t.Helper()
	dir := t.TempDir()
	copyFile := func(from, to string) {
		t.Helper()
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("../../playbooks/library/terminal-shell-in-container.yaml", "terminal-shell-in-container.yaml")
	copyFile("../../testdata/alerts/falco-terminal-shell.json", "shell.json")
	copyFile("../../testdata/alerts/falco-crypto-miner.json", "miner.json")
	if tests != "" {
		if err := os.WriteFile(filepath.Join(dir, "terminal-shell-in-container_test.yaml"), []byte(tests), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runPlaybookTest runs "soar playbook test" with args and returns its
// output, with durations zeroed, and its error.
func runPlaybookTest(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newPlaybookTestCmd()
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return regexp.MustCompile(`\(\d+\.\d\ds\)`).ReplaceAllString(out.String(), "(0.00s)"), err
}

const libraryTests = `cases:
  - name: a shell in a payments pod is contained
    alert: shell.json
    expect:
      match: true
      incidentKey: payments/checkout-7d9f8b6c5-x2lqp
      steps:
        - id: contain
          status: succeeded
          with: {namespace: payments, pod: checkout-7d9f8b6c5-x2lqp}
        - id: evidence
          status: succeeded
        - id: ticket
          status: succeeded
      status: contained
  - name: a miner alert does not match
    alert: miner.json
    expect:
      match: true
`

func TestPlaybookTestCommand(t *testing.T) {
	tests := []struct {
		name     string
		tests    string
		args     []string
		wantCode int    // 0: no error
		want     string // the whole output, with DIR for the directory
	}{
		{
			name:     "a failing case fails the run with exit status 1",
			tests:    libraryTests,
			wantCode: 1,
			want: `=== RUN   terminal-shell-in-container/a shell in a payments pod is contained
--- PASS: terminal-shell-in-container/a shell in a payments pod is contained (0.00s)
=== RUN   terminal-shell-in-container/a miner alert does not match
--- FAIL: terminal-shell-in-container/a miner alert does not match (0.00s)
    terminal-shell-in-container_test.yaml:19: match: got false, want true
    got:
      match: false
FAIL	DIR	2 cases, 1 failed
`,
		},
		{
			name:  "--run selects the passing case",
			tests: libraryTests,
			args:  []string{"--run", "contained$"},
			want: `=== RUN   terminal-shell-in-container/a shell in a payments pod is contained
--- PASS: terminal-shell-in-container/a shell in a payments pod is contained (0.00s)
ok  	DIR	1 case
`,
		},
		{
			name:  "-v shows what a passing case observed",
			tests: libraryTests,
			args:  []string{"-v", "--run", "contained$"},
			want: `=== RUN   terminal-shell-in-container/a shell in a payments pod is contained
--- PASS: terminal-shell-in-container/a shell in a payments pod is contained (0.00s)
    got:
      match: true
      incidentKey: payments/checkout-7d9f8b6c5-x2lqp # incident soar-terminal-shell-in-container-b1690f7ce78082cc9065
      severity: notice
      steps:
        - {id: contain, status: succeeded, with: {namespace: payments, pod: checkout-7d9f8b6c5-x2lqp}}
        - {id: evidence, status: succeeded, with: {namespace: payments, pod: checkout-7d9f8b6c5-x2lqp}}
        - {id: ticket, status: succeeded}
      approvals: []
      status: contained # 1 alert
      outcome: contained
ok  	DIR	1 case
`,
		},
		{
			name: "no test files is not a failure",
			want: "?   \tDIR\t[no test files]\n",
		},
		{
			name:     "a problem in a test file fails the run",
			tests:    "cases:\n  - {name: x, alert: shell.json, expect: {match: true}, extra: 1}\n",
			wantCode: 1,
			want: `DIR/terminal-shell-in-container_test.yaml:2:57: cases[0].extra: unknown field
FAIL	DIR	0 cases, 0 failed, 1 problem in test files
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := playbookTestDir(t, tc.tests)
			out, err := runPlaybookTest(t, append(tc.args, dir)...)
			code := 0
			var ee *exitError
			switch {
			case errors.As(err, &ee):
				code = ee.code
			case err != nil:
				t.Fatalf("error = %v, want an exit status", err)
			}
			if code != tc.wantCode {
				t.Errorf("exit status %d, want %d (error %v)", code, tc.wantCode, err)
			}
			if got := strings.ReplaceAll(out, dir, "DIR"); got != tc.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestPlaybookTestCommandRefusesABadRunExpression(t *testing.T) {
	_, err := runPlaybookTest(t, "--run", "(", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "--run") {
		t.Errorf("error = %v, want one about --run", err)
	}
}
