package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
)

// BenchmarkPhantomFlood measures a flood that coalescing cannot absorb:
// every alert names a different pod that does not exist, as someone who can
// publish to the alert subjects (or a detector reporting on names an
// attacker chooses) could send. Each alert opens an incident of its own
// whose quarantine finds no pod. It publishes SOAR_PHANTOM_RATE alerts a
// second (500) for SOAR_PHANTOM_SECONDS (10), with 5 alerts for real new
// pods (the probes) at even intervals, and reports how long the backlog
// took to drain after the last publish, incidents opened per second, and
// the probes' publish-to-quarantined latency. Run it with -benchtime 1x.
func BenchmarkPhantomFlood(b *testing.B) {
	rate, secs := envInt("SOAR_PHANTOM_RATE", 500), envInt("SOAR_PHANTOM_SECONDS", 10)
	ctx := context.Background()
	_, _, js := testenv.NATS(b)
	tc := temporalClient(b)
	s := startSoar(b, js, tc, libraryDir, dispatch.Config{})
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
			return nil
		})
		drained := time.Since(last)
		var took []time.Duration
		for i := range probes {
			at := labelled.wait(b, fmt.Sprintf("probe-%d", i), 30*time.Minute)
			took = append(took, at.Sub(probeSent[i]))
		}
		slices.Sort(took)
		opened := started() - startedBefore
		rateOpened := opened / (last.Sub(begin) + drained).Seconds()
		b.Logf("%d phantom alerts in %s; drained %s after the last; %.0f incidents opened (%.0f/s until drained); probes quarantined after %v",
			total, last.Sub(begin).Round(time.Millisecond), drained.Round(time.Millisecond), opened, rateOpened, took)
		b.ReportMetric(drained.Seconds(), "drain-s")
		b.ReportMetric(rateOpened, "incidents/s")
		b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "probe-p50-ms")
		b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "probe-max-ms")
	}
}
