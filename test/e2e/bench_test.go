package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
)

// BenchmarkAlertToQuarantine measures the whole path for one alert at a time:
// published to JetStream → decoded, matched, SignalWithStart → workflow →
// activity → deny-all NetworkPolicy ensured and pod labeled in the API server.
// It reports the p50 and p99 latency over b.N alerts, each opening its own
// incident for its own pod. The clock stops when a watch sees the label, which
// the activity sets only after the policy exists.
func BenchmarkAlertToQuarantine(b *testing.B) {
	ctx := context.Background()
	_, _, js := testenv.NATS(b)
	tc := temporalClient(b)
	startSoar(b, js, tc, libraryDir, dispatch.Config{})
	ns := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	testenv.Namespace(b, kubeCS, ns)
	for i := range b.N {
		testenv.Pod(b, kubeCS, ns, fmt.Sprintf("web-%d", i))
	}
	w, err := kubeCS.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: kube.QuarantineLabel + "=" + kube.QuarantineValue})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()

	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		pod := fmt.Sprintf("web-%d", i)
		alert := fmt.Appendf(nil, `{"id":"bench-%s-%d","source":"bench","rule":"Terminal shell in container","severity":"notice","kubernetes":{"namespace":%q,"pod":%q}}`, ns, i, ns, pod)
		start := time.Now()
		if _, err := js.Publish(ctx, "alerts.bench", alert); err != nil {
			b.Fatal(err)
		}
		waitLabeled(b, w, pod)
		latencies = append(latencies, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func waitLabeled(b *testing.B, w watch.Interface, pod string) {
	b.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				b.Fatal("watch closed")
			}
			if p, isPod := ev.Object.(*corev1.Pod); isPod && p.Name == pod && (ev.Type == watch.Added || ev.Type == watch.Modified) {
				return
			}
		case <-timeout:
			b.Fatalf("pod %s not quarantined within 30s", pod)
		}
	}
}

// BenchmarkQuarantineStorm100 is an alert storm: 100 alerts for 100 pods
// published at once, each a new incident. It measures the time from the
// first publish until the last pod is labeled behind its policy. Each
// iteration is one storm in a fresh namespace; run it with -benchtime 3x.
func BenchmarkQuarantineStorm100(b *testing.B) {
	const pods = 100
	ctx := context.Background()
	_, _, js := testenv.NATS(b)
	tc := temporalClient(b)
	startSoar(b, js, tc, libraryDir, dispatch.Config{})
	var total time.Duration
	for n := range b.N {
		b.StopTimer()
		ns := fmt.Sprintf("storm-%d-%d", time.Now().UnixNano(), n)
		testenv.Namespace(b, kubeCS, ns)
		for i := range pods {
			testenv.Pod(b, kubeCS, ns, fmt.Sprintf("web-%d", i))
		}
		w, err := kubeCS.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: kube.QuarantineLabel + "=" + kube.QuarantineValue})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		for i := range pods {
			alert := fmt.Appendf(nil, `{"id":"storm-%s-%d","source":"bench","rule":"Terminal shell in container","severity":"notice","kubernetes":{"namespace":%q,"pod":"web-%d"}}`, ns, i, ns, i)
			if _, err := js.PublishAsync("alerts.bench", alert); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			b.Fatal("the stream did not acknowledge the storm")
		}
		labeled := map[string]bool{}
		timeout := time.After(2 * time.Minute)
		for len(labeled) < pods {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					b.Fatal("watch closed")
				}
				if p, isPod := ev.Object.(*corev1.Pod); isPod {
					labeled[p.Name] = true
				}
			case <-timeout:
				b.Fatalf("%d of %d pods quarantined within 2 minutes", len(labeled), pods)
			}
		}
		total += time.Since(start)
		b.StopTimer()
		w.Stop()
		b.StartTimer()
	}
	perStorm := total / time.Duration(b.N)
	b.ReportMetric(perStorm.Seconds(), "s/100-pods")
	b.ReportMetric(float64(pods)/perStorm.Seconds(), "pods/s")
}
