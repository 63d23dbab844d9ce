package activities

import (
	"context"
	"time"

	"github.com/soar-dev/soar/connectors/slack"
)

// ActionSlackNotify posts a note in the incident's Slack thread.
const ActionSlackNotify = "slack.notify"

var slackNotify = Define(Action{
	Name:    ActionSlackNotify,
	Summary: "Post a note in the incident's Slack thread (or in another channel). Alert text in it is escaped.",
	Lane:    LaneSlack,
	Role:    RoleNone,
}, (*Activities).slackNotify)

// NotifyParams are slack.notify's parameters.
type NotifyParams struct {
	Text string `json:"text" required:"true" doc:"the note; it may quote the alert, whose text is escaped so it cannot mention, link or format"`
	// Channel posts to another channel instead of the incident's thread.
	Channel   string `json:"channel" default:"the incident's thread" doc:"post to this channel (ID or #name) instead, as a message of its own"`
	Broadcast bool   `json:"broadcast" default:"false" doc:"also show the thread reply in the channel"`
}

// NotifyResult is slack.notify's output.
type NotifyResult struct {
	Posted  bool   `json:"posted" doc:"whether the note was posted"`
	Channel string `json:"channel,omitempty" doc:"the channel it went to"`
	TS      string `json:"ts,omitempty" doc:"the message's Slack timestamp"`
	Skipped string `json:"skipped,omitempty" doc:"why nothing was posted: no Slack on the worker, or no channel"`
	DryRun  bool   `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

func (a *Activities) slackNotify(ctx context.Context, p NotifyParams, req ActionRequest) (NotifyResult, error) {
	if p.Text == "" {
		return NotifyResult{}, invalid("%s needs a text", req.Action)
	}
	if req.DryRun {
		return NotifyResult{DryRun: true}, nil
	}
	thread := slackThread(req.Incident)
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
		return NotifyResult{}, err
	}
	return NotifyResult{Posted: true, Channel: ref.Channel, TS: ref.TS}, nil
}
