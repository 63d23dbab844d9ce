package library_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/playbooks"
)

// TestShippedPlaybooksCollectEvidenceBeforeDestroyingIt holds the library to
// its rule: a destructive step (delete, evict, scale to zero) comes after a
// snapshot of the pod, and only runs when that snapshot succeeded. The
// library is loaded as soar's processes load it, with the actions their
// workers run.
func TestShippedPlaybooksCollectEvidenceBeforeDestroyingIt(t *testing.T) {
	set, err := playbooks.LoadDir(".", app.PlaybookOptions())
	if err != nil {
		t.Fatal(err)
	}
	destructive := activities.DestructiveActions()
	checked := 0
	for _, p := range set.Playbooks() {
		snapshot := ""
		for _, s := range p.Spec().Steps {
			switch {
			case s.Action == activities.ActionSnapshot && snapshot == "":
				snapshot = s.ID
			case slices.Contains(destructive, s.Action):
				checked++
				if snapshot == "" {
					t.Errorf("%s: step %s (%s) runs before any snapshot", p.Name, s.ID, s.Action)
					continue
				}
				if want := "steps." + snapshot + `.status == "succeeded"`; !strings.Contains(s.If, want) {
					t.Errorf("%s: step %s (%s) does not wait for its evidence: its condition %q lacks %s", p.Name, s.ID, s.Action, s.If, want)
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no shipped playbook has a destructive step: the rule checks nothing")
	}
}
