package slack_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/soar-dev/soar/internal/testenv"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soar-dev/soar/connectors/slack"
	"github.com/soar-dev/soar/internal/testenv/fakeslack"
)

const interactionsURL = "http://soar.example/slack/interactions"

// clickHarness is an Interactions handler on a fixed clock, with a fake
// Slack for its replies, a recording Decider and a log buffer.
type clickHarness struct {
	h       *slack.Interactions
	fake    *fakeslack.Server
	decider *fakeDecider
	signer  *slack.Signer
	logs    *logBuffer
	now     time.Time
}

func newClickHarness(t *testing.T) *clickHarness {
	t.Helper()
	c, fake := newClient(t)
	log, logs := logger()
	ch := &clickHarness{
		fake: fake, decider: newDecider(), signer: newSigner(t), logs: logs,
		now: time.Unix(1_800_000_000, 0),
	}
	h, err := slack.NewInteractions(slack.InteractionsConfig{
		SigningSecret: testSecret, Signer: ch.signer, Decider: ch.decider, Client: c, Log: log,
		Now: func() time.Time { return ch.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	ch.h = h
	return ch
}

// value signs a vote on inc-1/ask that expires in an hour.
func (ch *clickHarness) value(approve bool) string {
	return ch.signer.Sign(slack.ButtonValue{
		Incident: "inc-1", Step: "ask", Approve: approve, PlanHash: "ph1", Expires: ch.now.Add(time.Hour),
	})
}

// click is alice's signed request clicking actionID with value.
func (ch *clickHarness) click(t *testing.T, actionID, value string) *http.Request {
	t.Helper()
	body := fakeslack.ClickBody(t, alice, testChannelID, testMessageTS, actionID, value)
	return fakeslack.SignedRequest(t, interactionsURL, testSecret, ch.now, body)
}

// serve runs the request through the handler, waits for the background
// work and returns the response.
func (ch *clickHarness) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	ch.h.ServeHTTP(rec, req)
	ch.h.Wait()
	return rec
}

// ephemeralTexts returns the texts shown to alice.
func (ch *clickHarness) ephemeralTexts() string {
	var texts []string
	for _, m := range ch.fake.Ephemerals(alice.ID) {
		texts = append(texts, m.Text)
	}
	return strings.Join(texts, "\n")
}

func TestValidClickVotes(t *testing.T) {
	ch := newClickHarness(t)
	rec := ch.serve(ch.click(t, slack.ActionApprove, ch.value(true)))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("response = %d %q, want 200 with an empty body", rec.Code, rec.Body)
	}
	clicks := ch.decider.Clicks()
	want := slack.Click{
		Incident: "inc-1", Step: "ask", Approve: true, PlanHash: "ph1",
		User: alice.ID, UserName: "alice", Team: fakeslack.TeamID,
		Channel: testChannelID, MessageTS: testMessageTS, Via: "http",
	}
	if len(clicks) != 1 || clicks[0] != want {
		t.Fatalf("Decider got %+v, want [%+v]", clicks, want)
	}
	eph := ch.fake.Ephemerals(alice.ID)
	if len(eph) != 1 || eph[0].Text != "Your approval was recorded." || eph[0].Channel != testChannelID {
		t.Errorf("alice was shown %+v, want the Decider's confirmation in the channel", eph)
	}
	if sub := missing(ch.logs.String(), `"message":"slack vote recorded"`, `"incident_id":"inc-1"`, `"step":"ask"`, `"user":"U0ALICE"`, `"decision":"approve"`); sub != "" {
		t.Errorf("the log lacks %s:\n%s", sub, ch.logs)
	}
	assertNoSecrets(t, ch.logs.String())
}

func TestDenyClickVotes(t *testing.T) {
	ch := newClickHarness(t)
	if rec := ch.serve(ch.click(t, slack.ActionDeny, ch.value(false))); rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if clicks := ch.decider.Clicks(); len(clicks) != 1 || clicks[0].Approve {
		t.Errorf("Decider got %+v, want one deny", clicks)
	}
}

func TestClickIsAcknowledgedBeforeASlowDecider(t *testing.T) {
	ch := newClickHarness(t)
	release := make(chan struct{})
	ch.decider.release = release
	defer ch.h.Wait()
	defer close(release)

	responded := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		ch.h.ServeHTTP(rec, ch.click(t, slack.ActionApprove, ch.value(true)))
		responded <- rec.Code
	}()
	select {
	case code := <-responded:
		if code != http.StatusOK {
			t.Errorf("status %d, want 200", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not answer while the Decider was blocked")
	}
	// The Decider was called, and is still blocked: the answer did not wait
	// for it.
	ch.decider.next(t)
	if eph := ch.fake.Ephemerals(alice.ID); len(eph) != 0 {
		t.Errorf("a reply was posted before the Decider returned: %+v", eph)
	}
}

func TestBadRequestsAreRejectedWithTheirReason(t *testing.T) {
	tests := []struct {
		name       string
		request    func(t *testing.T, ch *clickHarness) *http.Request
		wantStatus int
		wantReason string
	}{
		{
			name: "forged signature",
			request: func(t *testing.T, ch *clickHarness) *http.Request {
				body := fakeslack.ClickBody(t, alice, testChannelID, testMessageTS, slack.ActionApprove, ch.value(true))
				return fakeslack.SignedRequest(t, interactionsURL, "not-the-signing-secret", ch.now, body)
			},
			wantStatus: http.StatusUnauthorized, wantReason: "forged signature",
		},
		{
			name: "a byte of the payload changed after signing",
			request: func(t *testing.T, ch *clickHarness) *http.Request {
				req := ch.click(t, slack.ActionApprove, ch.value(true))
				body := readBody(t, req)
				i := bytes.Index(body, []byte("U0ALICE"))
				body[i+1] ^= 0x01 // U1ALICE
				return withBody(req, body)
			},
			wantStatus: http.StatusUnauthorized, wantReason: "forged signature",
		},
		{
			name: "no signature",
			request: func(t *testing.T, ch *clickHarness) *http.Request {
				req := ch.click(t, slack.ActionApprove, ch.value(true))
				req.Header.Del("X-Slack-Signature")
				return req
			},
			wantStatus: http.StatusUnauthorized, wantReason: "missing signature",
		},
		{
			name: "stale timestamp",
			request: func(t *testing.T, ch *clickHarness) *http.Request {
				body := fakeslack.ClickBody(t, alice, testChannelID, testMessageTS, slack.ActionApprove, ch.value(true))
				return fakeslack.SignedRequest(t, interactionsURL, testSecret, ch.now.Add(-5*time.Minute-time.Second), body)
			},
			wantStatus: http.StatusUnauthorized, wantReason: "stale timestamp",
		},
		{
			name: "future timestamp",
			request: func(t *testing.T, ch *clickHarness) *http.Request {
				body := fakeslack.ClickBody(t, alice, testChannelID, testMessageTS, slack.ActionApprove, ch.value(true))
				return fakeslack.SignedRequest(t, interactionsURL, testSecret, ch.now.Add(5*time.Minute+time.Second), body)
			},
			wantStatus: http.StatusUnauthorized, wantReason: "future timestamp",
		},
		{
			name: "wrong method",
			request: func(t *testing.T, ch *clickHarness) *http.Request {
				req := ch.click(t, slack.ActionApprove, ch.value(true))
				req.Method = http.MethodGet
				return req
			},
			wantStatus: http.StatusMethodNotAllowed, wantReason: "wrong method",
		},
		{
			name: "oversize body",
			request: func(t *testing.T, ch *clickHarness) *http.Request {
				body := append([]byte("payload="), bytes.Repeat([]byte("a"), 1<<20)...)
				return fakeslack.SignedRequest(t, interactionsURL, testSecret, ch.now, body)
			},
			wantStatus: http.StatusRequestEntityTooLarge, wantReason: "body too large",
		},
		{
			name: "unparseable payload",
			request: func(t *testing.T, ch *clickHarness) *http.Request {
				return fakeslack.SignedRequest(t, interactionsURL, testSecret, ch.now, []byte("payload=%7Bnot+json"))
			},
			wantStatus: http.StatusBadRequest, wantReason: "unparseable payload",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := newClickHarness(t)
			rec := ch.serve(tt.request(t, ch))
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			assertNoVote(t, ch)
			assertRejectionLogged(t, ch, tt.wantReason)
		})
	}
}

func TestReplayedRequestIsRejected(t *testing.T) {
	ch := newClickHarness(t)
	req := ch.click(t, slack.ActionApprove, ch.value(true))
	body := readBody(t, req)
	if rec := ch.serve(withBody(req.Clone(req.Context()), body)); rec.Code != http.StatusOK {
		t.Fatalf("first delivery: status %d", rec.Code)
	}
	ch.now = ch.now.Add(4 * time.Minute) // still within the window
	if rec := ch.serve(withBody(req.Clone(req.Context()), body)); rec.Code != http.StatusUnauthorized {
		t.Errorf("replay: status %d, want 401", rec.Code)
	}
	if n := len(ch.decider.Clicks()); n != 1 {
		t.Errorf("the Decider was called %d times, want once", n)
	}
	assertRejectionLogged(t, ch, "replayed request")
}

func TestSlacksExampleSignatureIsAccepted(t *testing.T) {
	log, logs := logger()
	h, err := slack.NewInteractions(slack.InteractionsConfig{
		SigningSecret: "8f742231b10e8888abcd99yyyzzz85a5", Signer: newSigner(t), Decider: newDecider(), Log: log,
		Now: func() time.Time { return time.Unix(1531420618, 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	const signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
	if got := fakeslack.Signature("8f742231b10e8888abcd99yyyzzz85a5", time.Unix(1531420618, 0), []byte(body)); got != signature {
		t.Errorf("computed signature %s, want %s", got, signature)
	}
	send := func(sig string) int {
		req := httptest.NewRequest(http.MethodPost, interactionsURL, strings.NewReader(body))
		req.Header.Set("X-Slack-Request-Timestamp", "1531420618")
		req.Header.Set("X-Slack-Signature", sig)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	flipped := signature[:len(signature)-1] + "a"
	if code := send(flipped); code != http.StatusUnauthorized {
		t.Errorf("a changed signature: status %d, want 401", code)
	}
	// The example is a slash command, not an interaction: verification
	// passes, and only the payload is refused.
	if code := send(signature); code != http.StatusBadRequest {
		t.Errorf("Slack's example: status %d, want 400 (signature accepted, no interaction payload)", code)
	}
	if !strings.Contains(logs.String(), `"reason":"unparseable payload"`) || strings.Count(logs.String(), "forged signature") != 1 {
		t.Errorf("log:\n%s", logs)
	}
}

func TestButtonProblems(t *testing.T) {
	tests := []struct {
		name       string
		request    func(t *testing.T, ch *clickHarness) *http.Request
		wantReason string
		wantReply  string
	}{
		{
			name: "the step in the value was changed",
			request: func(t *testing.T, ch *clickHarness) *http.Request {
				return ch.click(t, slack.ActionApprove, changeStep(t, ch.value(true), "other-step"))
			},
			wantReason: "tampered button value", wantReply: "This button is not valid",
		},
		{
			name: "a byte of the value flipped",
			request: func(t *testing.T, ch *clickHarness) *http.Request {
				v := []byte(ch.value(true))
				v[10] ^= 0x01
				return ch.click(t, slack.ActionApprove, string(v))
			},
			wantReason: "tampered button value", wantReply: "This button is not valid",
		},
		{
			name: "approve action with a deny value",
			request: func(t *testing.T, ch *clickHarness) *http.Request {
				return ch.click(t, slack.ActionApprove, ch.value(false))
			},
			wantReason: "tampered button value", wantReply: "This button is not valid",
		},
		{
			name: "expired button",
			request: func(t *testing.T, ch *clickHarness) *http.Request {
				req := ch.click(t, slack.ActionApprove, ch.value(true))
				ch.now = ch.now.Add(time.Hour + time.Second)
				return fakeslack.SignedRequest(t, interactionsURL, testSecret, ch.now, readBody(t, req))
			},
			wantReason: "expired button", wantReply: "This approval expired at <!date^",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := newClickHarness(t)
			if rec := ch.serve(tt.request(t, ch)); rec.Code != http.StatusOK {
				t.Errorf("status %d, want 200: the request itself is Slack's", rec.Code)
			}
			assertNoVote(t, ch)
			if !strings.Contains(ch.logs.String(), `"reason":"`+tt.wantReason+`"`) {
				t.Errorf("the log lacks reason %q:\n%s", tt.wantReason, ch.logs)
			}
			if got := ch.ephemeralTexts(); !strings.Contains(got, tt.wantReply) {
				t.Errorf("alice was shown %q, want %q", got, tt.wantReply)
			}
		})
	}
}

func TestRefusedVoteIsExplainedToTheClicker(t *testing.T) {
	ch := newClickHarness(t)
	ch.decider.err = errors.New("U0ALICE already voted on this approval <!channel>")
	if rec := ch.serve(ch.click(t, slack.ActionApprove, ch.value(true))); rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	want := "Your vote was not recorded: U0ALICE already voted on this approval &lt;!channel&gt;"
	if got := ch.ephemeralTexts(); got != want {
		t.Errorf("alice was shown %q, want %q", got, want)
	}
	calls := ch.fake.Calls("chat.postEphemeral")
	if len(calls) != 1 || calls[0].Form.Get("user") != alice.ID || calls[0].Form.Get("channel") != testChannelID {
		t.Errorf("chat.postEphemeral calls: %+v", calls)
	}
	if sub := missing(ch.logs.String(), `"level":"warn"`, `"reason":"U0ALICE already voted`, `"message":"slack vote refused"`); sub != "" {
		t.Errorf("the log lacks %s:\n%s", sub, ch.logs)
	}
}

func TestOtherInteractionsAreIgnored(t *testing.T) {
	tests := []struct {
		name    string
		payload map[string]any
	}{
		{"another button", fakeslack.ClickPayload(alice, testChannelID, testMessageTS, "open_runbook", "x")},
		{"a modal submission", map[string]any{"type": "view_submission", "user": map[string]any{"id": alice.ID}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := newClickHarness(t)
			js, err := json.Marshal(tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			body := []byte("payload=" + url.QueryEscape(string(js)))
			if rec := ch.serve(fakeslack.SignedRequest(t, interactionsURL, testSecret, ch.now, body)); rec.Code != http.StatusOK {
				t.Errorf("status %d, want 200", rec.Code)
			}
			assertNoVote(t, ch)
			if len(ch.fake.Ephemerals(alice.ID)) != 0 {
				t.Error("a reply was posted")
			}
			if !strings.Contains(ch.logs.String(), "slack interaction ignored") {
				t.Errorf("log:\n%s", ch.logs)
			}
		})
	}
}

func TestNewInteractionsNeedsSignerAndDecider(t *testing.T) {
	if _, err := slack.NewInteractions(slack.InteractionsConfig{Decider: newDecider()}); err == nil {
		t.Error("no Signer: no error")
	}
	if _, err := slack.NewInteractions(slack.InteractionsConfig{Signer: newSigner(t)}); err == nil {
		t.Error("no Decider: no error")
	}
}

// assertNoVote fails when the Decider was called.
func assertNoVote(t *testing.T, ch *clickHarness) {
	t.Helper()
	if clicks := ch.decider.Clicks(); len(clicks) != 0 {
		t.Errorf("the Decider was called: %+v", clicks)
	}
}

// assertRejectionLogged checks the warn line and that it holds no secret.
func assertRejectionLogged(t *testing.T, ch *clickHarness, reason string) {
	t.Helper()
	logs := ch.logs.String()
	if sub := missing(logs, `"level":"warn"`, `"reason":"`+reason+`"`, "slack interaction rejected"); sub != "" {
		t.Errorf("the log lacks %s:\n%s", sub, logs)
	}
	assertNoSecrets(t, logs)
}

// assertNoSecrets fails when logs show the signing secret, a signature or a
// request body.
func assertNoSecrets(t *testing.T, logs string) {
	t.Helper()
	for _, secret := range []string{testSecret, "v0=", "payload=", testToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log shows %q:\n%s", secret, logs)
		}
	}
}

// readBody reads a request's body.
func readBody(t *testing.T, req *http.Request) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := b.ReadFrom(req.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withBody gives req body, keeping its headers (and so its signature).
func withBody(req *http.Request, body []byte) *http.Request {
	req.Body = httpBody(body)
	req.ContentLength = int64(len(body))
	return req
}

func httpBody(b []byte) *readCloser { return &readCloser{bytes.NewReader(b)} }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// changeStep re-encodes a signed value's payload with another step, keeping
// the old signature, as a tamperer without the key would.
func changeStep(t *testing.T, value, step string) string {
	t.Helper()
	parts := strings.Split(value, ".")
	if len(parts) != 3 {
		t.Fatalf("value %q is not v1.payload.sig", value)
	}
	js, err := base64URL.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	m["s"] = step
	js, _ = json.Marshal(m)
	return parts[0] + "." + base64URL.EncodeToString(js) + "." + parts[2]
}

var base64URL = base64.RawURLEncoding

func TestRepliesAreLoggedWithoutAClient(t *testing.T) {
	log, logs := logger()
	decider := newDecider()
	signer := newSigner(t)
	now := time.Unix(1_800_000_000, 0)
	h, err := slack.NewInteractions(slack.InteractionsConfig{
		SigningSecret: testSecret, Signer: signer, Decider: decider, Log: log,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	value := signer.Sign(slack.ButtonValue{Incident: "inc-1", Step: "ask", Approve: true, Expires: now.Add(time.Minute)})
	body := fakeslack.ClickBody(t, alice, testChannelID, testMessageTS, slack.ActionApprove, value)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, fakeslack.SignedRequest(t, interactionsURL, testSecret, now, body))
	h.Wait()
	if rec.Code != http.StatusOK || len(decider.Clicks()) != 1 {
		t.Fatalf("status %d, votes %d", rec.Code, len(decider.Clicks()))
	}
	if sub := missing(logs.String(), `"reply":"Your approval was recorded."`, "slack reply not posted"); sub != "" {
		t.Errorf("the log lacks %s:\n%s", sub, logs)
	}
}

func TestDecideTimeoutIsReported(t *testing.T) {
	c, fake := newClient(t)
	log, _ := logger()
	decider := newDecider()
	decider.release = make(chan struct{}) // never released: only the timeout ends the vote
	signer := newSigner(t)
	now := time.Unix(1_800_000_000, 0)
	h, err := slack.NewInteractions(slack.InteractionsConfig{
		SigningSecret: testSecret, Signer: signer, Decider: decider, Client: c, Log: log,
		Now: func() time.Time { return now }, DecideTimeout: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	value := signer.Sign(slack.ButtonValue{Incident: "inc-1", Step: "ask", Approve: true, Expires: now.Add(time.Minute)})
	body := fakeslack.ClickBody(t, alice, testChannelID, testMessageTS, slack.ActionApprove, value)
	h.ServeHTTP(httptest.NewRecorder(), fakeslack.SignedRequest(t, interactionsURL, testSecret, now, body))
	h.Wait()
	eph := fake.Ephemerals(alice.ID)
	if len(eph) != 1 || !strings.HasPrefix(eph[0].Text, "Your vote was not recorded: soar did not record it within 20ms") {
		t.Errorf("alice was shown %+v", eph)
	}
}

// TestUnverifiedBodiesAreBoundedInNumberAndSize: bodies are read before
// their signature can be checked, so an attacker who sends many large or
// stalled bodies could hold memory. At most 64 are read at once (the next
// request is answered 503 at once, holding nothing), each at most 256 KiB.
func TestUnverifiedBodiesAreBoundedInNumberAndSize(t *testing.T) {
	ch := newClickHarness(t)
	stalled := make([]*io.PipeWriter, 64)
	var done sync.WaitGroup
	for i := range stalled {
		pr, pw := io.Pipe()
		stalled[i] = pw
		req := httptest.NewRequest(http.MethodPost, interactionsURL, pr)
		done.Add(1)
		go func() {
			defer done.Done()
			ch.h.ServeHTTP(httptest.NewRecorder(), req)
		}()
	}
	// Every stalled reader holds its token once it has started to read.
	testenv.Eventually(t, 5*time.Second, "64 stalled readers", func() error {
		rec := httptest.NewRecorder()
		ch.h.ServeHTTP(rec, ch.click(t, "approve", ch.value(true)))
		if rec.Code != http.StatusServiceUnavailable {
			return fmt.Errorf("status %d while 64 bodies stall, want 503", rec.Code)
		}
		return nil
	})
	for _, pw := range stalled {
		_ = pw.CloseWithError(errors.New("client gone"))
	}
	done.Wait()
	// The tokens are back: a valid click is taken again.
	if rec := ch.serve(ch.click(t, "approve", ch.value(true))); rec.Code != http.StatusOK {
		t.Errorf("status %d after the stalled readers left, want 200", rec.Code)
	}

	big := httptest.NewRequest(http.MethodPost, interactionsURL, strings.NewReader(strings.Repeat("x", 256<<10+1)))
	if rec := ch.serve(big); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over 256 KiB: status %d, want 413", rec.Code)
	}
}

// TestAClickFromAnotherWorkspaceOrAppIsRefused: Slack signs the requests of
// every workspace an app is installed in with the same secret, so a valid
// signature does not make a click soar's. Clicks count only from the
// workspace auth.test names (asked once) and, when configured, the app.
func TestAClickFromAnotherWorkspaceOrAppIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		user     fakeslack.User
		appID    string
		asked    func(context.Context) (string, error)
		wantVote bool
		wantLog  string
	}{
		{name: "own workspace", user: alice, wantVote: true},
		{name: "another workspace", user: fakeslack.User{ID: "U0EVE", Name: "eve", Team: "T0OTHER"}, wantLog: `a click from Slack workspace \"T0OTHER\", not \"T0FAKE\"`},
		{name: "another app", user: alice, appID: "A0SOMEONEELSE", wantLog: `a click for Slack app \"` + fakeslack.AppID + `\", not \"A0SOMEONEELSE\"`},
		{name: "auth.test fails", user: alice, asked: func(context.Context) (string, error) { return "", errors.New("slack is down") },
			wantLog: "soar could not read its own Slack workspace to compare: slack is down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, fake := newClient(t)
			log, logs := logger()
			now := time.Unix(1_800_000_000, 0)
			signer, decider := newSigner(t), newDecider()
			asked := 0
			workspace := tc.asked
			if workspace == nil {
				workspace = func(ctx context.Context) (string, error) {
					asked++
					team, _, err := c.AuthTest(ctx)
					return team, err
				}
			}
			h, err := slack.NewInteractions(slack.InteractionsConfig{
				SigningSecret: testSecret, Signer: signer, Decider: decider, Client: c, Log: log,
				Now: func() time.Time { return now }, Workspace: workspace, AppID: tc.appID,
			})
			if err != nil {
				t.Fatal(err)
			}
			value := signer.Sign(slack.ButtonValue{Incident: "inc-1", Step: "ask", Approve: true, PlanHash: "ph1", Expires: now.Add(time.Hour)})
			for range 2 {
				body := fakeslack.ClickBody(t, tc.user, testChannelID, testMessageTS, slack.ActionApprove, value)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, fakeslack.SignedRequest(t, interactionsURL, testSecret, now, body))
				h.Wait()
				if rec.Code != http.StatusOK {
					t.Fatalf("status %d", rec.Code)
				}
				now = now.Add(time.Second)
			}
			if got := len(decider.Clicks()); (got == 2) != tc.wantVote || (got != 0 && !tc.wantVote) {
				t.Errorf("%d votes reached the Decider, want votes: %v", got, tc.wantVote)
			}
			if tc.wantLog != "" && !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("the log lacks %q:\n%s", tc.wantLog, logs)
			}
			if tc.asked == nil && tc.appID == "" && asked != 1 {
				t.Errorf("auth.test asked %d times, want once", asked)
			}
			if !tc.wantVote && len(fake.Ephemerals(tc.user.ID)) != 0 {
				t.Errorf("a refused foreign click was answered: %+v", fake.Ephemerals(tc.user.ID))
			}
		})
	}
}

// TestClicksArePacedPerUser: a script clicking with one person's Slack
// session gets ClickBurst votes at once and ClickRate a second after that;
// the dropped clicks reach neither the Decider nor Slack (no reply per
// click), and another person's clicks are unaffected.
func TestClicksArePacedPerUser(t *testing.T) {
	ch := newClickHarness(t)
	clickAs := func(u fakeslack.User, i int) {
		t.Helper()
		ts := fmt.Sprintf("1800000000.%06d", i) // a distinct request each time, not a replay
		body := fakeslack.ClickBody(t, u, testChannelID, ts, slack.ActionApprove, ch.value(true))
		if rec := ch.serve(fakeslack.SignedRequest(t, interactionsURL, testSecret, ch.now, body)); rec.Code != http.StatusOK {
			t.Fatalf("click %d by %s: status %d, want 200 (Slack must not retry it)", i, u.Name, rec.Code)
		}
	}
	votesBy := func(u fakeslack.User) int {
		n := 0
		for _, c := range ch.decider.Clicks() {
			if c.User == u.ID {
				n++
			}
		}
		return n
	}
	for i := range slack.ClickBurst + 15 {
		clickAs(alice, i)
	}
	if got := votesBy(alice); got != slack.ClickBurst {
		t.Errorf("%d of alice's %d clicks at once reached the Decider, want %d", got, slack.ClickBurst+15, slack.ClickBurst)
	}
	if got := len(ch.fake.Ephemerals(alice.ID)); got != slack.ClickBurst {
		t.Errorf("alice was answered %d times, want once per counted click (%d)", got, slack.ClickBurst)
	}
	if !strings.Contains(ch.logs.String(), "clicks at once or") {
		t.Errorf("the log does not say why clicks were dropped:\n%s", ch.logs)
	}
	clickAs(bob, 100)
	if got := votesBy(bob); got != 1 {
		t.Errorf("bob's click after alice's flood: %d votes, want 1", got)
	}
	ch.now = ch.now.Add(time.Second)
	for i := range 5 {
		clickAs(alice, 200+i)
	}
	if got := votesBy(alice); got != slack.ClickBurst+slack.ClickRate {
		t.Errorf("a second later alice has %d votes, want %d", got, slack.ClickBurst+slack.ClickRate)
	}
}

// TestAFloodOfForgedRequestsDoesNotFloodTheLog: every forged request is
// refused, but only a few lines a second are written per reason; the next
// line says how many were left out, and other reasons are still logged.
func TestAFloodOfForgedRequestsDoesNotFloodTheLog(t *testing.T) {
	ch := newClickHarness(t)
	forged := func() {
		t.Helper()
		body := fakeslack.ClickBody(t, alice, testChannelID, testMessageTS, slack.ActionApprove, ch.value(true))
		if rec := ch.serve(fakeslack.SignedRequest(t, interactionsURL, "not-the-signing-secret", ch.now, body)); rec.Code != http.StatusUnauthorized {
			t.Fatalf("forged request: status %d, want 401", rec.Code)
		}
	}
	const flood = 500
	for range flood {
		forged()
	}
	lines := strings.Count(ch.logs.String(), "slack interaction rejected")
	if lines == 0 || lines > 100 {
		t.Errorf("%d forged requests wrote %d log lines, want a few (at most 100)", flood, lines)
	}
	// The flood does not hide a rejection for another reason.
	stale := fakeslack.ClickBody(t, alice, testChannelID, testMessageTS, slack.ActionApprove, ch.value(true))
	if rec := ch.serve(fakeslack.SignedRequest(t, interactionsURL, testSecret, ch.now.Add(-time.Hour), stale)); rec.Code != http.StatusUnauthorized {
		t.Fatalf("stale request: status %d, want 401", rec.Code)
	}
	if !strings.Contains(ch.logs.String(), `"reason":"stale timestamp"`) {
		t.Errorf("a stale request right after the flood was not logged:\n%s", ch.logs)
	}
	testenv.Eventually(t, 10*time.Second, "a line counting the suppressed rejections", func() error {
		forged()
		if !strings.Contains(ch.logs.String(), `"suppressed":`) {
			return errors.New("no line carries suppressed yet")
		}
		return nil
	})
	assertNoSecrets(t, ch.logs.String())
}
