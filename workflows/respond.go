// Package workflows holds soar's Temporal workflows: deterministic
// orchestration only. Workflows decide; activities act.
package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/internal/proof"
	"github.com/soar-dev/soar/playbooks"
)

// Names shared by the dispatcher, the worker and the CLI.
const (
	// TaskQueue is where soar's workers poll.
	TaskQueue = "soar"
	// RespondName is the registered name of the generic Respond workflow.
	RespondName = "Respond"
	// SignalAlert delivers an AlertSignal: the first alert of an incident and
	// every later one that joins it.
	SignalAlert = "alert"
	// SignalClose closes an incident now instead of after its quiet window.
	SignalClose = "close"
	// SignalRelease undoes what the incident's actions did (each action's
	// inverse, newest first) and closes it: the answer to a false positive.
	// Its value is the reason, recorded as the close reason.
	SignalRelease = "release"
	// QueryState returns the incident's current IncidentState.
	QueryState = "state"
	// QueryApprovals returns what a vote, a close or a release needs to
	// know: the IncidentState with its ID, status, close reason, opening
	// time and approvals only, small however large its alerts were.
	QueryApprovals = "approvals"
)

// Incident statuses, as in the SoarStatus search attribute.
const (
	StatusResponding = "responding" // steps are running
	StatusContained  = "contained"  // every step succeeded; collecting later alerts
	StatusFailed     = "failed"     // a step failed; collecting later alerts
	// StatusDegraded: every step succeeded, but a containment step reported
	// that traffic may still flow (StepResult.Degraded says why).
	StatusDegraded = "degraded"
	StatusClosed   = "closed" // the incident is over
	// StatusPlanned: a plan-mode playbook ran every step as a dry run.
	StatusPlanned = "planned"
	// StatusReleased: a step failed with onError release, or someone
	// released the incident (SignalRelease); what its actions did was undone.
	StatusReleased = "released"
	// StatusAwaitingApproval: an approval step waits for its approvers.
	StatusAwaitingApproval = "awaiting_approval"
)

// Step statuses in StepResult.
const (
	StepSucceeded = "succeeded"
	StepFailed    = "failed"
)

// maxSeen bounds the delivery IDs remembered for deduplication.
const maxSeen = 256

// continueAfter bounds how many alerts one run absorbs before it continues as
// new, which keeps the history of a long alert storm small.
const continueAfter = 1000

// RespondInput starts a Respond workflow. The playbook is pinned: the incident
// runs the exact content it started with, whatever changes in git later.
type RespondInput struct {
	IncidentID  string         `json:"incidentID"`
	IncidentKey string         `json:"incidentKey"`
	Playbook    playbooks.Spec `json:"playbook"`
	// State is set only when a run continues as new.
	State *IncidentState `json:"state,omitempty"`
	// First is the incident's first alert when the dispatcher started the
	// incident with it, eagerly, rather than with SignalWithStart.
	First *AlertSignal `json:"first,omitempty"`
	// SignedAt and Proof are the dispatcher's (or, for a continue-as-new,
	// the worker's) proof of this input (see provenVersion).
	SignedAt time.Time `json:"signedAt,omitzero"`
	Proof    string    `json:"proof,omitempty"`
	// Baseline is the generation of workflow code the incident started at
	// (see Baseline); 0 for incidents started before baselines.
	Baseline int `json:"baseline,omitempty"`
}

// AlertSignal is one alert, or a batch of alerts, joining an incident.
//
// The dispatcher coalesces the alerts of an open incident that arrive close
// together into one signal: Alert is then the batch's first alert, Latest
// its latest, and Deliveries names every message the batch stands for.
type AlertSignal struct {
	Alert alert.Alert `json:"alert"`
	// DeliveryID identifies the message that carried a single alert (the
	// JetStream stream and sequence), so a redelivered message is counted
	// once. Signals with Deliveries leave it empty.
	DeliveryID string `json:"deliveryID"`
	// Latest is the batch's latest alert, when it differs from Alert.
	Latest *alert.Alert `json:"latest,omitempty"`
	// Count is how many messages the batch stands for; the incident counts
	// only those of Deliveries it has not counted before.
	Count int `json:"count,omitempty"`
	// Deliveries names the batch's messages.
	Deliveries *Deliveries `json:"deliveries,omitempty"`
	// Proof is the dispatcher's proof of this signal for the incident.
	Proof string `json:"proof,omitempty"`
}

// IncidentState is everything the incident knows; it is the workflow's result
// and the answer to QueryState.
type IncidentState struct {
	IncidentID      string `json:"incidentID"`
	IncidentKey     string `json:"incidentKey"`
	Playbook        string `json:"playbook"`
	PlaybookVersion string `json:"playbookVersion"`
	// PlaybookCommit is the git commit the playbook was loaded from, if any;
	// PlaybookModified says the file differed from it.
	PlaybookCommit   string `json:"playbookCommit,omitempty"`
	PlaybookModified bool   `json:"playbookModified,omitempty"`
	// Status is the detailed status (see the Status constants); Lifecycle
	// and Outcome split it (see lifecycleVersion), and are empty in
	// incidents recorded before that.
	Status      string       `json:"status"`
	Lifecycle   string       `json:"lifecycle,omitempty"`
	Outcome     string       `json:"outcome,omitempty"`
	FirstAlert  *alert.Alert `json:"firstAlert,omitempty"`
	LatestAlert *alert.Alert `json:"latestAlert,omitempty"`
	AlertCount  int          `json:"alertCount"`
	// Intervals counts the alerts per interval of time (nil in incidents
	// recorded before alertIntervalsVersion).
	Intervals   *Intervals   `json:"intervals,omitempty"`
	OpenedAt    time.Time    `json:"openedAt"`
	LastAlertAt time.Time    `json:"lastAlertAt"`
	ClosedAt    time.Time    `json:"closedAt,omitzero"`
	CloseReason string       `json:"closeReason,omitempty"`
	StepsDone   bool         `json:"stepsDone"`
	Steps       []StepResult `json:"steps"`
	// Pending lists the steps whose condition was false; each alert that
	// joins the incident evaluates them again.
	Pending []string `json:"pending,omitempty"`
	// Approvals holds every approval step's request and votes.
	Approvals []*ApprovalState `json:"approvals,omitempty"`
	// Slack is the incident's Slack thread, once one was needed.
	Slack *SlackThread `json:"slack,omitempty"`
	// Ticket is the incident's ticket, once a ticket.open step opened one;
	// TicketError is why ticket.open failed, when it did.
	Ticket      *TicketState `json:"ticket,omitempty"`
	TicketError string       `json:"ticketError,omitempty"`
	// Stopped is set when a step stopped the playbook (onError abort or
	// release): skipped steps are then never evaluated again.
	Stopped bool `json:"stopped,omitempty"`
	// Seen holds the latest delivery IDs of single-alert signals, oldest
	// first.
	Seen []string `json:"seen,omitempty"`
	// Counted remembers the messages of coalesced signals counted so far.
	Counted *CountedSet `json:"counted,omitempty"`
	// PodUID is the UID of the first alert's pod as the incident's first
	// action on it found it, when the alert named no UID: every later step
	// on that pod acts on this pod only, never on a namesake that replaced
	// it meanwhile.
	PodUID string `json:"podUID,omitempty"`
	// ClusterServed says a worker of the incident's cluster (its first
	// alert's) was found polling that cluster's task queue (cluster.go).
	ClusterServed bool `json:"clusterServed,omitempty"`
	// Refused counts the alert signals and the close and release signals
	// the incident refused because they carried no proof from soar.
	Refused int `json:"refused,omitempty"`
	// TrimmedAlerts counts the alerts kept trimmed in this state because
	// they were too large (see trimmedAlertsVersion).
	TrimmedAlerts int `json:"trimmedAlerts,omitempty"`

	// PublishedCount is the alert count last published as SoarAlertCount,
	// at PublishedAt (see countsVersion).
	PublishedCount int       `json:"publishedCount,omitempty"`
	PublishedAt    time.Time `json:"publishedAt,omitzero"`

	// guard checks the proofs of alert signals (nil before provenVersion).
	guard *guard
	// publishing says this run publishes its alert counts (countsVersion).
	publishing bool
}

// brief is the answer to QueryApprovals.
func (st *IncidentState) brief() *IncidentState {
	return &IncidentState{
		IncidentID: st.IncidentID, IncidentKey: st.IncidentKey, Playbook: st.Playbook, PlaybookVersion: st.PlaybookVersion,
		Status: st.Status, Lifecycle: st.Lifecycle, Outcome: st.Outcome, CloseReason: st.CloseReason, OpenedAt: st.OpenedAt, ClosedAt: st.ClosedAt, Approvals: st.Approvals,
	}
}

// StepResult records one step: what ran, with which parameters, and what it did.
type StepResult struct {
	ID        string         `json:"id"`
	Kind      string         `json:"kind,omitempty"`
	Action    string         `json:"action,omitempty"`
	Status    string         `json:"status"`
	Params    map[string]any `json:"params,omitempty"`
	Output    map[string]any `json:"output,omitempty"`
	Error     string         `json:"error,omitempty"`
	ErrorType string         `json:"errorType,omitempty"`
	// Degraded is why a succeeded containment step did not fully contain
	// its target (the action's output said so), e.g. a hostNetwork pod.
	Degraded   string    `json:"degraded,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
}

// Respond is the generic incident workflow. It takes the first alert, runs the
// playbook's steps once, then stays open while alerts with the same incident
// key keep arriving, counting them, until the playbook's window passes without
// a new alert or the incident is closed by UpdateStop.
//
// This Respond checks no proofs: it serves tests of workflow logic and the
// replay of recorded histories. Workers run Responder.Respond.
func Respond(ctx workflow.Context, in RespondInput) (*IncidentState, error) {
	return respond(ctx, in, nil)
}

func respond(ctx workflow.Context, in RespondInput, keys *proof.Keys) (*IncidentState, error) {
	ctx = withBaseline(ctx, in.Baseline)
	st := in.State
	if st == nil {
		st = &IncidentState{
			IncidentID:       in.IncidentID,
			IncidentKey:      in.IncidentKey,
			Playbook:         in.Playbook.Name,
			PlaybookVersion:  in.Playbook.Version,
			PlaybookCommit:   in.Playbook.GitCommit,
			PlaybookModified: in.Playbook.GitModified,
			Status:           StatusResponding,
			OpenedAt:         workflow.Now(ctx),
		}
	}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (*IncidentState, error) { return st, nil }); err != nil {
		return nil, fmt.Errorf("register state query: %w", err)
	}
	if err := workflow.SetQueryHandler(ctx, QueryApprovals, func() (*IncidentState, error) { return st.brief(), nil }); err != nil {
		return nil, fmt.Errorf("register approvals query: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDecide,
		func(ctx workflow.Context, d Decision) (ApprovalState, error) { return st.decide(ctx, d) },
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, d Decision) error { return st.validateDecision(ctx, keys, d) }},
	); err != nil {
		return nil, fmt.Errorf("register decide update: %w", err)
	}
	g, refused := checkStart(ctx, in, keys)
	if refused != "" {
		// Not soar's: whoever started it holds none of soar's keys. It
		// never acts; its state says why it closed.
		// What it claims to be is not kept: only the refusal.
		st = &IncidentState{IncidentID: workflow.GetInfo(ctx).WorkflowExecution.ID, OpenedAt: workflow.Now(ctx)}
		st.refuse(ctx, "start", refused)
		return finish(ctx, st, "refused: "+refused)
	}
	st.guard = g
	steady := changeVersion(ctx, steadyVersion) >= 1
	alerts := workflow.GetSignalChannel(ctx, SignalAlert)
	closing := workflow.GetSignalChannel(ctx, SignalClose)
	releasing := workflow.GetSignalChannel(ctx, SignalRelease)
	window := in.Playbook.Window
	if window <= 0 {
		window = time.Hour
	}

	if st.FirstAlert == nil && in.First != nil && changeVersion(ctx, firstInInputVersion) >= 1 {
		st.count(ctx, *in.First) // proven with the start
	}
	// SignalWithStart delivers the first alert together with the start; a
	// workflow started any other way waits one window for it. A refused
	// alert is not the first.
	deadline := workflow.Now(ctx).Add(window)
	for st.FirstAlert == nil {
		var sig AlertSignal
		ok, _ := alerts.ReceiveWithTimeout(ctx, deadline.Sub(workflow.Now(ctx)), &sig)
		if !ok {
			return finish(ctx, st, "no alert arrived")
		}
		st.addAlert(ctx, sig)
	}

	run := &steps{in: in, st: st, ctx: ctx}
	if steady {
		return respondSteady(run, window)
	}
	if !st.StepsDone {
		outcome := run.runAll()
		st.StepsDone = true
		if err := setStatus(ctx, st, outcome); err != nil {
			return nil, err
		}
	}

	// One timer covers the quiet window. Alerts arriving meanwhile only move
	// LastAlertAt; when the timer fires, the window is measured again from the
	// latest alert. A storm of alerts thus costs one timer per window, not one
	// per alert.
	absorbed := 0
	var ticketTimer workflow.Future
	for {
		remaining := st.LastAlertAt.Add(window).Sub(workflow.Now(ctx))
		if remaining <= 0 {
			drain(ctx, alerts, st)
			if st.LastAlertAt.Add(window).After(workflow.Now(ctx)) {
				continue
			}
			reason := fmt.Sprintf("no new alert for %s", window)
			if err := run.settle(reason); err != nil {
				return nil, err
			}
			return finish(ctx, st, reason)
		}
		timer := workflow.NewTimer(ctx, remaining)
		fired := false
		for !fired {
			// News for the ticket go out in one comment per interval: a
			// storm of alerts costs a comment, not one per alert.
			if ticketTimer == nil && st.ticketDue() {
				ticketTimer = workflow.NewTimer(ctx, run.commentEvery())
			}
			var closeReason, releaseReason string
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(alerts, func(c workflow.ReceiveChannel, _ bool) {
				var sig AlertSignal
				c.Receive(ctx, &sig)
				st.addAlert(ctx, sig)
				absorbed++
			})
			sel.AddReceive(closing, func(c workflow.ReceiveChannel, _ bool) {
				var reason string
				c.Receive(ctx, &reason)
				if reason == "" {
					reason = "closed on request"
				}
				closeReason = reason
			})
			sel.AddReceive(releasing, func(c workflow.ReceiveChannel, _ bool) {
				c.Receive(ctx, &releaseReason)
				if releaseReason == "" {
					releaseReason = "released on request"
				}
			})
			sel.AddFuture(timer, func(workflow.Future) { fired = true })
			if ticketTimer != nil {
				sel.AddFuture(ticketTimer, func(workflow.Future) {
					ticketTimer = nil
					run.flushTicket(false, "")
				})
			}
			sel.Select(ctx)
			if releaseReason != "" {
				return run.releaseAndFinish(alerts, releaseReason)
			}
			if recheckAllowed(ctx, st) {
				// A joining alert may make a skipped step's condition true.
				if err := recheck(run); err != nil {
					return nil, err
				}
			}
			if closeReason != "" {
				return run.closeAndFinish(alerts, closeReason)
			}
			if absorbed >= continueAfter || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
				return run.continueAsNew(alerts)
			}
		}
	}
}

// firstInInputVersion guards a change of behaviour: an incident started
// with its first alert in RespondInput.First (the dispatcher's eager start)
// counts it at once instead of waiting for a signal.
const firstInInputVersion = "first-alert-in-input"

// coalescedVersion guards the counting of coalesced signals: before it, a
// signal was one alert, identified by its DeliveryID.
const coalescedVersion = "coalesced-alert-signals"

// releaseAndFinish undoes what the incident's actions did and closes it.
func (s *steps) releaseAndFinish(alerts workflow.ReceiveChannel, reason string) (*IncidentState, error) {
	s.st.Stopped = true
	s.release()
	if err := setStatus(s.ctx, s.st, StatusReleased); err != nil {
		return nil, err
	}
	return s.closeAndFinish(alerts, reason)
}

// closeAndFinish closes the incident for reason. Alerts that raced with the
// close still count.
func (s *steps) closeAndFinish(alerts workflow.ReceiveChannel, reason string) (*IncidentState, error) {
	drain(s.ctx, alerts, s.st)
	if err := s.settle(reason); err != nil {
		return nil, err
	}
	return finish(s.ctx, s.st, reason)
}

// continueAsNew carries the incident's state into a new run, once the
// Slack and ticket work queued so far is done.
func (s *steps) continueAsNew(alerts workflow.ReceiveChannel) (*IncidentState, error) {
	drain(s.ctx, alerts, s.st)
	s.in.State = s.st
	s.in.First = nil // counted: the state has it
	if err := s.flushSlack(); err != nil {
		return nil, err
	}
	if err := s.ticketBox.flush(s.ctx, time.Minute); err != nil {
		return nil, err
	}
	if err := s.st.guard.signContinued(s.ctx, &s.in); err != nil {
		return nil, err
	}
	return nil, workflow.NewContinueAsNewError(s.ctx, RespondName, s.in)
}

// addAlert counts an alert signal that carries soar's proof (or any, on
// incidents that check none).
func (st *IncidentState) addAlert(ctx workflow.Context, sig AlertSignal) {
	if st.guard.admit(ctx, st, sig) {
		st.count(ctx, sig)
	}
}

// count counts an alert signal.
func (st *IncidentState) count(ctx workflow.Context, sig AlertSignal) {
	if sig.Deliveries != nil && changeVersion(ctx, coalescedVersion) >= 1 {
		st.addBatch(ctx, sig)
		return
	}
	if sig.DeliveryID != "" {
		if slices.Contains(st.Seen, sig.DeliveryID) {
			return
		}
		st.Seen = append(st.Seen, sig.DeliveryID)
		if len(st.Seen) > maxSeen {
			st.Seen = st.Seen[len(st.Seen)-maxSeen:]
		}
	}
	a := st.kept(ctx, sig.Alert)
	if st.FirstAlert == nil {
		st.FirstAlert = &a
	}
	st.LatestAlert = &a
	st.AlertCount++
	st.LastAlertAt = workflow.Now(ctx)
	st.countInterval(ctx, 1)
}

// trimmedAlertsVersion guards a change of behaviour: the state keeps an
// alert larger than alert.TrimBytes trimmed (alert.Trim), so that one
// hostile alert cannot push the state, its queries, its votes and its
// result past Temporal's 2 MiB limits. The whole alert stays in the history
// event that brought it.
const trimmedAlertsVersion = "trimmed-alerts"

// kept is the copy of a that the state keeps.
func (st *IncidentState) kept(ctx workflow.Context, a alert.Alert) alert.Alert {
	if changeVersion(ctx, trimmedAlertsVersion) < 1 {
		return a
	}
	t, cut := alert.Trim(a) //workflowcheck:ignore deterministic: sorted field names, encoding/json sorts map keys
	if cut {
		st.TrimmedAlerts++
		workflow.GetLogger(ctx).Warn("alert trimmed in the incident's state", "incident_id", st.IncidentID, "alert_id", a.ID, "limit_bytes", alert.TrimBytes)
	}
	return t
}

// addBatch counts the messages of a coalesced signal that the incident has
// not counted before.
func (st *IncidentState) addBatch(ctx workflow.Context, sig AlertSignal) {
	if st.Counted == nil {
		st.Counted = &CountedSet{}
	}
	fresh := st.Counted.add(*sig.Deliveries)
	if fresh == 0 {
		return
	}
	first := st.kept(ctx, sig.Alert)
	if st.FirstAlert == nil {
		st.FirstAlert = &first
	}
	latest := &first
	if sig.Latest != nil {
		l := st.kept(ctx, *sig.Latest)
		latest = &l
	}
	st.LatestAlert = latest
	st.AlertCount += fresh
	st.LastAlertAt = workflow.Now(ctx)
	st.countInterval(ctx, fresh)
}

func drain(ctx workflow.Context, alerts workflow.ReceiveChannel, st *IncidentState) {
	for {
		var sig AlertSignal
		if !alerts.ReceiveAsync(&sig) {
			return
		}
		st.addAlert(ctx, sig)
	}
}

func finish(ctx workflow.Context, st *IncidentState, reason string) (*IncidentState, error) {
	st.publishCounts(ctx)
	st.ClosedAt = workflow.Now(ctx)
	st.CloseReason = reason
	if err := setStatus(ctx, st, StatusClosed); err != nil {
		return nil, err
	}
	workflow.GetLogger(ctx).Info("incident closed", "incident_id", st.IncidentID, "reason", reason, "alert_count", st.AlertCount)
	return st, nil
}

// recheck runs the skipped steps whose condition became true and records the
// incident's new status.
func recheck(run *steps) error {
	status := run.recheck()
	if status == "" {
		status = run.settled()
	}
	if status == run.st.Status {
		return nil
	}
	return setStatus(run.ctx, run.st, status)
}

// recheckVersion guards a change of behaviour: skipped steps used to be
// evaluated again only while no step had failed; now a failure that the
// playbook continued past (onError: continue) no longer stops them, so that
// "approval denied or expired, then escalate when alerts persist" works.
const recheckVersion = "recheck-after-continued-failure"

// recheckAllowed reports whether skipped steps are evaluated again now.
func recheckAllowed(ctx workflow.Context, st *IncidentState) bool {
	if len(st.Pending) == 0 || st.Stopped || st.Status == StatusReleased {
		return false
	}
	if st.Status != StatusFailed {
		return true
	}
	// Histories recorded before the change did not evaluate them here.
	return changeVersion(ctx, recheckVersion) >= 1
}
