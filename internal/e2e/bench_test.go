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
	"github.com/soar-dev/soar/internal/dispatch"
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
