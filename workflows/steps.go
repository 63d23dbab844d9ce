package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/playbooks"
)

// Step statuses in StepResult, besides StepSucceeded and StepFailed.
const (
	// StepSkipped: the step's condition was false. It is evaluated again
	// each time an alert joins the incident.
	StepSkipped = "skipped"
)

// Error types of failed steps that are not activity errors.
const (
	ErrTypeApprovalDenied    = "ApprovalDenied"
	ErrTypeApprovalExpired   = "ApprovalExpired"
	ErrTypeInvalidParameters = "InvalidParameters"
	ErrTypeInvalidCondition  = "InvalidCondition"
	ErrTypeUnknownAction     = "UnknownAction"
	// ErrTypeNotApproved: a destructive action without withoutApproval
	// whose nearest approval before it did not pass by its approvers' votes
	// (or did not plan it) is refused.
	ErrTypeNotApproved = "NotApproved"
)

// steps runs the playbook's steps. It keeps the incident's state and the
// environment that expressions see.
type steps struct {
	in  RespondInput
	st  *IncidentState
	ctx workflow.Context

	// slackBox runs the incident's Slack work (see slack), ticketBox its
	// ticket updates (see flushTicket).
	slackBox, ticketBox outbox

	// stop is set on steady incidents (see steadyVersion): a close or
	// release that arrived while the steps run.
	stop *stopRequest
}

// env is what step expressions see now: the first alert, the latest one, the
// incident, the steps so far and the workflow's time.
func (s *steps) env() playbooks.Env {
	st := s.st
	env := playbooks.NewEnv(*st.FirstAlert, playbooks.Incident{ID: st.IncidentID, Key: st.IncidentKey, AlertCount: st.AlertCount})
	env.Latest = *st.LatestAlert
	env.Now = workflow.Now(s.ctx)
	env.Steps = map[string]playbooks.StepView{}
	for _, r := range st.Steps {
		env.Steps[r.ID] = playbooks.StepView{Status: r.Status, Output: r.Output, Error: r.Error}
	}
	return env
}

// runAll runs every step in order and returns the incident's status.
func (s *steps) runAll() string {
	for i := range s.in.Playbook.Steps {
		if s.interrupted() {
			return stopInterrupted
		}
		if stop := s.run(i); stop != "" {
			return stop
		}
	}
	return s.settled()
}

// settled is the status of an incident whose steps ran without stopping.
func (s *steps) settled() string {
	if s.in.Playbook.Mode == playbooks.ModePlan {
		return StatusPlanned
	}
	if slices.ContainsFunc(s.st.Steps, func(r StepResult) bool { return r.Status == StepFailed }) {
		return StatusFailed
	}
	if slices.ContainsFunc(s.st.Steps, func(r StepResult) bool { return r.Degraded != "" }) {
		return StatusDegraded
	}
	return StatusContained
}

// recheck runs the skipped steps whose condition has become true, in
// playbook order. It returns a status when one of them stopped the playbook.
func (s *steps) recheck() string {
	pending := slices.Clone(s.st.Pending)
	for _, id := range pending {
		i := slices.IndexFunc(s.in.Playbook.Steps, func(p playbooks.StepSpec) bool { return p.ID == id })
		if i < 0 {
			continue
		}
		if s.interrupted() {
			return stopInterrupted
		}
		if stop := s.run(i); stop != "" {
			return stop
		}
	}
	return ""
}

// run runs step i unless its condition is false, and applies its onError. It
// returns the incident's status when the playbook must stop, else "".
func (s *steps) run(i int) string {
	step := s.in.Playbook.Steps[i]
	st := s.st
	st.Pending = slices.DeleteFunc(st.Pending, func(id string) bool { return id == step.ID })
	res := StepResult{ID: step.ID, Kind: step.StepKind(), Action: step.Action, StartedAt: workflow.Now(s.ctx)}
	var (
		out map[string]any
		err error
	)
	if step.If != "" {
		ok, cerr := playbooks.EvalCondition(step.If, s.env()) //workflowcheck:ignore
		switch {
		case cerr != nil:
			err = temporal.NewNonRetryableApplicationError(fmt.Sprintf("step %q: if: %v", step.ID, cerr), ErrTypeInvalidCondition, nil)
		case !ok:
			st.Pending = append(st.Pending, step.ID)
			if slices.ContainsFunc(st.Steps, func(r StepResult) bool { return r.ID == step.ID }) {
				return "" // still false: the skipped record stands
			}
			res.Status, res.FinishedAt = StepSkipped, res.StartedAt
			res.Error = "condition is false: " + step.If
			st.Steps = append(st.Steps, res)
			return ""
		}
	}
	if err == nil {
		switch res.Kind {
		case playbooks.KindWait:
			err = s.sleep(step)
		case playbooks.KindApproval:
			out, err = s.approve(step, i)
		default:
			out, err = s.action(step, &res)
		}
	}
	res.FinishedAt = workflow.Now(s.ctx)
	if err == nil {
		res.Status, res.Output = StepSucceeded, out
		s.pinPodUID(res)
		if why, _ := out["degraded"].(string); why != "" && changeVersion(s.ctx, degradedVersion) >= 1 {
			res.Degraded = why
		}
		st.record(res)
		s.ticketStep(res)
		return ""
	}
	res.Status, res.Output = StepFailed, out
	res.ErrorType, res.Error = errorFields(err)
	st.record(res)
	s.ticketStep(res)
	workflow.GetLogger(s.ctx).Error("step failed", "incident_id", st.IncidentID, "step", step.ID, "error", res.Error)
	if res.ErrorType == ErrTypeInterrupted {
		// The close or release that interrupted the step decides what
		// happens next, whatever the step's onError says.
		st.Stopped = true
		return stopInterrupted
	}
	switch step.OnError {
	case playbooks.OnErrorContinue:
		return ""
	case playbooks.OnErrorRelease:
		st.Stopped = true
		s.release()
		return StatusReleased
	default:
		st.Stopped = true
		return StatusFailed
	}
}

// sleep waits out a wait step; on a steady incident a close or release
// ends it early.
func (s *steps) sleep(step playbooks.StepSpec) error {
	if s.stop == nil {
		return workflow.Sleep(s.ctx, step.Wait)
	}
	if _, err := workflow.AwaitWithTimeout(s.ctx, step.Wait, s.interrupted); err != nil {
		return err
	}
	if s.interrupted() {
		return s.interruption(step.ID)
	}
	return nil
}

// defaultActionOptions apply to every action a playbook does not tune:
// retry transient failures with backoff for up to five minutes.
var defaultActionOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    30 * time.Second,
	ScheduleToCloseTimeout: 5 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    200 * time.Millisecond,
		BackoffCoefficient: 2,
		MaximumInterval:    30 * time.Second,
	},
}

func actionOptions(step playbooks.StepSpec, facts playbooks.ActionFacts) workflow.ActivityOptions {
	opts := defaultActionOptions
	if facts.Attempt > 0 {
		opts.StartToCloseTimeout = facts.Attempt
		opts.ScheduleToCloseTimeout = max(opts.ScheduleToCloseTimeout, 2*facts.Attempt)
	}
	opts.ScheduleToCloseTimeout = max(opts.ScheduleToCloseTimeout, facts.RetryFor)
	retry := *opts.RetryPolicy
	if step.Timeout > 0 {
		opts.ScheduleToCloseTimeout = step.Timeout
		opts.StartToCloseTimeout = min(opts.StartToCloseTimeout, step.Timeout)
	}
	if r := step.Retry; r != nil {
		if r.MaxAttempts > 0 {
			retry.MaximumAttempts = int32(r.MaxAttempts)
		}
		if r.InitialInterval > 0 {
			retry.InitialInterval = r.InitialInterval
		}
		if r.MaximumInterval > 0 {
			retry.MaximumInterval = r.MaximumInterval
		}
		if r.BackoffCoefficient > 0 {
			retry.BackoffCoefficient = r.BackoffCoefficient
		}
	}
	opts.RetryPolicy = &retry
	return opts
}

func (s *steps) action(step playbooks.StepSpec, res *StepResult) (map[string]any, error) {
	params, err := playbooks.EvalParams(step, s.env()) //workflowcheck:ignore
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidParameters, nil)
	}
	facts, known := s.facts(step.ID, step.Action)
	if !known {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("step %s: unknown action %q", step.ID, step.Action), ErrTypeUnknownAction, nil)
	}
	if s.generic() {
		params = withAlertDefaults(facts, *s.st.FirstAlert, s.st.PodUID, params)
	}
	if facts.Destructive && !step.WithoutApproval && s.in.Playbook.Mode != playbooks.ModePlan &&
		changeVersion(s.ctx, approvedPlanVersion) >= 1 {
		approved, err := s.approvedParams(step)
		if err != nil {
			res.Params = params
			return nil, err
		}
		params = approved
	}
	res.Params = params
	return s.execute(step.ID, step.Action, facts, params, nil, actionOptions(step, facts))
}

// genericActionsVersion guards a change of behaviour: actions used to run as
// per-action activity methods (only Quarantine existed) with the alert's pod
// filled in by the workflow; now every catalogue action runs as the activity
// named after it with an ActionRequest, the parameters recorded in the step
// include the ones filled from the alert, and release runs inverses.
const genericActionsVersion = "generic-actions"

// generic reports whether this incident runs actions the generic way.
func (s *steps) generic() bool {
	return changeVersion(s.ctx, genericActionsVersion) >= 1
}

// withAlertDefaults fills the parameters that the step left out and the
// action's facts say come from the alert, from the incident's first alert;
// the pod's UID, when the alert has none, is pinnedUID (IncidentState.PodUID).
// Empty alert fields fill nothing.
func withAlertDefaults(facts playbooks.ActionFacts, first alert.Alert, pinnedUID string, params map[string]any) map[string]any {
	if len(facts.FromAlert) == 0 {
		return params
	}
	k := first.Kubernetes
	fields := map[string]string{"namespace": k.Namespace, "pod": k.Pod, "podUID": cmp.Or(k.PodUID, pinnedUID)}
	out := make(map[string]any, len(params)+3)
	// Copying a map gives the same map in any order of iteration.
	//workflowcheck:ignore
	for name, v := range params {
		out[name] = v
	}
	for _, p := range facts.FromAlert {
		if _, set := out[p.Param]; set || fields[p.Field] == "" {
			continue
		}
		out[p.Param] = fields[p.Field]
	}
	return out
}

// execute runs one action with its parameters (and, for an inverse, the
// output of the action it undoes); in plan mode as a dry run.
func (s *steps) execute(stepID, action string, facts playbooks.ActionFacts, params, undo map[string]any, opts workflow.ActivityOptions) (map[string]any, error) {
	actx := workflow.WithActivityOptions(s.ctx, opts)
	dryRun := s.in.Playbook.Mode == playbooks.ModePlan
	var out map[string]any
	if !s.generic() {
		if action != contract.ActionQuarantine {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("step %s: unknown action %q", stepID, action), ErrTypeUnknownAction, nil)
		}
		first := s.st.FirstAlert.Kubernetes
		in := contract.QuarantineInput{
			IncidentID: s.st.IncidentID,
			Namespace:  stringParam(params, "namespace", first.Namespace),
			Pod:        stringParam(params, "pod", first.Pod),
			PodUID:     stringParam(params, "podUID", first.PodUID),
			DryRun:     dryRun,
		}
		err := workflow.ExecuteActivity(actx, contract.QuarantineActivity, in).Get(s.ctx, &out)
		return out, err
	}
	req := contract.ActionRequest{
		Action: action, IncidentID: s.st.IncidentID, Step: stepID,
		Params: params, Undo: undo, DryRun: dryRun,
	}
	if changeVersion(s.ctx, occurrenceVersion) >= 1 {
		req.Occurrence = s.st.occurrence()
	}
	if facts.Lane == playbooks.LaneSlack && !dryRun {
		return s.slackAction(req, opts)
	}
	if facts.Lane == playbooks.LaneTicket {
		req.Incident = &contract.IncidentContext{Playbook: s.st.Playbook, Ticket: s.ticketContext()}
		if action == contract.ActionTicketOpen && !dryRun {
			return s.openTicket(req, opts)
		}
	}
	var err error
	if queue := s.clusterQueue(action); queue != "" {
		if err := s.checkCluster(queue); err != nil {
			return nil, err
		}
		err = workflow.ExecuteActivity(workflow.WithActivityOptions(s.ctx, routed(opts, queue)), action, req).Get(s.ctx, &out)
		err = s.clusterError(err, queue)
	} else if facts.Lane == playbooks.LaneLocal && len(s.st.Steps) == 0 && s.localFirst() {
		err = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(s.ctx, localOptions(opts)), action, req).Get(s.ctx, &out)
	} else {
		err = workflow.ExecuteActivity(actx, action, req).Get(s.ctx, &out)
	}
	if err == nil && action == contract.ActionTicketResolve && s.st.Ticket != nil && out["skipped"] == nil {
		s.st.Ticket.Resolved = true // resolving again at close would repeat it
	}
	return out, err
}

// approvedPlanVersion guards a change of behaviour: a destructive action
// (unless its step says withoutApproval) runs only when the nearest approval
// step before it passed by its approvers' votes, and with the parameters
// that approval's plan showed them, not parameters evaluated again later.
// Whatever the playbook's if, onExpiry or onError say, and however the spec
// reached the workflow, nothing destructive runs on an expiry, a denial or
// a skipped approval.
const approvedPlanVersion = "destructive-runs-approved-plan"

// approvedParams returns the parameters that the nearest approval before
// step approved for it, or a NotApproved error.
func (s *steps) approvedParams(step playbooks.StepSpec) (map[string]any, error) {
	i := slices.IndexFunc(s.in.Playbook.Steps, func(p playbooks.StepSpec) bool { return p.ID == step.ID })
	var approval string
	for j := i - 1; j >= 0 && approval == ""; j-- {
		if s.in.Playbook.Steps[j].StepKind() == playbooks.KindApproval {
			approval = s.in.Playbook.Steps[j].ID
		}
	}
	refuse := func(why string) error {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("step %s: %s is destructive and %s", step.ID, step.Action, why), ErrTypeNotApproved, nil)
	}
	if approval == "" {
		return nil, refuse("no approval step comes before it")
	}
	var a *ApprovalState
	for _, cand := range s.st.Approvals {
		if cand.Step == approval {
			a = cand
		}
	}
	switch {
	case a == nil:
		return nil, refuse(fmt.Sprintf("approval %s was never asked (its if was false)", approval))
	case a.Outcome != playbooks.OutcomeApproved:
		return nil, refuse(fmt.Sprintf("approval %s did not pass by its approvers' votes (%s)", approval, cmp.Or(a.Outcome, "open")))
	}
	for _, p := range a.Plan {
		if p.Step == step.ID && p.Params != nil {
			return p.Params, nil
		}
	}
	return nil, refuse(fmt.Sprintf("approval %s (plan %s) did not show its parameters", approval, a.PlanHash))
}

// pinnedPodUIDVersion guards a change of behaviour: the UID that the
// incident's first action on the alert's pod found is pinned
// (IncidentState.PodUID) and later steps on that pod carry it, so that a
// namesake started meanwhile (a StatefulSet's web-0) is never acted on.
const pinnedPodUIDVersion = "pinned-pod-uid"

// pinPodUID pins the pod UID of a succeeded action on the first alert's pod,
// if the alert named none and none is pinned yet.
func (s *steps) pinPodUID(res StepResult) {
	first := s.st.FirstAlert.Kubernetes
	uid, _ := res.Output["podUID"].(string)
	if s.st.PodUID != "" || first.PodUID != "" || uid == "" || res.Kind != playbooks.KindAction ||
		res.Params["namespace"] != first.Namespace || res.Params["pod"] != first.Pod {
		return
	}
	if changeVersion(s.ctx, pinnedPodUIDVersion) >= 1 {
		s.st.PodUID = uid
	}
}

// occurrenceVersion guards a change of behaviour: actions learn which
// occurrence of the incident they serve (ActionRequest.Occurrence), and
// snapshots store each occurrence's evidence apart.
const occurrenceVersion = "evidence-per-occurrence"

// degradedVersion guards a change of behaviour: a succeeded step whose
// action reports "degraded" in its output (a quarantine that cannot cut all
// traffic) records why, and the incident settles as degraded instead of
// contained.
const degradedVersion = "degraded-containment"

// localFirstVersion guards a change of behaviour: the incident's first
// action, when its facts put it in LaneLocal, runs as a local activity in the
// workflow task that started the incident instead of as an activity of its
// own. What that costs in durability: the action's start is not recorded
// before it runs, so a worker that dies during it leaves nothing in the
// history, and the next worker to take the workflow task (after the
// workflow task timeout) runs the action again; LaneLocal actions are
// idempotent for this reason.
const localFirstVersion = "local-first-containment"

func (s *steps) localFirst() bool {
	return changeVersion(s.ctx, localFirstVersion) >= 1
}

// localOptions are an action's activity options for a local activity.
func localOptions(opts workflow.ActivityOptions) workflow.LocalActivityOptions {
	return workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: opts.ScheduleToCloseTimeout,
		StartToCloseTimeout:    opts.StartToCloseTimeout,
		RetryPolicy:            opts.RetryPolicy,
	}
}

// ticketStep tells the ticket about a step that ran after it was opened.
func (s *steps) ticketStep(r StepResult) {
	if f, _ := s.facts(r.ID, r.Action); f.Lane == playbooks.LaneTicket {
		return
	}
	line := fmt.Sprintf("step %s", r.ID)
	if r.Action != "" {
		line += " (" + r.Action + ")"
	}
	line += ": " + r.Status
	if r.Degraded != "" {
		line += " but degraded — " + r.Degraded
	}
	if r.Error != "" {
		line += " — " + r.ErrorType + ": " + r.Error
	}
	s.st.ticketLine(s.ctx, "%s", line)
}

// slackAction runs a Slack action in the incident's Slack coroutine, after
// the thread exists, and waits for it.
func (s *steps) slackAction(req contract.ActionRequest, opts workflow.ActivityOptions) (map[string]any, error) {
	done, set := workflow.NewFuture(s.ctx)
	s.slack(func(ctx workflow.Context) {
		t := s.thread(ctx)
		req.Incident = &contract.IncidentContext{
			Playbook: s.st.Playbook, SlackChannel: t.Channel, SlackThreadTS: t.TS, SlackSkipped: t.Skipped + t.Error,
		}
		var out map[string]any
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), req.Action, req).Get(ctx, &out)
		set.Set(out, err)
	})
	var out map[string]any
	err := done.Get(s.ctx, &out)
	return out, err
}

// release undoes, newest first, every succeeded action whose facts name an
// inverse. The inverse gets the action's parameters and, as Undo,
// its output: what it changed and what was there before. Incidents from
// before generic actions had no inverses and release nothing.
func (s *steps) release() {
	if !s.generic() {
		return
	}
	for i := len(s.st.Steps) - 1; i >= 0; i-- {
		r := s.st.Steps[i]
		if r.Status != StepSucceeded || r.Kind != playbooks.KindAction {
			continue
		}
		facts, _ := s.facts(r.ID, r.Action)
		if facts.Inverse == "" {
			continue
		}
		inverse := facts.Inverse
		res := StepResult{ID: r.ID + ".release", Kind: playbooks.KindAction, Action: inverse, Params: r.Params, StartedAt: workflow.Now(s.ctx)}
		if slices.ContainsFunc(s.st.Steps, func(done StepResult) bool { return done.ID == res.ID && done.Status == StepSucceeded }) {
			continue // released already
		}
		// An inverse runs as an activity of its own (no inverse is a Slack
		// or ticket action).
		out, err := s.execute(res.ID, inverse, playbooks.ActionFacts{}, r.Params, r.Output, defaultActionOptions)
		res.FinishedAt, res.Output, res.Status = workflow.Now(s.ctx), out, StepSucceeded
		if err != nil {
			res.Status = StepFailed
			res.ErrorType, res.Error = errorFields(err)
		}
		s.st.Steps = append(s.st.Steps, res)
		s.ticketStep(res)
	}
}

// errorFields returns an error's type and message as a step records them:
// an application error's own, else no type and the error's text.
func errorFields(err error) (errType, msg string) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type(), appErr.Message()
	}
	return "", err.Error()
}

// stringParam returns params[name] when it is a non-empty string, else def.
func stringParam(params map[string]any, name, def string) string {
	if s, ok := params[name].(string); ok && s != "" {
		return s
	}
	return def
}

// record adds a step's result, replacing the record of the same step when it
// was skipped earlier and has now run.
func (st *IncidentState) record(res StepResult) {
	i := slices.IndexFunc(st.Steps, func(r StepResult) bool { return r.ID == res.ID && r.Status == StepSkipped })
	if i >= 0 {
		st.Steps[i] = res
		return
	}
	st.Steps = append(st.Steps, res)
}
