package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
)

func TestDispatchStatusPrintsTheBacklogAndFailsWhenItIsOld(t *testing.T) {
	ctx := context.Background()
	s, _, js := testenv.NATS(t)
	// The streams and consumer as a dispatcher creates them; no dispatcher
	// runs, so what is published waits.
	if err := dispatch.New(js, nil, nil, metrics.New(), zerolog.Nop(), dispatch.Config{}).EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"x","rule":"unit"}`)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := js.Publish(ctx, dispatch.DefaultParkedSubject, []byte(`{"id":"y","rule":"unit"}`)); err != nil {
			t.Fatal(err)
		}
	}

	// The server counts a consumer's pending messages a moment after it
	// stores them (CI once read 0 right after the publishes): wait for the
	// count, so that the command is checked against a settled state.
	testenv.Eventually(t, 10*time.Second, "the consumer counts 3 pending", func() error {
		b, err := dispatch.ReadBacklog(ctx, js, dispatch.DefaultStream, dispatch.DefaultConsumer)
		if err == nil && b.Undelivered != 3 {
			err = fmt.Errorf("%d undelivered", b.Undelivered)
		}
		return err
	})
	out := soar(t, "dispatch", "status", "--nats-url", s.ClientURL())
	for _, want := range []string{"Waiting       3 alerts", "undelivered 3", "in flight   0", "Oldest        ", "Stream full   0.0% (",
		"Parked        2 alerts for pods that do not exist, the oldest parked "} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out = soar(t, "dispatch", "status", "--nats-url", s.ClientURL(), "--json")
	var b dispatch.Backlog
	if err := json.Unmarshal([]byte(out), &b); err != nil || b.Waiting != 3 || b.Oldest.IsZero() || b.Parked == nil || b.Parked.Waiting != 2 {
		t.Errorf("status --json = %s (%v)", out, err)
	}

	// status runs the command as a probe does: what it prints, and how it exits.
	status := func(args ...string) (string, error) {
		var out strings.Builder
		root := newRootCmd()
		root.SetOut(&out)
		root.SetArgs(append([]string{"dispatch", "status", "--nats-url", s.ClientURL()}, args...))
		err := root.Execute()
		return out.String(), err
	}
	if _, err := status("--warn-age", "1ns"); err == nil || !strings.Contains(err.Error(), "over --warn-age 1ns") {
		t.Errorf("status with an old backlog: err = %v", err)
	}

	// Somebody paused the consumer (no dispatcher runs to resume it).
	if _, err := js.PauseConsumer(ctx, dispatch.DefaultStream, dispatch.DefaultConsumer, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	paused, err := status()
	if err == nil || !strings.Contains(err.Error(), "the alert consumer is paused until ") {
		t.Errorf("status of a paused consumer: err = %v", err)
	}
	if !strings.Contains(paused, "PAUSED        until ") {
		t.Errorf("status of a paused consumer lacks the PAUSED line:\n%s", paused)
	}

	// Somebody set the stream to drop alerts (and the consumer was resumed).
	if _, err := js.ResumeConsumer(ctx, dispatch.DefaultStream, dispatch.DefaultConsumer); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, dispatch.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxAge = time.Hour
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	drops, err := status()
	if err == nil || !strings.Contains(err.Error(), "the alert stream is set to drop or refuse alerts (max_age 1h0m0s)") {
		t.Errorf("status of a stream that drops alerts: err = %v", err)
	}
	if !strings.Contains(drops, "DROPS ALERTS  max_age 1h0m0s: ") {
		t.Errorf("status of a stream that drops alerts lacks the DROPS ALERTS line:\n%s", drops)
	}

	// Somebody set the parked stream to drop alerts instead.
	cfg.MaxAge = 0
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	pst, err := js.Stream(ctx, dispatch.DefaultParkedStream)
	if err != nil {
		t.Fatal(err)
	}
	pcfg := pst.CachedInfo().Config
	pcfg.MaxMsgsPerSubject = 5
	if _, err := js.UpdateStream(ctx, pcfg); err != nil {
		t.Fatal(err)
	}
	drops, err = status()
	if err == nil || !strings.Contains(err.Error(), "the parked stream is set to drop or refuse alerts (max_msgs_per_subject 5)") {
		t.Errorf("status of a parked stream that drops alerts: err = %v", err)
	}
	if !strings.Contains(drops, "DROPS ALERTS  max_msgs_per_subject 5: the parked stream ") {
		t.Errorf("status of a parked stream that drops alerts lacks the DROPS ALERTS line:\n%s", drops)
	}

	// Somebody set the dead-letter stream to refuse dead letters (and the
	// parked stream was put back), then deleted it.
	pcfg.MaxMsgsPerSubject = -1
	if _, err := js.UpdateStream(ctx, pcfg); err != nil {
		t.Fatal(err)
	}
	dst, err := js.Stream(ctx, dispatch.DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	dcfg := dst.CachedInfo().Config
	dcfg.NoAck, dcfg.MaxMsgSize = true, 10
	if _, err := js.UpdateStream(ctx, dcfg); err != nil {
		t.Fatal(err)
	}
	refusing, err := status()
	if err == nil || !strings.Contains(err.Error(), "the dead-letter stream SOAR_DEADLETTER cannot take dead letters (no_ack, max_msg_size 10)") {
		t.Errorf("status of a dead-letter stream that refuses dead letters: err = %v", err)
	}
	if !strings.Contains(refusing, "DEAD LETTERS  no_ack, max_msg_size 10: SOAR_DEADLETTER cannot take dead letters") {
		t.Errorf("status of a dead-letter stream that refuses dead letters lacks the DEAD LETTERS line:\n%s", refusing)
	}
	if err := js.DeleteStream(ctx, dispatch.DefaultDeadLetterStream); err != nil {
		t.Fatal(err)
	}
	if _, err := status(); err == nil || !strings.Contains(err.Error(), "the dead-letter stream SOAR_DEADLETTER cannot take dead letters (missing)") {
		t.Errorf("status without a dead-letter stream: err = %v", err)
	}
	dcfg.NoAck, dcfg.MaxMsgSize = false, -1
	if _, err := js.CreateStream(ctx, dcfg); err != nil {
		t.Fatal(err)
	}

	// Somebody set the consumer to withhold alerts.
	cons, err := js.Consumer(ctx, dispatch.DefaultStream, dispatch.DefaultConsumer)
	if err != nil {
		t.Fatal(err)
	}
	ccfg := cons.CachedInfo().Config
	ccfg.FilterSubject, ccfg.HeadersOnly = "alerts.nothing", true
	if _, err := js.UpdateConsumer(ctx, dispatch.DefaultStream, ccfg); err != nil {
		t.Fatal(err)
	}
	altered, err := status()
	if err == nil || !strings.Contains(err.Error(), "the alert consumer is set to withhold or spoil alerts (filter_subject alerts.nothing, headers_only)") {
		t.Errorf("status of an altered consumer: err = %v", err)
	}
	if !strings.Contains(altered, "ALTERED       filter_subject alerts.nothing, headers_only: ") {
		t.Errorf("status of an altered consumer lacks the ALTERED line:\n%s", altered)
	}

	// Somebody deleted it and created a push consumer in its place, which
	// hands the alerts to their subject. Before, status could not read it.
	if err := js.DeleteConsumer(ctx, dispatch.DefaultStream, dispatch.DefaultConsumer); err != nil {
		t.Fatal(err)
	}
	ccfg.FilterSubject, ccfg.HeadersOnly, ccfg.DeliverSubject, ccfg.MaxWaiting = "", false, "attacker.inbox", 0
	if _, err := js.CreateConsumer(ctx, dispatch.DefaultStream, ccfg); err != nil {
		t.Fatal(err)
	}
	pushed, err := status()
	if err == nil || !strings.Contains(err.Error(), "the alert consumer is set to withhold or spoil alerts (deliver_subject attacker.inbox)") {
		t.Errorf("status of a push consumer: err = %v", err)
	}
	if !strings.Contains(pushed, "ALTERED       deliver_subject attacker.inbox: ") {
		t.Errorf("status of a push consumer lacks the ALTERED line:\n%s", pushed)
	}

	// Somebody sealed the stream, which nobody can undo.
	cfg.Sealed = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	sealed, err := status()
	if err == nil || !strings.Contains(err.Error(), "the alert stream is sealed") {
		t.Errorf("status of a sealed stream: err = %v", err)
	}
	if !strings.Contains(sealed, "SEALED        the stream refuses every alert") {
		t.Errorf("status of a sealed stream lacks the SEALED line:\n%s", sealed)
	}
}

func TestDispatchStatusPrintsEachClusterSource(t *testing.T) {
	var out strings.Builder
	printBacklog(&out, dispatch.Backlog{Stream: "SOAR_ALERTS", Consumer: "soar-dispatch", Sources: []dispatch.SourceState{
		{Cluster: "prod-eu", Domain: "prod-eu", Stream: "SOAR_LEAF_ALERTS", Lag: 0, Inactive: 800 * time.Millisecond},
		{Cluster: "prod-us", Stream: "SOAR_LEAF_ALERTS", Lag: 12, Inactive: 95 * time.Second, Error: "stream not found"},
		{Stream: "OTHER", Inactive: -1},
	}})
	for _, want := range []string{
		"Source        prod-eu (SOAR_LEAF_ALERTS in domain prod-eu): last heard 800ms ago, 0 alerts behind\n",
		"Source        prod-us (SOAR_LEAF_ALERTS): last heard 1m35s ago, 12 alerts behind; error: stream not found\n",
		"Source        - (OTHER): never heard from, 0 alerts behind\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDispatchStatusSaysWhenTheWindowIsFull(t *testing.T) {
	var out strings.Builder
	printBacklog(&out, dispatch.Backlog{Stream: "SOAR_ALERTS", Consumer: "soar-dispatch", InFlight: 8192, MaxInFlight: 8192})
	if !strings.Contains(out.String(), "WINDOW FULL   8192 of 8192 alerts in flight: JetStream delivers no more until some are acknowledged\n") {
		t.Errorf("status of a full window:\n%s", out.String())
	}
	out.Reset()
	printBacklog(&out, dispatch.Backlog{Stream: "SOAR_ALERTS", Consumer: "soar-dispatch", InFlight: 8191, MaxInFlight: 8192})
	if strings.Contains(out.String(), "WINDOW FULL") {
		t.Errorf("status of a window with room:\n%s", out.String())
	}
}
