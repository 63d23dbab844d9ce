package playbooks

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.invalid"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

const gitPlaybook = `name: shell
match: alert.rule == "Terminal shell in container"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: contain
    action: kubernetes.quarantine
`

func TestLoadPinsTheGitCommit(t *testing.T) {
	repo := t.TempDir()
	runGit(t, repo, "init", "-q")
	dir := filepath.Join(repo, "playbooks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "shell.yaml")
	if err := os.WriteFile(file, []byte(gitPlaybook), 0o600); err != nil {
		t.Fatal(err)
	}
	runGit(t, repo, "add", ".")
	runGit(t, repo, "commit", "-q", "-m", "first playbook")
	head := runGit(t, repo, "rev-parse", "HEAD")

	load := func() *Playbook {
		t.Helper()
		set, err := LoadDir(dir, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pb, _ := set.Get("shell")
		return pb
	}
	committed := load()
	if committed.GitCommit != head || committed.GitModified {
		t.Errorf("committed playbook: commit %q modified %v, want %q and false", committed.GitCommit, committed.GitModified, head)
	}
	if spec := committed.Spec(); spec.GitCommit != head {
		t.Errorf("spec commit %q, want %q", spec.GitCommit, head)
	}

	// An edit not yet committed: the commit alone no longer says what ran.
	if err := os.WriteFile(file, []byte(strings.Replace(gitPlaybook, "steps:", "window: 2h\nsteps:", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	edited := load()
	if edited.GitCommit != head || !edited.GitModified || edited.Version == committed.Version {
		t.Errorf("edited playbook: commit %q modified %v version changed %v", edited.GitCommit, edited.GitModified, edited.Version != committed.Version)
	}

	runGit(t, repo, "commit", "-q", "-am", "longer window")
	recommitted := load()
	if newHead := runGit(t, repo, "rev-parse", "HEAD"); recommitted.GitCommit != newHead || recommitted.GitModified {
		t.Errorf("recommitted playbook: commit %q modified %v, want %q and false", recommitted.GitCommit, recommitted.GitModified, newHead)
	}
}

func TestLoadOutsideGitHasNoCommit(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shell.yaml"), []byte(gitPlaybook), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := LoadDir(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := set.Get("shell")
	if pb.GitCommit != "" || pb.GitModified {
		t.Errorf("commit %q modified %v outside git", pb.GitCommit, pb.GitModified)
	}
}
