package slack

import (
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	goslack "github.com/slack-go/slack"
)

// Slack's worked example of request signing, from "Verifying requests from
// Slack".
const (
	exampleSecret    = "8f742231b10e8888abcd99yyyzzz85a5"
	exampleTimestamp = "1531420618"
	exampleBody      = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	exampleSignature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

func TestRequestMACMatchesSlacksExample(t *testing.T) {
	got := "v0=" + hex.EncodeToString(requestMAC([]byte(exampleSecret), exampleTimestamp, []byte(exampleBody)))
	if got != exampleSignature {
		t.Errorf("signature = %s, want %s", got, exampleSignature)
	}
}

func TestRequestMACAgreesWithSlackGo(t *testing.T) {
	// slack-go's verifier checks the timestamp against the real clock, so
	// the comparison uses a current timestamp.
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	body := []byte("payload=%7B%7D")
	header := http.Header{}
	header.Set("X-Slack-Request-Timestamp", ts)
	header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(requestMAC([]byte(exampleSecret), ts, body)))
	sv, err := goslack.NewSecretsVerifier(header, exampleSecret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sv.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := sv.Ensure(); err != nil {
		t.Errorf("slack-go rejects our signature: %v", err)
	}
}

func TestSeenSetRemembersKeysUntilTheyExpireAndRefusesWhenFull(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := newSeenSet(2)
	add := func(key string, at time.Time) (bool, error) { return s.add(key, at, at.Add(time.Minute)) }

	if fresh, err := add("a", now); !fresh || err != nil {
		t.Fatalf("first a: %v %v", fresh, err)
	}
	if fresh, err := add("a", now.Add(59*time.Second)); fresh || err != nil {
		t.Errorf("a again within its minute: %v %v, want not fresh", fresh, err)
	}
	if fresh, err := add("b", now); !fresh || err != nil {
		t.Fatalf("first b: %v %v", fresh, err)
	}
	if _, err := add("c", now); !errors.Is(err, errSeenFull) {
		t.Errorf("c into a full set: %v, want errSeenFull", err)
	}
	// A minute later a and b have expired and are dropped on insert.
	if fresh, err := add("c", now.Add(time.Minute)); !fresh || err != nil {
		t.Errorf("c after expiry: %v %v", fresh, err)
	}
	if fresh, err := add("a", now.Add(time.Minute)); !fresh || err != nil {
		t.Errorf("a after expiry: %v %v", fresh, err)
	}
}

func TestClipShortensTextWithoutBreakingEntitiesOrMentions(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghij", 5, "abcd…"},
		{"ab&amp;cd", 5, "ab…"},
		{"ab&amp;cd", 8, "ab&amp;…"},
		{"日本語テキスト", 4, "日本語…"},
		{"hi <@U0ALICE> there", 8, "hi …"},
		{"hi <@U0ALICE> there", 16, "hi <@U0ALICE> t…"},
	}
	for _, tt := range tests {
		got := clip(tt.in, tt.max)
		if got != tt.want || utf8.RuneCountInString(got) > tt.max {
			t.Errorf("clip(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestErrorMessageNamesTheMethodTheCodeAndWhatToDo(t *testing.T) {
	e := classify("chat.postMessage", "xoxb-secret", goslack.SlackErrorResponse{Err: "channel_not_found"})
	want := "slack chat.postMessage: channel_not_found: the channel does not exist or the app cannot see it; check the playbook's slack channel"
	if !strings.HasPrefix(e.Error(), want) {
		t.Errorf("Error() = %q, want it to start with %q", e.Error(), want)
	}
	e = classify("auth.test", "xoxb-secret", &goslack.RateLimitedError{RetryAfter: 7 * time.Second})
	if e.Error() != "slack auth.test: ratelimited: retry after 7s" {
		t.Errorf("Error() = %q", e.Error())
	}
}
