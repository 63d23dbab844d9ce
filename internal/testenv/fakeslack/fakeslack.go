// Package fakeslack is an in-process fake of the Slack Web API and Socket
// Mode for tests: it keeps the messages posted to it, answers the methods
// soar's Slack connector calls with bodies shaped like Slack's, fails calls on
// request, and delivers Socket Mode envelopes to a connected client.
//
// It implements chat.postMessage, chat.update, chat.postEphemeral,
// conversations.history, conversations.replies, conversations.list,
// usergroups.users.list, users.info, users.lookupByEmail, auth.test and apps.connections.open;
// other methods answer unknown_method. Like Slack, it rejects blocks that
// break Block Kit's length limits with invalid_blocks.
package fakeslack

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fake workspace's identity, as auth.test reports it.
const (
	TeamID    = "T0FAKE"
	TeamName  = "fake"
	BotUserID = "U0SOARBOT"
	BotID     = "B0SOARBOT"
	AppID     = "A0SOAR"
)

// Call is one Web API request the fake received.
type Call struct {
	// Method is the API method, e.g. "chat.postMessage".
	Method string
	Header http.Header
	// Form holds the parameters, whether sent as a form, a query or JSON
	// (non-string JSON values JSON-encoded).
	Form url.Values
	// JSON is the body of a JSON request; nil for forms.
	JSON map[string]any
	At   time.Time
}

// Message is a message the fake keeps.
type Message struct {
	Channel, TS, ThreadTS, Text string
	Blocks                      json.RawMessage
	Metadata                    map[string]any
	// Broadcast is reply_broadcast: the thread reply also shows in the
	// channel.
	Broadcast bool
	// Ephemeral messages are shown to User only.
	Ephemeral bool
	User      string
	// Updated counts chat.update calls on the message.
	Updated int
}

// ButtonValues returns the values of the message's soar_approve and
// soar_deny buttons, "" for a button it does not have.
func (m Message) ButtonValues() (approve, deny string) {
	var blocks []struct {
		Type     string `json:"type"`
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	if len(m.Blocks) == 0 || json.Unmarshal(m.Blocks, &blocks) != nil {
		return "", ""
	}
	for _, b := range blocks {
		if b.Type != "actions" {
			continue
		}
		for _, e := range b.Elements {
			switch e.ActionID {
			case "soar_approve":
				approve = e.Value
			case "soar_deny":
				deny = e.Value
			}
		}
	}
	return approve, deny
}

// User is a workspace member users.info knows.
type User struct{ ID, Name, Email, Team string }

// Failure makes calls of a method fail.
type Failure struct {
	// Status is the HTTP status to answer; 0 or 200 answers 200 with
	// ok:false and Error.
	Status int
	// RetryAfter is the Retry-After header, e.g. "7".
	RetryAfter string
	// Error is Slack's error code for an ok:false answer.
	Error string
	// Times is how many calls fail; 0 means every call until Fail is called
	// again for the method.
	Times int
}

// Server is the fake Slack. Its methods are safe for concurrent use.
type Server struct {
	// URL is the Web API base URL, ending in "/": Config.APIURL.
	URL string

	srv *httptest.Server

	mu       sync.Mutex
	calls    []Call
	channels map[string]string // name -> ID
	messages map[string][]*Message
	groups   map[string][]string
	users    map[string]User
	failures map[string]*Failure
	token    string
	lastTS   int64

	socket socketState
}

// New starts a fake Slack, stopped when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		channels: map[string]string{},
		messages: map[string][]*Message{},
		groups:   map[string][]string{},
		users:    map[string]User{},
		failures: map[string]*Failure{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.serveAPI)
	mux.HandleFunc("/socket", s.serveSocket)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/api/"
	t.Cleanup(func() {
		s.closeSockets()
		s.srv.Close()
	})
	return s
}

// Calls returns the calls of method in order; all calls when method is "".
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Messages returns the messages of channel (an ID or a name set with
// SetChannel), ephemeral ones included, in the order they were posted, each
// as it is now.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.resolveChannel(channel)
	if !ok {
		return nil
	}
	out := make([]Message, 0, len(s.messages[id]))
	for _, m := range s.messages[id] {
		out = append(out, m.clone())
	}
	return out
}

// Ephemerals returns the ephemeral messages shown to user, in order.
func (s *Server) Ephemerals(user string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*Message
	for _, msgs := range s.messages {
		for _, m := range msgs {
			if m.Ephemeral && m.User == user {
				all = append(all, m)
			}
		}
	}
	slices.SortFunc(all, func(a, b *Message) int { return strings.Compare(a.TS, b.TS) })
	out := make([]Message, 0, len(all))
	for _, m := range all {
		out = append(out, m.clone())
	}
	return out
}

// SetGroup sets the members of a user group.
func (s *Server) SetGroup(group string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[group] = slices.Clone(members)
}

// SetUser adds or replaces a user.
func (s *Server) SetUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = u
}

// SetChannel makes the channel name ("#secops" or "secops") known as id.
// Unknown names are channel_not_found; a channel ID (C..., G..., D...) is
// always accepted.
func (s *Server) SetChannel(name, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[strings.TrimPrefix(name, "#")] = id
}

// Fail makes the next calls of method fail as f says; a zero f stops
// failing.
func (s *Server) Fail(method string, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == (Failure{}) {
		delete(s.failures, method)
		return
	}
	s.failures[method] = &f
}

// RequireToken makes Web API calls without this token (as a Bearer header
// or a token parameter, the two ways Slack accepts) answer invalid_auth.
func (s *Server) RequireToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = tok
}

// resolveChannel returns the ID of an ID or a known name. Callers hold mu.
func (s *Server) resolveChannel(channel string) (string, bool) {
	if isChannelID(channel) {
		return channel, true
	}
	id, ok := s.channels[strings.TrimPrefix(channel, "#")]
	return id, ok
}

// isChannelID reports whether channel looks like a conversation ID: C, G or
// D and upper-case letters and digits. Channel names are lower case.
func isChannelID(channel string) bool {
	if len(channel) < 2 || !strings.ContainsRune("CGD", rune(channel[0])) {
		return false
	}
	for _, c := range channel[1:] {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// nextTS returns a new message timestamp: the current time in
// microseconds, strictly increasing. Callers hold mu.
func (s *Server) nextTS() string {
	now := time.Now().UnixMicro()
	if now <= s.lastTS {
		now = s.lastTS + 1
	}
	s.lastTS = now
	return fmt.Sprintf("%d.%06d", now/1e6, now%1e6)
}

// serveAPI records a Web API call and answers it.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	form, js, err := readParams(r)
	if err != nil {
		writeJSON(w, http.StatusOK, slackError("invalid_form_data"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{Method: method, Header: r.Header.Clone(), Form: form, JSON: js, At: time.Now()})
	if s.fail(w, method) {
		return
	}
	if method == "apps.connections.open" {
		s.appsConnectionsOpen(w, r)
		return
	}
	if s.token != "" {
		if tok := requestToken(r, form); tok != s.token {
			code := "invalid_auth"
			if tok == "" {
				code = "not_authed"
			}
			writeJSON(w, http.StatusOK, slackError(code))
			return
		}
	}
	handler, ok := s.methods()[method]
	if !ok {
		writeJSON(w, http.StatusOK, slackError("unknown_method"))
		return
	}
	writeJSON(w, http.StatusOK, handler(form))
}

// methods maps Web API methods to their handlers, which run with mu held.
func (s *Server) methods() map[string]func(url.Values) map[string]any {
	return map[string]func(url.Values) map[string]any{
		"chat.postMessage":      s.chatPostMessage,
		"chat.update":           s.chatUpdate,
		"chat.postEphemeral":    s.chatPostEphemeral,
		"conversations.history": s.conversationsHistory,
		"conversations.replies": s.conversationsReplies,
		"conversations.list":    s.conversationsList,
		"usergroups.users.list": s.usergroupsUsersList,
		"users.info":            s.usersInfo,
		"users.lookupByEmail":   s.usersLookupByEmail,
		"auth.test":             s.authTest,
	}
}

// fail answers with the method's Failure, if any, and reports whether it
// did. Callers hold mu.
func (s *Server) fail(w http.ResponseWriter, method string) bool {
	f, ok := s.failures[method]
	if !ok {
		return false
	}
	if f.Times > 0 {
		f.Times--
		if f.Times == 0 {
			delete(s.failures, method)
		}
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	switch {
	case f.Status == http.StatusTooManyRequests:
		writeJSON(w, f.Status, slackError("ratelimited"))
	case f.Status != 0 && f.Status != http.StatusOK:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.Status)
		_, _ = io.WriteString(w, "<html><body>fakeslack: "+http.StatusText(f.Status)+"</body></html>")
	default:
		body := slackError(f.Error)
		if f.Error == "missing_scope" {
			body["needed"] = neededScope(method)
			body["provided"] = "chat:write"
		}
		writeJSON(w, http.StatusOK, body)
	}
	return true
}

// neededScope is the scope Slack names in a missing_scope error for method.
func neededScope(method string) string {
	switch method {
	case "usergroups.users.list":
		return "usergroups:read"
	case "users.info":
		return "users:read"
	case "users.lookupByEmail":
		return "users:read.email"
	case "conversations.history", "conversations.replies":
		return "channels:history,groups:history"
	case "conversations.list":
		return "channels:read,groups:read"
	default:
		return "chat:write"
	}
}

// readParams returns a request's parameters from its query and its form or
// JSON body.
func readParams(r *http.Request) (url.Values, map[string]any, error) {
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ctype != "application/json" {
		if err := r.ParseForm(); err != nil {
			return nil, nil, err
		}
		return r.Form, nil, nil
	}
	form := r.URL.Query()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, nil, err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return form, nil, nil
	}
	var js map[string]any
	if err := json.Unmarshal(body, &js); err != nil {
		return nil, nil, err
	}
	for k, v := range js {
		if str, ok := v.(string); ok {
			form.Set(k, str)
			continue
		}
		enc, _ := json.Marshal(v)
		form.Set(k, string(enc))
	}
	return form, js, nil
}

// requestToken returns the token of a request: its Bearer header or its
// token parameter.
func requestToken(r *http.Request, form url.Values) string {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return tok
	}
	return form.Get("token")
}

// writeJSON answers status with body as JSON.
func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// slackError is an ok:false body.
func slackError(code string) map[string]any {
	return map[string]any{"ok": false, "error": code}
}

// clone copies m deeply enough that callers cannot change the fake's copy.
func (m *Message) clone() Message {
	c := *m
	c.Blocks = slices.Clone(m.Blocks)
	if m.Metadata != nil {
		// A JSON round trip copies the nested event_payload too.
		js, _ := json.Marshal(m.Metadata)
		c.Metadata = nil
		_ = json.Unmarshal(js, &c.Metadata)
	}
	return c
}
