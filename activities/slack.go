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

// ActionSlackNotify posts a note in the incident's Slack thread.
const ActionSlackNotify = "slack.notify"

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

// SlackThreadRequest asks for an incident's thread: its root message.
type SlackThreadRequest struct {
	IncidentID string `json:"incidentID"`
	// Channel is the playbook's; empty means the worker's.
	Channel  string             `json:"channel,omitempty"`
	OpenedAt time.Time          `json:"openedAt"`
	View     slack.IncidentView `json:"view"`
}

// SlackThreadResult is the thread, or why there is none.
type SlackThreadResult struct {
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
	Skipped string `json:"skipped,omitempty"`
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
	view := req.View
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

// SlackApprovalRequest posts or updates an approval request.
type SlackApprovalRequest struct {
	IncidentID string           `json:"incidentID"`
	Thread     slack.MessageRef `json:"thread"`
	// Channel, when set, takes the request out of the thread to another
	// channel (an escalation).
	Channel string `json:"channel,omitempty"`
	// Existing is the message to update; nil posts a new one.
	Existing *slack.MessageRef `json:"existing,omitempty"`
	// Key names the message among the incident's: the step, and
	// "/escalation" for the copy in the escalation channel.
	Key  string             `json:"key"`
	View slack.ApprovalView `json:"view"`
}

// SlackApproval renders the approval request with freshly signed buttons
// while it is open, and posts or updates it.
func (a *Activities) SlackApproval(ctx context.Context, req SlackApprovalRequest) (slack.MessageRef, error) {
	if a.Slack.Client == nil {
		return slack.MessageRef{}, temporal.NewNonRetryableApplicationError("Slack is not configured on the worker", ErrTypeSlack, nil)
	}
	v := req.View
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
		if err := a.Slack.Client.Update(ctx, *req.Existing, m); err != nil {
			return slack.MessageRef{}, slackError(err)
		}
		return *req.Existing, nil
	}
	if req.Channel != "" {
		return a.postOnce(ctx, req.Channel, "", m, time.Now().Add(-time.Hour))
	}
	m.Broadcast = true // in the thread, and shown in the channel
	return a.postOnce(ctx, req.Thread.Channel, req.Thread.TS, m, time.Now().Add(-time.Hour))
}

// SlackNoteRequest posts a note that soar composed in the incident's thread.
type SlackNoteRequest struct {
	IncidentID string           `json:"incidentID"`
	Thread     slack.MessageRef `json:"thread"`
	Key        string           `json:"key"`
	// Text is mrkdwn built with slack.Mention, slack.Date and
	// slack.Escape: it is posted as is.
	Text      string    `json:"text"`
	Broadcast bool      `json:"broadcast,omitempty"`
	Since     time.Time `json:"since"`
}

// SlackNote posts a note in the incident's thread.
func (a *Activities) SlackNote(ctx context.Context, req SlackNoteRequest) (slack.MessageRef, error) {
	if a.Slack.Client == nil {
		return slack.MessageRef{}, nil
	}
	m := slack.NoteMessage(req.Text)
	m.Metadata = slack.Metadata{Incident: req.IncidentID, Kind: "note", Key: req.Key}
	m.Broadcast = req.Broadcast
	return a.postOnce(ctx, req.Thread.Channel, req.Thread.TS, m, req.Since.Add(-time.Minute))
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

// NotifyParams are slack.notify's parameters.
type NotifyParams struct {
	Text string `json:"text"`
	// Channel posts to another channel instead of the incident's thread.
	Channel   string `json:"channel"`
	Broadcast bool   `json:"broadcast"`
}

// NotifyResult is slack.notify's output.
type NotifyResult struct {
	Posted  bool   `json:"posted"`
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
	Skipped string `json:"skipped,omitempty"`
	DryRun  bool   `json:"dryRun,omitempty"`
}

func slackNotify(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
	var p NotifyParams
	if err := decodeParams(req, &p); err != nil {
		return nil, err
	}
	if p.Text == "" {
		return nil, invalid("%s needs a text", req.Action)
	}
	if req.DryRun {
		return NotifyResult{DryRun: true}, nil
	}
	thread := req.Incident.slackThread()
	switch {
	case a.Slack.Client == nil:
		return NotifyResult{Skipped: "Slack is not configured on the worker"}, nil
	case p.Channel == "" && thread == nil:
		reason := "the incident has no Slack thread"
		if req.Incident != nil && req.Incident.SlackSkipped != "" {
			reason = req.Incident.SlackSkipped
		}
		return NotifyResult{Skipped: reason}, nil
	}
	m := slack.TextMessage(p.Text)
	m.Metadata = slack.Metadata{Incident: req.IncidentID, Kind: "notify", Key: req.Step}
	channel, threadTS := p.Channel, ""
	if channel == "" {
		channel, threadTS = thread.Channel, thread.TS
		m.Broadcast = p.Broadcast
	}
	ref, err := a.postOnce(ctx, channel, threadTS, m, time.Now().Add(-time.Hour))
	if err != nil {
		return nil, err
	}
	return NotifyResult{Posted: true, Channel: ref.Channel, TS: ref.TS}, nil
}

// IncidentContext is what an action may need to know of its incident
// beyond its ID: where its Slack thread is.
type IncidentContext struct {
	Playbook      string `json:"playbook,omitempty"`
	SlackChannel  string `json:"slackChannel,omitempty"`
	SlackThreadTS string `json:"slackThreadTS,omitempty"`
	// SlackSkipped says why the incident has no thread.
	SlackSkipped string `json:"slackSkipped,omitempty"`
	// Ticket is what ticket actions need.
	Ticket *TicketContext `json:"ticket,omitempty"`
}

func (c *IncidentContext) slackThread() *slack.MessageRef {
	if c == nil || c.SlackThreadTS == "" {
		return nil
	}
	return &slack.MessageRef{Channel: c.SlackChannel, TS: c.SlackThreadTS}
}
