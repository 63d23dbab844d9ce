package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

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
