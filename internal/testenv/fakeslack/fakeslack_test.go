package fakeslack_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/soar-dev/soar/internal/testenv/fakeslack"
)

// call posts params to method as a form (or JSON when asJSON) with token as
// a Bearer header and returns the decoded answer.
func call(t *testing.T, s *fakeslack.Server, method, token string, params map[string]string, asJSON bool) map[string]any {
	t.Helper()
	var body io.Reader
	ctype := "application/x-www-form-urlencoded"
	if asJSON {
		js, _ := json.Marshal(params)
		body, ctype = bytes.NewReader(js), "application/json; charset=utf-8"
	} else {
		form := url.Values{}
		for k, v := range params {
			form.Set(k, v)
		}
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+method, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s answered %d with a body that is not JSON: %v", method, resp.StatusCode, err)
	}
	return out
}

func wantError(t *testing.T, got map[string]any, code string) {
	t.Helper()
	if got["ok"] != false || got["error"] != code {
		t.Errorf("answer %v, want error %s", got, code)
	}
}

func TestPostUpdateHistoryAndReplies(t *testing.T) {
	s := fakeslack.New(t)
	s.RequireToken("xoxb-t")
	s.SetChannel("#secops", "C1")
	meta := `{"event_type":"soar_incident","event_payload":{"incident":"i1"}}`

	root := call(t, s, "chat.postMessage", "xoxb-t", map[string]string{"channel": "secops", "text": "root", "metadata": meta}, false)
	if root["ok"] != true || root["channel"] != "C1" {
		t.Fatalf("post: %v", root)
	}
	rootTS := root["ts"].(string)
	reply := call(t, s, "chat.postMessage", "xoxb-t", map[string]string{"channel": "C1", "text": "reply", "thread_ts": rootTS}, true)
	if reply["ok"] != true || reply["ts"].(string) <= rootTS {
		t.Fatalf("reply: %v (timestamps must increase)", reply)
	}
	wantError(t, call(t, s, "chat.postMessage", "xoxb-t", map[string]string{"channel": "#nowhere", "text": "x"}, false), "channel_not_found")
	wantError(t, call(t, s, "chat.postMessage", "xoxb-wrong", map[string]string{"channel": "C1", "text": "x"}, false), "invalid_auth")
	wantError(t, call(t, s, "chat.postMessage", "xoxb-t", map[string]string{"channel": "C1", "blocks": `[{"type":"header","text":{"type":"plain_text","text":"` + strings.Repeat("x", 151) + `"}}]`}, false), "invalid_blocks")

	upd := call(t, s, "chat.update", "xoxb-t", map[string]string{"channel": "C1", "ts": rootTS, "text": "root v2"}, false)
	if upd["ok"] != true || upd["text"] != "root v2" {
		t.Errorf("update: %v", upd)
	}
	msgs := s.Messages("#secops")
	if len(msgs) != 2 || msgs[0].Text != "root v2" || msgs[0].Updated != 1 || msgs[1].ThreadTS != rootTS {
		t.Errorf("messages: %+v", msgs)
	}

	hist := call(t, s, "conversations.history", "xoxb-t", map[string]string{"channel": "C1", "include_all_metadata": "1"}, false)
	got := hist["messages"].([]any)
	if len(got) != 1 || got[0].(map[string]any)["metadata"] == nil {
		t.Errorf("history (thread replies excluded, metadata included): %v", got)
	}
	hist = call(t, s, "conversations.history", "xoxb-t", map[string]string{"channel": "C1"}, false)
	if m := hist["messages"].([]any)[0].(map[string]any); m["metadata"] != nil {
		t.Errorf("metadata without include_all_metadata: %v", m)
	}
	hist = call(t, s, "conversations.history", "xoxb-t", map[string]string{"channel": "C1", "oldest": rootTS}, false)
	if n := len(hist["messages"].([]any)); n != 0 {
		t.Errorf("history after oldest=%s (exclusive) has %d messages", rootTS, n)
	}

	replies := call(t, s, "conversations.replies", "xoxb-t", map[string]string{"channel": "C1", "ts": rootTS, "limit": "1"}, false)
	page1 := replies["messages"].([]any)
	if len(page1) != 1 || page1[0].(map[string]any)["ts"] != rootTS || replies["has_more"] != true {
		t.Fatalf("first page of replies: %v", replies)
	}
	cursor := replies["response_metadata"].(map[string]any)["next_cursor"].(string)
	replies = call(t, s, "conversations.replies", "xoxb-t", map[string]string{"channel": "C1", "ts": rootTS, "limit": "1", "cursor": cursor}, false)
	if page2 := replies["messages"].([]any); len(page2) != 1 || page2[0].(map[string]any)["text"] != "reply" {
		t.Errorf("second page of replies: %v", replies)
	}
}

func TestFailuresLastUntilTheirTimesRunOutOrAreCleared(t *testing.T) {
	s := fakeslack.New(t)
	s.Fail("auth.test", fakeslack.Failure{Status: 429, RetryAfter: "7", Times: 1})
	resp, err := http.Post(s.URL+"auth.test", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("failed call: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if got := call(t, s, "auth.test", "", nil, false); got["ok"] != true || got["user_id"] != fakeslack.BotUserID {
		t.Errorf("after Times ran out: %v", got)
	}
	s.Fail("users.info", fakeslack.Failure{Error: "missing_scope"})
	for range 2 {
		got := call(t, s, "users.info", "", map[string]string{"user": "U1"}, false)
		if got["error"] != "missing_scope" || got["needed"] != "users:read" {
			t.Errorf("users.info: %v", got)
		}
	}
	s.Fail("users.info", fakeslack.Failure{})
	wantError(t, call(t, s, "users.info", "", map[string]string{"user": "U1"}, false), "user_not_found")
	wantError(t, call(t, s, "no.such.method", "", nil, false), "unknown_method")
	if n := len(s.Calls("users.info")); n != 3 {
		t.Errorf("%d users.info calls recorded, want 3", n)
	}
}

func TestButtonValuesComeFromTheActionsBlock(t *testing.T) {
	m := fakeslack.Message{Blocks: json.RawMessage(`[{"type":"section","text":{"type":"mrkdwn","text":"x"}},
		{"type":"actions","elements":[{"type":"button","action_id":"soar_approve","value":"A"},{"type":"button","action_id":"soar_deny","value":"D"}]}]`)}
	if a, d := m.ButtonValues(); a != "A" || d != "D" {
		t.Errorf("ButtonValues = %q, %q", a, d)
	}
	if a, d := (fakeslack.Message{}).ButtonValues(); a != "" || d != "" {
		t.Errorf("no blocks: %q, %q", a, d)
	}
}

func TestSignatureMatchesSlacksExample(t *testing.T) {
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	got := fakeslack.Signature("8f742231b10e8888abcd99yyyzzz85a5", time.Unix(1531420618, 0), []byte(body))
	if got != "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503" {
		t.Errorf("Signature = %s", got)
	}
	req := fakeslack.SignedRequest(t, "http://x/slack/interactions", "8f742231b10e8888abcd99yyyzzz85a5", time.Unix(1531420618, 0), []byte(body))
	if req.Header.Get("X-Slack-Signature") != got || req.Header.Get("X-Slack-Request-Timestamp") != "1531420618" {
		t.Errorf("headers: %v", req.Header)
	}
}

func TestClickBodyIsSlackShaped(t *testing.T) {
	body := fakeslack.ClickBody(t, fakeslack.User{ID: "U1", Name: "alice"}, "C1", "1.000100", "soar_approve", "v")
	form, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Type      string `json:"type"`
		User      struct{ ID, Username, TeamID string }
		Container struct {
			MessageTS string `json:"message_ts"`
			ChannelID string `json:"channel_id"`
		} `json:"container"`
		Actions []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
			BlockID  string `json:"block_id"`
		} `json:"actions"`
	}
	if err := json.Unmarshal([]byte(form.Get("payload")), &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "block_actions" || p.User.ID != "U1" || p.Container.ChannelID != "C1" || p.Container.MessageTS != "1.000100" ||
		len(p.Actions) != 1 || p.Actions[0].ActionID != "soar_approve" || p.Actions[0].Value != "v" || p.Actions[0].BlockID == "" {
		t.Errorf("payload = %+v", p)
	}
}
