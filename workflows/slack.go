package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/playbooks"
)

// SlackThread is the incident's Slack thread: its root message. Skipped
// says why there is none (no Slack on the worker, no channel); Error is a
// failure that retrying cannot fix (channel not found, bad token).
type SlackThread struct {
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
}

// SlackMessage locates one message soar posted.
type SlackMessage struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// usable reports whether messages can go to the thread.
func (t *SlackThread) usable() bool { return t != nil && t.TS != "" }

// slackOptions bound one Slack call: a short attempt, retried with backoff
// (a 429's Retry-After comes back as the next delay) for up to ten minutes.
var slackOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    15 * time.Second,
	ScheduleToCloseTimeout: 10 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
	},
}

// job is one piece of outside work (Slack, tickets) that runs beside the
// steps, in order, in a coroutine of its own.
type job func(ctx workflow.Context)

// outbox runs jobs one at a time, in the order they were queued, so that
// the work for one outside system never blocks the steps and never races
// with itself (the thread's root message is posted before any reply).
type outbox struct {
	ch           workflow.Channel
	queued, done int
}

// add queues j, starting the coroutine on first use.
func (o *outbox) add(ctx workflow.Context, j job) {
	if o.ch == nil {
		o.ch = workflow.NewBufferedChannel(ctx, 1<<20)
		workflow.Go(ctx, func(ctx workflow.Context) {
			for {
				var next job
				o.ch.Receive(ctx, &next)
				next(ctx)
				o.done++
			}
		})
	}
	o.queued++
	o.ch.Send(ctx, j)
}

// flush gives queued jobs up to limit to finish. An outbox with nothing
// queued creates no timer.
func (o *outbox) flush(ctx workflow.Context, limit time.Duration) error {
	if o.done == o.queued {
		return nil
	}
	_, err := workflow.AwaitWithTimeout(ctx, limit, func() bool { return o.done == o.queued })
	return err
}

// slack queues Slack work.
func (s *steps) slack(j job) { s.slackBox.add(s.ctx, j) }

// flushSlack gives queued Slack work up to a minute to finish, before the
// incident closes or continues as new.
func (s *steps) flushSlack() error { return s.slackBox.flush(s.ctx, time.Minute) }

// thread returns the incident's thread, posting its root message first if
// need be. It runs in the Slack coroutine only.
func (s *steps) thread(ctx workflow.Context) *SlackThread {
	st := s.st
	if st.Slack != nil {
		return st.Slack
	}
	first := st.FirstAlert
	req := contract.SlackThreadRequest{
		IncidentID: st.IncidentID,
		Channel:    s.in.Playbook.SlackChannel,
		OpenedAt:   st.OpenedAt,
		View: contract.IncidentSummary{
			IncidentID: st.IncidentID, Title: first.Rule, Severity: s.severity(), Playbook: st.Playbook, Summary: first.Summary,
			Target: contract.Target{Namespace: first.Kubernetes.Namespace, Pod: first.Kubernetes.Pod, Node: first.Kubernetes.Node, Cluster: first.Cluster},
		},
	}
	var res contract.SlackThreadResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, slackOptions), contract.SlackThreadActivity, req).Get(ctx, &res)
	switch {
	case err == nil:
		st.Slack = &SlackThread{Channel: res.Channel, TS: res.TS, Skipped: res.Skipped}
	case isPermanent(err):
		st.Slack = &SlackThread{Error: errorMessage(err)}
	default:
		// Slack was down for the whole retry budget: the next Slack job
		// tries again.
		workflow.GetLogger(ctx).Warn("slack thread not posted", "incident_id", st.IncidentID, "error", errorMessage(err))
		return &SlackThread{Error: errorMessage(err)}
	}
	if st.Slack.Error != "" {
		workflow.GetLogger(ctx).Error("slack thread not posted", "incident_id", st.IncidentID, "error", st.Slack.Error)
	}
	return st.Slack
}

// severity is the incident's severity, as the dispatcher recorded it.
func (s *steps) severity() string {
	sev, _ := workflow.GetTypedSearchAttributes(s.ctx).GetKeyword(SearchSeverity)
	return sev
}

// renderApproval queues the rendering of the approval's messages. Each
// rendering shows the state at the time it runs, so changes that pile up
// while Slack is slow cost one update, not one each.
func (s *steps) renderApproval(a *ApprovalState) {
	s.slack(func(ctx workflow.Context) {
		if a.rendered == a.version {
			return
		}
		t := s.thread(ctx)
		if !t.usable() {
			return
		}
		version := a.version
		s.syncApprovalMessage(ctx, a, t, 0, "")
		if a.Escalated && a.escalation != nil && a.escalation.Channel != "" {
			s.syncApprovalMessage(ctx, a, t, 1, a.escalation.Channel)
		}
		a.rendered = version
	})
}

// syncApprovalMessage posts or updates message i of the approval: 0 in the
// thread (also shown in the channel), 1 in the escalation channel.
func (s *steps) syncApprovalMessage(ctx workflow.Context, a *ApprovalState, t *SlackThread, i int, channel string) {
	req := contract.SlackApprovalRequest{
		IncidentID: s.st.IncidentID,
		Thread:     contract.MessageRef{Channel: t.Channel, TS: t.TS},
		Channel:    channel,
		Key:        a.Step,
		View:       s.approvalView(a),
	}
	if i > 0 {
		req.Key = a.Step + "/escalation"
	}
	if i < len(a.Slack) {
		req.Existing = &contract.MessageRef{Channel: a.Slack[i].Channel, TS: a.Slack[i].TS}
	}
	opts := slackOptions
	if req.Existing == nil && a.Outcome == "" {
		// Keep trying to ask for as long as the approval is open.
		opts.ScheduleToCloseTimeout = max(a.Deadline.Sub(workflow.Now(ctx)), time.Minute)
	}
	var ref contract.MessageRef
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), contract.SlackApprovalActivity, req).Get(ctx, &ref)
	if err != nil {
		a.SlackError = errorMessage(err)
		workflow.GetLogger(ctx).Error("slack approval message failed", "incident_id", s.st.IncidentID, "step", a.Step, "error", a.SlackError)
		return
	}
	if i >= len(a.Slack) {
		a.Slack = append(a.Slack, SlackMessage{Channel: ref.Channel, TS: ref.TS})
	}
}

func (s *steps) approvalView(a *ApprovalState) contract.ApprovalSummary {
	first := s.st.FirstAlert
	v := contract.ApprovalSummary{
		IncidentID: s.st.IncidentID, Title: first.Rule, Severity: s.severity(), Playbook: s.st.Playbook, Step: a.Step,
		Target:   contract.Target{Namespace: first.Kubernetes.Namespace, Pod: first.Kubernetes.Pod, Node: first.Kubernetes.Node, Cluster: first.Cluster},
		Message:  a.Message,
		PlanHash: a.PlanHash, Quorum: a.Quorum, Approvers: a.Approvers, Deadline: a.Deadline,
		Outcome: a.Outcome, OnExpiry: a.OnExpiry, DecidedAt: a.DecidedAt, Escalated: a.Escalated,
	}
	for _, p := range a.Plan {
		v.Plan = append(v.Plan, contract.PlannedAction{Step: p.Step, Action: p.Action, Params: p.Params, Destructive: p.Destructive, Condition: p.If})
	}
	for _, vote := range a.Votes {
		v.Votes = append(v.Votes, contract.VoteSummary{User: vote.User, Approve: vote.Approve, Comment: vote.Comment, At: vote.At})
	}
	return v
}

// note queues a note in the incident's thread. key makes it findable, so a
// retried post does not post it twice.
func (s *steps) note(key string, n contract.Note, broadcast bool) {
	s.slack(func(ctx workflow.Context) {
		t := s.thread(ctx)
		if !t.usable() {
			return
		}
		req := contract.SlackNoteRequest{
			IncidentID: s.st.IncidentID, Thread: contract.MessageRef{Channel: t.Channel, TS: t.TS},
			Key: key, Note: &n, Broadcast: broadcast, Since: workflow.Now(ctx),
		}
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, slackOptions), contract.SlackNoteActivity, req).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("slack note failed", "incident_id", s.st.IncidentID, "key", key, "error", errorMessage(err))
		}
	})
}

func (s *steps) remind(a *ApprovalState) {
	s.note(fmt.Sprintf("%s/reminder-%d", a.Step, a.Reminders), contract.Note{
		Kind: contract.NoteReminder, Step: a.Step, Missing: a.Quorum - a.Approved(), Users: a.Approvers, At: a.Deadline,
	}, true)
}

func (s *steps) escalationNotice(a *ApprovalState, e *playbooks.Escalation) {
	s.renderApproval(a)
	if e.Channel == "" {
		s.note(a.Step+"/escalated", contract.Note{Kind: contract.NoteEscalated, Step: a.Step, After: e.After, Users: e.Approvers}, true)
	}
}

// announceOutcome updates the request and posts the outcome in the thread.
func (s *steps) announceOutcome(a *ApprovalState) {
	s.renderApproval(a)
	n := contract.Note{Step: a.Step}
	for _, p := range a.Plan {
		n.Plan = append(n.Plan, p.Step+" ("+p.Action+")")
	}
	switch a.Outcome {
	case playbooks.OutcomeApproved, playbooks.OutcomeDenied:
		n.Kind = contract.NoteApproved
		if a.Outcome == playbooks.OutcomeDenied {
			n.Kind = contract.NoteDenied
		}
		for _, v := range a.Votes {
			if v.Approve == (a.Outcome == playbooks.OutcomeApproved) {
				n.Users = append(n.Users, v.User)
			}
		}
	default:
		n.Kind, n.At, n.Outcome = contract.NoteExpired, a.DecidedAt, "denied"
		if a.OnExpiry == "approve" {
			n.Outcome = "approved"
		}
	}
	s.note(a.Step+"/outcome", n, false)
}

// isPermanent reports whether err is a non-retryable application error.
func isPermanent(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.NonRetryable()
}

func errorMessage(err error) string {
	_, msg := errorFields(err)
	return msg
}
