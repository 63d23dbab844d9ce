package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
)

// assertDrained checks that nothing is left in the alert stream: every alert
// was acknowledged or terminated, none waits for redelivery.
func assertDrained(t *testing.T, js jetstream.JetStream, stream string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "alert stream drained", func() error {
		ctx := context.Background()
		c, err := js.Consumer(ctx, stream, dispatch.DefaultConsumer)
		if err != nil {
			return err
		}
		ci, err := c.Info(ctx)
		if err != nil {
			return err
		}
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		si, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if ci.NumPending != 0 || ci.NumAckPending != 0 || ci.NumRedelivered != 0 || si.State.Msgs != 0 {
			return fmt.Errorf("pending %d, ack pending %d, redelivered %d, stored %d", ci.NumPending, ci.NumAckPending, ci.NumRedelivered, si.State.Msgs)
		}
		return nil
	})
}

// goodAlert is a generic alert that testPlaybook matches.
func goodAlert(id, namespace, pod string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"source":"e2e","rule":"e2e quarantine","severity":"high","kubernetes":{"namespace":%q,"pod":%q}}`, id, namespace, pod)
}

// testPlaybook writes a playbook that quarantines the pod of "e2e quarantine"
// alerts, one incident per alert ID.
func testPlaybook(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	pb := `name: e2e-quarantine
match: alert.rule == "e2e quarantine"
incidentKey: alert.id
steps:
  - id: contain
    action: kubernetes.quarantine
`
	if err := os.WriteFile(filepath.Join(dir, "e2e.yaml"), []byte(pb), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBadInputIsDeadLetteredAndThePipelineGoesOn(t *testing.T) {
	ctx := context.Background()
	_, nc, js := testenv.NATS(t)
	tc := temporalClient(t)
	s := startSoar(t, js, tc, testPlaybook(t), dispatch.Config{})
	dl, err := js.CreateOrUpdateConsumer(ctx, dispatch.DefaultDeadLetterStream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}

	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
	oversize := append([]byte(`{"rule":"x","pad":"`), bytes.Repeat([]byte("a"), alert.DefaultLimits.MaxBytes)...)
	oversize = append(oversize, `"}`...)
	// An alert of 900 KiB that JSON-escapes to six times its size on its
	// way to Temporal: it decodes, matches, and cannot be dispatched.
	escapes := fmt.Appendf(nil, `{"id":"huge","rule":"e2e quarantine","summary":%q,"kubernetes":{"namespace":"deadletter","pod":"huge"}}`, strings.Repeat("<", 900<<10))
	// A message just under the server's payload limit: with the dead-letter
	// headers it no longer fits, so the dead letter keeps its beginning.
	atLimit := bytes.Repeat([]byte("x"), int(nc.MaxPayload())-200)
	for i, tc := range []struct {
		name      string
		data      []byte
		reason    alert.Reason
		truncated bool
	}{
		{"undecodable JSON", []byte(`{"rule": "Terminal shell`), alert.ReasonInvalidJSON, false},
		{"a JSON array, not an object", []byte(`[{"rule":"x"}]`), alert.ReasonNotObject, false},
		{"a bare string", []byte(`"alert"`), alert.ReasonNotObject, false},
		{"invalid UTF-8", []byte("{\"rule\":\"shell \xff\xfe\"}"), alert.ReasonInvalidUTF8, false},
		{"over the 1 MiB default limit", oversize, alert.ReasonOversize, false},
		{"absurdly nested", []byte(deep), alert.ReasonTooDeep, false},
		// Under the size limit, but half a million values: tens of MB once
		// parsed, refused by a byte scan instead.
		{"a mebibyte of tiny values", []byte(`{"rule":"e2e quarantine","a":[` + strings.TrimSuffix(strings.Repeat("0,", 500000), ",") + `]}`), alert.ReasonTooManyValues, false},
		{"an object that is no alert", []byte(`{"hello":"world"}`), alert.ReasonUnrecognised, false},
		{"an alert too large for Temporal once encoded", escapes, dispatch.ReasonTooLargeForTemporal, false},
		{"a message at the server's payload limit", atLimit, alert.ReasonOversize, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject := fmt.Sprintf("alerts.e2e.bad%d", i)
			if _, err := js.Publish(ctx, subject, tc.data); err != nil {
				t.Fatal(err)
			}
			msg, err := dl.Next(jetstream.FetchMaxWait(10 * time.Second))
			if err != nil {
				t.Fatalf("no dead letter: %v", err)
			}
			_ = msg.Ack()
			if want := dispatch.DefaultDeadLetterPrefix + "." + string(tc.reason); msg.Subject() != want {
				t.Errorf("dead letter on %s, want %s", msg.Subject(), want)
			}
			h := msg.Headers()
			if h.Get(dispatch.HeaderReason) != string(tc.reason) || h.Get(dispatch.HeaderOriginalSubject) != subject || h.Get(dispatch.HeaderError) == "" {
				t.Errorf("dead-letter headers %v", h)
			}
			switch {
			case tc.truncated:
				if h.Get(dispatch.HeaderTruncatedFrom) != fmt.Sprint(len(tc.data)) || !bytes.HasPrefix(tc.data, msg.Data()) || len(msg.Data()) == 0 {
					t.Errorf("truncated dead letter: header %q, %d bytes, prefix of the original: %v",
						h.Get(dispatch.HeaderTruncatedFrom), len(msg.Data()), bytes.HasPrefix(tc.data, msg.Data()))
				}
			case !bytes.Equal(msg.Data(), tc.data):
				t.Errorf("dead letter body differs from the original (%d vs %d bytes)", len(msg.Data()), len(tc.data))
			}
			// The counter moves once the dead letter is stored, which may be
			// just after this test reads it.
			testenv.Eventually(t, 5*time.Second, "dead letter counted", func() error {
				if got := testutil.ToFloat64(s.metrics.AlertsDeadLettered.WithLabelValues(string(tc.reason))); got < 1 {
					return fmt.Errorf("dead-lettered counter for %s = %v", tc.reason, got)
				}
				return nil
			})

			// The next good alert is still handled.
			pod := fmt.Sprintf("after-bad-%d", i)
			testenv.Pod(t, kubeCS, "deadletter", pod)
			if _, err := js.Publish(ctx, "alerts.e2e", goodAlert("good-"+pod, "deadletter", pod)); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 10*time.Second, "good alert after bad input quarantined", func() error { return quarantined(ctx, "deadletter", pod) })
		})
	}
	assertDrained(t, js, dispatch.DefaultStream)
}

func TestUnmatchedAlertIsAcknowledgedAndCounted(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	s := startSoar(t, js, temporalClient(t), libraryDir, dispatch.Config{})
	// A rule no shipped playbook answers.
	if _, err := js.Publish(ctx, "alerts.e2e", []byte(`{"id":"u1","source":"e2e","rule":"Nothing answers this rule","severity":"low"}`)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "unmatched alert counted", func() error {
		if got := testutil.ToFloat64(s.metrics.AlertsUnmatched); got != 1 {
			return fmt.Errorf("unmatched = %v", got)
		}
		return nil
	})
	assertDrained(t, js, dispatch.DefaultStream)
}

func TestTemporalUnreachableLosesAndDuplicatesNothing(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	dir := testPlaybook(t)

	// A dispatcher whose Temporal does not answer: nothing listens on the
	// address, so every SignalWithStart fails.
	down, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	broken := startDispatcher(t, js, down, dir, dispatch.Config{TemporalTimeout: 300 * time.Millisecond})
	testenv.Pod(t, kubeCS, "outage", "api-1")
	if _, err := js.Publish(ctx, "alerts.e2e", goodAlert("outage-1", "outage", "api-1")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "dispatch failures while Temporal is down", func() error {
		if got := testutil.ToFloat64(broken.metrics.DispatchErrors); got < 2 {
			return fmt.Errorf("dispatch errors = %v", got)
		}
		return nil
	})
	broken.stop()

	// Temporal is back (a dispatcher that reaches it): the same alert opens
	// exactly one incident.
	tc := temporalClient(t)
	fixed := startSoar(t, js, tc, dir, dispatch.Config{})
	testenv.Eventually(t, 20*time.Second, "alert dispatched after the outage", func() error { return quarantined(ctx, "outage", "api-1") })
	assertDrained(t, js, dispatch.DefaultStream)
	if got := testutil.ToFloat64(fixed.metrics.WorkflowsStarted.WithLabelValues("e2e-quarantine")); got != 1 {
		t.Errorf("workflows started = %v, want 1", got)
	}
}
