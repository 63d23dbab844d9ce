package dispatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
)

func TestBackoffGrowsAndCaps(t *testing.T) {
	for _, tc := range []struct {
		delivery uint64
		want     time.Duration
	}{
		{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second},
		{6, 32 * time.Second}, {7, time.Minute}, {8, time.Minute}, {1 << 40, time.Minute},
	} {
		if got := Backoff(tc.delivery); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.delivery, got, tc.want)
		}
	}
}

func TestRequestIDIsStablePerDeliveryAndWorkflow(t *testing.T) {
	a := requestID("SOAR_ALERTS:7", "soar-x-1")
	if a != requestID("SOAR_ALERTS:7", "soar-x-1") {
		t.Error("request ID changes between calls: a redelivery would not be recognised")
	}
	if a == requestID("SOAR_ALERTS:8", "soar-x-1") || a == requestID("SOAR_ALERTS:7", "soar-y-1") {
		t.Error("request IDs collide across deliveries or workflows")
	}
	if len(a) != 32 {
		t.Errorf("request ID %q: want 32 hex characters", a)
	}
}

func TestDispatcherDeadLettersWhatItCannotDispatchWithTheReason(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	startDispatcher(t, js, temporalClient(t), Config{
		Limits:             alert.Limits{MaxBytes: 2048},
		MaxTemporalPayload: 4 << 10,
		Clusters:           ClusterIdentity{Allowed: []string{"dev-1", "dev-2"}},
	})
	for i, tc := range []struct {
		name   string
		data   string
		reason alert.Reason
		// err is how the Soar-Error header starts.
		err string
	}{
		{"undecodable JSON", `{"rule": "Terminal shell`, alert.ReasonInvalidJSON, "alert: invalid_json: "},
		{"over the decoder's limit", `{"rule":"unit","pad":"` + strings.Repeat("a", 2048) + `"}`, alert.ReasonOversize, "alert: oversize: 2072 bytes exceeds the 2048-byte limit"},
		// Under the decoder's limit, but each < is six bytes, \u003c, in
		// JSON on its way to Temporal.
		{"too large for Temporal once encoded", `{"id":"big","rule":"unit","summary":"` + strings.Repeat("<", 1000) + `"}`, ReasonTooLargeForTemporal, "dispatch: incident input of "},
		{"a cluster that is not a name", `{"id":"c1","rule":"unit","cluster":"dev 1"}`, alert.ReasonInvalidCluster, "alert: invalid_cluster: "},
		{"a cluster the dispatcher does not serve", `{"id":"c2","rule":"unit","cluster":"dev-9"}`, alert.ReasonUnknownCluster, "alert: unknown_cluster: cluster not among the dispatcher's allowed clusters: dev-9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject := fmt.Sprintf("alerts.unit.bad%d", i)
			ack, err := js.Publish(ctx, subject, []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			dl := deadLetter(t, js, tc.reason)
			if got := string(dl.Data); got != tc.data {
				t.Errorf("dead letter body %q, want the original %q", got, tc.data)
			}
			if got := dl.Header.Get(HeaderReason); got != string(tc.reason) {
				t.Errorf("%s = %q, want %q", HeaderReason, got, tc.reason)
			}
			if got := dl.Header.Get(HeaderOriginalSubject); got != subject {
				t.Errorf("%s = %q, want %q", HeaderOriginalSubject, got, subject)
			}
			if got := dl.Header.Get(HeaderOriginalSeq); got != fmt.Sprint(ack.Sequence) {
				t.Errorf("%s = %q, want %d", HeaderOriginalSeq, got, ack.Sequence)
			}
			if got := dl.Header.Get(HeaderError); !strings.HasPrefix(got, tc.err) {
				t.Errorf("%s = %q, want it to start with %q", HeaderError, got, tc.err)
			}
			// Terminated, not left for redelivery.
			assertDrained(t, js)
		})
	}
}

func TestDispatcherAcknowledgesAnAlertOnlyOnceTemporalAcceptsIt(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	// soar's search attributes are not registered yet, so Temporal refuses
	// every SignalWithStart, as it does on a cluster where the worker never
	// started.
	tc := temporalClient(t)
	startDispatcher(t, js, tc, Config{})

	if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"a-1","rule":"unit","kubernetes":{"namespace":"payments","pod":"api-1"}}`)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the refused alert redelivered and still stored", func() error {
		ci, si := streamState(t, js)
		if ci.NumRedelivered == 0 || si.State.Msgs != 1 {
			return fmt.Errorf("redelivered %d, stored %d", ci.NumRedelivered, si.State.Msgs)
		}
		return nil
	})
	id := playbooks.IncidentID("unit", "a-1")
	var nf *serviceerror.NotFound
	if _, err := tc.DescribeWorkflowExecution(ctx, id, ""); !errors.As(err, &nf) {
		t.Fatalf("incident %s while Temporal refuses: %v, want not found", id, err)
	}

	if err := incidents.EnsureSearchAttributes(ctx, tc, "default"); err != nil {
		t.Fatal(err)
	}
	// The next redelivery reaches Temporal, and only then is the alert
	// acknowledged.
	assertDrained(t, js)
	desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatalf("incident %s after Temporal accepted: %v", id, err)
	}
	if got := desc.GetWorkflowExecutionInfo().GetStatus().String(); got != "Running" {
		t.Errorf("incident %s is %s, want Running", id, got)
	}
}

// temporalClient starts a Temporal server of the test's own, with the
// namespace "default" and none of soar's search attributes, and dials it.
func temporalClient(t *testing.T) client.Client {
	t.Helper()
	return testenv.Temporal(t)
}

// startDispatcher runs a dispatcher with one playbook, "unit", which opens an
// incident per alert ID for the rule "unit", until the test ends.
func startDispatcher(t *testing.T, js jetstream.JetStream, tc client.Client, cfg Config) *metrics.Metrics {
	t.Helper()
	return startDispatcherWith(t, js, tc, cfg, "alert.id")
}

// startDispatcherWith runs a dispatcher whose playbook "unit" keys
// incidents by incidentKey.
func startDispatcherWith(t *testing.T, js jetstream.JetStream, tc client.Client, cfg Config, incidentKey string) *metrics.Metrics {
	t.Helper()
	m := metrics.New()
	d := unitDispatcher(t, js, tc, m, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel), cfg, incidentKey)
	runDispatcher(t, d)
	return m
}

// unitDispatcher is a dispatcher, its streams and consumer in place, whose
// playbook "unit" keys incidents by incidentKey.
func unitDispatcher(t *testing.T, js jetstream.JetStream, tc client.Client, m *metrics.Metrics, log zerolog.Logger, cfg Config, incidentKey string) *Dispatcher {
	t.Helper()
	dir := t.TempDir()
	pb := "name: unit\nmatch: alert.rule == \"unit\"\nincidentKey: " + incidentKey + "\nsteps:\n  - id: contain\n    action: kubernetes.quarantine\n"
	if err := os.WriteFile(filepath.Join(dir, "unit.yaml"), []byte(pb), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := playbooks.LoadDir(dir, playbooks.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := New(js, tc, staticPlaybooks{set}, m, log, cfg)
	if err := d.EnsureStreams(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

// seal seals the stream name, as somebody with the account's JetStream
// API could: nobody can unseal it.
func seal(t *testing.T, js jetstream.JetStream, name string) {
	t.Helper()
	cfg := testenv.StreamConfig(t, js, name)
	cfg.Sealed = true
	if _, err := js.UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

// runDispatcher runs d until the test ends.
func runDispatcher(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

type staticPlaybooks struct{ set *playbooks.Set }

func (s staticPlaybooks) Current() *playbooks.Set { return s.set }

// deadLetter waits for the dead letter of reason and returns it.
func deadLetter(t *testing.T, js jetstream.JetStream, reason alert.Reason) *jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	var msg *jetstream.RawStreamMsg
	testenv.Eventually(t, 10*time.Second, "dead letter for "+string(reason), func() error {
		msg, err = s.GetLastMsgForSubject(ctx, DefaultDeadLetterPrefix+"."+string(reason))
		return err
	})
	return msg
}

// streamState returns the dispatchers' consumer and the alert stream.
func streamState(t *testing.T, js jetstream.JetStream) (*jetstream.ConsumerInfo, *jetstream.StreamInfo) {
	t.Helper()
	ctx := context.Background()
	c, err := js.Consumer(ctx, DefaultStream, DefaultConsumer)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	si, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ci, si
}

// assertDrained waits until every alert was acknowledged or terminated:
// none is stored, pending or waiting for redelivery.
func assertDrained(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "alert stream drained", func() error {
		ci, si := streamState(t, js)
		if ci.NumPending != 0 || ci.NumAckPending != 0 || si.State.Msgs != 0 {
			return fmt.Errorf("pending %d, ack pending %d, redelivered %d, stored %d (delivered up to stream sequence %d, acknowledged up to %d, %d pull requests waiting)",
				ci.NumPending, ci.NumAckPending, ci.NumRedelivered, si.State.Msgs, ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumWaiting)
		}
		return nil
	})
}

// TestDispatcherDeadLettersWhatTemporalRefusesForGood publishes an alert
// whose pod name is longer than Temporal accepts in a search attribute,
// among ordinary alerts: Temporal refuses it as invalid on every delivery
// while it accepts the others, so after a few deliveries it goes to the
// dead-letter subject with the reason, and dispatch keeps flowing.
func TestDispatcherDeadLettersWhatTemporalRefusesForGood(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	if err := incidents.EnsureSearchAttributes(ctx, tc, "default"); err != nil {
		t.Fatal(err)
	}
	startDispatcher(t, js, tc, Config{})
	publishUnit(t, js, "api-1", 1)
	long := strings.Repeat("p", 3000)
	poison := fmt.Sprintf(`{"id":"poison","rule":"unit","kubernetes":{"namespace":"payments","pod":%q}}`, long)
	if _, err := js.Publish(ctx, "alerts.unit", []byte(poison)); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		publishUnit(t, js, fmt.Sprintf("api-%d", i+2), 1)
		time.Sleep(time.Second)
	}
	dl := deadLetter(t, js, ReasonRefusedByTemporal)
	// Temporal says: search attribute SoarPod value size 3002 exceeds size
	// limit 2048.
	if string(dl.Data) != poison || !strings.Contains(dl.Header.Get(HeaderError), "SoarPod value size") {
		t.Errorf("dead letter %.60q with error %q", dl.Data, dl.Header.Get(HeaderError))
	}
	assertDrained(t, js)
}

// TestDispatcherDeadLettersAnAlertDeliveredTooOften bounds redelivery: with
// Temporal refusing everything (no search attributes registered), an alert
// delivered more than MaxDeliveries times goes to the dead-letter subject
// instead of being retried for ever.
func TestDispatcherDeadLettersAnAlertDeliveredTooOften(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	startDispatcher(t, js, temporalClient(t), Config{MaxDeliveries: 2})
	body := []byte(`{"id":"a-1","rule":"unit","kubernetes":{"namespace":"payments","pod":"api-1"}}`)
	if _, err := js.Publish(ctx, "alerts.unit", body); err != nil {
		t.Fatal(err)
	}
	dl := deadLetter(t, js, ReasonMaxDeliveries)
	if string(dl.Data) != string(body) || !strings.Contains(dl.Header.Get(HeaderError), "delivered 3 times") {
		t.Errorf("dead letter %q with error %q", dl.Data, dl.Header.Get(HeaderError))
	}
	assertDrained(t, js)
}
