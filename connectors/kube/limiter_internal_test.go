package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

func TestWithLimiterLimitsAsClientGoWouldAndLeavesTheConfigAlone(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1", QPS: 100, Burst: 200}
	out, l := withLimiter(cfg)
	if cfg.RateLimiter != nil {
		t.Fatal("the caller's configuration was changed")
	}
	if out.RateLimiter != l || l.QPS() != 100 || l.burst != 200 {
		t.Fatalf("limiter %+v on %v", l, out.RateLimiter)
	}
	for i := range 149 {
		if !l.TryAccept() {
			t.Fatalf("request %d refused within the burst", i+1)
		}
	}
	if l.pressed() {
		t.Fatal("pressed with 51 of 200 left")
	}
	l.TryAccept()
	l.TryAccept()
	if !l.pressed() {
		t.Fatal("not pressed with 49 of 200 left")
	}

	// client-go's defaults when QPS and Burst are unset.
	if _, l := withLimiter(&rest.Config{}); l.QPS() != rest.DefaultQPS || l.burst != rest.DefaultBurst {
		t.Fatalf("defaults %v/%d", l.QPS(), l.burst)
	}
	// A limiter of the caller's own, or none at all, is kept.
	own := flowcontrol.NewFakeAlwaysRateLimiter()
	if out, l := withLimiter(&rest.Config{RateLimiter: own}); out.RateLimiter != own || l != nil {
		t.Fatal("the caller's limiter was replaced")
	}
	if _, l := withLimiter(&rest.Config{QPS: -1}); l != nil {
		t.Fatal("a client without a limit got one")
	}
	if (&Client{}).pressed() {
		t.Fatal("a client without a limiter is pressed")
	}
}

// A request of low priority that waited first still goes after the normal
// ones that came while it waited, and none of them waits for it.
func TestLowPriorityRequestsYieldToTheOthers(t *testing.T) {
	l := newLimiter(10, 1) // a token every 100 ms
	if !l.TryAccept() {
		t.Fatal("the first token was refused")
	}
	var mu sync.Mutex
	var order []string
	done := func(who string) {
		mu.Lock()
		order = append(order, who)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := l.Wait(WithLowPriority(context.Background())); err != nil {
			t.Error(err)
		}
		done("evidence")
	})
	time.Sleep(20 * time.Millisecond)
	for i := range 3 {
		wg.Go(func() {
			if err := l.Wait(context.Background()); err != nil {
				t.Error(err)
			}
			done(fmt.Sprint("contain-", i))
		})
	}
	wg.Wait()
	if len(order) != 4 || order[3] != "evidence" {
		t.Fatalf("order %v: want the evidence request last", order)
	}

	// A low request gives up when its context ends.
	ctx, cancel := context.WithTimeout(WithLowPriority(context.Background()), 50*time.Millisecond)
	defer cancel()
	l.waiting.Add(1) // a normal request that never gets its token
	defer l.waiting.Add(-1)
	if err := l.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
}

// A flood of normal requests that never ends holds a low-priority request
// back for lowMaxWait, not for the whole flood: then it queues with the
// others. Without the bound it would wait for the flood to end.
func TestLowPriorityRequestsAreNotStarvedByAFlood(t *testing.T) {
	lowDone := func(maxWait time.Duration) (took time.Duration, beforeTheEnd bool) {
		l := newLimiter(20, 1) // a token every 50 ms
		l.lowMaxWait = maxWait
		const flood = 3 * time.Second
		end := time.Now().Add(flood)
		var wg sync.WaitGroup
		for range 4 { // four requests always waiting: more than the limit serves
			wg.Go(func() {
				for time.Now().Before(end) {
					if err := l.Wait(context.Background()); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		if err := l.Wait(WithLowPriority(context.Background())); err != nil {
			t.Error(err)
		}
		took = time.Since(start)
		beforeTheEnd = time.Now().Before(end)
		wg.Wait()
		return took, beforeTheEnd
	}
	took, before := lowDone(300 * time.Millisecond)
	if !before || took < 300*time.Millisecond {
		t.Errorf("with a bound of 300 ms the evidence request took %v (before the flood ended: %v): want at least the bound, and before the end", took, before)
	}
	took, before = lowDone(time.Hour)
	if before {
		t.Errorf("without a bound the evidence request went after %v, before the flood ended: the flood did not hold it back, so the check above proves nothing", took)
	}
}

// Low-priority requests leave the reserve to the others: however many of
// them there are, they do not make the limiter pressed, so a quarantine
// after a batch of evidence reads still creates its policy while it reads
// the pod. Once they have yielded for lowMaxWait they take the reserve too.
func TestLowPriorityRequestsLeaveTheReserve(t *testing.T) {
	l := newLimiter(1, 20) // a token a second: the test sees no refill to speak of
	l.lowMaxWait = 300 * time.Millisecond
	ctx := WithLowPriority(context.Background())
	took := 0
	for range 20 {
		wait, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := l.Wait(wait)
		cancel()
		if err != nil {
			break
		}
		took++
	}
	if took != 15 { // the 16th waits: it would take from the reserve
		t.Errorf("low-priority requests took %d tokens at once, want 15 (a burst of 20 less its reserve of 5)", took)
	}
	if l.pressed() {
		t.Errorf("low-priority requests left %.1f tokens: the limiter is short", l.lim.Tokens())
	}
	if !l.TryAccept() {
		t.Error("a normal request found no token in the reserve")
	}

	// Past lowMaxWait a low request queues with the others and may take
	// the reserve: it is delayed, not starved.
	start := time.Now()
	if err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("a low request at the reserve took %v, want about lowMaxWait (300 ms)", d)
	}
	if !l.pressed() {
		// 20 - 15 - 1 - 1 (+ refill under a token) leaves about 3 of 20.
		t.Errorf("%.1f tokens left after the low request took from the reserve: want pressed", l.lim.Tokens())
	}
}

func TestReserve(t *testing.T) {
	for burst, want := range map[int]float64{1: 0, 3: 0, 4: 1, 6: 1.5, 200: 50} {
		if got := newLimiter(10, burst).reserve(); got != want {
			t.Errorf("burst %d: reserve %v, want %v", burst, got, want)
		}
	}
}
