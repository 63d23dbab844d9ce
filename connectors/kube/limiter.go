package kube

import (
	"context"

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
type limiter struct {
	lim   *rate.Limiter
	qps   float32
	burst int
}

var _ flowcontrol.RateLimiter = (*limiter)(nil)

func newLimiter(qps float32, burst int) *limiter {
	return &limiter{lim: rate.NewLimiter(rate.Limit(qps), burst), qps: qps, burst: burst}
}

func (l *limiter) TryAccept() bool                { return l.lim.Allow() }
func (l *limiter) Accept()                        { _ = l.lim.Wait(context.Background()) }
func (l *limiter) Wait(ctx context.Context) error { return l.lim.Wait(ctx) }
func (l *limiter) Stop()                          {}
func (l *limiter) QPS() float32                   { return l.qps }

// pressed says that less than a quarter of the burst is left: requests
// are about to wait, or already do.
func (l *limiter) pressed() bool {
	return l.lim.Tokens() < float64(l.burst)/4
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
