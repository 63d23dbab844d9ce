package activities

import (
	"context"
	"errors"
	"net/url"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/connectors/slack"
)

// Error types of Slack failures.
const (
	// ErrTypeSlack: Slack refused the call for a reason retrying cannot
	// fix (channel not found, app not in the channel, bad token, missing
	// scope); the message says what to fix.
	ErrTypeSlack = "Slack"
	// ErrTypeSlackUnavailable: Slack is down, slow or rate limiting;
	// retried, after Retry-After on a 429.
	ErrTypeSlackUnavailable = "SlackUnavailable"
)

// Slack is what the Slack activities need from the Slack connector
// (*slack.Client).
type Slack interface {
	Post(ctx context.Context, channel, threadTS string, m slack.Message) (slack.MessageRef, error)
	Find(ctx context.Context, channel, threadTS string, meta slack.Metadata, since time.Time) (slack.MessageRef, bool, error)
	Update(ctx context.Context, ref slack.MessageRef, m slack.Message) error
}

// SlackConfig is the worker's Slack: nil Client means none, and every Slack
// activity then skips with a reason.
type SlackConfig struct {
	Client Slack
	// Signer signs the approval buttons; the server that receives the
	// clicks verifies them with the same key.
	Signer *slack.Signer
	// Channel is where incidents whose playbook names no channel go.
	Channel string
}

func approvalView(v ApprovalSummary) slack.ApprovalView {
	out := slack.ApprovalView{
		IncidentID: v.IncidentID, Title: v.Title, Severity: v.Severity, Playbook: v.Playbook, Step: v.Step,
		Target:   slack.Target(v.Target),
		Message:  v.Message,
		PlanHash: v.PlanHash, Quorum: v.Quorum, Approvers: v.Approvers, Deadline: v.Deadline,
		Outcome: v.Outcome, DecidedAt: v.DecidedAt, OnExpiry: v.OnExpiry, Escalated: v.Escalated,
	}
	for _, p := range v.Plan {
		out.Plan = append(out.Plan, slack.PlannedAction(p))
	}
	for _, vote := range v.Votes {
		out.Votes = append(out.Votes, slack.VoteView(vote))
	}
	return out
}

// SlackThread posts the root message of the incident's thread. A retried
// attempt first looks for the message an earlier attempt may have posted.
func (a *Activities) SlackThread(ctx context.Context, req SlackThreadRequest) (SlackThreadResult, error) {
	if a.Slack.Client == nil {
		return SlackThreadResult{Skipped: "Slack is not configured on the worker (SOAR_SLACK_BOT_TOKEN)"}, nil
	}
	channel := req.Channel
	if channel == "" {
		channel = a.Slack.Channel
	}
	if channel == "" {
		return SlackThreadResult{Skipped: "no Slack channel: set the playbook's slack.channel or the worker's --slack-channel"}, nil
	}
	v := req.View
	view := slack.IncidentView{
		IncidentID: v.IncidentID, Title: v.Title, Severity: v.Severity, Playbook: v.Playbook, Summary: v.Summary,
		Target: slack.Target(v.Target),
	}
	if a.IncidentURL != "" {
		view.Links = append(view.Links, slack.Link{Text: "Temporal UI", URL: a.IncidentURL + url.PathEscape(req.IncidentID)})
	}
	m := slack.IncidentMessage(view)
	m.Metadata = slack.Metadata{Incident: req.IncidentID, Kind: "incident"}
	ref, err := a.postOnce(ctx, channel, "", m, req.OpenedAt)
	if err != nil {
		return SlackThreadResult{}, err
	}
	return SlackThreadResult{Channel: ref.Channel, TS: ref.TS}, nil
}

// SlackApproval renders the approval request with freshly signed buttons
// while it is open, and posts or updates it.
func (a *Activities) SlackApproval(ctx context.Context, req SlackApprovalRequest) (MessageRef, error) {
	ref, err := a.slackApproval(ctx, req)
	return MessageRef(ref), err
}

func (a *Activities) slackApproval(ctx context.Context, req SlackApprovalRequest) (slack.MessageRef, error) {
	if a.Slack.Client == nil {
		return slack.MessageRef{}, temporal.NewNonRetryableApplicationError("Slack is not configured on the worker", ErrTypeSlack, nil)
	}
	v := approvalView(req.View)
	if v.Outcome == "" {
		if a.Slack.Signer == nil {
			return slack.MessageRef{}, temporal.NewNonRetryableApplicationError("Slack approvals need a button key (SOAR_SLACK_BUTTON_KEY) on the worker", ErrTypeSlack, nil)
		}
		button := slack.ButtonValue{Incident: req.IncidentID, Step: v.Step, PlanHash: v.PlanHash, Expires: v.Deadline}
		button.Approve = true
		v.ApproveValue = a.Slack.Signer.Sign(button)
		button.Approve = false
		v.DenyValue = a.Slack.Signer.Sign(button)
	}
	m := slack.ApprovalMessage(v)
	m.Metadata = slack.Metadata{Incident: req.IncidentID, Kind: "approval", Key: req.Key}
	if req.Existing != nil {
		if err := a.Slack.Client.Update(ctx, slack.MessageRef(*req.Existing), m); err != nil {
			return slack.MessageRef{}, slackError(err)
		}
		return slack.MessageRef(*req.Existing), nil
	}
	if req.Channel != "" {
		return a.postOnce(ctx, req.Channel, "", m, time.Now().Add(-time.Hour))
	}
	m.Broadcast = true // in the thread, and shown in the channel
	return a.postOnce(ctx, req.Thread.Channel, req.Thread.TS, m, time.Now().Add(-time.Hour))
}

// SlackNote posts a note in the incident's thread.
func (a *Activities) SlackNote(ctx context.Context, req SlackNoteRequest) (MessageRef, error) {
	if a.Slack.Client == nil {
		return MessageRef{}, nil
	}
	text := req.Text
	if req.Note != nil {
		text = renderNote(*req.Note)
	}
	m := slack.NoteMessage(text)
	m.Metadata = slack.Metadata{Incident: req.IncidentID, Kind: "note", Key: req.Key}
	m.Broadcast = req.Broadcast
	ref, err := a.postOnce(ctx, req.Thread.Channel, req.Thread.TS, m, req.Since.Add(-time.Minute))
	return MessageRef(ref), err
}

// postOnce posts m; a retried attempt first looks for the message posted
// since `since` with the same metadata, which an attempt whose answer was
// lost may have posted.
func (a *Activities) postOnce(ctx context.Context, channel, threadTS string, m slack.Message, since time.Time) (slack.MessageRef, error) {
	if activity.IsActivity(ctx) && activity.GetInfo(ctx).Attempt > 1 {
		ref, ok, err := a.Slack.Client.Find(ctx, channel, threadTS, m.Metadata, since)
		if err != nil {
			return slack.MessageRef{}, slackError(err)
		}
		if ok {
			return ref, nil
		}
	}
	ref, err := a.Slack.Client.Post(ctx, channel, threadTS, m)
	if err != nil {
		return slack.MessageRef{}, slackError(err)
	}
	return ref, nil
}

// slackError turns a Slack connector error into Temporal's terms:
// configuration problems fail at once with what to fix, outages and rate
// limits are retried (after Retry-After).
func slackError(err error) error {
	var se *slack.Error
	if !errors.As(err, &se) {
		return temporal.NewApplicationErrorWithCause(err.Error(), ErrTypeSlackUnavailable, err)
	}
	return classified(se.Error(), se.Retryable, se.RetryAfter, ErrTypeSlack, ErrTypeSlackUnavailable)
}

// classified turns a connector's classified failure into Temporal's terms:
// one retrying cannot fix fails at once as permanent; the others are
// retried as transient, after the service's Retry-After when it gave one.
func classified(msg string, retryable bool, retryAfter time.Duration, permanent, transient string) error {
	if !retryable {
		return temporal.NewNonRetryableApplicationError(msg, permanent, nil)
	}
	return temporal.NewApplicationErrorWithOptions(msg, transient, temporal.ApplicationErrorOptions{NextRetryDelay: retryAfter})
}

func slackThread(c *IncidentContext) *slack.MessageRef {
	if c == nil || c.SlackThreadTS == "" {
		return nil
	}
	return &slack.MessageRef{Channel: c.SlackChannel, TS: c.SlackThreadTS}
}
