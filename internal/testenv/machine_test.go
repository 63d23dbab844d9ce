package testenv

import (
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"slices"
	"testing"
	"time"
)

// BenchmarkMachineAfterIdle measures the machine, not soar: one fixed piece
// of work (a walk through 8 MiB of memory and a little of the standard
// library's code: JSON, a regular expression) right after the same work,
// and again after the process slept for a second. The ratio is what idleness
// costs any program on this machine, before soar's own part: read it beside
// BenchmarkAlertToQuarantineAfterIdle (test/e2e). On a shared virtual
// machine other tenants evict the caches while a process sleeps; a machine
// with cores of its own should show a ratio near one.
func BenchmarkMachineAfterIdle(b *testing.B) {
	const n = 2 << 20 // 8 MiB of int32
	next := make([]int32, n)
	perm := rand.New(rand.NewPCG(1, 2)).Perm(n)
	for i := range n {
		next[perm[i]] = int32(perm[(i+1)%n])
	}
	alert := []byte(`{"rule":"Terminal shell in container","priority":"Notice","output":"A shell was spawned in a container","output_fields":{"k8s.ns.name":"payments","k8s.pod.name":"api-7d4b9c-x2x1q","proc.cmdline":"bash -il","user.name":"root"}}`)
	var sink int32
	work := func() time.Duration {
		start := time.Now()
		j := int32(0)
		for range 20000 {
			j = next[j]
		}
		sink += j
		var v map[string]any
		if err := json.Unmarshal(alert, &v); err != nil {
			b.Fatal(err)
		}
		out, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		regexp.MustCompile(`"k8s\.pod\.name":"([a-z0-9-]+)"`).Find(out)
		return time.Since(start)
	}
	hot := make([]time.Duration, 0, b.N)
	idle := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		work()
		work()
		hot = append(hot, work())
		time.Sleep(time.Second)
		idle = append(idle, work())
	}
	b.StopTimer()
	median := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds())
	}
	b.ReportMetric(median(hot), "hot-us")
	b.ReportMetric(median(idle), "idle-us")
	b.ReportMetric(median(idle)/median(hot), "ratio")
	_ = sink
}
