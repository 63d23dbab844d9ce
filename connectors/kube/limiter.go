package kube

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// limiter is the client-side rate limit of soar's requests to the API
// server (rest.Config's QPS and Burst, as client-go's own token bucket
// would apply them) that can also say how much of its budget is left: a
// quarantine spends requests on speculation (the incident's policy created
// while the pod is read) only while the budget is ample.
//
// Why it matters: a flood of alerts for pods that do not exist opens an
// incident each, and each speculative quarantine costs three requests (the
// read that finds no pod, the policy created alongside, and its deletion)
// instead of one. Measured with BenchmarkPhantomFlood, those requests queued
// in client-go's limiter for minutes, and a real pod's quarantine waited
// behind them.
//
// It also serves requests in two classes: those made with a context from
// WithLowPriority (the evidence snapshot's reads) take a token only while
// no other request waits for one and more than the reserve (a quarter of
// the burst) is left, so collecting the evidence of earlier incidents
// neither holds back the containment of a new one nor spends the budget
// that keeps its quarantine speculative; one that has yielded for
// lowMaxWait queues with the others, so that a flood lasting hours delays
// the evidence but never starves it.
//
// Why the reserve: four of the ten requests an incident makes are its
// evidence. Without it, evidence reads between incidents spent the budget
// down to nothing whenever no quarantine waited, and the next quarantine
// found it short and read the pod before it created the policy, one round
// trip more. In BenchmarkAlertToQuarantine (incidents one after another,
// about ten a second) the p50 rose from 10-11 ms for the first hundred of
// 800 to 13-16 ms for the last; without a client-side limit the time to
// the label stayed flat. A low request that has yielded for lowMaxWait
// takes the reserve too, so a pace above the limit that lasts ends short
// anyway; what the reserve keeps is speculation for the incidents that
// follow a burst.
type limiter struct {
	lim   *rate.Limiter
	qps   float32
	burst int
	// waiting counts the requests of normal priority waiting for a token.
	waiting atomic.Int64
	// lowMaxWait is how long a low-priority request yields.
	lowMaxWait time.Duration
}

// LowPriorityMaxWait is how long a request made with WithLowPriority yields
// to the others before it queues with them. Longer than a storm of new
// incidents takes to contain (BenchmarkQuarantineStorm100: 5 s), far
// shorter than a snapshot's attempt (5 min).
const LowPriorityMaxWait = 10 * time.Second

var _ flowcontrol.RateLimiter = (*limiter)(nil)

func newLimiter(qps float32, burst int) *limiter {
	return &limiter{lim: rate.NewLimiter(rate.Limit(qps), burst), qps: qps, burst: burst, lowMaxWait: LowPriorityMaxWait}
}

func (l *limiter) TryAccept() bool { return l.lim.Allow() }
func (l *limiter) Accept()         { _ = l.Wait(context.Background()) }
func (l *limiter) Stop()           {}
func (l *limiter) QPS() float32    { return l.qps }

// Wait takes a token, in the request's class (WithLowPriority).
func (l *limiter) Wait(ctx context.Context) error {
	if LowPriority(ctx) {
		return l.waitLow(ctx)
	}
	return l.waitNormal(ctx)
}

func (l *limiter) waitNormal(ctx context.Context) error {
	l.waiting.Add(1)
	defer l.waiting.Add(-1)
	return l.lim.Wait(ctx)
}

// waitLow takes a token only when one is there beyond the reserve and no
// request of normal priority waits, for at most lowMaxWait; then it queues
// as a normal request. Normal requests reserve their tokens ahead
// (rate.Limiter runs into debt for them), so a token is there only when
// none is owed; this side looks again every token interval, at least
// every 5 ms.
func (l *limiter) waitLow(ctx context.Context) error {
	every := max(time.Duration(float64(time.Second)/float64(l.qps)), 5*time.Millisecond)
	until := time.Now().Add(l.lowMaxWait)
	for {
		if l.waiting.Load() == 0 && l.lim.Tokens() >= l.reserve()+1 && l.lim.Allow() {
			return nil
		}
		if !time.Now().Before(until) {
			return l.waitNormal(ctx)
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

type lowPriorityKey struct{}

// WithLowPriority marks the requests made with the returned context as
// yielding: the client's rate limit gives them a token only while no other
// request waits, or once they have yielded for LowPriorityMaxWait (a Client
// from NewForConfig). The evidence snapshot uses it.
func WithLowPriority(ctx context.Context) context.Context {
	return context.WithValue(ctx, lowPriorityKey{}, true)
}

// LowPriority says whether ctx came from WithLowPriority.
func LowPriority(ctx context.Context) bool {
	low, _ := ctx.Value(lowPriorityKey{}).(bool)
	return low
}

// pressed says that less than a quarter of the burst is left: requests
// are about to wait, or already do.
func (l *limiter) pressed() bool {
	return l.lim.Tokens() < float64(l.burst)/4
}

// reserve is what low-priority requests leave: a quarter of the burst, so
// that they alone never make the limiter pressed; none below a burst of
// four, where it would keep them from ever taking a token. (The check and
// the take are not one step: two low requests at once may dip a token
// into it.)
func (l *limiter) reserve() float64 {
	if l.burst < 4 {
		return 0
	}
	return float64(l.burst) / 4
}

// withLimiter returns a copy of cfg whose RateLimiter is a limiter for its
// QPS and Burst, or cfg itself when it has a RateLimiter already or no
// client-side limit (QPS below zero turns client-go's off).
func withLimiter(cfg *rest.Config) (*rest.Config, *limiter) {
	if cfg.RateLimiter != nil || cfg.QPS < 0 {
		return cfg, nil
	}
	qps, burst := cfg.QPS, cfg.Burst
	if qps == 0 {
		qps = rest.DefaultQPS
	}
	if burst == 0 {
		burst = rest.DefaultBurst
	}
	l := newLimiter(qps, burst)
	out := rest.CopyConfig(cfg)
	out.RateLimiter = l
	return out, l
}

// pressed says whether the client's request budget is short (see limiter);
// a Client built without one (New) never is.
func (c *Client) pressed() bool {
	return c.limit != nil && c.limit.pressed()
}
