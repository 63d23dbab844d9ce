package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
)

// BenchmarkPhantomFlood measures a flood that coalescing cannot absorb:
// every alert names a different pod that does not exist, as someone who can
// publish to the alert subjects (or a detector reporting on names an
// attacker chooses) could send. Each alert opens an incident of its own
// whose quarantine finds no pod. It publishes SOAR_PHANTOM_RATE alerts a
// second (500) for SOAR_PHANTOM_SECONDS (10), with 5 alerts for real new
// pods (the probes) at even intervals, and reports how long the backlog
// (the alert stream and the parked stream) took to drain after the last
// publish, incidents opened per second, and
// the probes' publish-to-quarantined latency, and how much of it passed
// before Temporal opened the probe's incident. Run it with -benchtime 1x.
//
// The dispatcher indexes the API server's pods, as soar dev's does, so that
// the phantoms go through a lane of their own (dispatch/triage.go);
// SOAR_PHANTOM_INDEX=0 measures it without, as soar dispatch runs without
// --pod-index; SOAR_PHANTOM_LANE sets the lane's width
// (--unknown-pod-concurrency), SOAR_PHANTOM_ROOM the alerts that wait in
// memory (--unknown-pod-max-waiting), SOAR_PHANTOM_MAX_ACK_PENDING the
// consumer's --max-ack-pending, and SOAR_PHANTOM_PARKED_MAX_BYTES=1 leaves
// no room in the parked stream, so that the alerts beyond the room are
// deferred as before parking.
func BenchmarkPhantomFlood(b *testing.B) {
	rate, secs := envInt("SOAR_PHANTOM_RATE", 500), envInt("SOAR_PHANTOM_SECONDS", 10)
	ctx := context.Background()
	_, _, js := testenv.NATS(b)
	tc := temporalClient(b)
	cfg := dispatch.Config{
		UnknownPodConcurrency: envInt("SOAR_PHANTOM_LANE", 0), UnknownPodMaxWaiting: envInt("SOAR_PHANTOM_ROOM", 0),
		MaxAckPending: envInt("SOAR_PHANTOM_MAX_ACK_PENDING", 0), ParkedMaxBytes: int64(envInt("SOAR_PHANTOM_PARKED_MAX_BYTES", 0)),
	}
	if os.Getenv("SOAR_PHANTOM_INDEX") != "0" {
		cfg.Pods = map[string]dispatch.PodIndex{"": podIndex(b)}
	}
	s := startSoar(b, js, tc, libraryDir, cfg)
	for range b.N {
		ns := fmt.Sprintf("phantom-%d", time.Now().UnixNano())
		testenv.Namespace(b, kubeCS, ns)
		const probes = 5
		for i := range probes {
			testenv.Pod(b, kubeCS, ns, fmt.Sprintf("probe-%d", i))
		}
		labelled := watchQuarantined(b, ns)
		started := func() float64 {
			return testutil.ToFloat64(s.metrics.TemporalCalls.WithLabelValues("start")) + testutil.ToFloat64(s.metrics.TemporalCalls.WithLabelValues("signal_with_start"))
		}
		startedBefore := started()

		total := rate * secs
		probeSent := make([]time.Time, probes)
		begin := time.Now()
		probe := 0
		paced(total, rate, func(n int) {
			if _, err := js.PublishAsync("falco.notice.terminal_shell_in_container", stormAlert(ns, fmt.Sprintf("ghost-%d", n), n)); err != nil {
				b.Fatal(err)
			}
			if probe < probes && n+1 >= (probe+1)*total/(probes+1) {
				probeSent[probe] = time.Now()
				if _, err := js.Publish(ctx, "falco.notice.terminal_shell_in_container", stormAlert(ns, fmt.Sprintf("probe-%d", probe), n+1)); err != nil {
					b.Fatal(err)
				}
				probe++
			}
		})
		awaitPublished(b, js)
		last := time.Now()
		testenv.Eventually(b, 30*time.Minute, "the flood's backlog drained", func() error {
			bl, err := dispatch.ReadBacklog(ctx, js, dispatch.DefaultStream, dispatch.DefaultConsumer)
			if err != nil {
				return err
			}
			if bl.Waiting > 0 || bl.InFlight > 0 {
				return fmt.Errorf("%d alerts waiting, %d in flight", bl.Waiting, bl.InFlight)
			}
			// Parked alerts leave the alert stream at once; the flood is
			// dispatched when the parked stream is empty too.
			p, err := dispatch.ReadParked(ctx, js, dispatch.DefaultParkedStream, nil)
			if err == nil && p.Waiting > 0 {
				err = fmt.Errorf("%d alerts parked", p.Waiting)
			}
			return err
		})
		drained := time.Since(last)
		// Where each probe waited: before Temporal opened its incident (the
		// dispatcher's backlog) or after (the worker's queue, the API).
		var took, open []time.Duration
		for i := range probes {
			pod := fmt.Sprintf("probe-%d", i)
			at := labelled.wait(b, pod, 30*time.Minute)
			took = append(took, at.Sub(probeSent[i]))
			var opened time.Time
			testenv.Eventually(b, 5*time.Minute, pod+"'s incident described", func() error {
				// Temporal may still be busy with the flood's incidents.
				d, err := tc.DescribeWorkflowExecution(ctx, playbooks.IncidentID("terminal-shell-in-container", ns+"/"+pod), "")
				opened = d.GetWorkflowExecutionInfo().GetStartTime().AsTime()
				return err
			})
			open = append(open, opened.Sub(probeSent[i]))
		}
		b.Logf("probes opened after %v (publish to workflow start), quarantined after %v (publish to label), in publish order", open, took)
		slices.Sort(took)
		slices.Sort(open)
		opened := started() - startedBefore
		rateOpened := opened / (last.Sub(begin) + drained).Seconds()
		b.Logf("%d phantom alerts in %s; drained %s after the last; %.0f incidents opened (%.0f/s until drained); probes quarantined after %v",
			total, last.Sub(begin).Round(time.Millisecond), drained.Round(time.Millisecond), opened, rateOpened, took)
		b.ReportMetric(drained.Seconds(), "drain-s")
		b.ReportMetric(rateOpened, "incidents/s")
		b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "probe-p50-ms")
		b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "probe-max-ms")
		b.ReportMetric(float64(open[len(open)-1].Milliseconds()), "probe-open-max-ms")
		for _, o := range []string{"parked", "deferred"} {
			b.ReportMetric(testutil.ToFloat64(s.metrics.UnknownPodAlerts.WithLabelValues(o)), o)
		}
		b.Logf("phantom alerts admitted to their lane at once %.0f, after waiting %.0f; deferred %.0f, overdue %.0f",
			testutil.ToFloat64(s.metrics.UnknownPodAlerts.WithLabelValues("admitted")), testutil.ToFloat64(s.metrics.UnknownPodAlerts.WithLabelValues("waited")),
			testutil.ToFloat64(s.metrics.UnknownPodAlerts.WithLabelValues("deferred")), testutil.ToFloat64(s.metrics.UnknownPodAlerts.WithLabelValues("overdue")))
	}
}
