package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=author", "-c", "user.email=author@example.invalid"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

const guardedV1 = `name: guarded-shell
description: Ask, then contain.
match: alert.rule == "e2e guarded"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: ask
    approval: {approvers: [U1], timeout: 1h}
  - id: contain
    action: kubernetes.quarantine
`

// TestEditedPlaybookChangesNewIncidentsOnly is the promise of versioned
// playbooks: after an author commits a change and soar reloads, new incidents
// run the new version, while an incident already waiting on an approval
// finishes on the version it started with.
func TestEditedPlaybookChangesNewIncidentsOnly(t *testing.T) {
	ctx := context.Background()
	repo := t.TempDir()
	git(t, repo, "init", "-q")
	file := filepath.Join(repo, "guarded-shell.yaml")
	if err := os.WriteFile(file, []byte(guardedV1), 0o600); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "v1: ask, then contain")
	commitV1 := git(t, repo, "rev-parse", "HEAD")

	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	s := startSoar(t, js, tc, repo, dispatch.Config{})
	testenv.Pod(t, kubeCS, "versions", "old-1")
	testenv.Pod(t, kubeCS, "versions", "new-1")
	publish := func(pod string) string {
		a := fmt.Appendf(nil, `{"id":%q,"source":"e2e","rule":"e2e guarded","severity":"high","kubernetes":{"namespace":"versions","pod":%q}}`, pod, pod)
		if _, err := js.Publish(ctx, "alerts.e2e", a); err != nil {
			t.Fatal(err)
		}
		return playbooks.IncidentID("guarded-shell", "versions/"+pod)
	}
	awaiting := func(id string) *workflows.IncidentState {
		t.Helper()
		var st *workflows.IncidentState
		testenv.Eventually(t, 10*time.Second, id+" awaiting approval", func() error {
			var err error
			if st, err = incidentState(ctx, tc, id); err != nil {
				return err
			}
			if st.Status != workflows.StatusAwaitingApproval {
				return fmt.Errorf("status %s", st.Status)
			}
			return nil
		})
		return st
	}

	oldID := publish("old-1")
	old := awaiting(oldID)
	if old.PlaybookCommit != commitV1 || old.PlaybookModified {
		t.Errorf("old incident commit %q modified %v, want %q", old.PlaybookCommit, old.PlaybookModified, commitV1)
	}

	// The author adds a wait step and commits; soar reloads.
	v2 := strings.Replace(guardedV1, "  - id: contain\n", "  - id: settle\n    wait: 1s\n  - id: contain\n", 1)
	if err := os.WriteFile(file, []byte(v2), 0o600); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "commit", "-q", "-am", "v2: settle before containing")
	commitV2 := git(t, repo, "rev-parse", "HEAD")
	if err := s.playbooks.Reload(); err != nil {
		t.Fatal(err)
	}

	newID := publish("new-1")
	cur := awaiting(newID)
	if cur.PlaybookVersion == old.PlaybookVersion || cur.PlaybookCommit != commitV2 {
		t.Fatalf("new incident version %s commit %s; old %s %s", cur.PlaybookVersion, cur.PlaybookCommit, old.PlaybookVersion, old.PlaybookCommit)
	}

	approve := func(id string) {
		if _, err := soarService(t, tc).Vote(ctx, id, workflows.Decision{User: "U1", Approve: true}); err != nil {
			t.Fatal(err)
		}
	}
	stepIDs := func(id string) []string {
		t.Helper()
		var ids []string
		testenv.Eventually(t, 15*time.Second, id+" contained", func() error {
			st, err := incidentState(ctx, tc, id)
			if err != nil {
				return err
			}
			if st.Status != workflows.StatusContained {
				return fmt.Errorf("status %s", st.Status)
			}
			ids = nil
			for _, r := range st.Steps {
				ids = append(ids, r.ID)
			}
			return nil
		})
		return ids
	}
	approve(oldID)
	if got := stepIDs(oldID); !slices.Equal(got, []string{"ask", "contain"}) {
		t.Errorf("the old incident ran %v, want v1's [ask contain]", got)
	}
	approve(newID)
	if got := stepIDs(newID); !slices.Equal(got, []string{"ask", "settle", "contain"}) {
		t.Errorf("the new incident ran %v, want v2's [ask settle contain]", got)
	}
	for _, pod := range []string{"old-1", "new-1"} {
		if err := quarantined(ctx, "versions", pod); err != nil {
			t.Error(err)
		}
	}
	// The versions are searchable, as the Temporal CLI and UI see them.
	oldSum, _ := playbookVersionOf(ctx, tc, oldID)
	newSum, _ := playbookVersionOf(ctx, tc, newID)
	if oldSum == newSum || oldSum != old.PlaybookVersion {
		t.Errorf("SoarPlaybookVersion: old %q new %q", oldSum, newSum)
	}
}
