package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
)

// TestARedeliveredAlertSaysSoInItsLog: an alert JetStream delivers again
// (here: its first delivery was taken and refused before the dispatcher
// started) opens its incident with delivery 2 in the log line, so an
// operator can tell an alert that waited out a failure or a lost
// acknowledgement; a first delivery carries no such field.
func TestARedeliveredAlertSaysSoInItsLog(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	if err := incidents.EnsureSearchAttributes(ctx, tc, "default"); err != nil {
		t.Fatal(err)
	}
	var out testenv.SyncBuffer
	d := unitDispatcher(t, js, tc, metrics.New(), zerolog.New(io.MultiWriter(&out, zerolog.NewTestWriter(t))), Config{}, "alert.id")

	publish := func(id string) {
		t.Helper()
		if _, err := js.Publish(ctx, "alerts.unit", fmt.Appendf(nil, `{"id":%q,"rule":"unit","kubernetes":{"namespace":"payments","pod":"api"}}`, id)); err != nil {
			t.Fatal(err)
		}
	}
	publish("again")
	cons, err := js.Consumer(ctx, DefaultStream, DefaultConsumer)
	if err != nil {
		t.Fatal(err)
	}
	first, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Nak(); err != nil {
		t.Fatal(err)
	}

	runDispatcher(t, d)
	publish("once")

	opened := func(id string) map[string]any {
		t.Helper()
		var found map[string]any
		testenv.Eventually(t, 30*time.Second, "incident for "+id+" opened", func() error {
			for line := range strings.Lines(out.String()) {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					return fmt.Errorf("log line is not JSON: %q", line)
				}
				if m["message"] == "incident opened" && m["alert_id"] == id {
					found = m
					return nil
				}
			}
			return fmt.Errorf("log: %s", out.String())
		})
		return found
	}
	if got := opened("again"); got["delivery"] != float64(2) {
		t.Errorf("the redelivered alert's line: %v, want delivery 2", got)
	}
	if got := opened("once"); got["delivery"] != nil {
		t.Errorf("a first delivery's line: %v, want no delivery field", got)
	}
}

// TestABurstComesThroughWithoutRedeliveries: 1,000 alerts, each opening
// an incident of its own, published at once to a dispatcher that starts
// one at a time, all reach Temporal on their first delivery, and the
// dispatcher's connection drops nothing. The dispatcher takes a message
// only when the one before it was started, so the pull's buffer fills
// while the server answers each pull. With nats.go's Messages iterator,
// whose buffer the server's "409 Batch Completed" notes share, every run
// of this test dropped a message: mostly that note, sometimes an alert,
// which then waited out the ack wait (30 s).
func TestABurstComesThroughWithoutRedeliveries(t *testing.T) {
	ctx := context.Background()
	s, _, _ := testenv.NATS(t)
	var drops atomic.Int64
	nc, err := nats.Connect(s.ClientURL(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) {
			drops.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	tc := temporalClient(t)
	if err := incidents.EnsureSearchAttributes(ctx, tc, "default"); err != nil {
		t.Fatal(err)
	}
	startDispatcherWith(t, js, tc, Config{Concurrency: 1}, "alert.id")
	publishUnit(t, js, "api", 1000)
	// Within the ack wait: a dropped alert would still be waiting for its
	// redelivery.
	testenv.Eventually(t, 25*time.Second, "alert stream drained", func() error {
		ci, si := streamState(t, js)
		if ci.NumRedelivered != 0 {
			t.Fatalf("%d alerts delivered again (acknowledged up to stream sequence %d of %d)", ci.NumRedelivered, ci.AckFloor.Stream, ci.Delivered.Stream)
		}
		if ci.NumPending != 0 || ci.NumAckPending != 0 || si.State.Msgs != 0 {
			return fmt.Errorf("pending %d, ack pending %d, stored %d", ci.NumPending, ci.NumAckPending, si.State.Msgs)
		}
		return nil
	})
	if n := drops.Load(); n != 0 {
		t.Errorf("the dispatcher's connection reported %d slow-consumer drops", n)
	}
}
