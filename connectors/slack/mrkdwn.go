package slack

import (
	"time"

	goslack "github.com/slack-go/slack"
)

// Mention renders an approver ID for mrkdwn that soar writes itself: a
// Slack user (U…, W…) as <@U…>, a user group (S…) as <!subteam^S…>, and
// anything else (cli:alice, api:ci) as escaped text.
func Mention(id string) string { return approver(id) }

// Date renders t with Slack's date formatting: each reader sees it in their
// own time zone.
func Date(t time.Time) string { return slackDate(t) }

// NoteMessage renders a thread note whose mrkdwn soar composed itself from
// Mention, Date and Escape'd values: unlike TextMessage, it is not escaped
// again, so its mentions notify.
func NoteMessage(mrkdwnText string) Message {
	text := clip(mrkdwnText, maxSectionTxt)
	return Message{Text: text, Blocks: []goslack.Block{section(text)}}
}
