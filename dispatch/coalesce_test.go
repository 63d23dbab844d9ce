package dispatch

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

func TestCoalescibleLetsSmallAlertsThroughAndEncodesLargeOnes(t *testing.T) {
	small := alert.Alert{ID: "a", Rule: "r", Summary: "x"}
	if !coalescible(small, 100, DefaultCoalesceMaxBytes) {
		t.Error("a 100-byte alert travels alone")
	}
	// Escaped characters take six bytes each once encoded: a message of
	// 30 KiB of them is too large for half a 256 KiB signal.
	big := alert.Alert{ID: "b", Summary: strings.Repeat("<", 30<<10)}
	if coalescible(big, 30<<10+20, DefaultCoalesceMaxBytes) {
		t.Error("an alert that encodes to 180 KiB shares a 256 KiB signal")
	}
	plain := alert.Alert{ID: "c", Summary: strings.Repeat("a", 30<<10)}
	if !coalescible(plain, 30<<10+20, DefaultCoalesceMaxBytes) {
		t.Error("an alert that encodes to 30 KiB travels alone")
	}
}

func TestBatchRequestIDDependsOnIncidentAndMessages(t *testing.T) {
	a := batchRequestID("soar-x", []uint64{1, 2})
	if a != batchRequestID("soar-x", []uint64{1, 2}) || a == batchRequestID("soar-x", []uint64{1, 3}) || a == batchRequestID("soar-y", []uint64{1, 2}) {
		t.Error("batch request IDs are not a function of incident and messages")
	}
}

// publishUnit publishes n alerts of the unit playbook with the given pod
// (the incident key of startDispatcherWith(…, "alert.k8s.pod")) and returns
// their stream sequences.
func publishUnit(t *testing.T, js jetstream.JetStream, pod string, n int) []uint64 {
	t.Helper()
	ctx := context.Background()
	var seqs []uint64
	var futures []jetstream.PubAckFuture
	for i := range n {
		body := fmt.Sprintf(`{"id":"%s-%d","rule":"unit","kubernetes":{"namespace":"payments","pod":%q}}`, pod, i, pod)
		f, err := js.PublishAsync("alerts.unit", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
	}
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			seqs = append(seqs, ack.Sequence)
		case err := <-f.Err():
			t.Fatal(err)
		}
	}
	return seqs
}

// signalledSeqs reads the incident's history and returns every stream
// sequence its first alert (in the workflow's input) and its alert signals
// carried (repeats included), and how many alerts or batches that was.
func signalledSeqs(t *testing.T, tc client.Client, wid string) (seqs []uint64, signals int) {
	t.Helper()
	for _, sig := range alertSignals(t, tc, wid) {
		if sig.Count != len(sig.Deliveries.Seqs) {
			t.Errorf("signal says %d alerts and names %d messages", sig.Count, len(sig.Deliveries.Seqs))
		}
		signals++
		seqs = append(seqs, sig.Deliveries.Seqs...)
	}
	return seqs, signals
}

// alertSignals reads the incident's history and returns its first alert
// (in the workflow's input) and its alert signals, in order, each with the
// messages it stands for.
func alertSignals(t *testing.T, tc client.Client, wid string) []workflows.AlertSignal {
	t.Helper()
	var out []workflows.AlertSignal
	it := tc.GetWorkflowHistory(context.Background(), wid, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	dc := converter.GetDefaultDataConverter()
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		var sig workflows.AlertSignal
		if started := ev.GetWorkflowExecutionStartedEventAttributes(); started != nil {
			var in workflows.RespondInput
			if err := dc.FromPayloads(started.GetInput(), &in); err != nil {
				t.Fatal(err)
			}
			if in.First == nil {
				continue
			}
			sig = *in.First
		} else {
			attrs := ev.GetWorkflowExecutionSignaledEventAttributes()
			if attrs == nil || attrs.GetSignalName() != workflows.SignalAlert {
				continue
			}
			if err := dc.FromPayloads(attrs.GetInput(), &sig); err != nil {
				t.Fatal(err)
			}
		}
		if sig.Deliveries == nil {
			t.Fatalf("signal without deliveries: %+v", sig)
		}
		out = append(out, sig)
	}
	return out
}

func TestDispatcherCoalescesTheAlertsOfAnOpenIncident(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	if err := incidents.EnsureSearchAttributes(ctx, tc, "default"); err != nil {
		t.Fatal(err)
	}
	m := startDispatcherWith(t, js, tc, Config{}, "alert.k8s.pod")

	want := publishUnit(t, js, "api-1", 1)
	assertDrained(t, js)
	want = append(want, publishUnit(t, js, "api-1", 2000)...)
	assertDrained(t, js)

	wid := playbooks.IncidentID("unit", "api-1")
	got, signals := signalledSeqs(t, tc, wid)
	slices.Sort(got)
	if !slices.Equal(slices.Compact(got), want) {
		t.Fatalf("the incident's signals name %d distinct messages of %d published", len(slices.Compact(got)), len(want))
	}
	calls := testutil.ToFloat64(m.TemporalCalls.WithLabelValues("signal")) + testutil.ToFloat64(m.TemporalCalls.WithLabelValues("signal_with_start")) +
		testutil.ToFloat64(m.TemporalCalls.WithLabelValues("start"))
	t.Logf("2001 alerts: %d signals, %.0f Temporal calls, %.0f payload bytes", signals, calls, testutil.ToFloat64(m.TemporalBytes))
	// The first alert travels alone; the 2,000 others in batches of up to
	// 1,000 or one window each. A calm machine needs a handful; the bound
	// leaves room for a slow one and still proves coalescing.
	if calls > 100 || signals > 100 {
		t.Errorf("2001 alerts took %.0f Temporal calls and %d signals", calls, signals)
	}
	if n := testutil.ToFloat64(m.TemporalCalls.WithLabelValues("start")); n != 1 {
		t.Errorf("%.0f start calls: the first alert did not open the incident by itself", n)
	}
}

func TestDispatchersSharingTheConsumerNameEveryMessageOnceOrMore(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	if err := incidents.EnsureSearchAttributes(ctx, tc, "default"); err != nil {
		t.Fatal(err)
	}
	m1 := startDispatcherWith(t, js, tc, Config{Identity: "d1"}, "alert.k8s.pod")
	m2 := startDispatcherWith(t, js, tc, Config{Identity: "d2"}, "alert.k8s.pod")

	pods := []string{"api-1", "api-2", "api-3"}
	want := map[string][]uint64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, pod := range pods {
		wg.Go(func() {
			seqs := publishUnit(t, js, pod, 700)
			mu.Lock()
			want[pod] = seqs
			mu.Unlock()
		})
	}
	wg.Wait()
	assertDrained(t, js)

	for _, pod := range pods {
		wid := playbooks.IncidentID("unit", pod)
		got, _ := signalledSeqs(t, tc, wid)
		slices.Sort(got)
		if !slices.Equal(slices.Compact(got), want[pod]) {
			t.Errorf("%s: signals name %d distinct messages of %d published", pod, len(slices.Compact(got)), len(want[pod]))
		}
	}
	// One incident per key: Temporal started three workflows, whichever
	// dispatcher asked.
	started := testutil.ToFloat64(m1.WorkflowsStarted.WithLabelValues("unit")) + testutil.ToFloat64(m2.WorkflowsStarted.WithLabelValues("unit"))
	if started != 3 {
		t.Errorf("%.0f incidents started for 3 pods", started)
	}
	for _, m := range []float64{testutil.ToFloat64(m1.CoalescedAlerts), testutil.ToFloat64(m2.CoalescedAlerts)} {
		if m == 0 {
			t.Error("a dispatcher coalesced nothing: both did not take part")
		}
	}
}

func TestBatchDelayKeepsOneSignalPerIncidentAndInterval(t *testing.T) {
	d := &Dispatcher{cfg: Config{CoalesceWindow: 100 * time.Millisecond, CoalesceInterval: time.Second, CoalesceMaxSignalRate: 10}}
	now := time.Now()
	if got := d.batchDelay(nil, now, 1); got != 100*time.Millisecond {
		t.Errorf("unknown incident: %s, want the window", got)
	}
	inc := &incident{}
	if got := d.batchDelay(inc, now, 1); got != 100*time.Millisecond {
		t.Errorf("incident never signalled: %s, want the window", got)
	}
	inc.lastSent.Store(now.Add(-300 * time.Millisecond).UnixNano())
	if got := d.batchDelay(inc, now, 1); got != 700*time.Millisecond {
		t.Errorf("signalled 300 ms ago: %s, want the rest of the second", got)
	}
	inc.lastSent.Store(now.Add(-5 * time.Second).UnixNano())
	if got := d.batchDelay(inc, now, 1); got != 100*time.Millisecond {
		t.Errorf("signalled 5 s ago: %s, want the window", got)
	}
	// 50 busy incidents at 10 signals a second: one signal each per 5 s.
	inc.lastSent.Store(now.Add(-300 * time.Millisecond).UnixNano())
	if got := d.batchDelay(inc, now, 50); got != 4700*time.Millisecond {
		t.Errorf("50 busy incidents, signalled 300 ms ago: %s, want 4.7 s", got)
	}
}

// TestDuplicatesCostLessThanOneCallAndTheirBytes measures what a duplicate
// alert of an open incident costs in calls to Temporal and payload bytes,
// with every alert travelling alone (as before coalescing) and coalesced.
func TestDuplicatesCostLessThanOneCallAndTheirBytes(t *testing.T) {
	ctx := context.Background()
	tc := temporalClient(t)
	if err := incidents.EnsureSearchAttributes(ctx, tc, "default"); err != nil {
		t.Fatal(err)
	}
	const dups = 500
	cost := func(cfg Config, pod string) (calls, bytes float64) {
		_, _, js := testenv.NATS(t)
		m := startDispatcherWith(t, js, tc, cfg, "alert.k8s.pod")
		publishUnit(t, js, pod, 1)
		assertDrained(t, js)
		calls0 := testutil.ToFloat64(m.TemporalCalls.WithLabelValues("signal")) + testutil.ToFloat64(m.TemporalCalls.WithLabelValues("signal_with_start"))
		bytes0 := testutil.ToFloat64(m.TemporalBytes)
		publishUnit(t, js, pod, dups)
		assertDrained(t, js)
		calls1 := testutil.ToFloat64(m.TemporalCalls.WithLabelValues("signal")) + testutil.ToFloat64(m.TemporalCalls.WithLabelValues("signal_with_start"))
		return (calls1 - calls0) / dups, (testutil.ToFloat64(m.TemporalBytes) - bytes0) / dups
	}
	aloneCalls, aloneBytes := cost(Config{CoalesceWindow: -1}, "alone-1")
	calls, bytes := cost(Config{}, "coalesced-1")
	t.Logf("per duplicate alert: alone %.3f calls and %.0f bytes; coalesced %.4f calls and %.1f bytes", aloneCalls, aloneBytes, calls, bytes)
	if aloneCalls != 1 {
		t.Errorf("alone: %.3f calls per duplicate, want 1", aloneCalls)
	}
	if calls > 0.1 || bytes > aloneBytes/10 {
		t.Errorf("coalesced: %.4f calls and %.1f bytes per duplicate (alone: %.0f bytes)", calls, bytes, aloneBytes)
	}
}

func TestAnIncidentWithoutAlertsForAMinuteIsNoLongerKnown(t *testing.T) {
	c := newCoalescer(1)
	m := []playbooks.Match{{Playbook: &playbooks.Playbook{Name: "p"}, IncidentKey: "k"}}
	known, claims := c.claim(m)
	if known || len(claims) != 1 {
		t.Fatalf("first alert: known %t, claims %v", known, claims)
	}
	c.settle(claims, map[string]bool{m[0].IncidentID(): true})
	if known, _ := c.claim(m); !known {
		t.Error("an incident just opened is not known")
	}
	// A minute later the incident may have been closed on request: the
	// next alert travels alone again.
	c.incidents[m[0].IncidentID()].lastSeen.Add(-int64(knownFor))
	if known, claims := c.claim(m); known || len(claims) != 1 {
		t.Errorf("after a minute without alerts: known %t, claims %v", known, claims)
	}
}
