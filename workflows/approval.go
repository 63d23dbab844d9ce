package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/internal/proof"
	"github.com/soar-dev/soar/playbooks"
)

// UpdateDecide delivers a Decision on an open approval. Its validator
// rejects, with a reason the voter sees, a vote on no open approval, on an
// expired or decided one, by someone who is not an approver, by the
// approval's requester, or a second vote by the same approver.
const UpdateDecide = "decide"

// Vote sources, as recorded in Vote.Source.
const (
	SourceSlack = "slack"
	SourceCLI   = "cli"
	SourceAPI   = "api"
	// SourceConsole is the web console's.
	SourceConsole = "console"
)

// Decision is one approver's vote, as serve sends it: from a Slack click
// after checking Slack's request signature, from the API ('soar approve'
// uses it) after checking the voter's token. Serve proves it (Proof); the
// workflow takes no vote without that proof.
type Decision struct {
	// Step names the approval step; empty means the only open one.
	Step    string `json:"step,omitempty"`
	User    string `json:"user"`
	Approve bool   `json:"approve"`
	Comment string `json:"comment,omitempty"`
	// Source is slack, cli or api.
	Source string `json:"source,omitempty"`
	// Name and Email are the voter's Slack handle and e-mail, when known;
	// they are compared with the approval's requester.
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	// Team is the voter's Slack workspace.
	Team string `json:"team,omitempty"`
	// Groups lists the user groups among the approvers that the voter is a
	// member of, as the Slack API said when the vote was cast.
	Groups []string `json:"groups,omitempty"`
	// PlanHash is the plan the voter saw (from the Slack button); a vote on
	// another plan is refused.
	PlanHash string `json:"planHash,omitempty"`
	// Person is the human behind the vote, when serve knows it: a Slack
	// vote's user ID, or the Slack user an API token belongs to. One
	// person's votes count once, whichever identity cast them.
	Person string `json:"person,omitempty"`
	// Proof is serve's proof of this decision on the approval it names
	// (see SignDecision): serve authenticated the voter and resolved their
	// groups, so the identity fields above are serve's word, not the
	// sender's.
	Proof string `json:"proof,omitempty"`
}

// Vote is a recorded Decision.
type Vote struct {
	User    string    `json:"user"`
	Name    string    `json:"name,omitempty"`
	Team    string    `json:"team,omitempty"`
	Source  string    `json:"source,omitempty"`
	Approve bool      `json:"approve"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
	// Via names the user group the voter approved through, if any.
	Via string `json:"via,omitempty"`
	// Person is Decision.Person.
	Person string `json:"person,omitempty"`
}

// PlannedAction is one action an approval lets run: the approvers see it
// before they vote.
type PlannedAction struct {
	Step        string         `json:"step"`
	Action      string         `json:"action"`
	Params      map[string]any `json:"params,omitempty"`
	Destructive bool           `json:"destructive,omitempty"`
	// If is the step's condition, when it has one.
	If string `json:"if,omitempty"`
}

// ApprovalState is one approval step's request and its votes.
type ApprovalState struct {
	Step      string   `json:"step"`
	Approvers []string `json:"approvers"`
	Quorum    int      `json:"quorum"`
	Message   string   `json:"message,omitempty"`
	// Requester is the identity the approval is about; it may not vote.
	Requester string    `json:"requester,omitempty"`
	OpenedAt  time.Time `json:"openedAt"`
	Deadline  time.Time `json:"deadline"`
	OnExpiry  string    `json:"onExpiry,omitempty"`
	// Plan is what runs if the approval passes: the action steps after it,
	// up to the next approval, with their parameters as of the request.
	// PlanHash is the first 12 hex digits of its SHA-256, shown to the
	// approvers and carried by their Slack buttons.
	Plan     []PlannedAction `json:"plan,omitempty"`
	PlanHash string          `json:"planHash,omitempty"`
	Votes    []Vote          `json:"votes,omitempty"`
	// Escalated is set when the escalation delay passed undecided.
	Escalated   bool      `json:"escalated,omitempty"`
	EscalatedAt time.Time `json:"escalatedAt,omitzero"`
	Reminders   int       `json:"reminders,omitempty"`
	// Outcome is empty while open, then approved, denied or expired.
	Outcome   string    `json:"outcome,omitempty"`
	DecidedAt time.Time `json:"decidedAt,omitzero"`
	// Slack holds the request's messages: in the incident's thread, and
	// in the escalation channel once escalated. SlackError is the last
	// failure to post or update them.
	Slack      []SlackMessage `json:"slack,omitempty"`
	SlackError string         `json:"slackError,omitempty"`

	escalation *playbooks.Escalation
	// version is bumped at every change the Slack message shows; rendered
	// is the version Slack shows.
	version, rendered int
}

// Approved counts the votes that approve.
func (a *ApprovalState) Approved() int {
	n := 0
	for _, v := range a.Votes {
		if v.Approve {
			n++
		}
	}
	return n
}

func (a *ApprovalState) changed() { a.version++ }

// destructive reports whether the approval's plan holds a destructive
// action.
func (a *ApprovalState) destructive() bool {
	return slices.ContainsFunc(a.Plan, func(p PlannedAction) bool { return p.Destructive })
}

// planActions lists the plan's steps and actions, for people.
func planActions(plan []PlannedAction) string {
	parts := make([]string, len(plan))
	for i, p := range plan {
		parts[i] = p.Step + ": " + p.Action
	}
	return strings.Join(parts, ", ")
}

// validateDecision is the Update validator: it reads and never changes
// state. Its error is what the voter is told.
func (st *IncidentState) validateDecision(ctx workflow.Context, keys *proof.Keys, d Decision) error {
	if d.User == "" {
		return errors.New("a vote needs the voter's identity")
	}
	a := st.OpenApproval(d.Step)
	if a == nil {
		return st.noOpenApproval(d.Step)
	}
	// Validators never run in replay; the check's JSON encoding is
	// deterministic anyway (encoding/json sorts map keys).
	err := verifyDecision(keys, st.IncidentID, a, d) //workflowcheck:ignore
	if err != nil {
		return err
	}
	if now := workflow.Now(ctx); !now.Before(a.Deadline) {
		return fmt.Errorf("the approval of step %q expired at %s", a.Step, a.Deadline.UTC().Format(time.RFC3339))
	}
	if d.PlanHash != "" && d.PlanHash != a.PlanHash {
		return fmt.Errorf("this vote is for plan %s, but step %q asks about plan %s", d.PlanHash, a.Step, a.PlanHash)
	}
	if a.Requester != "" && isRequester(a.Requester, d) {
		return fmt.Errorf("%s is the requester of step %q (%s) and cannot vote on it", d.User, a.Step, a.Requester)
	}
	if via := allowedVia(a.Approvers, d); via == "" {
		return fmt.Errorf("%s is not an approver of step %q (approvers: %s)", d.User, a.Step, strings.Join(a.Approvers, ", "))
	}
	if slices.ContainsFunc(a.Votes, func(v Vote) bool { return v.User == d.User }) {
		return fmt.Errorf("%s has already voted on step %q", d.User, a.Step)
	}
	if i := slices.IndexFunc(a.Votes, func(v Vote) bool { return samePerson(v, d) }); i >= 0 {
		return fmt.Errorf("%s is %s, who has already voted on step %q as %s: one person counts once", d.User, d.Person, a.Step, a.Votes[i].User)
	}
	if d.Approve && d.PlanHash == "" && a.destructive() {
		return fmt.Errorf("step %q asks to approve a destructive plan (%s): an approval must name it by its hash, plan %s, to show that the voter saw what will run", a.Step, planActions(a.Plan), a.PlanHash)
	}
	return nil
}

// noOpenApproval explains why no approval takes a vote.
func (st *IncidentState) noOpenApproval(step string) error {
	for i := len(st.Approvals) - 1; i >= 0; i-- {
		a := st.Approvals[i]
		if step != "" && a.Step != step {
			continue
		}
		switch a.Outcome {
		case playbooks.OutcomeExpired:
			return fmt.Errorf("the approval of step %q expired at %s", a.Step, a.DecidedAt.UTC().Format(time.RFC3339))
		case "":
		default:
			return fmt.Errorf("the approval of step %q is closed: it was %s at %s", a.Step, a.Outcome, a.DecidedAt.UTC().Format(time.RFC3339))
		}
	}
	if step != "" {
		return fmt.Errorf("no open approval for step %q", step)
	}
	return errors.New("no approval is open")
}

// samePerson reports whether the vote v and the decision d are the same
// human's, as serve knows people: by Slack user ID.
func samePerson(v Vote, d Decision) bool {
	if d.Person == "" {
		return false
	}
	return v.Person == d.Person || v.User == d.Person
}

// allowedVia returns what makes d's voter an approver: their own ID, or a
// user group among the approvers that they belong to. "" means neither. A
// group ID is never a voter itself.
func allowedVia(approvers []string, d Decision) string {
	if !playbooks.IsUserGroup(d.User) && slices.Contains(approvers, d.User) {
		return d.User
	}
	for _, g := range d.Groups {
		if playbooks.IsUserGroup(g) && slices.Contains(approvers, g) {
			return g
		}
	}
	return ""
}

// isRequester reports whether the voter is the approval's requester: by
// Slack ID, handle or e-mail, or by the name of a cli: or api: identity,
// ignoring case.
func isRequester(requester string, d Decision) bool {
	ids := []string{d.User, d.Name, d.Email}
	if _, name, ok := strings.Cut(d.User, ":"); ok {
		ids = append(ids, name)
	}
	return slices.ContainsFunc(ids, func(id string) bool { return id != "" && strings.EqualFold(id, requester) })
}

// OpenApproval returns the open approval of step, or the only open one
// when step is empty; nil when there is none.
func (st *IncidentState) OpenApproval(step string) *ApprovalState {
	for _, a := range st.Approvals {
		if a.Outcome == "" && (step == "" || a.Step == step) {
			return a
		}
	}
	return nil
}

// decide records a validated vote: one denial denies, and the approval passes
// when Quorum distinct approvers approved.
func (st *IncidentState) decide(ctx workflow.Context, d Decision) (ApprovalState, error) {
	a := st.OpenApproval(d.Step)
	if a == nil {
		return ApprovalState{}, st.noOpenApproval(d.Step)
	}
	now := workflow.Now(ctx)
	a.Votes = append(a.Votes, Vote{
		User: d.User, Name: d.Name, Team: d.Team, Source: d.Source,
		Approve: d.Approve, Comment: d.Comment, At: now, Via: viaGroup(allowedVia(a.Approvers, d), d.User), Person: d.Person,
	})
	switch {
	case !d.Approve:
		a.Outcome, a.DecidedAt = playbooks.OutcomeDenied, now
	case a.Approved() >= a.Quorum:
		a.Outcome, a.DecidedAt = playbooks.OutcomeApproved, now
	}
	a.changed()
	verb := "denied"
	if d.Approve {
		verb = "approved"
	}
	st.ticketLine(ctx, "%s %s step %s (%s)", d.User, verb, a.Step, d.Source)
	workflow.GetLogger(ctx).Info("vote recorded", "incident_id", st.IncidentID, "step", a.Step,
		"user", d.User, "source", d.Source, "approve", d.Approve, "outcome", a.Outcome)
	return *a, nil
}

func viaGroup(via, user string) string {
	if via == user {
		return ""
	}
	return via
}

// slackApprovalsVersion guards a change of behaviour: approvals used to
// wait silently for votes; now they compute their plan, evaluate the
// requester, post the request to Slack, remind, escalate and post the
// outcome.
const slackApprovalsVersion = "slack-approvals"

// approve opens the approval of step i and waits, durably, until it is
// decided or its timeout passes, reminding and escalating on the way.
func (s *steps) approve(step playbooks.StepSpec, i int) (map[string]any, error) {
	cfg := step.Approval
	if cfg == nil {
		cfg = &playbooks.Approval{Quorum: 1, Timeout: playbooks.DefaultApprovalTimeout, OnExpiry: "deny"}
	}
	v := changeVersion(s.ctx, slackApprovalsVersion)
	now := workflow.Now(s.ctx)
	a := &ApprovalState{
		Step: step.ID, Approvers: slices.Clone(cfg.Approvers), Quorum: max(cfg.Quorum, 1), Message: cfg.Message,
		OpenedAt: now, Deadline: now.Add(cfg.Timeout), escalation: cfg.Escalate, rendered: -1,
	}
	if v >= 1 {
		a.OnExpiry = cfg.OnExpiry
		a.Plan, a.PlanHash = s.plan(i)
		if cfg.Requester != "" {
			r, err := playbooks.EvalString(cfg.Requester, s.env()) //workflowcheck:ignore
			if err != nil {
				return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("step %q: approval.requester: %v", step.ID, err), ErrTypeInvalidParameters, nil)
			}
			a.Requester = r
		}
	}
	s.st.Approvals = append(s.st.Approvals, a)
	status := s.st.Status
	if err := setStatus(s.ctx, s.st, StatusAwaitingApproval); err != nil {
		return nil, err
	}
	if v >= 1 {
		if err := s.wait(a, cfg); err != nil {
			return nil, err
		}
	} else {
		decided, err := workflow.AwaitWithTimeout(s.ctx, cfg.Timeout, func() bool { return a.Outcome != "" })
		if err != nil {
			return nil, err
		}
		if !decided {
			a.Outcome = playbooks.OutcomeExpired
		}
	}
	if err := setStatus(s.ctx, s.st, status); err != nil {
		return nil, err
	}
	out := map[string]any{"outcome": a.Outcome, "votes": votesOutput(a.Votes)}
	switch {
	case a.Outcome == OutcomeInterrupted:
		return out, s.interruption(step.ID)
	case a.Outcome == playbooks.OutcomeApproved:
		return out, nil
	case a.Outcome == playbooks.OutcomeExpired && cfg.OnExpiry == "approve":
		return out, nil
	case a.Outcome == playbooks.OutcomeExpired:
		return out, temporal.NewNonRetryableApplicationError(fmt.Sprintf("approval %q expired after %s with no decision", step.ID, cfg.Timeout), ErrTypeApprovalExpired, nil)
	default:
		return out, temporal.NewNonRetryableApplicationError(fmt.Sprintf("approval %q denied", step.ID), ErrTypeApprovalDenied, nil)
	}
}

// wait posts the request and waits for the outcome on durable timers:
// reminders every Remind, escalation after Escalate.After, expiry at the
// deadline. Slack work runs beside it, so a Slack outage never delays a
// decision taken by the CLI or the API.
func (s *steps) wait(a *ApprovalState, cfg *playbooks.Approval) error {
	ctx := s.ctx
	s.renderApproval(a)
	var remindAt, escalateAt time.Time
	if cfg.Remind > 0 {
		remindAt = a.OpenedAt.Add(cfg.Remind)
	}
	if e := cfg.Escalate; e != nil {
		escalateAt = a.OpenedAt.Add(e.After)
	}
	for a.Outcome == "" {
		now := workflow.Now(ctx)
		switch {
		case s.interrupted():
			a.Outcome, a.DecidedAt = OutcomeInterrupted, now
			a.changed()
			continue
		case !now.Before(a.Deadline):
			a.Outcome, a.DecidedAt = playbooks.OutcomeExpired, now
			a.changed()
			continue
		case !escalateAt.IsZero() && !now.Before(escalateAt):
			escalateAt = time.Time{}
			s.escalate(a, cfg.Escalate, now)
			continue
		case !remindAt.IsZero() && !now.Before(remindAt):
			remindAt = remindAt.Add(cfg.Remind)
			a.Reminders++
			s.remind(a)
			continue
		}
		next := a.Deadline
		for _, t := range []time.Time{remindAt, escalateAt} {
			if !t.IsZero() && t.Before(next) {
				next = t
			}
		}
		votes := len(a.Votes)
		if _, err := workflow.AwaitWithTimeout(ctx, next.Sub(now), func() bool {
			return a.Outcome != "" || len(a.Votes) != votes || s.interrupted()
		}); err != nil {
			return err
		}
		if len(a.Votes) != votes {
			s.flushTicket(false, "") // votes are rare: the ticket hears of each at once
		}
		if len(a.Votes) != votes && a.Outcome == "" {
			s.renderApproval(a) // show the vote; the outcome is shown below
		}
	}
	s.announceOutcome(a)
	s.st.ticketLine(s.ctx, "approval %s: %s", a.Step, a.Outcome)
	s.flushTicket(false, "")
	return nil
}

// escalate widens the approval: the escalation's approvers may vote too,
// and the request goes to the escalation channel, or again to the thread.
func (s *steps) escalate(a *ApprovalState, e *playbooks.Escalation, now time.Time) {
	for _, id := range e.Approvers {
		if !slices.Contains(a.Approvers, id) {
			a.Approvers = append(a.Approvers, id)
		}
	}
	a.Escalated, a.EscalatedAt = true, now
	a.changed()
	workflow.GetLogger(s.ctx).Info("approval escalated", "incident_id", s.st.IncidentID, "step", a.Step, "approvers", a.Approvers)
	s.escalationNotice(a, e)
}

// plan lists the action steps after step i, up to the next approval, with
// their parameters evaluated now, and hashes it.
func (s *steps) plan(i int) ([]PlannedAction, string) {
	var plan []PlannedAction
	for _, later := range s.in.Playbook.Steps[i+1:] {
		kind := later.StepKind()
		if kind == playbooks.KindApproval {
			break
		}
		if kind != playbooks.KindAction {
			continue
		}
		facts, _ := s.facts(later.ID, later.Action)
		p := PlannedAction{Step: later.ID, Action: later.Action, If: later.If, Destructive: facts.Destructive}
		params, err := playbooks.EvalParams(later, s.env()) //workflowcheck:ignore
		if err == nil {
			p.Params = withAlertDefaults(facts, *s.st.FirstAlert, s.st.PodUID, params)
		}
		plan = append(plan, p)
	}
	// encoding/json writes map keys in order: the same plan always gives
	// the same bytes.
	raw, _ := json.Marshal(plan) //workflowcheck:ignore
	sum := sha256.Sum256(raw)
	return plan, hex.EncodeToString(sum[:])[:12]
}

func votesOutput(votes []Vote) []any {
	out := make([]any, len(votes))
	for i, v := range votes {
		out[i] = map[string]any{"user": v.User, "approve": v.Approve, "comment": v.Comment, "at": v.At.Format(time.RFC3339), "source": v.Source}
	}
	return out
}
