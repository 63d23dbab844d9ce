package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	goslack "github.com/slack-go/slack"
)

// Error is what every Client method returns on failure, so that callers (the
// Temporal activities) can branch on one type: retry when Retryable, waiting
// at least RetryAfter, and otherwise fail the step with Hint for the operator.
// Find it with errors.As; callers may wrap it.
type Error struct {
	// Method is the Slack API method, e.g. "chat.postMessage".
	Method string
	// Code is Slack's error code ("channel_not_found", "ratelimited",
	// "invalid_auth", ...), "http_<status>" for an HTTP failure without one,
	// "network" or "timeout" when no answer came, "bad_response" when the
	// answer was not Slack's JSON.
	Code string
	// Retryable says sending the same request later may succeed.
	Retryable bool
	// RetryAfter is how long Slack asked us to wait (Retry-After on 429); zero
	// when it did not say.
	RetryAfter time.Duration
	// Hint says what the operator must fix; "" when retryable.
	Hint string

	// detail describes a failure that has no Slack error code (a network
	// error), with the token redacted.
	detail string
	cause  error
}

// Error renders the failure for logs and step errors, e.g.
// "slack chat.postMessage: channel_not_found: the channel does not exist or
// the app cannot see it; check the playbook's slack channel". It never
// includes a token.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("slack ")
	b.WriteString(e.Method)
	b.WriteString(": ")
	b.WriteString(e.Code)
	if e.detail != "" {
		b.WriteString(" (")
		b.WriteString(e.detail)
		b.WriteString(")")
	}
	switch {
	case e.Hint != "":
		b.WriteString(": ")
		b.WriteString(e.Hint)
	case e.RetryAfter > 0:
		fmt.Fprintf(&b, ": retry after %s", e.RetryAfter)
	case e.Retryable:
		b.WriteString(": temporary, retry later")
	}
	return b.String()
}

// Unwrap returns slack-go's error (or the network error), so that errors.Is
// still finds context.Canceled and the like.
func (e *Error) Unwrap() error { return e.cause }

// hints says, for each Slack error code that retrying cannot fix, what the
// operator has to do. A code missing here is reported as is.
var hints = map[string]string{
	"channel_not_found":   "the channel does not exist or the app cannot see it; check the playbook's slack channel (for a private channel, invite the soar app first)",
	"not_in_channel":      "invite the soar app to the channel (/invite @soar)",
	"is_archived":         "the channel is archived; unarchive it or point the playbook's slack channel at another one",
	"invalid_auth":        "the Slack bot token is not valid; configure the soar app's bot token (xoxb-...) from its OAuth & Permissions page",
	"not_authed":          "no Slack token was sent; configure the soar app's bot token (xoxb-...)",
	"token_revoked":       "the Slack token was revoked; reinstall the soar app and configure its new bot token",
	"token_expired":       "the Slack token expired; turn off token rotation for the soar app or configure a fresh token",
	"account_inactive":    "the Slack token belongs to a deactivated user or an uninstalled app; reinstall the soar app and configure its new bot token",
	"missing_scope":       "add the missing OAuth scope to the soar app (OAuth & Permissions), reinstall it and configure the new bot token",
	"no_permission":       "the workspace does not allow the soar app to do this; ask a Slack admin to grant it access",
	"restricted_action":   "a workspace or channel setting stops the soar app from posting here; ask a Slack admin to allow it or use another channel",
	"invalid_blocks":      "Slack rejected the message layout; this is a bug in soar's message builder, report it with the incident ID",
	"msg_too_long":        "the message is longer than Slack accepts; shorten the playbook's message",
	"user_not_found":      "the user ID does not exist in this workspace; check the approvers (U... or W... IDs)",
	"no_such_subteam":     "the user group does not exist; check the approvers' user group IDs (S...)",
	"cant_update_message": "the message was not posted by this Slack app, so soar cannot update it",
	"message_not_found":   "the message was deleted, so soar cannot update it",
}

// retryableCodes are Slack error codes (ok:false) that mean "not now".
var retryableCodes = map[string]bool{
	"ratelimited":         true,
	"rate_limited":        true,
	"internal_error":      true,
	"fatal_error":         true,
	"service_unavailable": true,
	"request_timeout":     true,
}

// classify turns whatever slack-go returned into an *Error. token is removed
// from any text that ends up in the error.
func classify(method, token string, err error) *Error {
	e := &Error{Method: method, cause: err}
	var (
		rateLimited *goslack.RateLimitedError
		status      goslack.StatusCodeError
		slackErr    goslack.SlackErrorResponse
		numErr      *strconv.NumError
		syntaxErr   *json.SyntaxError
		typeErr     *json.UnmarshalTypeError
		netErr      net.Error
	)
	switch {
	case errors.As(err, &rateLimited):
		e.Code, e.Retryable, e.RetryAfter = "ratelimited", true, rateLimited.RetryAfter
	case errors.As(err, &status):
		e.Code = "http_" + strconv.Itoa(status.Code)
		e.Retryable = status.Code >= 500 || status.Code == http.StatusTooManyRequests
		if status.Code == http.StatusTooManyRequests {
			e.Code = "ratelimited"
		}
		if !e.Retryable {
			e.Hint = "Slack answered HTTP " + strconv.Itoa(status.Code) + "; check the Slack API URL soar is configured with"
		}
	case errors.As(err, &slackErr):
		e.Code = slackErr.Err
		e.Retryable = retryableCodes[e.Code]
		if !e.Retryable {
			e.Hint = hintFor(slackErr)
		}
	case errors.Is(err, context.DeadlineExceeded):
		e.Code, e.Retryable = "timeout", true
	case errors.Is(err, context.Canceled):
		e.Code, e.Retryable = "canceled", true
	case errors.As(err, &numErr):
		// slack-go fails to parse a Retry-After that is not a number of
		// seconds; it still was a 429.
		e.Code, e.Retryable = "ratelimited", true
	case errors.As(err, &syntaxErr), errors.As(err, &typeErr):
		// A proxy's HTML page instead of Slack's JSON.
		e.Code, e.Retryable = "bad_response", true
	case errors.As(err, &netErr) && netErr.Timeout():
		e.Code, e.Retryable = "timeout", true
	default:
		e.Code, e.Retryable = "network", true
		e.detail = redact(err.Error(), token)
	}
	return e
}

// hintFor returns the operator's hint for a Slack error code.
func hintFor(r goslack.SlackErrorResponse) string {
	if r.Err == "missing_scope" && r.Needed != "" {
		return fmt.Sprintf("add the %s scope to the soar app (OAuth & Permissions), reinstall it and configure the new bot token", r.Needed)
	}
	if h, ok := hints[r.Err]; ok {
		return h
	}
	return "Slack refused the request with this error code; see https://api.slack.com/methods for what it means"
}

// redact removes the token from s. slack-go sends tokens in request bodies and
// headers, not URLs, so this is a second line of defence.
func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "[redacted]")
}
