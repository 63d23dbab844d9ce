package tickets

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// WebhookConfig configures the generic webhook provider. The secret never
// appears in errors, nor does the URL (it may hold a credential).
type WebhookConfig struct {
	// URL receives the POSTs.
	URL string
	// Secret is the HMAC-SHA256 key of X-Soar-Signature; at least 16 bytes.
	Secret string
	// HTTPClient sends the requests; default: a client with a 30s timeout.
	HTTPClient *http.Client
}

// Webhook headers.
const (
	headerTimestamp   = "X-Soar-Timestamp"
	headerSignature   = "X-Soar-Signature"
	headerIdempotency = "Idempotency-Key"
)

// webhookWindow is how far a request's timestamp may be from the receiver's
// clock: a captured request cannot be replayed later than that.
const webhookWindow = 5 * time.Minute

// webhookSecretMin is the shortest secret NewWebhook accepts.
const webhookSecretMin = 16

// webhook is the Provider that POSTs every call to one URL.
type webhook struct {
	url    string
	host   string // for hints: the URL itself may hold a credential
	secret []byte
	ep     endpoint
	now    func() time.Time
}

// NewWebhook returns the webhook provider for cfg. It checks the
// configuration but does not contact the receiver.
//
// Every call POSTs a JSON document to the URL:
//
//	{"event": "open"|"comment"|"resolve", "incidentID", "idempotencyKey",
//	 "ticket": {"provider","id","key","url"} (comment, resolve),
//	 "title", "severity", "labels" (open),
//	 "body": [{"heading"|"text"|"items"|"code"|"link": ...}]}
//
// with the headers Content-Type: application/json, Idempotency-Key (the same
// as idempotencyKey), X-Soar-Timestamp (Unix seconds) and X-Soar-Signature:
// "sha256=" and the hex HMAC-SHA256, keyed with the secret, of the timestamp,
// ".", and the body. Receivers check it with VerifyWebhook (or the same
// computation) and must deduplicate by the idempotency key, which is the
// same for every attempt of the same call: "soar-open-<h>" and
// "soar-resolve-<h>", where <h> is the hash in IncidentLabel, and
// "soar-comment-<h>-<first 16 hex digits of the SHA-256 of the body JSON>".
// Any 2xx answer is success; open's answer may be {"id","key","url"} of the
// receiver's ticket.
//
// Find always returns nil: there is nothing to ask, and the idempotency key
// makes a repeated open harmless.
func NewWebhook(cfg WebhookConfig) (Provider, error) {
	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		return nil, errors.New("tickets: webhook: the URL is required")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return nil, errors.New("tickets: webhook: the URL must be an http(s) URL")
	case len(cfg.Secret) < webhookSecretMin:
		return nil, fmt.Errorf("tickets: webhook: the secret (SOAR_WEBHOOK_SECRET) must have at least %d bytes; make one with: openssl rand -hex 32", webhookSecretMin)
	}
	return &webhook{
		url:    cfg.URL,
		host:   u.Host,
		secret: []byte(cfg.Secret),
		ep:     endpoint{provider: "webhook", client: httpClient(cfg.HTTPClient), redact: redactor{cfg.Secret, cfg.URL}},
		now:    time.Now,
	}, nil
}

// webhookEvent is the JSON document a webhook call sends.
type webhookEvent struct {
	Event          string         `json:"event"`
	IncidentID     string         `json:"incidentID"`
	IdempotencyKey string         `json:"idempotencyKey"`
	Ticket         *Ticket        `json:"ticket,omitempty"`
	Title          string         `json:"title,omitempty"`
	Severity       string         `json:"severity,omitempty"`
	Labels         []string       `json:"labels,omitempty"`
	Body           []webhookBlock `json:"body"`
}

// webhookBlock is a Block on the wire. The text is as the alert gave it
// (without control characters): rendering it safely is the receiver's job.
type webhookBlock struct {
	Heading string       `json:"heading,omitempty"`
	Text    string       `json:"text,omitempty"`
	Items   []string     `json:"items,omitempty"`
	Code    string       `json:"code,omitempty"`
	Link    *webhookLink `json:"link,omitempty"`
}

// webhookLink is a Link on the wire.
type webhookLink struct {
	Text string `json:"text,omitempty"`
	URL  string `json:"url"`
}

// webhookBlocks converts blocks for the wire; never nil, so "body" is
// always a list.
func webhookBlocks(blocks []Block) []webhookBlock {
	out := make([]webhookBlock, 0, len(blocks))
	for _, b := range blocks {
		wb := webhookBlock{Heading: plain(b.Heading), Text: plain(b.Text), Code: plain(b.Code)}
		for _, it := range b.Items {
			wb.Items = append(wb.Items, plain(it))
		}
		if b.Link != nil {
			wb.Link = &webhookLink{Text: plain(b.Link.Text), URL: b.Link.URL}
		}
		out = append(out, wb)
	}
	return out
}

// Name returns "webhook".
func (w *webhook) Name() string { return "webhook" }

// Find returns nil: see NewWebhook.
func (w *webhook) Find(_ context.Context, incidentID string) (*Ticket, error) {
	return nil, checkIncident("webhook", "find", incidentID)
}

// Create sends the open event. The receiver's answer {"id","key","url"}
// becomes the ticket; without one the ticket's key is the idempotency key.
func (w *webhook) Create(ctx context.Context, c Content) (Ticket, error) {
	const op = "create"
	if err := checkIncident("webhook", op, c.IncidentID); err != nil {
		return Ticket{}, err
	}
	ev := webhookEvent{
		Event:          "open",
		IncidentID:     c.IncidentID,
		IdempotencyKey: "soar-open-" + hash16(c.IncidentID),
		Title:          oneLine(c.Title),
		Severity:       strings.ToLower(strings.TrimSpace(c.Severity)),
		Labels:         append([]string{IncidentLabel(c.IncidentID)}, c.Labels...),
		Body:           webhookBlocks(c.Body),
	}
	a, err := w.post(ctx, op, ev)
	if err != nil {
		return Ticket{}, err
	}
	t := receiverTicket(a.body)
	if t.Key == "" {
		t.Key = ev.IdempotencyKey
	}
	return t, nil
}

// receiverTicket reads the receiver's {"id","key","url"}, accepting numbers
// for id and key. An answer that is not such a document yields an empty
// ticket rather than an error: the event was delivered.
func receiverTicket(body []byte) Ticket {
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	str := func(k string) string {
		switch v := m[k].(type) {
		case string:
			return oneLine(v)
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
		return ""
	}
	return Ticket{Provider: "webhook", ID: str("id"), Key: str("key"), URL: str("url")}
}

// Comment sends the comment event. The idempotency key covers the body, so
// a retried comment is deduplicated while a different one is not.
func (w *webhook) Comment(ctx context.Context, t Ticket, incidentID string, body []Block) error {
	const op = "comment"
	if err := w.check(op, t, incidentID); err != nil {
		return err
	}
	blocks := webhookBlocks(body)
	j, _ := json.Marshal(blocks)
	ev := webhookEvent{
		Event:          "comment",
		IncidentID:     incidentID,
		IdempotencyKey: "soar-comment-" + hash16(incidentID) + "-" + hash16(string(j)),
		Ticket:         &t,
		Body:           blocks,
	}
	_, err := w.post(ctx, op, ev)
	return err
}

// Resolve sends the resolve event.
func (w *webhook) Resolve(ctx context.Context, t Ticket, incidentID string, body []Block) error {
	const op = "resolve"
	if err := w.check(op, t, incidentID); err != nil {
		return err
	}
	ev := webhookEvent{
		Event:          "resolve",
		IncidentID:     incidentID,
		IdempotencyKey: "soar-resolve-" + hash16(incidentID),
		Ticket:         &t,
		Body:           webhookBlocks(body),
	}
	_, err := w.post(ctx, op, ev)
	return err
}

// check refuses a call without incident or ticket before any request.
func (w *webhook) check(op string, t Ticket, incidentID string) error {
	if err := checkIncident("webhook", op, incidentID); err != nil {
		return err
	}
	return checkTicket("webhook", op, t)
}

// post signs and sends ev.
func (w *webhook) post(ctx context.Context, op string, ev webhookEvent) (answer, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return answer{}, &Error{Provider: "webhook", Op: op, Hint: "soar cannot encode the event as JSON: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return answer{}, &Error{Provider: "webhook", Op: op, Hint: "the webhook URL is not valid"}
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerIdempotency, ev.IdempotencyKey)
	req.Header.Set(headerTimestamp, ts)
	req.Header.Set(headerSignature, "sha256="+signWebhook(w.secret, ts, body))
	return w.ep.do(op, req, w.hint)
}

// hint says what to fix when the receiver refuses a call.
func (w *webhook) hint(status int, _ http.Header) string {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Sprintf("the receiver at %s refused the request: check that its secret is SOAR_WEBHOOK_SECRET and that its clock is within 5 minutes of soar's", w.host)
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusGone:
		return fmt.Sprintf("the receiver at %s has no such endpoint (HTTP %d): check the webhook URL (--ticket-webhook-url)", w.host, status)
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return fmt.Sprintf("the receiver at %s refused the event (see the message); check the receiver against soar's webhook format", w.host)
	}
	return fmt.Sprintf("the receiver at %s answered HTTP %d, which soar does not expect; check the webhook URL", w.host, status)
}

// signWebhook returns the hex HMAC-SHA256 of timestamp + "." + body.
func signWebhook(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// VerifyWebhook checks that a request came from soar: header's
// X-Soar-Signature is the HMAC-SHA256 with secret of X-Soar-Timestamp, ".",
// and body, and the timestamp is within 5 minutes of now. It returns nil when
// the request is genuine. It does not deduplicate: receivers do that by the
// Idempotency-Key header.
func VerifyWebhook(secret string, header http.Header, body []byte, now time.Time) error {
	ts := header.Get(headerTimestamp)
	sig, ok := strings.CutPrefix(header.Get(headerSignature), "sha256=")
	switch {
	case secret == "":
		return errors.New("tickets: webhook: no secret to verify with")
	case ts == "":
		return errors.New("tickets: webhook: no " + headerTimestamp + " header")
	case !ok:
		return errors.New("tickets: webhook: no " + headerSignature + " header of the form sha256=<hex>")
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("tickets: webhook: " + headerTimestamp + " is not Unix seconds")
	}
	if skew := now.Sub(time.Unix(unix, 0)); skew > webhookWindow || skew < -webhookWindow {
		return fmt.Errorf("tickets: webhook: the timestamp is %s away from now, more than %s (a replay, or a clock is wrong)", skew.Round(time.Second), webhookWindow)
	}
	got, err := hex.DecodeString(sig)
	want, _ := hex.DecodeString(signWebhook([]byte(secret), ts, body))
	if err != nil || !hmac.Equal(got, want) {
		return errors.New("tickets: webhook: the signature does not match the body (a different secret, or the body was changed)")
	}
	return nil
}
