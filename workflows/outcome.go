package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// An incident's lifecycle says where it is; its outcome says what its steps
// achieved. Both are search attributes (SoarStatus, SoarOutcome) and fields
// of IncidentState, so that "the approval was denied but the pod was already
// contained" reads as open/denied, with the quarantine on the timeline,
// rather than as a bare "failed".
const (
	LifecycleResponding       = StatusResponding       // steps are running
	LifecycleAwaitingApproval = StatusAwaitingApproval // an approval step waits for its approvers
	LifecycleOpen             = "open"                 // the steps ran; later alerts still join
	LifecycleClosed           = StatusClosed           // the incident is over
)

// Outcomes, once the steps ran (empty before).
const (
	OutcomeContained = StatusContained // every step succeeded
	OutcomeDegraded  = StatusDegraded  // every step succeeded, but a containment step reported that traffic may still flow
	OutcomeFailed    = StatusFailed    // an action or a condition failed
	OutcomeDenied    = "denied"        // an approval was denied, and no action failed
	OutcomeExpired   = "expired"       // an approval expired undecided, and no action failed or was denied
	OutcomePlanned   = StatusPlanned   // a plan-mode playbook ran every step as a dry run
	OutcomeReleased  = StatusReleased  // what the incident's actions did was undone
)

// Lifecycles and Outcomes list the values, in the order people read them.
var (
	Lifecycles = []string{LifecycleResponding, LifecycleAwaitingApproval, LifecycleOpen, LifecycleClosed}
	Outcomes   = []string{OutcomeContained, OutcomeDegraded, OutcomeFailed, OutcomeDenied, OutcomeExpired, OutcomePlanned, OutcomeReleased}
)

// lifecycleVersion guards a change of behaviour: SoarStatus used to hold
// the detailed status (contained, failed, ...) and lost the outcome at the
// close; now it holds the lifecycle, SoarOutcome the outcome, and the state
// keeps both.
const lifecycleVersion = "lifecycle-and-outcome"

// setStatus records the incident's detailed status, and its lifecycle and
// outcome, in the state and the search attributes.
func setStatus(ctx workflow.Context, st *IncidentState, status string) error {
	st.Status = status
	if changeVersion(ctx, lifecycleVersion) < 1 {
		if err := workflow.UpsertTypedSearchAttributes(ctx, SearchStatus.ValueSet(status)); err != nil {
			return fmt.Errorf("record status %q: %w", status, err)
		}
		return nil
	}
	lifecycle, outcome := Split(status)
	if outcome == OutcomeFailed {
		outcome = failedOutcome(st.Steps)
	}
	if outcome == "" || st.Outcome == OutcomeReleased {
		outcome = st.Outcome // released stays released; a close keeps what the steps achieved
	}
	st.Lifecycle, st.Outcome = lifecycle, outcome
	updates := []temporal.SearchAttributeUpdate{SearchStatus.ValueSet(lifecycle)}
	if outcome != "" {
		updates = append(updates, SearchOutcome.ValueSet(outcome))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		return fmt.Errorf("record lifecycle %q and outcome %q: %w", lifecycle, outcome, err)
	}
	return nil
}

// Split maps a detailed status to its lifecycle and outcome. It also reads
// what incidents recorded before lifecycleVersion kept in SoarStatus.
func Split(status string) (lifecycle, outcome string) {
	switch status {
	case StatusResponding, StatusAwaitingApproval, StatusClosed:
		return status, ""
	case StatusContained, StatusDegraded, StatusFailed, StatusPlanned, StatusReleased:
		return LifecycleOpen, status
	case LifecycleOpen:
		return LifecycleOpen, ""
	}
	return status, ""
}

// failedOutcome tells an approval that was denied or expired from a step
// that failed: any failed action or condition makes the outcome failed.
func failedOutcome(steps []StepResult) string {
	outcome := ""
	for _, r := range steps {
		if r.Status != StepFailed {
			continue
		}
		switch r.ErrorType {
		case ErrTypeApprovalDenied:
			outcome = OutcomeDenied
		case ErrTypeApprovalExpired:
			if outcome == "" {
				outcome = OutcomeExpired
			}
		case ErrTypeInterrupted, ErrTypeNotApproved:
			// A close or release interrupted it, or the approval before
			// it did not pass: its own record says why.
		default:
			return OutcomeFailed
		}
	}
	if outcome == "" {
		return OutcomeFailed
	}
	return outcome
}

// alertIntervalsVersion guards a change of behaviour: the state counts the
// incident's alerts per interval of time (IncidentState.Intervals).
const alertIntervalsVersion = "alert-intervals"

// maxIntervals bounds the intervals an incident keeps: when a new alert
// would need more, neighbours merge and every interval doubles in width.
const maxIntervals = 120

// Intervals counts an incident's alerts per interval of time: Counts[i]
// alerts joined in [Start + i*Width, Start + (i+1)*Width). Intervals start
// a minute wide; an incident that lasts longer than maxIntervals of them
// doubles their width as often as needed, so its size stays bounded however
// long the storm.
type Intervals struct {
	Start  time.Time     `json:"start"`
	Width  time.Duration `json:"width"`
	Counts []int         `json:"counts"`
}

// add counts n alerts that joined at.
func (iv *Intervals) add(at time.Time, n int) {
	if len(iv.Counts) == 0 {
		iv.Start, iv.Width = at.Truncate(time.Minute), time.Minute
	}
	if at.Before(iv.Start) {
		at = iv.Start // a clock never runs back in a workflow; be safe anyway
	}
	i := int(at.Sub(iv.Start) / iv.Width)
	for i >= maxIntervals {
		merged := make([]int, (len(iv.Counts)+1)/2)
		for j, c := range iv.Counts {
			merged[j/2] += c
		}
		iv.Counts, iv.Width = merged, iv.Width*2
		i = int(at.Sub(iv.Start) / iv.Width)
	}
	for len(iv.Counts) <= i {
		iv.Counts = append(iv.Counts, 0)
	}
	iv.Counts[i] += n
}

// countInterval counts n alerts joining now in st.Intervals.
func (st *IncidentState) countInterval(ctx workflow.Context, n int) {
	if changeVersion(ctx, alertIntervalsVersion) < 1 {
		return
	}
	if st.Intervals == nil {
		st.Intervals = &Intervals{}
	}
	st.Intervals.add(workflow.Now(ctx), n)
}

// countsVersion guards a change of behaviour: the incident publishes its
// alert count and the time of its last alert as search attributes
// (SoarAlertCount, SoarLastAlert) when its first alert is counted, then at
// most every countsEvery while alerts keep joining, and when it closes, so
// that lists show them without asking each incident. A storm costs one
// search-attribute update and one timer per countsEvery, not one per alert.
const countsVersion = "published-alert-counts"

// countsEvery is how often at most the alert count is published.
const countsEvery = 30 * time.Second

// countsWait is how long until the incident may publish its alert count:
// 0 now, negative when it has nothing new to publish.
func (st *IncidentState) countsWait(now time.Time) time.Duration {
	if !st.publishing || st.PublishedCount == st.AlertCount {
		return -1
	}
	if st.PublishedAt.IsZero() {
		return 0
	}
	return max(0, st.PublishedAt.Add(countsEvery).Sub(now))
}

// publishCounts publishes the alert count and the last alert's time when
// they changed since they were last published.
func (st *IncidentState) publishCounts(ctx workflow.Context) {
	if !st.publishing || st.PublishedCount == st.AlertCount {
		return
	}
	err := workflow.UpsertTypedSearchAttributes(ctx, SearchAlertCount.ValueSet(int64(st.AlertCount)), SearchLastAlert.ValueSet(st.LastAlertAt))
	if err != nil {
		workflow.GetLogger(ctx).Warn("alert count not published", "incident_id", st.IncidentID, "error", err)
		return
	}
	st.PublishedCount, st.PublishedAt = st.AlertCount, workflow.Now(ctx)
}
