package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soar-dev/soar/internal/testenv"
)

// run executes one soar command line and returns its output and error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out testenv.SyncBuffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestAuthorWorkflowInANewRepository follows a playbook author: copy the
// shipped library into a new git repository, lint and test it there, then
// make a change that breaks a case and read what the tools say.
func TestAuthorWorkflowInANewRepository(t *testing.T) {
	repo := t.TempDir()
	entries, err := os.ReadDir("../../playbooks/library")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("../../playbooks/library", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		// Test files name their alerts relative to the library; point them
		// at the repository's fixtures from the copy.
		abs, _ := filepath.Abs("../../testdata/alerts")
		b = []byte(strings.ReplaceAll(string(b), "../../testdata/alerts", abs))
		if err := os.WriteFile(filepath.Join(repo, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gitCmd := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=a", "-c", "user.email=a@example.invalid"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	gitCmd("init", "-q")
	gitCmd("add", ".")
	gitCmd("commit", "-q", "-m", "copy of soar's library")

	if out, err := run(t, "playbook", "lint", repo); err != nil || !strings.HasSuffix(out, "playbooks OK\n") {
		t.Fatalf("lint: %v\n%s", err, out)
	}
	out, err := run(t, "playbook", "test", repo)
	if err != nil || !strings.Contains(out, "ok  \t"+repo) {
		t.Fatalf("test: %v\n%s", err, out)
	}

	// The author groups shells per namespace instead of per pod.
	file := filepath.Join(repo, "terminal-shell-in-container.yaml")
	b, _ := os.ReadFile(file)
	changed := strings.Replace(string(b), `incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod`, `incidentKey: alert.k8s.namespace`, 1)
	if changed == string(b) {
		t.Fatal("the library playbook no longer has the incident key this test edits")
	}
	if err := os.WriteFile(file, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "playbook", "test", repo)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("test after the change: err %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"--- FAIL: terminal-shell-in-container/", "terminal-shell-in-container_test.yaml:", "incidentKey", "FAIL\t" + repo} {
		if !strings.Contains(out, want) {
			t.Errorf("test output lacks %q:\n%s", want, out)
		}
	}
}
