package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/testenv"
)

// BenchmarkLockAdmission measures what the quarantine lock and the
// deployment-control policies add to ordinary requests: a pod update (a
// label change, as controllers and people make) and a pod create, both
// server-side dry runs of an ordinary pod, with no policy installed, then
// with the policies and 0, 100 and 1,000 locked pods and as many blocked
// images on the lists. It reports p50 and p99 per request. Run it on its own
// (-run '^$'): the policies stay installed once a test has applied them, and
// "none" is then not measured.
func BenchmarkLockAdmission(b *testing.B) {
	ctx := context.Background()
	const ns = "lock-bench"
	plain := testenv.Pod(b, kubeCS, ns, "plain")
	probe := testenv.Pod(b, kubeCS, ns, "probe", func(p *corev1.Pod) { p.Labels[kube.LockedLabel] = "true" })

	measure := func(b *testing.B) {
		update := make([]time.Duration, 0, b.N)
		create := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			body := fmt.Appendf(nil, `{"metadata":{"labels":{"bench":"v%d"}}}`, i)
			start := time.Now()
			if _, err := kubeCS.CoreV1().Pods(ns).Patch(ctx, plain.Name, types.MergePatchType, body, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				b.Fatal(err)
			}
			update = append(update, time.Since(start))
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: ns}, Spec: podSpec("ghcr.io/acme/shop:2.0")}
			start = time.Now()
			if _, err := kubeCS.CoreV1().Pods(ns).Create(ctx, pod, dryCreate); err != nil {
				b.Fatal(err)
			}
			create = append(create, time.Since(start))
		}
		b.StopTimer()
		for name, d := range map[string][]time.Duration{"update": update, "create": create} {
			slices.Sort(d)
			b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-p50-ms")
			b.ReportMetric(float64(d[(len(d)-1)*99/100].Microseconds())/1000, name+"-p99-ms")
		}
	}

	if lockErr == nil && !lockInstalled() {
		b.Run("policies=none", measure)
	}
	applyDeploymentControl(b)
	for _, n := range []int{0, 100, 1000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			run := fmt.Sprintf("bench-%d-%d", n, time.Now().UnixNano())
			locks := map[string]string{"pod_" + ns + "_probe": "probe", "incident_probe": run}
			var images, incidents []string
			for i := range n {
				h := fmt.Sprintf("%016x", i)
				locks[fmt.Sprintf("pod_%s_locked-%d", ns, i)] = h
				locks["incident_"+h] = fmt.Sprintf("soar-bench-incident-%d", i)
				images = append(images, fmt.Sprintf("registry.example/team-%d/app@sha256:%064x %s", i, i, h))
				incidents = append(incidents, fmt.Sprintf("%s soar-bench-incident-%d", h, i))
			}
			controls := map[string]string{}
			if n > 0 {
				controls = map[string]string{"images": strings.Join(images, "\n"), "incidents": strings.Join(incidents, "\n")}
			}
			glass := breakGlass().CoreV1().ConfigMaps("soar")
			set := func(name string, data map[string]string) {
				cm, err := glass.Get(ctx, name, metav1.GetOptions{})
				if err == nil {
					cm.Data = data
					_, err = glass.Update(ctx, cm, metav1.UpdateOptions{})
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			set("soar-locks", locks)
			set("soar-deploy-control", controls)
			defer func() {
				set("soar-locks", nil)
				set("soar-deploy-control", nil)
			}()
			// The API server reads the list through an informer: wait until
			// it refuses the probe pod's change naming this run.
			testenv.Eventually(b, 30*time.Second, "the list in force", func() error {
				_, err := kubeCS.CoreV1().Pods(ns).Patch(ctx, probe.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
				if err == nil || !strings.Contains(err.Error(), run) {
					return fmt.Errorf("probe: %w", err)
				}
				return nil
			})
			measure(b)
		})
	}
}
