package tickets

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// defaultTimeout bounds each request when the configuration gives no HTTP
// client: well under Temporal's activity timeouts, long enough for a slow
// Jira.
const defaultTimeout = 30 * time.Second

// maxAnswer is how much of an answer is read: tickets APIs answer in
// kilobytes, and an error page of megabytes is not worth keeping.
const maxAnswer = 4 << 20

// httpClient returns c, or a client with defaultTimeout.
func httpClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: defaultTimeout}
}

// endpoint sends the requests of one hand-written provider (Jira, webhook)
// and classifies their failures.
type endpoint struct {
	provider string
	client   *http.Client
	redact   redactor
}

// hint says, for a failed operation's HTTP status (and headers), what the
// operator has to fix.
type hint func(status int, header http.Header) string

// answer is a 2xx answer.
type answer struct {
	status int
	body   []byte
}

// send sends one request (in, when not nil, as its JSON body) and returns
// the 2xx answer. Every failure is an *Error.
func (e endpoint) send(ctx context.Context, op, method, url string, header http.Header, in any, h hint) (answer, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return answer{}, &Error{Provider: e.provider, Op: op, Hint: "soar cannot encode the request as JSON (" + err.Error() + "); check the playbook's fields"}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return answer{}, &Error{Provider: e.provider, Op: op, Hint: "the configured URL is not valid: " + e.redact.clean(err.Error())}
	}
	req.Header = header.Clone()
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.do(op, req, h)
}

// do sends req and returns the 2xx answer.
func (e endpoint) do(op string, req *http.Request, h hint) (answer, error) {
	resp, err := e.client.Do(req)
	if err != nil {
		return answer{}, networkError(e.provider, op, err, e.redact)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return answer{}, networkError(e.provider, op, err, e.redact)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answer{}, statusError(e.provider, op, resp.StatusCode, resp.Header, serverMessage(body), e.redact, h)
	}
	return answer{status: resp.StatusCode, body: body}, nil
}
