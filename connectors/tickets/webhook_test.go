package tickets_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soar-dev/soar/connectors/tickets"
)

// receiver is a webhook receiver written as the docs tell receivers to be:
// it verifies the signature and deduplicates by the idempotency key.
type receiver struct {
	*fake
	mu     sync.Mutex
	answer string          // the body of its answers to "open"
	seen   map[string]bool // idempotency keys
	events []map[string]any
}

// newReceiver starts a receiver at /hooks/soar.
func newReceiver(t *testing.T) *receiver {
	r := &receiver{fake: newFake(t), seen: map[string]bool{}}
	r.mux.HandleFunc("POST /hooks/soar", r.serve)
	return r
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := tickets.VerifyWebhook(hookSecret, r.Header, body, time.Now()); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "the event is not JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	key := r.Header.Get("Idempotency-Key")
	if !rc.seen[key] {
		rc.seen[key] = true
		rc.events = append(rc.events, ev)
	}
	rc.mu.Unlock()
	if ev["event"] == "open" && rc.answer != "" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, rc.answer) // a client that hung up sees it on its side
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// newWebhook returns a provider for the receiver.
func newWebhook(t *testing.T, r *receiver) tickets.Provider {
	t.Helper()
	p, err := tickets.NewWebhook(tickets.WebhookConfig{URL: r.URL + "/hooks/soar", Secret: hookSecret})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWebhookSendsSignedEvents(t *testing.T) {
	ctx := context.Background()
	r := newReceiver(t)
	r.answer = string(readTestdata(t, "webhook/open-response.json"))
	p := newWebhook(t, r)
	c := sampleContent()
	hash := strings.TrimPrefix(tickets.IncidentLabel(c.IncidentID), "soar-")

	if found, err := p.Find(ctx, c.IncidentID); err != nil || found != nil {
		t.Errorf("Find = %v, %v; want nil, nil", found, err)
	}
	if n := len(r.requests()); n != 0 {
		t.Errorf("Find sent %d requests", n)
	}
	tk, err := p.Create(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	want := tickets.Ticket{Provider: "webhook", ID: "98211", Key: "INC-98211", URL: "https://tickets.example.com/INC-98211"}
	if tk != want {
		t.Errorf("Create = %+v, want %+v", tk, want)
	}
	if err := p.Comment(ctx, tk, c.IncidentID, sampleComment()); err != nil {
		t.Fatal(err)
	}
	if err := p.Resolve(ctx, tk, c.IncidentID, sampleResolution()); err != nil {
		t.Fatal(err)
	}

	reqs := r.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, name := range []string{"open", "comment", "resolve"} {
		req := reqs[i]
		assertRequest(t, req, http.MethodPost, "/hooks/soar", nil)
		assertGolden(t, "webhook/"+name+"-request.json", req.Body)
		if err := tickets.VerifyWebhook(hookSecret, req.Header, req.Body, time.Now()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		var ev struct{ IdempotencyKey string }
		if err := json.Unmarshal(req.Body, &ev); err != nil {
			t.Fatalf("%s: the body is not JSON: %v", name, err)
		}
		if got := req.Header.Get("Idempotency-Key"); got != ev.IdempotencyKey {
			t.Errorf("%s: Idempotency-Key %q, body %q", name, got, ev.IdempotencyKey)
		}
		if !strings.HasPrefix(ev.IdempotencyKey, "soar-"+name+"-"+hash) {
			t.Errorf("%s: idempotency key %q, want soar-%s-%s...", name, ev.IdempotencyKey, name, hash)
		}
		if ct := req.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", name, ct)
		}
	}
}

func TestWebhookIdempotencyKeysAreStable(t *testing.T) {
	ctx := context.Background()
	r := newReceiver(t)
	p := newWebhook(t, r)
	tk := tickets.Ticket{Provider: "webhook", Key: "soar-open-x"}
	c := sampleContent()

	for range 2 {
		if _, err := p.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := p.Comment(ctx, tk, c.IncidentID, sampleComment()); err != nil {
			t.Fatal(err)
		}
		if err := p.Resolve(ctx, tk, c.IncidentID, sampleResolution()); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Comment(ctx, tk, c.IncidentID, []tickets.Block{{Text: "another comment"}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Comment(ctx, tk, "another incident", sampleComment()); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, req := range r.requests() {
		keys = append(keys, req.Header.Get("Idempotency-Key"))
	}
	for i := range 3 {
		if keys[i] != keys[i+3] {
			t.Errorf("call %d: key %q then %q; want the same key for the same call", i, keys[i], keys[i+3])
		}
	}
	distinct := map[string]bool{}
	for _, k := range append(keys[:3:3], keys[6:]...) {
		distinct[k] = true
	}
	if len(distinct) != 5 {
		t.Errorf("keys %q: want open, comment, resolve, another comment and another incident's comment to differ", keys)
	}
	if len(r.events) != 5 {
		t.Errorf("the receiver kept %d events, want 5 after deduplication", len(r.events))
	}
	// Without an answer, the ticket's key is the open call's key.
	tk2, err := p.Create(ctx, tickets.Content{IncidentID: "inc-9", Title: "x"})
	if err != nil || tk2.Key != "soar-open-"+strings.TrimPrefix(tickets.IncidentLabel("inc-9"), "soar-") || tk2.Provider != "webhook" {
		t.Errorf("Create without an answer = %+v, %v", tk2, err)
	}
}

// sign returns headers signed like soar's.
func sign(secret, ts string, body []byte) http.Header {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return http.Header{"X-Soar-Timestamp": {ts}, "X-Soar-Signature": {"sha256=" + hex.EncodeToString(mac.Sum(nil))}}
}

func TestVerifyWebhookAcceptsOnlyFreshBodiesSignedWithTheSecret(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"event":"open","incidentID":"inc-1"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	tests := []struct {
		name   string
		header http.Header
		body   []byte
		now    time.Time
		want   string // "" for valid
	}{
		{"genuine", sign(hookSecret, ts, body), body, now, ""},
		{"four minutes late", sign(hookSecret, ts, body), body, now.Add(4 * time.Minute), ""},
		{"tampered body", sign(hookSecret, ts, body), []byte(`{"event":"open","incidentID":"inc-2"}`), now, "signature does not match"},
		{"other secret", sign("another-secret-of-enough-length", ts, body), body, now, "signature does not match"},
		{"old timestamp", sign(hookSecret, ts, body), body, now.Add(6 * time.Minute), "more than 5m0s"},
		{"future timestamp", sign(hookSecret, ts, body), body, now.Add(-6 * time.Minute), "more than 5m0s"},
		{"timestamp changed", func() http.Header {
			h := sign(hookSecret, ts, body)
			h.Set("X-Soar-Timestamp", strconv.FormatInt(now.Unix()+1, 10))
			return h
		}(), body, now, "signature does not match"},
		{"no signature", http.Header{"X-Soar-Timestamp": {ts}}, body, now, "sha256=<hex>"},
		{"not hex", http.Header{"X-Soar-Timestamp": {ts}, "X-Soar-Signature": {"sha256=zz"}}, body, now, "signature does not match"},
		{"no timestamp", http.Header{"X-Soar-Signature": {"sha256=00"}}, body, now, "no X-Soar-Timestamp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tickets.VerifyWebhook(hookSecret, tc.header, tc.body, tc.now)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("VerifyWebhook: %v; want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("VerifyWebhook: %v; want %q", err, tc.want)
			}
			assertNoSecret(t, err)
		})
	}
}

func TestWebhookErrorsNeverShowTheSecretOrURL(t *testing.T) {
	const pathToken = "T0001-B0002-webhook-url-token-never-shown"
	secrets := append(secrets, pathToken)
	check := func(t *testing.T, err error) *tickets.Error {
		t.Helper()
		te := asError(t, err)
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q holds %q", err, s)
			}
		}
		return te
	}
	t.Run("refused", func(t *testing.T) {
		r := newReceiver(t)
		p, err := tickets.NewWebhook(tickets.WebhookConfig{URL: r.URL + "/hooks/soar", Secret: hookSecret + "-wrong"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Create(context.Background(), sampleContent())
		te := check(t, err)
		if te.Status != 401 || te.Retryable || !strings.Contains(te.Hint, "SOAR_WEBHOOK_SECRET") {
			t.Errorf("error %+v", te)
		}
	})
	t.Run("not found", func(t *testing.T) {
		r := newReceiver(t)
		p, _ := tickets.NewWebhook(tickets.WebhookConfig{URL: r.URL + "/hooks/" + pathToken, Secret: hookSecret})
		_, err := p.Create(context.Background(), sampleContent())
		if te := check(t, err); te.Status != 404 || !strings.Contains(te.Hint, "check the webhook URL") {
			t.Errorf("error %+v", te)
		}
	})
	t.Run("no answer", func(t *testing.T) {
		r := newReceiver(t)
		r.failNext("POST /hooks/soar", canned{drop: true})
		p, _ := tickets.NewWebhook(tickets.WebhookConfig{URL: r.URL + "/hooks/soar?token=" + pathToken, Secret: hookSecret})
		_, err := p.Create(context.Background(), sampleContent())
		if te := check(t, err); !te.Retryable || te.Status != 0 {
			t.Errorf("error %+v", te)
		}
	})
	t.Run("short secret", func(t *testing.T) {
		_, err := tickets.NewWebhook(tickets.WebhookConfig{URL: "https://hooks.example.com/soar", Secret: "short"})
		if err == nil || !strings.Contains(err.Error(), "at least 16 bytes") || strings.Contains(err.Error(), "short\"") {
			t.Errorf("NewWebhook: %v", err)
		}
	})
}
