package slack_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/soar-dev/soar/connectors/slack"
	"github.com/soar-dev/soar/internal/testenv/fakeslack"
)

// runSocket runs RunSocketMode against the harness's fake until stop is
// called or the test ends; stop waits for it and for the background votes.
func runSocket(t *testing.T, ch *clickHarness, appToken string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ch.h.RunSocketMode(ctx, appToken, ch.fake.URL) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("RunSocketMode returned %v after the context ended, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("RunSocketMode did not return within 5s of the context ending")
		}
		ch.h.Wait()
	})
	t.Cleanup(stop)
	return stop
}

// acked waits until the fake saw envelopeID acknowledged n times.
func acked(t *testing.T, fake *fakeslack.Server, envelopeID string, n int) {
	t.Helper()
	eventually(t, "ack of "+envelopeID, func() string {
		acks := fake.Acks()
		if got := countOf(acks, envelopeID); got < n {
			return fmt.Sprintf("acked %d times, want %d; acks: %v", got, n, acks)
		}
		return ""
	})
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func TestSocketModeClickVotesOncePerEnvelopeAcrossReconnects(t *testing.T) {
	ch := newClickHarness(t)
	ch.fake.SetAppToken(testAppToken)
	stop := runSocket(t, ch, testAppToken)

	click := func(envelopeID string) {
		ch.fake.SendInteractive(t, envelopeID, fakeslack.ClickPayload(alice, testChannelID, testMessageTS, slack.ActionApprove, ch.value(true)))
	}

	click("env-1")
	got := ch.decider.next(t)
	want := slack.Click{
		Incident: "inc-1", Step: "ask", Approve: true, PlanHash: "ph1",
		User: alice.ID, UserName: "alice", Team: fakeslack.TeamID,
		Channel: testChannelID, MessageTS: testMessageTS, Via: "socket",
	}
	if got != want {
		t.Errorf("Decider got %+v, want %+v", got, want)
	}
	acked(t, ch.fake, "env-1", 1)

	// Slack redelivers an envelope it thinks was not acknowledged: it is
	// acknowledged again but not voted again.
	click("env-1")
	acked(t, ch.fake, "env-1", 2)

	// A dropped connection is reopened through apps.connections.open.
	ch.fake.Drop()
	click("env-2")
	ch.decider.next(t)
	acked(t, ch.fake, "env-2", 1)
	if n := ch.fake.Connections(); n != 2 {
		t.Errorf("apps.connections.open was called %d times after a drop, want 2", n)
	}

	// So is one Slack asks the client to leave.
	ch.fake.SendDisconnect()
	click("env-3")
	ch.decider.next(t)
	acked(t, ch.fake, "env-3", 1)
	if n := ch.fake.Connections(); n != 3 {
		t.Errorf("apps.connections.open was called %d times after a disconnect message, want 3", n)
	}

	for _, call := range ch.fake.Calls("apps.connections.open") {
		if call.Header.Get("Authorization") != "Bearer "+testAppToken {
			t.Errorf("apps.connections.open without the app token: %v", call.Header)
		}
	}
	if eph := ch.fake.Ephemerals(alice.ID); len(eph) == 0 {
		t.Error("alice was not told her vote was recorded")
	}

	// Once RunSocketMode and the votes have finished: one vote per
	// distinct envelope.
	stop()
	clicks := ch.decider.Clicks()
	if len(clicks) != 3 || slices.ContainsFunc(clicks, func(c slack.Click) bool { return c.Via != "socket" }) {
		t.Errorf("the Decider got %+v, want 3 socket votes (env-1 once, env-2, env-3)", clicks)
	}
}

func TestSocketModeRefusedTokenStops(t *testing.T) {
	ch := newClickHarness(t)
	ch.fake.SetAppToken(testAppToken)
	done := make(chan error, 1)
	go func() { done <- ch.h.RunSocketMode(context.Background(), "xapp-1-wrong-token", ch.fake.URL) }()
	select {
	case err := <-done:
		e := asError(t, err)
		if e.Code != "invalid_auth" || e.Retryable || e.Hint == "" {
			t.Errorf("error = %+v, want a non-retryable invalid_auth with a hint", e)
		}
		assertNoToken(t, err, "xapp-1-wrong-token")
	case <-time.After(5 * time.Second):
		t.Fatal("RunSocketMode kept going with a refused token")
	}
}
