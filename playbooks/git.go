package playbooks

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// gitTimeout bounds each git command: a hung git must not stall a load.
const gitTimeout = 5 * time.Second

// gitState describes the git checkout a playbook directory is in.
type gitState struct {
	commit string          // HEAD
	dirty  map[string]bool // absolute paths that differ from HEAD or are untracked
}

// readGitState returns the state of the checkout holding dir, or nil when dir
// is not in a git checkout or git is not installed: the content hash alone
// then identifies each playbook's version.
func readGitState(dir string) *gitState {
	out, ok := git(dir, "rev-parse", "--show-toplevel", "HEAD")
	if !ok {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return nil
	}
	top, commit := lines[0], lines[1]
	st := &gitState{commit: commit, dirty: map[string]bool{}}
	// Porcelain paths are relative to the top of the checkout; -z keeps odd
	// file names intact.
	out, ok = git(dir, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
	if !ok {
		return nil
	}
	for _, entry := range bytes.Split(out, []byte{0}) {
		if len(entry) > 3 {
			st.dirty[filepath.Join(top, string(entry[3:]))] = true
		}
	}
	return st
}

// modified reports whether the file at path differs from the commit.
func (g *gitState) modified(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return true
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return g.dirty[abs]
}

func git(dir string, args ...string) ([]byte, bool) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	// Reading the status must not take the index lock a user's git needs.
	cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		return nil, false
	}
	t := time.AfterFunc(gitTimeout, func() { _ = cmd.Process.Kill() })
	defer t.Stop()
	if err := cmd.Wait(); err != nil {
		return nil, false
	}
	return out.Bytes(), true
}
