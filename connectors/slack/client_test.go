package slack_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/soar-dev/soar/connectors/slack"
	"github.com/soar-dev/soar/internal/testenv/fakeslack"
)

func TestPostThreadUpdateAndFind(t *testing.T) {
	ctx := context.Background()
	c, fake := newClient(t)
	fake.SetChannel("#secops", testChannelID)
	since := time.Now()

	rootMeta := slack.Metadata{Incident: "inc-1", Kind: "root", Key: "root"}
	root, err := c.Post(ctx, "#secops", "", slack.Message{Text: "Incident: shell in pod", Metadata: rootMeta})
	if err != nil {
		t.Fatal(err)
	}
	if root.Channel != testChannelID || root.TS == "" {
		t.Fatalf("Post returned %+v, want channel %s and a ts", root, testChannelID)
	}
	noteMeta := slack.Metadata{Incident: "inc-1", Kind: "note", Key: "step-1"}
	note, err := c.Post(ctx, root.Channel, root.TS, slack.Message{
		Text: "quarantined", Blocks: slack.TextMessage("quarantined").Blocks, Metadata: noteMeta, Broadcast: true,
	})
	if err != nil {
		t.Fatal(err)
	}

	msgs := fake.Messages("#secops")
	if len(msgs) != 2 {
		t.Fatalf("the channel has %d messages, want 2: %+v", len(msgs), msgs)
	}
	if got := msgs[1]; got.ThreadTS != root.TS || !got.Broadcast || got.Metadata["event_type"] != "soar_incident" {
		t.Errorf("thread reply = %+v, want thread_ts %s, broadcast and soar_incident metadata", got, root.TS)
	}
	payload, _ := msgs[0].Metadata["event_payload"].(map[string]any)
	if payload["incident"] != "inc-1" || payload["kind"] != "root" || payload["key"] != "root" {
		t.Errorf("root metadata payload = %v", payload)
	}
	if post := fake.Calls("chat.postMessage")[0]; post.Form.Get("unfurl_links") != "false" || post.Form.Get("unfurl_media") != "false" {
		t.Errorf("chat.postMessage unfurls links: %v", post.Form)
	}

	tests := []struct {
		name     string
		channel  string
		threadTS string
		meta     slack.Metadata
		since    time.Time
		want     slack.MessageRef
		wantOK   bool
	}{
		{"the root message in the channel's history", testChannelID, "", rootMeta, since, root, true},
		{"by channel name, learned from the post", "#secops", "", rootMeta, since, root, true},
		{"a broadcast reply in the thread", testChannelID, root.TS, noteMeta, since, note, true},
		{"another key finds nothing", testChannelID, root.TS, slack.Metadata{Incident: "inc-1", Kind: "note", Key: "step-2"}, since, slack.MessageRef{}, false},
		{"another incident finds nothing", testChannelID, "", slack.Metadata{Incident: "inc-2", Kind: "root", Key: "root"}, since, slack.MessageRef{}, false},
		{"nothing was posted since a later time", testChannelID, "", rootMeta, time.Now().Add(time.Minute), slack.MessageRef{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, ok, err := c.Find(ctx, tt.channel, tt.threadTS, tt.meta, tt.since)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.wantOK || ref != tt.want {
				t.Errorf("Find = %+v, %v; want %+v, %v", ref, ok, tt.want, tt.wantOK)
			}
		})
	}
	for _, call := range append(fake.Calls("conversations.history"), fake.Calls("conversations.replies")...) {
		if call.Form.Get("include_all_metadata") != "1" {
			t.Errorf("%s without include_all_metadata: %v", call.Method, call.Form)
		}
	}

	updated := slack.TextMessage("quarantined and snapshotted")
	updated.Metadata = noteMeta
	if err := c.Update(ctx, note, updated); err != nil {
		t.Fatal(err)
	}
	got := fake.Messages(testChannelID)[1]
	if got.Updated != 1 || got.Text != "quarantined and snapshotted" {
		t.Errorf("after Update the message is %+v, want the new text and Updated 1", got)
	}
	if ref, ok, err := c.Find(ctx, testChannelID, root.TS, noteMeta, since); err != nil || !ok || ref != note {
		t.Errorf("Find after Update = %+v, %v, %v; want the same message", ref, ok, err)
	}
}

func TestFindNewestOfSeveral(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)
	meta := slack.Metadata{Incident: "inc-1", Kind: "root", Key: "root"}
	since := time.Now()
	var last slack.MessageRef
	for i := range 3 {
		ref, err := c.Post(ctx, testChannelID, "", slack.Message{Text: fmt.Sprint("attempt ", i), Metadata: meta})
		if err != nil {
			t.Fatal(err)
		}
		last = ref
	}
	ref, ok, err := c.Find(ctx, testChannelID, "", meta, since)
	if err != nil || !ok || ref != last {
		t.Errorf("Find = %+v, %v, %v; want the newest %+v", ref, ok, err, last)
	}
}

func TestFindResolvesChannelNameThroughConversationsList(t *testing.T) {
	ctx := context.Background()
	c, fake := newClient(t)
	fake.SetChannel("secops", testChannelID)
	meta := slack.Metadata{Incident: "inc-1", Kind: "root", Key: "root"}
	// Another process posted it: this client never saw the name.
	other := slack.New(slack.Config{BotToken: testToken, APIURL: fake.URL})
	posted, err := other.Post(ctx, testChannelID, "", slack.Message{Text: "hi", Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	ref, ok, err := c.Find(ctx, "#secops", "", meta, time.Time{})
	if err != nil || !ok || ref != posted {
		t.Fatalf("Find = %+v, %v, %v; want %+v", ref, ok, err, posted)
	}
	if _, _, err := c.Find(ctx, "#nowhere", "", meta, time.Time{}); !hasCode(err, "channel_not_found") {
		t.Errorf("Find in an unknown channel: %v, want channel_not_found", err)
	}
}

func TestPostEphemeralReachesOnlyItsUser(t *testing.T) {
	c, fake := newClient(t)
	if err := c.PostEphemeral(context.Background(), testChannelID, alice.ID, "only for you"); err != nil {
		t.Fatal(err)
	}
	got := fake.Ephemerals(alice.ID)
	if len(got) != 1 || got[0].Text != "only for you" || got[0].Channel != testChannelID || !got[0].Ephemeral {
		t.Errorf("ephemerals for alice = %+v", got)
	}
	if n := len(fake.Ephemerals(bob.ID)); n != 0 {
		t.Errorf("bob got %d ephemerals", n)
	}
}

func TestGroupMembersAndUserAreCached(t *testing.T) {
	ctx := context.Background()
	c, fake := newClient(t)
	fake.SetGroup("S0SECOPS", alice.ID, bob.ID)
	fake.SetUser(alice)

	for range 2 {
		members, err := c.GroupMembers(ctx, "S0SECOPS")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(members, ",") != "U0ALICE,U0BOB" {
			t.Errorf("GroupMembers = %v", members)
		}
		members[0] = "changed by the caller"
	}
	if n := len(fake.Calls("usergroups.users.list")); n != 1 {
		t.Errorf("usergroups.users.list was called %d times, want 1 (cached)", n)
	}

	for range 2 {
		u, err := c.User(ctx, alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := (slack.User{ID: "U0ALICE", Name: "alice", Email: "alice@example.com", Team: fakeslack.TeamID}); u != want {
			t.Errorf("User = %+v, want %+v", u, want)
		}
	}
	if n := len(fake.Calls("users.info")); n != 1 {
		t.Errorf("users.info was called %d times, want 1 (cached)", n)
	}

	if _, err := c.GroupMembers(ctx, "S0NOPE"); !hasCode(err, "no_such_subteam") {
		t.Errorf("unknown group: %v", err)
	}
	if _, err := c.User(ctx, "U0NOPE"); !hasCode(err, "user_not_found") {
		t.Errorf("unknown user: %v", err)
	}
}

func TestUserByEmailFindsTheMemberAndIsCached(t *testing.T) {
	ctx := context.Background()
	c, fake := newClient(t)
	fake.SetUser(alice)
	for _, email := range []string{"alice@example.com", "Alice@Example.com"} {
		u, err := c.UserByEmail(ctx, email)
		if err != nil || u.ID != alice.ID || u.Email != "alice@example.com" {
			t.Errorf("UserByEmail(%s) = %+v, %v", email, u, err)
		}
	}
	if n := len(fake.Calls("users.lookupByEmail")); n != 1 {
		t.Errorf("users.lookupByEmail was called %d times, want 1 (cached, whatever the case)", n)
	}
	if _, err := c.UserByEmail(ctx, "nobody@example.com"); !hasCode(err, "users_not_found") {
		t.Errorf("an e-mail no member has: %v", err)
	}
	fake.Fail("users.lookupByEmail", fakeslack.Failure{Error: "missing_scope"})
	if _, err := c.UserByEmail(ctx, "bob@example.com"); !hasCode(err, "missing_scope") {
		t.Errorf("without the scope: %v", err)
	}
}

func TestAuthTestNamesTheTeamAndTheBotUser(t *testing.T) {
	c, _ := newClient(t)
	team, user, err := c.AuthTest(context.Background())
	if err != nil || team != fakeslack.TeamID || user != fakeslack.BotUserID {
		t.Errorf("AuthTest = %q, %q, %v", team, user, err)
	}
}

func TestFailuresSayWhetherToRetryAndWhatToFix(t *testing.T) {
	tests := []struct {
		name          string
		failure       *fakeslack.Failure
		token         string // default testToken
		channel       string // default testChannelID
		wantCode      string
		wantRetryable bool
		wantAfter     time.Duration
		wantHint      string
	}{
		{name: "429 with Retry-After", failure: &fakeslack.Failure{Status: 429, RetryAfter: "7"},
			wantCode: "ratelimited", wantRetryable: true, wantAfter: 7 * time.Second},
		{name: "503", failure: &fakeslack.Failure{Status: 503}, wantCode: "http_503", wantRetryable: true},
		{name: "ok:false ratelimited", failure: &fakeslack.Failure{Error: "ratelimited"}, wantCode: "ratelimited", wantRetryable: true},
		{name: "unknown channel", channel: "#nowhere", wantCode: "channel_not_found", wantHint: "check the playbook's slack channel"},
		{name: "not in channel", failure: &fakeslack.Failure{Error: "not_in_channel"}, wantCode: "not_in_channel", wantHint: "/invite @soar"},
		{name: "wrong token", token: "xoxb-wrong-token-also-secret", wantCode: "invalid_auth", wantHint: "bot token"},
		{name: "missing scope names it", failure: &fakeslack.Failure{Error: "missing_scope"}, wantCode: "missing_scope", wantHint: "add the chat:write scope"},
		{name: "archived", failure: &fakeslack.Failure{Error: "is_archived"}, wantCode: "is_archived", wantHint: "unarchive"},
		{name: "an unknown code is kept", failure: &fakeslack.Failure{Error: "something_new"}, wantCode: "something_new", wantHint: "api.slack.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := fakeslack.New(t)
			fake.RequireToken(testToken)
			if tt.failure != nil {
				fake.Fail("chat.postMessage", *tt.failure)
			}
			token := cmp.Or(tt.token, testToken)
			c := slack.New(slack.Config{BotToken: token, APIURL: fake.URL})
			_, err := c.Post(context.Background(), cmp.Or(tt.channel, testChannelID), "", slack.Message{Text: "hi"})
			e := asError(t, fmt.Errorf("activity: %w", err))
			if e.Method != "chat.postMessage" || e.Code != tt.wantCode || e.Retryable != tt.wantRetryable || e.RetryAfter != tt.wantAfter {
				t.Errorf("error = %+v, want code %s retryable %v retry after %s", e, tt.wantCode, tt.wantRetryable, tt.wantAfter)
			}
			if !strings.Contains(e.Hint, tt.wantHint) || (tt.wantRetryable && e.Hint != "") || (!tt.wantRetryable && e.Hint == "") {
				t.Errorf("hint = %q, want one containing %q", e.Hint, tt.wantHint)
			}
			if !strings.HasPrefix(err.Error(), "slack chat.postMessage: "+tt.wantCode) {
				t.Errorf("message = %q", err)
			}
			assertNoToken(t, err, token)
			if n := len(fake.Calls("chat.postMessage")); n != 1 {
				t.Errorf("%d requests were made, want exactly 1 (no retries inside the client)", n)
			}
		})
	}
}

func TestNetworkErrorsAreRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/api/"
	srv.Close()
	c := slack.New(slack.Config{BotToken: testToken, APIURL: url})
	_, err := c.Post(context.Background(), testChannelID, "", slack.Message{Text: "hi"})
	e := asError(t, err)
	if e.Code != "network" || !e.Retryable || e.Hint != "" {
		t.Errorf("error = %+v, want a retryable network error", e)
	}
	assertNoToken(t, err, testToken)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fake := fakeslack.New(t)
	_, err = slack.New(slack.Config{BotToken: testToken, APIURL: fake.URL}).Post(ctx, testChannelID, "", slack.Message{Text: "hi"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("a canceled post: %v, want it to wrap context.Canceled", err)
	}
}

// asError finds the *slack.Error in err.
func asError(t *testing.T, err error) *slack.Error {
	t.Helper()
	var e *slack.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *slack.Error", err, err)
	}
	return e
}

// hasCode reports whether err is a *slack.Error with code.
func hasCode(err error, code string) bool {
	var e *slack.Error
	return errors.As(err, &e) && e.Code == code
}

// assertNoToken fails when the error's text shows the token.
func assertNoToken(t *testing.T, err error, token string) {
	t.Helper()
	for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", asError(t, err).Error())} {
		if strings.Contains(s, token) {
			t.Errorf("error text shows the token: %s", s)
		}
	}
}
