package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
)

func TestBacklogCheckIsDegradedWhileTheOldestAlertWaitsTooLong(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d := New(js, nil, nil, metrics.New(), zerolog.Nop(), Config{BacklogWarnAge: 50 * time.Millisecond})
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	var deg *httpserver.Degraded
	if err := d.BacklogCheck(ctx); !errors.As(err, &deg) || !strings.Contains(err.Error(), "not read yet") {
		t.Errorf("before the first read: %v", err)
	}
	if err := d.observe(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.BacklogCheck(ctx); err != nil {
		t.Errorf("empty backlog: %v", err)
	}
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"a","rule":"unit"}`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := d.observe(ctx); err != nil {
		t.Fatal(err)
	}
	err := d.BacklogCheck(ctx)
	if !errors.As(err, &deg) || !strings.Contains(err.Error(), "1 alerts waiting, the oldest for") {
		t.Errorf("an alert waiting 100 ms with a warning age of 50 ms: %v", err)
	}
	if b, ok := d.Backlog(); !ok || b.Waiting != 1 || b.Undelivered != 1 || d.floor() != 0 || d.epoch() == "" {
		t.Errorf("backlog %+v, floor %d, epoch %q", b, d.floor(), d.epoch())
	}
}

// TestAFullStreamRefusesNewAlertsAndSaysSo fills a small alert stream with
// no dispatcher running: the publisher is refused once it is full (it can
// retry), no stored alert is dropped to make room, and the backlog reports
// the stream as nearly full.
func TestAFullStreamRefusesNewAlertsAndSaysSo(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d := New(js, nil, nil, metrics.New(), zerolog.Nop(), Config{StreamMaxBytes: 64 << 10})
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"a","rule":"unit","summary":"` + strings.Repeat("x", 1000) + `"}`)
	stored := 0
	var refused error
	for range 200 {
		if _, err := js.Publish(ctx, "alerts.unit", body); err != nil {
			refused = err
			break
		}
		stored++
	}
	if refused == nil || !strings.Contains(refused.Error(), "maximum bytes") {
		t.Fatalf("after %d alerts the publisher got %v, want a refusal for maximum bytes", stored, refused)
	}
	if err := d.observe(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := d.Backlog()
	if b.Waiting != uint64(stored) || b.Full < streamFullWarning {
		t.Errorf("stored %d, backlog %+v", stored, b)
	}
	s, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	si, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.State.FirstSeq != 1 {
		t.Errorf("the stream's first message is %d: older alerts were dropped to make room", si.State.FirstSeq)
	}
	err = d.BacklogCheck(ctx)
	var deg *httpserver.Degraded
	if !errors.As(err, &deg) || !strings.Contains(err.Error(), "full") {
		t.Errorf("/readyz check on a full stream: %v", err)
	}
}

// TestASealedStreamIsNamedEverywhere: somebody seals the alert stream.
// JetStream then refuses every alert and nobody can unseal it, so the
// dispatcher cannot mend it; it says so in /readyz and, once a minute, in
// its log.
func TestASealedStreamIsNamedEverywhere(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	out := &testenv.SyncBuffer{}
	d := New(js, nil, nil, metrics.New(), zerolog.New(out), Config{})
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	seal(t, js, DefaultStream)
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"a","rule":"unit"}`)); err == nil {
		t.Fatal("a sealed stream took an alert")
	}
	watch, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); d.watchBacklog(watch) }()
	t.Cleanup(func() { stop(); <-done })
	testenv.Eventually(t, 10*time.Second, "the sealed stream named", func() error {
		var deg *httpserver.Degraded
		if err := d.BacklogCheck(ctx); !errors.As(err, &deg) || !strings.Contains(err.Error(), "the alert stream is sealed") {
			return fmt.Errorf("/readyz check: %w", err)
		}
		if !strings.Contains(out.String(), `"level":"error","stream":"SOAR_ALERTS","message":"the alert stream is sealed: JetStream refuses every alert`) {
			return fmt.Errorf("no log line: %s", out.String())
		}
		return nil
	})
}

func TestASourceIsSilentPastTheWarningAge(t *testing.T) {
	const age = 30 * time.Second
	for _, tc := range []struct {
		src     SourceState
		running time.Duration
		want    bool
	}{
		{SourceState{Inactive: 2 * time.Second}, time.Hour, false},
		{SourceState{Inactive: 31 * time.Second}, time.Hour, true},
		{SourceState{Inactive: -1}, 10 * time.Second, false}, // just started: not heard from yet
		{SourceState{Inactive: -1}, time.Minute, true},       // never heard from
		{SourceState{Inactive: time.Second, Error: "stream not found"}, time.Hour, true},
	} {
		if got := tc.src.silent(age, tc.running); got != tc.want {
			t.Errorf("%+v after %v: silent %v, want %v", tc.src, tc.running, got, tc.want)
		}
	}
}

// TestANeverHeardSourceReadsMinusOneSecond: the server reports a source it
// never heard from as -1 ns; the metric says -1, as documented, not a value
// indistinguishable from "just now".
func TestANeverHeardSourceReadsMinusOneSecond(t *testing.T) {
	for _, tc := range []struct {
		inactive time.Duration
		want     float64
	}{{-1, -1}, {0, 0}, {1500 * time.Millisecond, 1.5}} {
		if got := (SourceState{Inactive: tc.inactive}).inactiveSeconds(); got != tc.want {
			t.Errorf("Inactive %v: %v seconds, want %v", tc.inactive, got, tc.want)
		}
	}
}

// TestSourcesSoarDidNotConfigureKeepTheirOwnSeries: an alert stream whose
// operator added sources of their own (no --cluster-source, so soar keeps
// them) reports each source apart, by stream and domain, not all of them as
// one series of the empty cluster that the last one overwrites.
func TestSourcesSoarDidNotConfigureKeepTheirOwnSeries(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	m := metrics.New()
	d := New(js, nil, nil, m, zerolog.Nop(), Config{})
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"EDGE_A", "EDGE_B"} {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{strings.ToLower(name) + ".>"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "edge_b.x", []byte(`{"id":"b","rule":"unit"}`)); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Sources = []*jetstream.StreamSource{
		{Name: "EDGE_A"},
		{Name: "EDGE_B"},
		// The same stream name in another domain, which this server does not have.
		{Name: "EDGE_B", External: &jetstream.ExternalStream{APIPrefix: "$JS.far.API", DeliverPrefix: "far.deliver"}},
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the sourced alert in the alert stream", func() error {
		if err := d.observe(ctx); err != nil {
			return err
		}
		if b, _ := d.Backlog(); b.Waiting != 1 {
			return fmt.Errorf("%d alerts waiting", b.Waiting)
		}
		return nil
	})
	b, _ := d.Backlog()
	keys := map[string]bool{}
	for _, src := range b.Sources {
		keys[src.key()] = true
	}
	if len(b.Sources) != 3 || len(keys) != 3 || !keys["//EDGE_A"] || !keys["//EDGE_B"] || !keys["/far/EDGE_B"] {
		t.Errorf("sources %+v", b.Sources)
	}
	if n := testutil.CollectAndCount(m.SourceInactive); n != 3 {
		t.Errorf("%d series of soar_dispatch_source_inactive_seconds, want one per source (3)", n)
	}
	if n := testutil.CollectAndCount(m.SourceLag); n != 3 {
		t.Errorf("%d series of soar_dispatch_source_lag_alerts, want 3", n)
	}
}

// TestFlagsAreOnlyEverRaised: the settings that come from a dispatcher's
// flags (the streams' byte limits and subjects, the consumer's max ack
// pending) are listed only when the stream or consumer has less than the
// flag, so that dispatchers with different flags (an upgrade) raise them
// to the largest and never take turns undoing each other.
func TestFlagsAreOnlyEverRaised(t *testing.T) {
	want := jetstream.StreamConfig{Subjects: []string{"alerts.>", "falco.>"}, MaxBytes: 1 << 30}
	for _, c := range []struct {
		name string
		have jetstream.StreamConfig
		drop []string
	}{
		{"as the flags", jetstream.StreamConfig{Subjects: []string{"alerts.>", "falco.>"}, MaxBytes: 1 << 30, Discard: jetstream.DiscardNew}, nil},
		{"more bytes, more subjects", jetstream.StreamConfig{Subjects: []string{"alerts.>", "falco.>", "more.>"}, MaxBytes: 2 << 30, Discard: jetstream.DiscardNew}, nil},
		{"no byte limit", jetstream.StreamConfig{Subjects: []string{"alerts.>", "falco.>"}, MaxBytes: -1, Discard: jetstream.DiscardNew}, nil},
		{"less", jetstream.StreamConfig{Subjects: []string{"alerts.>"}, MaxBytes: 1 << 20, Discard: jetstream.DiscardNew}, []string{"max_bytes 1048576", "subjects lack falco.>"}},
		{"narrower", jetstream.StreamConfig{Subjects: []string{"alerts.>", "falco.k8s.>"}, MaxBytes: 1 << 30, Discard: jetstream.DiscardNew}, []string{"subjects lack falco.>"}},
	} {
		if got := dropping(c.have, want); !slices.Equal(got, c.drop) {
			t.Errorf("%s: dropping = %q, want %q", c.name, got, c.drop)
		}
	}
	wantC := alertConsumerConfig("soar-dispatch", 65536)
	for have, list := range map[int]bool{65536: false, 100000: false, -1: false, 100: true} {
		c := wantC
		c.MaxAckPending = have
		if got := altered(c, wantC); len(got) > 0 != list {
			t.Errorf("max_ack_pending %d of the flag's 65536: altered = %q", have, got)
		}
	}
}

func TestCovers(t *testing.T) {
	for _, c := range []struct {
		pattern, subject string
		covers           bool
	}{
		{">", "alerts.>", true},
		{"alerts.>", "alerts.>", true},
		{"alerts.>", "alerts.k8s.>", true},
		{"alerts.>", "alerts", false},
		{"alerts.*", "alerts.x", true},
		{"alerts.*", "alerts.*", true},
		{"alerts.*", "alerts.>", false},
		{"alerts.*", "alerts.x.y", false},
		{"alerts.x", "alerts.*", false},
		{"falco.>", "alerts.>", false},
		{"soar.parked.alerts", "soar.parked.alerts", true},
		{"soar.parked.elsewhere", "soar.parked.alerts", false},
	} {
		if got := covers(c.pattern, c.subject); got != c.covers {
			t.Errorf("covers(%q, %q) = %v, want %v", c.pattern, c.subject, got, c.covers)
		}
	}
}

// TestAFullWindowIsNamed: Temporal refuses every start, so each alert is
// retried later and stays unacknowledged, until the consumer holds as many
// as it allows (max ack pending 10) and JetStream delivers nothing more. The
// dispatcher says so at once, in /readyz and its log, instead of only once
// the oldest alert is older than the backlog's warning age.
func TestAFullWindowIsNamed(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	down, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(down.Close)
	out := &testenv.SyncBuffer{}
	d := unitDispatcher(t, js, down, metrics.New(), zerolog.New(out), Config{MaxAckPending: 10, BacklogWarnAge: time.Hour}, "alert.id")
	runDispatcher(t, d)
	for i := range 15 {
		if _, err := js.Publish(ctx, "alerts.unit", fmt.Appendf(nil, `{"id":"w-%d","rule":"unit","kubernetes":{"namespace":"payments","pod":"api"}}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 20*time.Second, "the full window named", func() error {
		b, _ := d.Backlog()
		if !b.WindowFull() || b.MaxInFlight != 10 {
			return fmt.Errorf("in flight %d of %d", b.InFlight, b.MaxInFlight)
		}
		var deg *httpserver.Degraded
		if err := d.BacklogCheck(ctx); !errors.As(err, &deg) || !strings.Contains(err.Error(), "10 alerts in flight, the consumer's limit") {
			return fmt.Errorf("/readyz check: %w", err)
		}
		if !strings.Contains(out.String(), `"in_flight":10,"max_ack_pending":10`) || !strings.Contains(out.String(), "the alert consumer's window is full") {
			return fmt.Errorf("no log line: %s", out.String())
		}
		return nil
	})
}

// TestDeniedDeletesAndPurgesDoNotStopTheStart: an operator (or anybody
// with the account's JetStream API) denies deletes and purges on soar's
// streams, which nobody can take back. Every dispatcher's start tried to
// and failed for good; now it keeps them, as it deletes and purges
// nothing.
func TestDeniedDeletesAndPurgesDoNotStopTheStart(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d := New(js, nil, nil, metrics.New(), zerolog.Nop(), Config{})
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	names := []string{DefaultStream, DefaultDeadLetterStream, DefaultParkedStream}
	for _, name := range names {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.DenyDelete, cfg.DenyPurge = true, true
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := New(js, nil, nil, metrics.New(), zerolog.Nop(), Config{}).EnsureStreams(ctx); err != nil {
		t.Fatalf("the start: %v", err)
	}
	for _, name := range names {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if c := s.CachedInfo().Config; !c.DenyDelete || !c.DenyPurge {
			t.Errorf("%s: deny_delete %v, deny_purge %v", name, c.DenyDelete, c.DenyPurge)
		}
	}
}

// TestAStreamNoUpdateCanMendStopsTheStartSayingHowToMendIt: one of soar's
// streams deleted and created again with a retention or a storage of
// somebody's, or sealed. No update can take those back, and soar does not
// delete a stream that may hold alerts: the start fails with an error that
// names the settings and the commands that mend it.
func TestAStreamNoUpdateCanMendStopsTheStartSayingHowToMendIt(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d := New(js, nil, nil, metrics.New(), zerolog.Nop(), Config{})
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		stream, setting string
		change          func(*jetstream.StreamConfig)
	}{
		{DefaultStream, "retention Limits", func(c *jetstream.StreamConfig) { c.Retention = jetstream.LimitsPolicy }},
		{DefaultParkedStream, "storage Memory", func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }},
		{DefaultDeadLetterStream, "retention WorkQueue", func(c *jetstream.StreamConfig) { c.Retention = jetstream.WorkQueuePolicy }},
		{DefaultStream, "sealed", nil},
	} {
		s, err := js.Stream(ctx, c.stream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		if c.change != nil {
			if err := js.DeleteStream(ctx, c.stream); err != nil {
				t.Fatal(err)
			}
			c.change(&cfg)
			if _, err := js.CreateStream(ctx, cfg); err != nil {
				t.Fatal(err)
			}
		} else {
			cfg.Sealed = true
			if _, err := js.UpdateStream(ctx, cfg); err != nil {
				t.Fatal(err)
			}
		}
		err = d.EnsureStreams(ctx)
		if err == nil || !strings.Contains(err.Error(), "("+c.setting+")") || !strings.Contains(err.Error(), "nats stream rm "+c.stream) {
			t.Errorf("%s %s: the start = %v, want an error naming the setting and the way out", c.stream, c.setting, err)
		}
		if err := js.DeleteStream(ctx, c.stream); err != nil {
			t.Fatal(err)
		}
		if err := d.EnsureStreams(ctx); err != nil {
			t.Fatalf("the start after the stream was deleted: %v", err)
		}
	}
}
