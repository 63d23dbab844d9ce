package workflows

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/playbooks"
)

// TestFrozenFactsAreTheCatalogueAsItWasWhenFactsWerePinned keeps the frozen
// table honest: every action in it has, in the catalogue, the facts the table
// gives it. An action whose facts change on purpose later is listed in
// changedSinceFreeze, so that the divergence is a decision, not an accident.
func TestFrozenFactsAreTheCatalogueAsItWasWhenFactsWerePinned(t *testing.T) {
	changedSinceFreeze := map[string]bool{
		// LaneLocal (local-first-containment): incidents from before pinned
		// facts keep running it as an activity of its own.
		"kubernetes.quarantine": true,
	}
	for name, frozen := range frozenFacts {
		def, ok := activities.Lookup(name)
		if !ok {
			t.Errorf("%s is frozen but no longer in the catalogue: old histories still run it", name)
			continue
		}
		if changedSinceFreeze[name] {
			continue
		}
		if diff := cmp.Diff(frozen, def.Facts()); diff != "" {
			t.Errorf("%s: frozen facts differ from the catalogue (-frozen +catalogue):\n%s", name, diff)
		}
	}
}

// TestPlaybookOptionsPinTheCatalogueIntoEachStep loads the shipped library
// and finds each action step carrying its action's facts.
func TestPlaybookOptionsPinTheCatalogueIntoEachStep(t *testing.T) {
	set, err := playbooks.LoadDir("../playbooks/library", playbooks.LoadOptions{Actions: activities.PlaybookActions()})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, p := range set.Playbooks() {
		for _, step := range p.Spec().Steps {
			if step.StepKind() != playbooks.KindAction {
				if step.Facts != nil {
					t.Errorf("%s: %s step %s has action facts", p.Name, step.StepKind(), step.ID)
				}
				continue
			}
			def, _ := activities.Lookup(step.Action)
			if step.Facts == nil {
				t.Errorf("%s: step %s has no facts", p.Name, step.ID)
				continue
			}
			if diff := cmp.Diff(def.Facts(), *step.Facts); diff != "" {
				t.Errorf("%s: step %s (-catalogue +pinned):\n%s", p.Name, step.ID, diff)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("the library has no action step to check")
	}
}

// TestAnIncidentRunsWithTheFactsItStartedWith gives steps pinned facts that
// differ from the catalogue's, as a spec loaded by an older or newer worker
// would: the workflow follows the pinned facts, not the worker's table.
func TestAnIncidentRunsWithTheFactsItStartedWith(t *testing.T) {
	e := newEnv(t)
	reqs := e.releaseMocks()
	contain := containStep
	contain.Facts = &playbooks.ActionFacts{Inverse: activities.ActionRelease,
		FromAlert: []playbooks.AlertParam{{Param: "namespace", Field: "namespace"}, {Param: "pod", Field: "pod"}}}
	label := labelStep
	label.Facts = &playbooks.ActionFacts{} // pinned when label_pod had no inverse
	evidence := evidenceStep
	evidence.Facts = &playbooks.ActionFacts{FromAlert: podFromAlert}
	e.sendAlert(0, shellAlert(func(a *alert.Alert) { a.Kubernetes.PodUID = "5f0c1d2e" }), "SOAR_ALERTS:1")
	e.ExecuteWorkflow(Respond, playbookOf(contain, label, evidence))
	st := e.result()

	if got, want := stepIDs(st), []string{"contain", "label", "evidence", "contain.release"}; !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v: label_pod's pinned facts name no inverse", got, want)
	}
	if n := len(*reqs[activities.ActionRestoreLabels]); n != 0 {
		t.Errorf("restore_labels ran %d times", n)
	}
	// Only the pinned alert parameters were filled: not the alert's podUID,
	// which the frozen table would have filled.
	params := st.Steps[0].Params
	if params["namespace"] != "payments" || params["pod"] == nil || params["podUID"] != nil {
		t.Errorf("contain's params = %v, want namespace and pod from the alert and no podUID", params)
	}
}
