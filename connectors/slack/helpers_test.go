package slack_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/connectors/slack"
	"github.com/soar-dev/soar/internal/testenv/fakeslack"
)

const (
	testToken     = "xoxb-0000-test-bot-token-never-shown"
	testSecret    = "8f742231b10e8888abcd99yyyzzz85a5"
	testAppToken  = "xapp-1-A0SOAR-test-app-token"
	testChannelID = "C0SECOPS"
	testMessageTS = "1700000000.000100"
)

var (
	testKey = []byte("0123456789abcdef0123456789abcdef-test-key")
	alice   = fakeslack.User{ID: "U0ALICE", Name: "alice", Email: "alice@example.com", Team: fakeslack.TeamID}
	bob     = fakeslack.User{ID: "U0BOB", Name: "bob", Email: "bob@example.com", Team: fakeslack.TeamID}
)

// newClient returns a client of a fresh fake that requires testToken.
func newClient(t *testing.T) (*slack.Client, *fakeslack.Server) {
	t.Helper()
	fake := fakeslack.New(t)
	fake.RequireToken(testToken)
	return slack.New(slack.Config{BotToken: testToken, APIURL: fake.URL}), fake
}

// newSigner returns a signer with testKey.
func newSigner(t *testing.T) *slack.Signer {
	t.Helper()
	s, err := slack.NewSigner(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// logBuffer collects zerolog output from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logger returns a debug-level logger writing to a new buffer.
func logger() (zerolog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return zerolog.New(buf).Level(zerolog.DebugLevel), buf
}

// fakeDecider records votes and answers them as configured.
type fakeDecider struct {
	mu      sync.Mutex
	clicks  []slack.Click
	reply   string
	err     error
	release chan struct{} // when set, Decide waits for it to close
	called  chan slack.Click
}

func newDecider() *fakeDecider {
	return &fakeDecider{reply: "Your approval was recorded.", called: make(chan slack.Click, 100)}
}

func (d *fakeDecider) Decide(ctx context.Context, c slack.Click) (string, error) {
	d.mu.Lock()
	d.clicks = append(d.clicks, c)
	release, reply, err := d.release, d.reply, d.err
	d.mu.Unlock()
	d.called <- c
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return reply, err
}

// Clicks returns the votes Decide received.
func (d *fakeDecider) Clicks() []slack.Click {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]slack.Click(nil), d.clicks...)
}

// next waits for the next Decide call.
func (d *fakeDecider) next(t *testing.T) slack.Click {
	t.Helper()
	select {
	case c := <-d.called:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the Decider was not called within 5s")
		return slack.Click{}
	}
}

// eventually polls cond every 10ms until it returns "", failing the test
// with its last answer after 5s.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// missing returns the first of subs that s does not contain, or "".
func missing(s string, subs ...string) string {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return sub
		}
	}
	return ""
}
