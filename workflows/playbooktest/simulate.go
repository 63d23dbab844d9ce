package playbooktest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// simulatedString is the value of a string output field that no input
// parameter of the same name provides.
const simulatedString = "simulated"

// notInvented are output fields the simulation does not make up, with the
// value it gives them instead: "degraded" and "hostNetwork" would report a
// partial success, and the simulation is of actions that succeed; a pod UID
// it invented would be pinned into later steps' parameters as if a pod had
// been seen (it is echoed when the alert or the step gives one).
var notInvented = map[string]any{"degraded": "", "hostNetwork": false, "podUID": ""}

// closeReason is the reason the simulation closes every incident with.
const closeReason = "soar playbook test: every alert delivered"

// idleTimeout bounds, in wall-clock time, how long the test environment
// waits while nothing happens. Simulated actions return at once, so only a
// bug gets near it; the SDK's default of three seconds is tight on a busy CI
// runner.
const idleTimeout = 10 * time.Second

// incident is what a simulated incident did.
type incident struct {
	// state is the workflow's result, once it completed.
	state *workflows.IncidentState
	// statuses are the statuses the workflow set, in order, as the
	// SoarStatus search attribute saw them; the last before closed is the
	// status after the steps.
	statuses []string
	// outcome is the last outcome the workflow set (SoarOutcome).
	outcome string
	// delivered counts the alerts delivered before the incident closed.
	delivered int
	// problems are failures of the simulation itself: the workflow failed,
	// a vote was rejected.
	problems []string
}

// statusAfterSteps is the status the incident had once its steps ran, as
// author tests have always named it: contained, failed, planned or released,
// where a denied or expired approval is failed (outcomeAfterSteps tells them
// apart).
func (inc *incident) statusAfterSteps() string {
	switch inc.outcome {
	case workflows.OutcomeDenied, workflows.OutcomeExpired:
		return workflows.StatusFailed
	case "":
	default:
		return inc.outcome
	}
	for i := len(inc.statuses) - 1; i >= 0; i-- {
		if s := inc.statuses[i]; s != workflows.StatusClosed {
			return s
		}
	}
	return ""
}

// simulate runs the Respond workflow for match m of alert a in Temporal's
// test environment, as the dispatcher would start it, with every action
// simulated: nothing leaves the process. The alert arrives c.Repeat times,
// one simulated minute apart; approvers answer every approval the moment it
// opens, as c.Decisions says; one simulated minute after the last alert the
// incident is closed. Signals queue while steps run, so the close is handled
// only once the steps it raced with have finished.
func simulate(m playbooks.Match, a alert.Alert, c *Case, actions []Action) (inc *incident) {
	inc = &incident{}
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(idleTimeout)
	// Temporal fails a workflow task that runs for a second without
	// yielding, a guard against real deadlocks. On a loaded CI runner the
	// first task of a process (expression compiles, the SDK's own warm-up)
	// can take that long; expressions are compiled beforehand, and the
	// guard is widened to what a real deadlock would still trip.
	env.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: 5 * time.Second})
	if err := playbooks.Precompile(m.Playbook.Spec()); err != nil {
		inc.problems = append(inc.problems, fmt.Sprintf("compile the playbook's step expressions: %v", err))
		return inc
	}
	// Starting the clock at the alert's time keeps step expressions that
	// compare now with alert.time meaningful, and every run alike.
	if !a.Time.IsZero() {
		env.SetStartTime(a.Time)
	}
	env.RegisterWorkflowWithOptions(workflows.Respond, workflow.RegisterOptions{Name: workflows.RespondName})
	simulateActions(env, actions)
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if sa, ok := args.Get(0).(temporal.SearchAttributes); ok {
			if s, ok := sa.GetKeyword(workflows.SearchStatus); ok {
				inc.statuses = append(inc.statuses, s)
			}
			if o, ok := sa.GetKeyword(workflows.SearchOutcome); ok {
				inc.outcome = o
			}
		}
	}).Return().Maybe()

	answered := map[string]bool{}
	answer := func() {
		if env.IsWorkflowCompleted() {
			return
		}
		v, err := env.QueryWorkflow(workflows.QueryState)
		if err != nil {
			return // the state query is registered once the workflow runs
		}
		var st workflows.IncidentState
		if err := v.Get(&st); err != nil {
			inc.problems = append(inc.problems, fmt.Sprintf("query the incident's state: %v", err))
			return
		}
		for _, ap := range st.Approvals {
			if ap.Outcome != "" || answered[ap.Step] {
				continue
			}
			answered[ap.Step] = true
			vote(env, ap, c.Decisions[ap.Step], inc)
		}
	}
	// Every approval waits with a timer, so a timer being scheduled is the
	// moment to look for a new one. The listener runs inside workflow code:
	// it only queues the look for the test environment's main loop.
	env.SetOnTimerScheduledListener(func(string, time.Duration) {
		env.RegisterDelayedCallback(answer, 0)
	})

	// The incident closes once no approval is open: a close interrupts a
	// pending approval, and the case's decisions (expire among them) must
	// play out first.
	var closeWhenDecided func()
	closeWhenDecided = func() {
		if env.IsWorkflowCompleted() {
			return
		}
		if v, err := env.QueryWorkflow(workflows.QueryState); err == nil {
			var st workflows.IncidentState
			if err := v.Get(&st); err == nil {
				var wait time.Duration
				for _, ap := range st.Approvals {
					if ap.Outcome == "" {
						wait = max(wait, ap.Deadline.Sub(env.Now())+time.Second)
					}
				}
				if wait > 0 {
					env.RegisterDelayedCallback(closeWhenDecided, wait)
					return
				}
			}
		}
		env.SignalWorkflow(workflows.SignalClose, closeReason)
	}
	var deliver func(n int)
	deliver = func(n int) {
		env.SignalWorkflow(workflows.SignalAlert, workflows.AlertSignal{Alert: a, DeliveryID: fmt.Sprintf("test:%d", n)})
		inc.delivered = n
		if n < c.Repeat {
			env.RegisterDelayedCallback(func() { deliver(n + 1) }, time.Minute)
			return
		}
		env.RegisterDelayedCallback(closeWhenDecided, time.Minute)
	}
	env.RegisterDelayedCallback(func() { deliver(1) }, 0)

	in := workflows.RespondInput{
		IncidentID:  m.IncidentID(),
		IncidentKey: m.IncidentKey,
		Playbook:    m.Playbook.Spec(),
		Baseline:    workflows.Baseline,
	}
	if err := execute(env, in); err != nil {
		inc.problems = append(inc.problems, err.Error())
		return inc
	}
	if !env.IsWorkflowCompleted() {
		inc.problems = append(inc.problems, "the simulated incident did not complete")
		return inc
	}
	if err := env.GetWorkflowError(); err != nil {
		inc.problems = append(inc.problems, fmt.Sprintf("the Respond workflow failed: %v", err))
		return inc
	}
	var st workflows.IncidentState
	if err := env.GetWorkflowResult(&st); err != nil {
		inc.problems = append(inc.problems, fmt.Sprintf("read the incident's final state: %v", err))
		return inc
	}
	inc.state = &st
	return inc
}

// execute runs the workflow and turns a panic of the test environment (it
// panics when a workflow is stuck) into an error.
func execute(env *testsuite.TestWorkflowEnvironment, in workflows.RespondInput) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the simulated incident did not complete: %v", r)
		}
	}()
	env.ExecuteWorkflow(workflows.RespondName, in)
	return nil
}

// vote answers approval ap as decision says; an empty decision is
// DecisionExpire. Each vote is its own Update with an ID of its own, because
// Temporal deduplicates Updates by ID.
func vote(env *testsuite.TestWorkflowEnvironment, ap *workflows.ApprovalState, decision string, inc *incident) {
	var votes []workflows.Decision
	switch voters := simulatedVoters(ap); decision {
	case DecisionApprove:
		for _, d := range voters[:min(max(ap.Quorum, 1), len(voters))] {
			d.Approve = true
			votes = append(votes, d)
		}
	case DecisionDeny:
		if len(voters) > 0 {
			votes = append(votes, voters[0])
		}
	}
	for _, d := range votes {
		env.UpdateWorkflow(workflows.UpdateDecide, fmt.Sprintf("test:%s:%s", d.Step, d.User), &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) {
				inc.problems = append(inc.problems, fmt.Sprintf("approval %q: the vote of %s was rejected: %v", d.Step, d.User, err))
			},
			OnComplete: func(_ any, err error) {
				if err != nil {
					inc.problems = append(inc.problems, fmt.Sprintf("approval %q: the vote of %s failed: %v", d.Step, d.User, err))
				}
			},
		}, d)
	}
}

// simulatedVoters are distinct allowed voters of ap: each user approver,
// and for a user group as many simulated members as the quorum needs. The
// requester, if any, never votes. Each names the plan it saw, as Slack's
// buttons do.
func simulatedVoters(ap *workflows.ApprovalState) []workflows.Decision {
	var out []workflows.Decision
	for _, id := range ap.Approvers {
		if !playbooks.IsUserGroup(id) {
			out = append(out, workflows.Decision{Step: ap.Step, User: id, Source: "simulated", Comment: "soar playbook test", PlanHash: ap.PlanHash})
			continue
		}
		for n := range max(ap.Quorum, 1) {
			user := fmt.Sprintf("U%sMEMBER%d", strings.TrimPrefix(id, "S"), n+1)
			out = append(out, workflows.Decision{Step: ap.Step, User: user, Groups: []string{id}, Source: "simulated", Comment: "soar playbook test", PlanHash: ap.PlanHash})
		}
	}
	return out
}

// simulateActions registers, for every action, an activity of its name that
// succeeds at once and returns simulatedOutput, since Respond runs actions by
// their names; the Slack and ticket activities as a worker without Slack or
// a ticket provider runs them; and ClusterCheck as if every cluster had its
// worker.
func simulateActions(env *testsuite.TestWorkflowEnvironment, actions []Action) {
	for _, action := range actions {
		env.RegisterActivityWithOptions(simulator(action), activity.RegisterOptions{Name: action.Name})
	}
	env.RegisterActivityWithOptions(func(context.Context, contract.SlackThreadRequest) (contract.SlackThreadResult, error) {
		return contract.SlackThreadResult{Skipped: "Slack is not configured on the worker (SOAR_SLACK_BOT_TOKEN)"}, nil
	}, activity.RegisterOptions{Name: contract.SlackThreadActivity})
	env.RegisterActivityWithOptions(func(context.Context, contract.SlackApprovalRequest) (contract.MessageRef, error) {
		return contract.MessageRef{}, temporal.NewNonRetryableApplicationError("Slack is not configured on the worker", "Slack", nil)
	}, activity.RegisterOptions{Name: contract.SlackApprovalActivity})
	env.RegisterActivityWithOptions(func(context.Context, contract.SlackNoteRequest) (contract.MessageRef, error) {
		return contract.MessageRef{}, nil
	}, activity.RegisterOptions{Name: contract.SlackNoteActivity})
	// An alert that names a cluster finds that cluster's worker: author
	// tests are about the playbook, not about which workers run.
	env.RegisterActivityWithOptions(func(context.Context, contract.ClusterCheckRequest) error { return nil },
		activity.RegisterOptions{Name: contract.ClusterCheckActivity})
	env.RegisterActivityWithOptions(func(_ context.Context, req contract.TicketUpdateRequest) error {
		return temporal.NewNonRetryableApplicationError("this worker has no ticket provider (--ticket-provider): the ticket "+req.Ticket.Key+" was not updated", "Ticket", nil)
	}, activity.RegisterOptions{Name: contract.TicketUpdateActivity})
}

// simulator returns the activity of action: it answers every request with
// simulatedOutput of the request's fields.
func simulator(action Action) func(context.Context, contract.ActionRequest) (map[string]any, error) {
	return func(_ context.Context, req contract.ActionRequest) (map[string]any, error) {
		return simulatedOutput(action, requestFields(req)), nil
	}
}

// requestFields are the fields an action reads from req, as the real
// activities decode them: the output of the action an inverse undoes (Undo),
// then the step's parameters, which win; and dryRun, false included.
func requestFields(req contract.ActionRequest) map[string]any {
	in := make(map[string]any, len(req.Undo)+len(req.Params)+1)
	maps.Copy(in, req.Undo)
	maps.Copy(in, req.Params)
	in["dryRun"] = req.DryRun
	return in
}

// simulatedOutput is a plausible output of action for input in: every
// output field of the catalogue entry, taken from the input field of the
// same name when there is one (namespace, pod, dryRun), else "simulated"
// for strings, true for booleans, 1 for numbers, and an empty map or list.
func simulatedOutput(action Action, in map[string]any) map[string]any {
	out := make(map[string]any, len(action.Output))
	for _, f := range action.Output {
		v, ok := in[f.Name]
		if s, isString := v.(string); ok && (!isString || s != "") {
			out[f.Name] = v
			continue
		}
		if v, ok := notInvented[f.Name]; ok {
			out[f.Name] = v
			continue
		}
		switch f.Type {
		case "bool":
			out[f.Name] = true
		case "int", "integer", "number":
			out[f.Name] = 1
		case "map":
			out[f.Name] = map[string]any{}
		case "list":
			out[f.Name] = []any{}
		default:
			out[f.Name] = simulatedString
		}
	}
	return out
}
