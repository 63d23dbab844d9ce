package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/workflows"
)

// TestARedeliveredAlertSaysSoInItsLog: an alert JetStream delivers again
// (here: its first delivery was taken and refused before the dispatcher
// started) opens its incident with delivery 2 in the log line, so an
// operator can tell an alert that waited out a failure or a lost
// acknowledgement; a first delivery carries no such field.
func TestARedeliveredAlertSaysSoInItsLog(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d, out := loggedDispatcher(t, js, Config{})

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

	if got := openedLine(t, out, "again", 30*time.Second); got["delivery"] != float64(2) {
		t.Errorf("the redelivered alert's line: %v, want delivery 2", got)
	}
	if got := openedLine(t, out, "once", 30*time.Second); got["delivery"] != nil {
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
	_, js := testenv.Connect(t, s.ClientURL(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) {
			drops.Add(1)
		}
	}))
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

// TestAStoppedDispatcherHandsBackTheAlertWaitingForASlot: a dispatcher
// told to stop while an alert waits for one of its slots (all busy with
// an alert Temporal does not answer) gives that alert back at once, so
// another dispatcher opens its incident within seconds, not after the
// stopping one has drained (10 s) or the ack wait (30 s).
func TestAStoppedDispatcherHandsBackTheAlertWaitingForASlot(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)

	// A Temporal whose every call waits until the test ends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	over := make(chan struct{})
	gs := grpc.NewServer(grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
		<-over
		return status.Error(codes.Unavailable, "test over")
	}))
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(func() { close(over); gs.Stop() })
	silent, err := client.NewLazyClient(client.Options{HostPort: ln.Addr().String(), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(silent.Close)
	stuck := unitDispatcher(t, js, silent, metrics.New(), zerolog.New(zerolog.NewTestWriter(t)), Config{Concurrency: 1, TemporalTimeout: time.Minute}, "alert.id")
	stop, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- stuck.Run(stop) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	for _, id := range []string{"holds-the-slot", "waits"} {
		if _, err := js.Publish(ctx, "alerts.unit", fmt.Appendf(nil, `{"id":%q,"rule":"unit","kubernetes":{"namespace":"payments","pod":"api"}}`, id)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "both alerts delivered to the stuck dispatcher", func() error {
		if ci, _ := streamState(t, js); ci.NumPending != 0 || ci.NumAckPending != 2 {
			return fmt.Errorf("pending %d, ack pending %d", ci.NumPending, ci.NumAckPending)
		}
		return nil
	})

	cancel()
	next, out := loggedDispatcher(t, js, Config{})
	runDispatcher(t, next)
	// The stuck dispatcher is still draining its first alert (10 s).
	got := openedLine(t, out, "waits", 8*time.Second)
	if got["delivery"] != float64(2) {
		t.Errorf("the handed-back alert's line: %v, want delivery 2 (given back once)", got)
	}
}

// runningDispatcher runs a dispatcher without Temporal, whose log lines the
// test can read: for what needs only NATS (dead letters, soar's streams
// and consumers).
func runningDispatcher(t *testing.T, js jetstream.JetStream, cfg Config) (*Dispatcher, *testenv.SyncBuffer) {
	t.Helper()
	out := &testenv.SyncBuffer{}
	d := New(js, nil, nil, metrics.New(), zerolog.New(io.MultiWriter(out, zerolog.NewTestWriter(t))), cfg)
	if err := d.EnsureStreams(context.Background()); err != nil {
		t.Fatal(err)
	}
	runDispatcher(t, d)
	return d, out
}

// loggedDispatcher is unitDispatcher, keyed by alert.id, on a real
// Temporal, whose log lines the test can read.
func loggedDispatcher(t *testing.T, js jetstream.JetStream, cfg Config) (*Dispatcher, *testenv.SyncBuffer) {
	t.Helper()
	tc := temporalClient(t)
	if err := incidents.EnsureSearchAttributes(context.Background(), tc, "default"); err != nil {
		t.Fatal(err)
	}
	out := &testenv.SyncBuffer{}
	return unitDispatcher(t, js, tc, metrics.New(), zerolog.New(io.MultiWriter(out, zerolog.NewTestWriter(t))), cfg, "alert.id"), out
}

// openedLine waits up to wait for the log line of the incident the alert
// id opened, and returns it.
func openedLine(t *testing.T, out *testenv.SyncBuffer, id string, wait time.Duration) map[string]any {
	t.Helper()
	var found map[string]any
	testenv.Eventually(t, wait, "incident for "+id+" opened", func() error {
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

// TestADeletedAlertConsumerIsCreatedAgain: someone deletes the alert
// consumer of a running dispatcher that has pod indexes (so it also pulls
// parked alerts and watches the backlog), then deletes it again and puts a
// push consumer of theirs in its place, then deletes it again and holds
// the work queue with another consumer for a while. Run used to end, and so every
// dispatcher at once, and a few deletions left their restarts in a
// supervisor's back-off. Now Run goes on: it creates its consumer again,
// says so, and the alerts published after each change open their
// incidents.
func TestADeletedAlertConsumerIsCreatedAgain(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d, out := loggedDispatcher(t, js, Config{Pods: map[string]PodIndex{"": pods{"payments/api": true}}})
	runDispatcher(t, d)
	publish := func(id string) {
		t.Helper()
		if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"`+id+`","rule":"unit","kubernetes":{"namespace":"payments","pod":"api"}}`)); err != nil {
			t.Fatal(err)
		}
		openedLine(t, out, id, 30*time.Second)
	}
	running := func(after string) {
		t.Helper()
		if strings.Contains(out.String(), "dispatcher stopped") {
			t.Fatalf("Run ended %s:\n%s", after, out.String())
		}
	}
	publish("before")

	if err := js.DeleteConsumer(ctx, DefaultStream, DefaultConsumer); err != nil {
		t.Fatal(err)
	}
	publish("after-deletion")
	running("after its consumer was deleted")
	if !strings.Contains(out.String(), `"consumer":"soar-dispatch","message":"a consumer of soar's was deleted; created it again"`) {
		t.Errorf("no line says the consumer was created again:\n%s", out.String())
	}

	// Deleted and created again as a push consumer: until the dispatcher
	// notices, the attacker's subject gets the alerts.
	for attempt := 1; ; attempt++ {
		if err := js.DeleteConsumer(ctx, DefaultStream, DefaultConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatal(err)
		}
		cfg := d.consumerConfig()
		cfg.DeliverSubject, cfg.MaxWaiting = "attacker.inbox", 0
		_, err := js.CreateConsumer(ctx, DefaultStream, cfg)
		if err == nil {
			break
		}
		if attempt == 5 { // the dispatcher created its own first each time
			t.Fatal(err)
		}
	}
	publish("after-push")
	running("after its consumer was replaced by a push consumer")
	if !strings.Contains(out.String(), `"settings":["deliver_subject attacker.inbox"],"message":"a consumer of soar's had settings no update can change; deleted it and created soar's"`) {
		t.Errorf("no line says the push consumer was replaced:\n%s", out.String())
	}

	// Deleted, and another consumer takes the work queue first: JetStream
	// refuses a second unfiltered consumer on it, so the creation fails
	// until the other one goes (as one right after a deletion may fail on
	// a busy server: "error creating store for consumer", seen under
	// load). The dispatcher tries again meanwhile instead of stopping.
	for attempt := 1; ; attempt++ {
		if err := js.DeleteConsumer(ctx, DefaultStream, DefaultConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatal(err)
		}
		_, err := js.CreateConsumer(ctx, DefaultStream, jetstream.ConsumerConfig{Durable: "other", AckPolicy: jetstream.AckExplicitPolicy})
		if err == nil {
			break
		}
		if attempt == 5 {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "a refused creation tried again", func() error {
		if !strings.Contains(out.String(), `"message":"the alert consumer could not be created again yet; trying again"`) {
			return errors.New("no line says so")
		}
		return nil
	})
	if err := js.DeleteConsumer(ctx, DefaultStream, "other"); err != nil {
		t.Fatal(err)
	}
	publish("after-other")
	running("while another consumer held the work queue")
}

// TestADeletedAlertStreamIsCreatedAgain: someone deletes the alert
// stream, and with it the consumer, of a running dispatcher that has pod
// indexes. Run used to end, and so every dispatcher at once. Now it
// creates both again and goes on; what the stream held is lost with it.
// The new stream numbers its messages from 1 again, so the alerts after it
// must travel with its epoch and a floor below them: with the old
// stream's floor (the highest sequence acknowledged before), every
// incident would take them as counted already, and a new incident would
// never see its first alert, nor act.
func TestADeletedAlertStreamIsCreatedAgain(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	// A window long enough that an alert of an open incident still waits
	// in its batch when the stream is created again.
	d, out := loggedDispatcher(t, js, Config{Pods: map[string]PodIndex{"": pods{"payments/api": true}}, CoalesceWindow: 8 * time.Second})
	runDispatcher(t, d)
	const body = `{"id":"%s","rule":"unit","kubernetes":{"namespace":"payments","pod":"api"}}`
	publish := func(id, msgID string) {
		t.Helper()
		// Tried again under the same message ID: a server busy with the
		// new stream's store may answer late.
		testenv.Eventually(t, 30*time.Second, "alert "+msgID+" published", func() error {
			_, err := js.Publish(ctx, "alerts.unit", fmt.Appendf(nil, body, id), jetstream.WithMsgID(msgID))
			return err
		})
	}
	for i := range 5 {
		publish(fmt.Sprintf("before-%d", i), fmt.Sprintf("before-%d", i))
		openedLine(t, out, fmt.Sprintf("before-%d", i), 30*time.Second)
	}
	testenv.Eventually(t, 10*time.Second, "the floor passes the alerts before", func() error {
		if f := d.floor(); f < 5 {
			return fmt.Errorf("floor %d", f)
		}
		return nil
	})
	before := d.epoch()
	// Another alert of an open incident: it waits in a batch.
	publish("before-0", "before-0-again")
	joined := openedLine(t, out, "before-0", time.Second)["incident_id"].(string)

	if err := js.DeleteStream(ctx, DefaultStream); err != nil {
		t.Fatal(err)
	}
	// Until then, publishers are refused ("no response from stream").
	testenv.Eventually(t, 10*time.Second, "the stream created again", func() error {
		for _, want := range []string{
			`"stream":"SOAR_ALERTS","message":"a stream of soar's was deleted; created it again"`,
			`"message":"the alert stream was created again: its sequences start afresh, and incidents count them apart from the earlier ones"`,
		} {
			if !strings.Contains(out.String(), want) {
				return fmt.Errorf("no line says %s:\n%s", want, out.String())
			}
		}
		return nil
	})
	// Of the new stream: the first joins the same incident, the second
	// opens one.
	publish("before-0", "before-0-anew")
	publish("after", "after")
	line := openedLine(t, out, "after", 30*time.Second)
	if strings.Contains(out.String(), "dispatcher stopped") {
		t.Fatalf("Run ended after its stream was deleted:\n%s", out.String())
	}
	s, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	now := epochOf(s.CachedInfo().Created)
	check := func(what string, dl *workflows.Deliveries, epoch string, seq uint64) {
		t.Helper()
		switch {
		case dl.Epoch != epoch:
			t.Errorf("%s travelled with epoch %s, want %s (the old stream's is %s, the new one's %s)", what, dl.Epoch, epoch, before, now)
		case !slices.Equal(dl.Seqs, workflows.SeqList{seq}):
			t.Errorf("%s travelled as %v, want [%d]", what, dl.Seqs, seq)
		case dl.Floor >= seq:
			t.Errorf("%s travelled with floor %d: the incident would take sequence %d as counted", what, dl.Floor, seq)
		}
	}
	check("the alert opening an incident", alertSignals(t, d.temporal, line["incident_id"].(string))[0].Deliveries, now, 2)

	// The batch of the old stream went as it was; the new stream's alert
	// travelled in a batch of its own, with the new epoch.
	var all []workflows.AlertSignal
	testenv.Eventually(t, 20*time.Second, "both later alerts of before-0 signalled", func() error {
		if all = alertSignals(t, d.temporal, joined); len(all) < 3 {
			return fmt.Errorf("%d alerts", len(all))
		}
		return nil
	})
	if len(all) != 3 {
		t.Fatalf("before-0's incident got %d alerts, want 3", len(all))
	}
	check("the old stream's batch", all[1].Deliveries, before, 6)
	check("the new stream's batch", all[2].Deliveries, now, 1)
}

// TestADeletedConsumerIsCreatedAgainWhileTheDeadLetterStreamIsSealed: a
// sealed dead-letter stream, which a start refuses and a running
// dispatcher names once a minute, must not turn a deletion of the alert
// consumer into a stop of every dispatcher: the consumer is created again
// and dispatch goes on.
func TestADeletedConsumerIsCreatedAgainWhileTheDeadLetterStreamIsSealed(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d, out := loggedDispatcher(t, js, Config{})
	runDispatcher(t, d)
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"before","rule":"unit"}`)); err != nil {
		t.Fatal(err)
	}
	openedLine(t, out, "before", 30*time.Second)
	seal(t, js, DefaultDeadLetterStream)
	if err := js.DeleteConsumer(ctx, DefaultStream, DefaultConsumer); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"after","rule":"unit"}`)); err != nil {
		t.Fatal(err)
	}
	openedLine(t, out, "after", 30*time.Second)
	if strings.Contains(out.String(), "dispatcher stopped") {
		t.Fatalf("Run ended:\n%s", out.String())
	}
}

// TestRunEndsWhenItsStreamIsReplacedByOneItCannotUse: someone deletes the
// alert stream and creates one in its place, keeping memory only (a
// server's restart would lose every alert). No update can take that back,
// and soar does not delete a stream that may hold alerts, so Run ends at
// once, saying why, and the process can exit: its restart refuses the
// stream with what to do. Before, the parked alerts' pull ran on until
// Stop, and the drain waited for it for ever.
func TestRunEndsWhenItsStreamIsReplacedByOneItCannotUse(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d, out := loggedDispatcher(t, js, Config{Pods: map[string]PodIndex{"": pods{"payments/api": true}}})
	run, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	done := make(chan error, 1)
	go func() { done <- d.Run(run) }()
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"before","rule":"unit","kubernetes":{"namespace":"payments","pod":"api"}}`)); err != nil {
		t.Fatal(err)
	}
	openedLine(t, out, "before", 30*time.Second)

	testenv.ReplaceStream(t, js, DefaultStream, func(cfg *jetstream.StreamConfig) { cfg.Storage = jetstream.MemoryStorage })
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second): // drainTimeout and then some
		t.Fatalf("Run still running 20 s after its stream was replaced:\n%s", out.String())
	}
	for _, line := range []string{
		`"error":"dispatch: stream SOAR_ALERTS has settings no update can take back (storage `,
		`"message":"the alert consumer could not be created again"`,
		"the alert consumer stopped; dispatcher stopping",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("no line says %q:\n%s", line, out.String())
		}
	}
}

// TestAPausedConsumerIsResumed: somebody with access to the JetStream API
// pauses the dispatchers' consumers for an hour. A paused consumer delivers
// nothing, says nothing and stays paused across restarts. A running
// dispatcher resumes both (the parked alerts' too, with pod indexes) within
// its next read of the backlog, says so in its log and its metrics, and the
// alert published meanwhile opens its incident.
func TestAPausedConsumerIsResumed(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d, out := loggedDispatcher(t, js, Config{Pods: map[string]PodIndex{"": pods{"payments/api": true}}})
	runDispatcher(t, d)
	until := time.Now().Add(time.Hour)
	for _, c := range [][2]string{{DefaultStream, DefaultConsumer}, {DefaultParkedStream, DefaultParkedConsumer}} {
		if _, err := js.PauseConsumer(ctx, c[0], c[1], until); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"while-paused","rule":"unit","kubernetes":{"namespace":"payments","pod":"api"}}`)); err != nil {
		t.Fatal(err)
	}
	openedLine(t, out, "while-paused", 30*time.Second)
	for _, c := range [][2]string{{DefaultStream, DefaultConsumer}, {DefaultParkedStream, DefaultParkedConsumer}} {
		testenv.Eventually(t, 10*time.Second, c[1]+" resumed", func() error {
			cons, err := js.Consumer(ctx, c[0], c[1])
			if err != nil {
				return err
			}
			if cons.CachedInfo().Paused {
				return errors.New("still paused")
			}
			if got := testutil.ToFloat64(d.metrics.ConsumersResumed.WithLabelValues(c[1])); got != 1 {
				return fmt.Errorf("soar_dispatch_consumers_resumed_total{consumer=%q} = %v", c[1], got)
			}
			if !strings.Contains(out.String(), `"consumer":"`+c[1]+`","paused_until":"`+until.UTC().Format("2006-01-02T15:04")) {
				return fmt.Errorf("no line says %s was paused until %s:\n%s", c[1], until, out.String())
			}
			return nil
		})
	}
}

// TestAStreamSetToDropAlertsIsPutBack: somebody with access to the
// JetStream API sets the alert stream and the parked stream to drop what
// waits (an age limit of a second, one message per subject, the oldest
// discarded when full), to refuse what comes (a limit of messages, of a
// message's size, of bytes below the dispatcher's flag, a subject taken
// away), to let a publisher's header purge them (rollups), and their
// consumers to go when idle: a flood, or a stalled dispatcher, would then
// lose alerts without a word, and detectors' alerts would go nowhere. A
// running dispatcher, without a pod index (every dispatcher reads the
// parked stream), puts those settings back within its next read of the
// backlog, keeps the others, says so in its log and its metrics, and an
// alert published afterwards on the subject that was taken away opens its
// incident.
func TestAStreamSetToDropAlertsIsPutBack(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d, out := loggedDispatcher(t, js, Config{})
	runDispatcher(t, d)
	for _, name := range []string{DefaultStream, DefaultParkedStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		maxBytes, subjects, taken := cfg.MaxBytes, cfg.Subjects, cfg.Subjects[len(cfg.Subjects)-1]
		cfg.MaxAge, cfg.Duplicates, cfg.MaxMsgsPerSubject, cfg.Discard = time.Second, time.Second, 1, jetstream.DiscardOld
		cfg.MaxMsgs, cfg.MaxMsgSize, cfg.MaxBytes, cfg.AllowRollup, cfg.NoAck = 2, 10, 1000, true, true
		cfg.ConsumerLimits.InactiveThreshold = time.Hour
		if name == DefaultStream {
			cfg.Subjects = subjects[:len(subjects)-1]
		} else {
			// The parked stream has one subject; give it another instead.
			cfg.Subjects = []string{"soar.parked.elsewhere"}
		}
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, name+"'s settings put back", func() error {
			info, err := s.Info(ctx)
			if err != nil {
				return err
			}
			c := info.Config
			if c.MaxAge != 0 || c.MaxMsgsPerSubject > 0 || c.Discard != jetstream.DiscardNew || c.MaxBytes != maxBytes || c.Duplicates != alertDuplicates ||
				c.ConsumerLimits.InactiveThreshold != 0 || c.MaxMsgs > 0 || c.MaxMsgSize > 0 || c.AllowRollup || c.NoAck || !slices.Contains(c.Subjects, taken) {
				return fmt.Errorf("still dropping or refusing: %+v", c)
			}
			if got := testutil.ToFloat64(d.metrics.StreamLimitsRestored.WithLabelValues(name)); got < 1 {
				return fmt.Errorf("soar_dispatch_stream_limits_restored_total{stream=%q} = %v", name, got)
			}
			want := `"stream":"` + name + `","settings":["max_age 1s","max_msgs_per_subject 1","discard old","max_msgs 2","max_msg_size 10","allow_rollup_hdrs","no_ack","consumer_limits.inactive_threshold 1h0m0s","max_bytes 1000","subjects lack ` + taken + `"],"message":"a stream of soar's was set to drop or refuse alerts; put back"`
			if !strings.Contains(out.String(), want) {
				return fmt.Errorf("no line names the settings (%s):\n%s", want, out.String())
			}
			return nil
		})
	}
	if _, err := js.Publish(ctx, "falco.unit", []byte(`{"id":"after","rule":"unit","kubernetes":{"namespace":"payments","pod":"api"}}`)); err != nil {
		t.Fatal(err)
	}
	openedLine(t, out, "after", 30*time.Second)
}

// TestAFullDeadLetterStreamDoesNotStallDispatch: someone who can publish
// alerts fills the dead-letter stream with undecodable ones (256 alerts of
// 1 MiB fill the default), then sends more. Were the full stream to refuse
// their dead letters, each would be retried in the alert consumer's ack
// pending, and as many as --max-ack-pending would stop JetStream
// delivering any alert at all. The dead-letter stream drops its oldest
// instead: every poison alert is dead-lettered, the newest are kept, and a
// real alert sent after them opens its incident.
func TestAFullDeadLetterStreamDoesNotStallDispatch(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d, out := loggedDispatcher(t, js, Config{MaxAckPending: 10, DeadLetterMaxBytes: 8 << 10})
	runDispatcher(t, d)
	const poison = 30
	junk := strings.Repeat("x", 1000)
	for i := range poison {
		if _, err := js.Publish(ctx, "alerts.unit", fmt.Appendf(nil, "not json %d %s", i, junk)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"behind-poison","rule":"unit","kubernetes":{"namespace":"payments","pod":"api"}}`)); err != nil {
		t.Fatal(err)
	}
	openedLine(t, out, "behind-poison", 30*time.Second)
	dl, err := js.Stream(ctx, DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "every poison alert dead-lettered", func() error {
		info, err := dl.Info(ctx)
		if err != nil {
			return err
		}
		if st := info.State; st.LastSeq != poison || st.FirstSeq == 1 || st.Bytes > 8<<10 {
			return fmt.Errorf("dead letters %d to %d, %d bytes: want up to %d, the oldest dropped, within 8 KiB", st.FirstSeq, st.LastSeq, st.Bytes, poison)
		}
		return nil
	})
	// Dispatched concurrently, the poison alerts are dead-lettered in no
	// particular order; the newest dead letter is one of them.
	last, err := dl.GetMsg(ctx, poison)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(last.Data), "not json ") || last.Header.Get(HeaderReason) != string(alert.ReasonInvalidJSON) {
		t.Errorf("the newest dead letter holds %.20q with reason %q", last.Data, last.Header.Get(HeaderReason))
	}
}

// TestAnAlertStrippedToItsHeadersComesBackWhole: somebody sets the alert
// consumer to deliver headers only, and alerts arrive before the
// dispatcher puts that back. Each comes without its body; dead-lettering
// it as undecodable would delete it from the stream. The dispatcher asks
// for it again instead, and it opens its incident once the consumer
// delivers it whole.
func TestAnAlertStrippedToItsHeadersComesBackWhole(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d, out := loggedDispatcher(t, js, Config{})
	runDispatcher(t, d)
	// The put-back can come between the change and the alert's delivery,
	// and then nothing was stripped: try until one was.
	for i := range 5 {
		cons, err := js.Consumer(ctx, DefaultStream, DefaultConsumer)
		if err != nil {
			t.Fatal(err)
		}
		cfg := cons.CachedInfo().Config
		cfg.HeadersOnly = true
		if _, err := js.UpdateConsumer(ctx, DefaultStream, cfg); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("stripped-%d", i)
		if _, err := js.Publish(ctx, "alerts.unit", fmt.Appendf(nil, `{"id":%q,"rule":"unit","kubernetes":{"namespace":"payments","pod":"api-%d"}}`, id, i)); err != nil {
			t.Fatal(err)
		}
		opened := openedLine(t, out, id, 30*time.Second)
		if opened["rule"] != "unit" {
			t.Errorf("the incident was opened from an alert without its body: %v", opened)
		}
		if strings.Contains(out.String(), `"message":"an alert came without its body (its consumer was set to deliver headers only); asked for it again"`) {
			break
		}
		if i == 4 {
			t.Fatalf("no alert came stripped in 5 tries:\n%s", out.String())
		}
	}
	if s := out.String(); strings.Contains(s, `"message":"alert dead-lettered"`) {
		t.Errorf("an alert was dead-lettered:\n%s", s)
	}
}

// TestForgedStrippedMessagesAreDeadLetteredAtOnce: someone who can publish
// alerts sends a flood of empty messages that carry JetStream's size
// header, as stripped alerts do. Were each asked for again, up to 5 times a
// second apart, they would sit in the consumer's ack pending (here 20)
// until it delivered nothing else. The consumer delivers whole messages,
// so they are dead-lettered on their first delivery, and a real alert
// behind them opens its incident.
func TestForgedStrippedMessagesAreDeadLetteredAtOnce(t *testing.T) {
	ctx := context.Background()
	_, nc, js := testenv.NATS(t)
	d, out := loggedDispatcher(t, js, Config{MaxAckPending: 20})
	runDispatcher(t, d)
	const forged = 60
	for range forged {
		if err := nc.PublishMsg(&nats.Msg{Subject: "alerts.unit", Header: nats.Header{headersOnlySize: []string{"200"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"behind-forged","rule":"unit","kubernetes":{"namespace":"payments","pod":"api"}}`)); err != nil {
		t.Fatal(err)
	}
	openedLine(t, out, "behind-forged", 30*time.Second)
	dl, err := js.Stream(ctx, DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "every forged message dead-lettered", func() error {
		info, err := dl.Info(ctx)
		if err == nil && info.State.Msgs != forged {
			err = fmt.Errorf("%d dead letters, want %d", info.State.Msgs, forged)
		}
		return err
	})
	if strings.Contains(out.String(), "asked for it again") {
		t.Errorf("a forged message was asked for again:\n%s", out.String())
	}
	if got := testutil.ToFloat64(d.metrics.AlertsDeadLettered.WithLabelValues(string(alert.ReasonInvalidJSON))); got != forged {
		t.Errorf("dead-lettered as invalid_json: %v, want %d", got, forged)
	}
}

// TestAConsumerSetToWithholdAlertsIsPutBack: somebody with access to the
// JetStream API changes soar's two consumers so that they withhold every
// alert (a filter subject that matches none, a pinned priority group, pull
// limits the dispatchers' requests exceed), strip alerts to their headers,
// deliver them late or once (ack wait, backoff, max deliver), hold 77 at
// most in flight, and go when idle. Nothing of it shows in the backlog's
// undelivered count. A running dispatcher puts those settings back within
// a read of the backlog (max ack pending, a flag, is raised to its own),
// says so in its log and metrics, and the alert published while the
// consumer was altered opens its incident whole, not as a dead letter.
func TestAConsumerSetToWithholdAlertsIsPutBack(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d, out := loggedDispatcher(t, js, Config{Pods: map[string]PodIndex{"": pods{"payments/api": true}}})
	runDispatcher(t, d)
	// Altered before the pull began, the consumer's priority group would
	// make Run's pull fail at once (the next start puts the consumer back
	// first): this is about a running dispatcher.
	testenv.Eventually(t, 10*time.Second, "the dispatcher started", func() error {
		if !strings.Contains(out.String(), `"message":"dispatcher started"`) {
			return errors.New("not yet")
		}
		return nil
	})
	consumers := []struct {
		stream, consumer, filter string
		want                     jetstream.ConsumerConfig
	}{
		{DefaultStream, DefaultConsumer, "alerts.nothing", d.consumerConfig()},
		{DefaultParkedStream, DefaultParkedConsumer, DefaultParkedSubject, parkedConsumerConfig(DefaultParkedConsumer)},
	}
	const maxAckPending = 77 // below either's
	for _, c := range consumers {
		cons, err := js.Consumer(ctx, c.stream, c.consumer)
		if err != nil {
			t.Fatal(err)
		}
		cfg := cons.CachedInfo().Config
		cfg.FilterSubject = c.filter
		cfg.PriorityPolicy, cfg.PriorityGroups, cfg.PinnedTTL = jetstream.PriorityPolicyPinned, []string{"elsewhere"}, time.Minute
		cfg.MaxRequestBatch, cfg.MaxRequestExpires, cfg.MaxRequestMaxBytes = 1, time.Millisecond, 1
		cfg.HeadersOnly = true
		cfg.AckWait, cfg.BackOff, cfg.MaxDeliver = time.Hour, []time.Duration{time.Hour}, 1
		cfg.InactiveThreshold = time.Hour
		cfg.MaxAckPending = maxAckPending
		if _, err := js.UpdateConsumer(ctx, c.stream, cfg); err != nil {
			t.Fatalf("alter %s: %v", c.consumer, err)
		}
	}
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"while-altered","rule":"unit","kubernetes":{"namespace":"payments","pod":"api"}}`)); err != nil {
		t.Fatal(err)
	}
	opened := openedLine(t, out, "while-altered", 30*time.Second)
	if opened["rule"] != "unit" {
		t.Errorf("the incident was opened from an alert without its body: %v", opened)
	}
	for _, c := range consumers {
		testenv.Eventually(t, 10*time.Second, c.consumer+" put back", func() error {
			cons, err := js.Consumer(ctx, c.stream, c.consumer)
			if err != nil {
				return err
			}
			have := cons.CachedInfo().Config
			if a := altered(have, c.want); len(a) > 0 {
				return fmt.Errorf("still altered: %v", a)
			}
			if have.MaxAckPending != c.want.MaxAckPending {
				return fmt.Errorf("max_ack_pending %d, want %d", have.MaxAckPending, c.want.MaxAckPending)
			}
			if got := testutil.ToFloat64(d.metrics.ConsumerSettingsRestored.WithLabelValues(c.consumer)); got < 1 {
				return fmt.Errorf("soar_dispatch_consumer_settings_restored_total{consumer=%q} = %v", c.consumer, got)
			}
			want := `"consumer":"` + c.consumer + `","settings":["filter_subject ` + c.filter + `","priority_policy pinned_client groups elsewhere","max_batch 1","max_expires 1ms","max_bytes 1","headers_only","ack_wait 1h0m0s","max_deliver 1","backoff [1h0m0s]","inactive_threshold 1h0m0s","max_ack_pending 77"],"message":"a consumer of soar's was set to withhold or spoil alerts; put back"`
			if !strings.Contains(out.String(), want) {
				return fmt.Errorf("no line names the settings (%s):\n%s", want, out.String())
			}
			return nil
		})
	}
}

// TestWhatAnAlteredFilterPassedOverIsDeliveredAfterThePutBack: while
// somebody's filter subject on one of soar's consumers matches nothing,
// JetStream passes over every message published meanwhile whenever the
// consumer looks for one to deliver (here: a pull of the test's own), and
// restoring the filter does not go back for them: they would wait in the
// stream for ever, counted nowhere. The put-back sends the consumer back
// to its acknowledgement floor, so they come.
func TestWhatAnAlteredFilterPassedOverIsDeliveredAfterThePutBack(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d := New(js, nil, nil, metrics.New(), zerolog.Nop(), Config{Keys: testenv.SigningKeys(), Pods: map[string]PodIndex{"": pods{}}})
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ stream, consumer, subject string }{
		{d.cfg.Stream, d.cfg.Consumer, "falco.notice.x"},
		{d.cfg.ParkedStream, d.cfg.ParkedConsumer, d.cfg.ParkedSubject},
	} {
		cons, err := js.Consumer(ctx, c.stream, c.consumer)
		if err != nil {
			t.Fatal(err)
		}
		cfg := cons.CachedInfo().Config
		cfg.FilterSubject = "nothing.here"
		if _, err := js.UpdateConsumer(ctx, c.stream, cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, c.subject, []byte(`{"id":"passed-over"}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := cons.Next(jetstream.FetchMaxWait(500 * time.Millisecond)); !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("%s: a pull while filtered = %v, want none", c.consumer, err)
		}
		if err := d.observe(ctx); err != nil {
			t.Fatal(err)
		}
		fresh, err := js.Consumer(ctx, c.stream, c.consumer)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := fresh.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("%s: the message published while filtered, after the put-back: %v", c.consumer, err)
		}
		if string(msg.Data()) != `{"id":"passed-over"}` {
			t.Errorf("%s delivered %q", c.consumer, msg.Data())
		}
		_ = msg.Ack()
	}
}

// TestAPullRefusedWhileAConsumerWasAlteredIsMadeAgain: somebody gives the
// alert consumer a priority group. Every pull that names none is refused
// from then on (400 Bad Request), and the client ends a refused pull for
// good: here the one it makes during a burst, when half its buffer is
// gone. The dispatcher pulls again (after the put-back) instead of
// stopping, which would make every dispatcher exit and restart at once.
func TestAPullRefusedWhileAConsumerWasAlteredIsMadeAgain(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d, out := loggedDispatcher(t, js, Config{})
	runDispatcher(t, d)
	testenv.Eventually(t, 10*time.Second, "the dispatcher started", func() error {
		if !strings.Contains(out.String(), `"message":"dispatcher started"`) {
			return errors.New("not yet")
		}
		return nil
	})
	// The dispatcher puts the consumer back within a second, which under
	// load may come before the client asks for more: then the change is
	// made again.
	for attempt := 1; !strings.Contains(out.String(), "code=400"); attempt++ {
		if attempt > 5 {
			t.Fatalf("no pull refused in 5 attempts:\n%s", out.String())
		}
		cons, err := js.Consumer(ctx, DefaultStream, DefaultConsumer)
		if err != nil {
			t.Fatal(err)
		}
		cfg := cons.CachedInfo().Config
		cfg.PriorityPolicy, cfg.PriorityGroups = jetstream.PriorityPolicyOverflow, []string{"elsewhere"}
		if _, err := js.UpdateConsumer(ctx, DefaultStream, cfg); err != nil {
			t.Fatal(err)
		}
		// The pull waiting at the server names no group either, but is
		// not checked again: it delivers these, and the client asks for
		// more when half of its buffer is gone. Matched by no playbook,
		// each is acknowledged at once.
		for i := range pullBuffer/2 + 8 {
			if _, err := js.Publish(ctx, "alerts.other", fmt.Appendf(nil, `{"id":"other-%d-%d","rule":"other"}`, attempt, i)); err != nil {
				t.Fatal(err)
			}
		}
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && !strings.Contains(out.String(), "code=400"); {
			time.Sleep(50 * time.Millisecond)
		}
	}
	testenv.Eventually(t, 10*time.Second, "the pull made again", func() error {
		if !strings.Contains(out.String(), "the alert pull was refused and ended; pulling again") {
			return errors.New("not yet")
		}
		return nil
	})
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"after-the-refusal","rule":"unit"}`)); err != nil {
		t.Fatal(err)
	}
	openedLine(t, out, "after-the-refusal", 20*time.Second)
	if strings.Contains(out.String(), "the alert consumer stopped") {
		t.Errorf("the dispatcher stopped:\n%s", out.String())
	}
}

// TestAConsumerCreatedAgainWithUnchangeableSettingsIsReplaced: somebody
// deletes one of soar's consumers and creates it again with a setting no
// update can change. Every dispatcher's start failed on it for good (the
// update is refused), and a push consumer handed the alerts to a subject
// of theirs. Now the start deletes it and creates soar's, says so, and the
// alert that waited in the stream comes to the new consumer.
func TestAConsumerCreatedAgainWithUnchangeableSettingsIsReplaced(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	out := &testenv.SyncBuffer{}
	d := New(js, nil, nil, metrics.New(), zerolog.New(out), Config{Keys: testenv.SigningKeys(), Pods: map[string]PodIndex{"": pods{}}})
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		stream, consumer, subject string
		want                      jetstream.ConsumerConfig
	}{
		{d.cfg.Stream, d.cfg.Consumer, "falco.notice.x", d.consumerConfig()},
		{d.cfg.ParkedStream, d.cfg.ParkedConsumer, d.cfg.ParkedSubject, parkedConsumerConfig(d.cfg.ParkedConsumer)},
	} {
		consumer := c.consumer
		for _, a := range []struct {
			setting string
			change  func(*jetstream.ConsumerConfig)
		}{
			{"deliver_subject attacker.inbox", func(cfg *jetstream.ConsumerConfig) { cfg.DeliverSubject, cfg.MaxWaiting = "attacker.inbox", 0 }},
			{"replay_policy original", func(cfg *jetstream.ConsumerConfig) { cfg.ReplayPolicy = jetstream.ReplayOriginalPolicy }},
			{"mem_storage", func(cfg *jetstream.ConsumerConfig) { cfg.MemoryStorage = true }},
			{"max_waiting 1", func(cfg *jetstream.ConsumerConfig) { cfg.MaxWaiting = 1 }},
		} {
			if _, err := js.Publish(ctx, c.subject, []byte(`{"id":"waiting"}`)); err != nil {
				t.Fatal(err)
			}
			cons, err := js.Consumer(ctx, c.stream, consumer)
			if err != nil {
				t.Fatal(err)
			}
			cfg := cons.CachedInfo().Config
			if err := js.DeleteConsumer(ctx, c.stream, consumer); err != nil {
				t.Fatal(err)
			}
			a.change(&cfg)
			if _, err := js.CreateConsumer(ctx, c.stream, cfg); err != nil {
				t.Fatalf("%s %s: %v", consumer, a.setting, err)
			}
			if err := d.EnsureStreams(ctx); err != nil {
				t.Fatalf("%s %s: the start failed: %v", consumer, a.setting, err)
			}
			cons, err = js.Consumer(ctx, c.stream, consumer)
			if err != nil {
				t.Fatalf("%s %s: %v", consumer, a.setting, err)
			}
			if left := unchangeable(cons.CachedInfo().Config, c.want); len(left) > 0 {
				t.Errorf("%s still has %v", consumer, left)
			}
			msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatalf("%s %s: the alert that waited: %v", consumer, a.setting, err)
			}
			if err := msg.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
			want := `"consumer":"` + consumer + `","settings":["` + a.setting + `"],"message":"a consumer of soar's had settings no update can change; deleted it and created soar's"`
			if !strings.Contains(out.String(), want) {
				t.Errorf("no line says %s:\n%s", want, out.String())
			}
		}
	}
}

// TestARunningDispatcherCreatesTheParkedConsumerAgain: the parked alerts'
// consumer deleted, or created again as a push consumer or with memory
// storage, while a dispatcher with pod indexes runs. Its pull of parked
// alerts names the consumer, so parked alerts came to no dispatcher (or to
// whoever subscribed to the push consumer's subject) until a restart.
// Within a read of the backlog the consumer is soar's again.
func TestARunningDispatcherCreatesTheParkedConsumerAgain(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d, out := runningDispatcher(t, js, Config{Keys: testenv.SigningKeys(), Pods: map[string]PodIndex{"": pods{}}})
	want := parkedConsumerConfig(d.cfg.ParkedConsumer)
	for _, a := range []struct {
		name, line string
		change     func(*jetstream.ConsumerConfig)
	}{
		{"deleted", `"consumer":"soar-dispatch-parked","message":"a consumer of soar's was deleted; created it again"`, nil},
		{"push", `"settings":["deliver_subject attacker.inbox"],"message":"a consumer of soar's had settings no update can change; deleted it and created soar's"`,
			func(cfg *jetstream.ConsumerConfig) { cfg.DeliverSubject, cfg.MaxWaiting = "attacker.inbox", 0 }},
		{"memory", `"settings":["mem_storage"],"message":"a consumer of soar's had settings no update can change; deleted it and created soar's"`,
			func(cfg *jetstream.ConsumerConfig) { cfg.MemoryStorage = true }},
	} {
		// The dispatcher may create its own between the two calls: then
		// again.
		for attempt := 1; ; attempt++ {
			if err := js.DeleteConsumer(ctx, d.cfg.ParkedStream, d.cfg.ParkedConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				t.Fatal(err)
			}
			if a.change == nil {
				break
			}
			cfg := want
			a.change(&cfg)
			_, err := js.CreateConsumer(ctx, d.cfg.ParkedStream, cfg)
			if err == nil {
				break
			}
			if attempt == 5 {
				t.Fatalf("%s: %v", a.name, err)
			}
		}
		testenv.Eventually(t, 10*time.Second, a.name+": the consumer is soar's again", func() error {
			cons, err := js.Consumer(ctx, d.cfg.ParkedStream, d.cfg.ParkedConsumer)
			if err != nil {
				return err
			}
			if u := unchangeable(cons.CachedInfo().Config, want); len(u) > 0 {
				return fmt.Errorf("still %v", u)
			}
			if !strings.Contains(out.String(), a.line) {
				return fmt.Errorf("no line says %s", a.line)
			}
			return nil
		})
	}
}

// TestTheParkedPullOutlivesAPriorityGroupItSawAtItsStart: the parked
// alerts' consumer has a priority group when the pull of parked alerts
// starts (somebody changed it between the start's put-back and the pull's
// first read). Every pull is refused until the put-back; the pull of
// parked alerts, unlike the alert pull (pullAgain), is one request at a
// time, so it only retries, and the parked message comes after the
// put-back.
func TestTheParkedPullOutlivesAPriorityGroupItSawAtItsStart(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d := New(js, nil, nil, metrics.New(), zerolog.New(zerolog.NewTestWriter(t)), Config{Keys: testenv.SigningKeys(), Pods: map[string]PodIndex{"": pods{}}})
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, d.cfg.ParkedStream, d.cfg.ParkedConsumer)
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	cfg.PriorityPolicy, cfg.PriorityGroups = jetstream.PriorityPolicyOverflow, []string{"elsewhere"}
	if _, err := js.UpdateConsumer(ctx, d.cfg.ParkedStream, cfg); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.runParked(runCtx, ctx, &wg) }()
	t.Cleanup(func() { stop(); wg.Wait() })
	// A message nobody parked: once pulled, it is dead-lettered, which
	// needs neither Temporal nor a pod.
	if _, err := js.Publish(ctx, d.cfg.ParkedSubject, []byte(`{"id":"forged"}`)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "the parked message pulled after the put-back", func() error {
		if err := d.observe(ctx); err != nil {
			return err
		}
		d.parkedHint.Store(1)
		p, err := ReadParked(ctx, js, d.cfg.ParkedStream, nil)
		if err != nil {
			return err
		}
		if p.Waiting > 0 {
			return fmt.Errorf("%d parked message(s) wait", p.Waiting)
		}
		return nil
	})
	deadLetter(t, js, ReasonForgedParked)
}

// TestTheDeadLetterStreamIsKeptAbleToTakeDeadLetters: somebody sets the
// dead-letter stream to refuse dead letters (no acknowledgement, discard
// new, a message size limit, another subject), or deletes it. An alert to
// be dead-lettered is then retried in the alert consumer's ack pending,
// never dropped, so a flood of bad alerts would stop all dispatch. A
// running dispatcher puts the settings back, or creates the stream again,
// within a read of the backlog and says so, and the next bad alert is
// dead-lettered. A seal, which nobody can take back, is named.
func TestTheDeadLetterStreamIsKeptAbleToTakeDeadLetters(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	_, out := runningDispatcher(t, js, Config{})
	s, err := js.Stream(ctx, DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.NoAck, cfg.Discard, cfg.MaxMsgSize, cfg.Subjects = true, jetstream.DiscardNew, 10, []string{"elsewhere.>"}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the dead-letter stream put back", func() error {
		want := `"stream":"SOAR_DEADLETTER","settings":["no_ack","discard new","max_msg_size 10","subjects lack soar.deadletter.>"],"message":"the dead-letter stream was set to refuse dead letters; put back"`
		if !strings.Contains(out.String(), want) {
			return fmt.Errorf("no line says %s", want)
		}
		return nil
	})
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`not json, after the put-back`)); err != nil {
		t.Fatal(err)
	}
	if got := deadLetter(t, js, alert.ReasonInvalidJSON); string(got.Data) != `not json, after the put-back` {
		t.Errorf("dead letter %q", got.Data)
	}

	if err := js.DeleteStream(ctx, DefaultDeadLetterStream); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the dead-letter stream created again", func() error {
		if !strings.Contains(out.String(), `"stream":"SOAR_DEADLETTER","message":"a stream of soar's was deleted; created it again"`) {
			return errors.New("not yet")
		}
		return nil
	})
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`not json, after the deletion`)); err != nil {
		t.Fatal(err)
	}
	if got := deadLetter(t, js, alert.ReasonInvalidJSON); string(got.Data) != `not json, after the deletion` {
		t.Errorf("dead letter %q", got.Data)
	}

	seal(t, js, DefaultDeadLetterStream)
	testenv.Eventually(t, 10*time.Second, "the sealed dead-letter stream named", func() error {
		if !strings.Contains(out.String(), `"stream":"SOAR_DEADLETTER","message":"the dead-letter stream is sealed`) {
			return errors.New("not yet")
		}
		return nil
	})
}

// TestADeletedParkedStreamIsCreatedAgain: somebody deletes SOAR_PARKED
// while a dispatcher runs. Every read of the backlog failed on it until a
// restart, and with it every put-back (a pause, a filter…), and no alert
// could be parked. The dispatcher creates the stream and its consumer
// again within a read, says so, and goes on mending what is changed next.
func TestADeletedParkedStreamIsCreatedAgain(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	_, out := runningDispatcher(t, js, Config{})
	if err := js.DeleteStream(ctx, DefaultParkedStream); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the parked stream created again", func() error {
		if _, err := js.Consumer(ctx, DefaultParkedStream, DefaultParkedConsumer); err != nil {
			return err
		}
		if !strings.Contains(out.String(), `"stream":"SOAR_PARKED","message":"a stream of soar's was deleted; created it again"`) {
			return errors.New("no line says so")
		}
		return nil
	})
	if _, err := js.PauseConsumer(ctx, DefaultStream, DefaultConsumer, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the alert consumer resumed", func() error {
		if !strings.Contains(out.String(), "was paused; resumed it") {
			return errors.New("not yet")
		}
		return nil
	})
}

// TestAClusterSourceRemovedOrAlteredIsPutBack: somebody removes the alert
// stream's source of one cluster (its alerts stop coming, and its metrics
// go with it), and gives another's a subject transform that names a third
// cluster (its alerts would be contained there). A running dispatcher
// whose flags name both puts them back within a read of the backlog and
// says so; a source its flags do not name is left alone (another
// dispatcher's, during an upgrade).
func TestAClusterSourceRemovedOrAlteredIsPutBack(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	flags := []ClusterSource{{Cluster: "prod", Domain: "edge-prod"}, {Cluster: "dev", Domain: "edge-dev"}}
	_, out := runningDispatcher(t, js, Config{ClusterSources: flags})
	s, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	want := streamSources(flags)
	other := &jetstream.StreamSource{Name: "SOAR_LEAF_ALERTS", External: &jetstream.ExternalStream{APIPrefix: "$JS.edge-new.API", DeliverPrefix: SourceDeliverPrefix + "new"},
		SubjectTransforms: []jetstream.SubjectTransformConfig{{Source: ">", Destination: "clusters.new.>"}}}
	cfg := s.CachedInfo().Config
	steered := *want[1]
	steered.SubjectTransforms = []jetstream.SubjectTransformConfig{{Source: ">", Destination: "clusters.prod.>"}}
	cfg.Sources = []*jetstream.StreamSource{&steered, other}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the sources put back", func() error {
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		have := info.Config.Sources
		if len(have) != 3 {
			return fmt.Errorf("%d sources", len(have))
		}
		for _, src := range append(want, other) {
			if i := sameSource(have, src); i < 0 || !sourceIntact(have[i], src) {
				return fmt.Errorf("source %s: %+v", sourceLabel(src), have)
			}
		}
		line := `"stream":"SOAR_ALERTS","settings":["sources lack prod=edge-prod/SOAR_LEAF_ALERTS","source altered dev=edge-dev/SOAR_LEAF_ALERTS"],"message":"a stream of soar's was set to drop or refuse alerts; put back"`
		if !strings.Contains(out.String(), line) {
			return fmt.Errorf("no line says %s", line)
		}
		return nil
	})
}
