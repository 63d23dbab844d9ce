package dispatch

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/alert"
)

func TestDeferDelayGrowsSpreadAndCaps(t *testing.T) {
	for _, tc := range []struct {
		delivery uint64
		upTo     time.Duration
	}{{0, 2 * time.Second}, {1, 2 * time.Second}, {2, 4 * time.Second}, {3, 8 * time.Second}, {4, 16 * time.Second}, {5, 30 * time.Second}, {6, 30 * time.Second}, {1000, 30 * time.Second}} {
		lo, hi := time.Hour, time.Duration(0)
		for range 200 {
			d := deferDelay(tc.delivery)
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo < tc.upTo/2 || hi >= tc.upTo || hi-lo < tc.upTo/8 {
			t.Errorf("delivery %d: delays from %v to %v, want spread over [%v, %v)", tc.delivery, lo, hi, tc.upTo/2, tc.upTo)
		}
	}
}

func TestDeferralsStopShortOfTheDeadLetters(t *testing.T) {
	for _, tc := range []struct{ maxDeliveries, want int }{{1000, 20}, {30, 15}, {3, 1}, {1, 0}} {
		d := New(nil, nil, nil, nil, zerolog.Nop(), Config{MaxDeliveries: tc.maxDeliveries})
		if got := d.maxDeferrals(); got != tc.want {
			t.Errorf("--max-deliveries %d: deferred up to %d deliveries, want %d", tc.maxDeliveries, got, tc.want)
		}
	}
}

func TestWaitRoomBoundsCountAndBytes(t *testing.T) {
	w := waitRoom{maxN: 2}
	for i, want := range []bool{true, true, false} {
		if got := w.enter(10); got != want {
			t.Fatalf("alert %d entered %v, want room for exactly two", i+1, got)
		}
	}
	w.leave(10)
	if w.enter(maxUnknownWaitingBytes) {
		t.Error("an alert that would pass the byte bound entered")
	}
	if !w.enter(maxUnknownWaitingBytes - 10) {
		t.Error("an alert within the byte bound was refused")
	}
}

type pods map[string]bool

func (p pods) Exists(ns, name string) (bool, bool) {
	if p == nil {
		return false, false
	}
	return p[ns+"/"+name], true
}

func TestOnlyAlertsForPodsTheClusterLacksAreTriaged(t *testing.T) {
	d := New(nil, nil, nil, nil, zerolog.Nop(), Config{Pods: map[string]PodIndex{"": pods{"web/real": true}, "eu": pods(nil)}})
	k := func(cluster, ns, pod string) alert.Alert {
		a := alert.Alert{Cluster: cluster}
		a.Kubernetes.Namespace, a.Kubernetes.Pod = ns, pod
		return a
	}
	for _, tc := range []struct {
		name string
		a    alert.Alert
		want bool
	}{
		{"a pod that exists", k("", "web", "real"), false},
		{"a pod that does not", k("", "web", "ghost"), true},
		{"no pod named", k("", "web", ""), false},
		{"a cluster without an index", k("us", "web", "ghost"), false},
		{"an index that cannot tell yet", k("eu", "web", "ghost"), false},
	} {
		if got := d.unknownPod(tc.a); got != tc.want {
			t.Errorf("%s: triaged %v, want %v", tc.name, got, tc.want)
		}
	}
}
