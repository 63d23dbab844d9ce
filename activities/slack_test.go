package activities

import (
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/connectors/slack"
)

// TestSlackErrorsInTemporalTerms: what to fix fails at once, an outage is
// retried, a rate limit after Slack's Retry-After.
func TestSlackErrorsInTemporalTerms(t *testing.T) {
	for _, tc := range []struct {
		name         string
		err          error
		nonRetryable bool
		errType      string
		delay        time.Duration
	}{
		{"rate limited", &slack.Error{Method: "chat.postMessage", Code: "ratelimited", Retryable: true, RetryAfter: 7 * time.Second}, false, ErrTypeSlackUnavailable, 7 * time.Second},
		{"down", &slack.Error{Method: "chat.postMessage", Code: "http_503", Retryable: true}, false, ErrTypeSlackUnavailable, 0},
		{"no such channel", &slack.Error{Method: "chat.postMessage", Code: "channel_not_found", Hint: "check the playbook's slack channel"}, true, ErrTypeSlack, 0},
		{"not a Slack error", errors.New("connection reset"), false, ErrTypeSlackUnavailable, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var appErr *temporal.ApplicationError
			if !errors.As(slackError(tc.err), &appErr) {
				t.Fatalf("%v is not an application error", slackError(tc.err))
			}
			if appErr.NonRetryable() != tc.nonRetryable || appErr.Type() != tc.errType || appErr.NextRetryDelay() != tc.delay {
				t.Errorf("non-retryable %v type %s delay %s", appErr.NonRetryable(), appErr.Type(), appErr.NextRetryDelay())
			}
		})
	}
}

// TestNotifyWithoutSlackSkipsWithAReason: no Slack, or no thread, is not a
// failure of the step: the output says why nothing was posted.
func TestNotifyWithoutSlackSkipsWithAReason(t *testing.T) {
	a := &Activities{}
	out, err := a.run(t.Context(), ActionSlackNotify, ActionRequest{Params: map[string]any{"text": "hello"}})
	if err != nil || out["posted"] != false || out["skipped"] == nil {
		t.Fatalf("%+v %v", out, err)
	}
	if _, err := a.run(t.Context(), ActionSlackNotify, ActionRequest{}); err == nil {
		t.Error("a note without text was accepted")
	}
}
