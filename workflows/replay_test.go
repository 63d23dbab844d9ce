package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays every history in testdata, recorded from
// real runs of each path of Respond (make record-histories), through
// the current workflow code. A failure means a change broke determinism for
// incidents already running: guard the change with workflow.GetVersion rather
// than re-recording the history.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "respond-*.json"))
	if err != nil {
		t.Fatal(err)
	}
	// One per path (16), the pinned-facts generation (6), and the steady
	// generation: coalesced signals and steady intake on every path, plus
	// a close during an approval and a release during a wait (18), and the
	// eager generation: the first alert in the input and the first
	// quarantine as a local activity, on every steady path (18), and the
	// occurrence generation: evidence per occurrence and degraded
	// containment, on every path and a hostNetwork pod's (19), and the uid
	// generation: the pod UID pinned by the first action (19), and a
	// destructive action run with the parameters its approval showed (1),
	// and the outcome generation: lifecycle and outcome apart, and alerts
	// counted per interval, on every path (22), and the counts generation:
	// the alert count published as a search attribute, on every path (22).
	if len(files) < 186 {
		t.Fatalf("found %d recorded histories in testdata, want 186: 16 paths, 6 pinned-facts, 18 steady, 18 eager, 19 occurrence, 19 uid, 1 approved, 21 proven, 22 trimmed, 22 outcome, 22 counts, 2 cluster", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(Respond, workflow.RegisterOptions{Name: RespondName})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
