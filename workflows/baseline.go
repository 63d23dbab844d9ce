package workflows

import "go.temporal.io/sdk/workflow"

// Baseline is the generation of workflow code that the dispatcher starts
// new incidents at (RespondInput.Baseline). An incident started at
// Baseline 1 runs every change in baseline1 as it is now, without asking
// workflow.GetVersion.
//
// Why: the Go SDK answers the first GetVersion of each change in a new
// workflow with a version marker and an upsert of the TemporalChangeVersion
// search attribute, and Temporal writes the incident's visibility record
// again for each upsert. A new incident asked for six changes in its first
// workflow task and for 13 in all on the library's terminal-shell path: 26
// history events, and 13 visibility writes, for changes it could only run
// the newest way. (What that did to the benchmarks, at rest, in a burst and
// under a phantom flood, is in docs/operations.md#known-limitations.) The
// recorded histories of every path at Baseline 1 are
// workflows/testdata/respond-baseline-*.json.
//
// It changes nothing an incident does: a new workflow gets the newest
// version from GetVersion anyway. Incidents started without a baseline (by
// an older dispatcher, or before it) keep asking, and replay as they ran.
// A change made after Baseline 1 asks GetVersion like any other until a
// later baseline includes it. Workers must know a baseline before any
// dispatcher starts incidents at it: roll the workers first, as
// docs/operations.md#upgrade-order says.
const Baseline = 1

// baseline1 are the changes an incident started at Baseline 1 runs.
var baseline1 = map[string]bool{
	slackApprovalsVersion: true,
	clusterRoutingVersion: true,
	pinnedFactsVersion:    true,
	lifecycleVersion:      true,
	alertIntervalsVersion: true,
	countsVersion:         true,
	provenVersion:         true,
	firstInInputVersion:   true,
	coalescedVersion:      true,
	trimmedAlertsVersion:  true,
	recheckVersion:        true,
	steadyVersion:         true,
	genericActionsVersion: true,
	approvedPlanVersion:   true,
	pinnedPodUIDVersion:   true,
	occurrenceVersion:     true,
	degradedVersion:       true,
	localFirstVersion:     true,
}

type baselineKey struct{}

// withBaseline makes the incident's baseline known to changeVersion in ctx
// and every context made from it.
func withBaseline(ctx workflow.Context, baseline int) workflow.Context {
	if baseline <= 0 {
		return ctx
	}
	return workflow.WithValue(ctx, baselineKey{}, baseline)
}

// changeVersion is workflow.GetVersion(ctx, changeID, DefaultVersion, 1)
// for an incident without a baseline, and 1 without asking for a change in
// its baseline. Every change of the Respond workflow so far has one
// version; whether a context carries the baseline depends only on the code
// (an update handler's does not), so a replay asks exactly as the run did.
func changeVersion(ctx workflow.Context, changeID string) workflow.Version {
	if b, _ := ctx.Value(baselineKey{}).(int); b >= 1 && baseline1[changeID] {
		return 1
	}
	return workflow.GetVersion(ctx, changeID, workflow.DefaultVersion, 1)
}
