package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Error is what every provider returns on failure, so that the activities
// can branch on one type: retry when Retryable, waiting at least RetryAfter,
// and otherwise fail the step with Hint for the operator. Find it with
// errors.As; callers may wrap it.
type Error struct {
	// Provider is "jira", "github" or "webhook".
	Provider string
	// Op is "find", "create", "comment" or "resolve".
	Op string
	// Status is the HTTP status of the answer; 0 when none came (network
	// errors, timeouts) or when the call was refused before any request.
	Status int
	// Retryable says sending the same request later may succeed: 429, 5xx,
	// timeouts and network errors.
	Retryable bool
	// RetryAfter is how long the server asked us to wait (Retry-After, or a
	// rate limit's reset time); zero when it did not say.
	RetryAfter time.Duration
	// Hint says what the operator must fix; "" when Retryable.
	Hint string
	// Message is the server's error text, or the network error when no
	// answer came, on one line, at most 300 characters, never holding a
	// credential.
	Message string

	cause error
}

// Error renders the failure for logs and step errors, e.g.
// "jira create: HTTP 403 (You do not have permission to create issues in
// this project.): the account lacks permission to create issues in project
// SEC". It never includes a credential.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	b.WriteString(" ")
	b.WriteString(e.Op)
	switch {
	case e.Status != 0:
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	case e.Retryable:
		b.WriteString(": no answer")
	}
	if e.Message != "" {
		b.WriteString(" (")
		b.WriteString(e.Message)
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

// Unwrap returns the network error, so that errors.Is still finds
// context.Canceled and context.DeadlineExceeded.
func (e *Error) Unwrap() error { return e.cause }

// maxMessage is how many characters of the server's error text an Error
// keeps: enough for Jira's field errors, short enough for a step error.
const maxMessage = 300

// redactor removes credentials from text that ends up in an Error.
type redactor []string

// clean makes s fit for Error.Message: credentials removed, control and
// formatting characters dropped, whitespace collapsed to single spaces,
// at most maxMessage characters.
func (r redactor) clean(s string) string {
	for _, secret := range r {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	s = strings.Join(strings.FieldsFunc(s, func(c rune) bool {
		return unicode.IsSpace(c) || unicode.IsControl(c) || isBidi(c)
	}), " ")
	return cut(s, maxMessage)
}

// statusError builds the Error for a non-2xx answer whose error text is
// message.
func statusError(provider, op string, status int, header http.Header, message string, r redactor, h hint) *Error {
	e := &Error{Provider: provider, Op: op, Status: status, Message: r.clean(message)}
	if retryableStatus(status) {
		e.Retryable = true
		e.RetryAfter = retryAfter(header.Get("Retry-After"), time.Now())
		return e
	}
	e.Hint = h(status, header)
	return e
}

// retryableStatus reports whether an HTTP status means "not now": rate
// limited, the server failing or overloaded, or a proxy timing out.
func retryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500
}

// networkError builds the Error for a request that got no answer. The
// request URL is left out of the message: a webhook URL may carry a
// credential in its path or query.
func networkError(provider, op string, err error, r redactor) *Error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "timed out: " + msg
	}
	return &Error{Provider: provider, Op: op, Retryable: true, Message: r.clean(msg), cause: err}
}

// badResponse builds the Error for a 2xx answer that is not the JSON the API
// documents. That is a login page of a single sign-on proxy or a URL that
// does not point at the API, which retrying does not fix.
func badResponse(provider, op string, status int, hint string) *Error {
	return &Error{Provider: provider, Op: op, Status: status, Message: "the answer was not the expected JSON", Hint: hint}
}

// serverMessage extracts the error text from an error answer: Jira's
// {"errorMessages":[...],"errors":{"field":"msg"}}, GitHub's {"message",
// "errors":[{"field","code","message"}]}, {"error": ...}, or the body itself
// when it is short plain text.
func serverMessage(body []byte) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		s := strings.TrimSpace(string(body))
		if strings.HasPrefix(s, "<") { // an HTML error page says nothing useful
			return ""
		}
		return s
	}
	var parts []string
	for _, key := range []string{"message", "errorMessage", "error", "error_description"} {
		if s := textOf(m[key]); s != "" {
			parts = append(parts, s)
		}
	}
	var msgs []string
	if json.Unmarshal(m["errorMessages"], &msgs) == nil {
		parts = append(parts, msgs...)
	}
	return strings.Join(append(parts, fieldErrors(m["errors"])...), "; ")
}

// textOf returns a JSON string, or the "message" of a JSON object.
func textOf(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct{ Message string }
	if json.Unmarshal(raw, &o) == nil {
		return o.Message
	}
	return ""
}

// fieldErrors renders Jira's {"field": "message"} (sorted by field, so the
// message is stable) or GitHub's [{"resource","field","code","message"}].
func fieldErrors(raw json.RawMessage) []string {
	var byField map[string]string
	if json.Unmarshal(raw, &byField) == nil {
		var out []string
		for _, f := range slices.Sorted(maps.Keys(byField)) {
			out = append(out, f+": "+byField[f])
		}
		return out
	}
	var list []struct{ Resource, Field, Code, Message string }
	if json.Unmarshal(raw, &list) != nil {
		return nil
	}
	var out []string
	for _, e := range list {
		switch {
		case e.Message != "":
			out = append(out, e.Message)
		case e.Field != "":
			out = append(out, strings.TrimSpace(e.Resource+" "+e.Field+" "+e.Code))
		}
	}
	return out
}

// retryAfter parses a Retry-After header: a number of seconds or an HTTP
// date. It returns 0 when the header is missing, malformed or in the past.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(secs, 0)) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now).Round(time.Second)
	}
	return 0
}
