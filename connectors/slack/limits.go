package slack

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// maxLimits bounds the users tracked at once; past it the idle ones (their
// bucket full again) are forgotten, which forgives nobody anything.
const maxLimits = 10000

// limits is a token bucket per key, on the caller's clock.
type limits struct {
	mu     sync.Mutex
	every  rate.Limit
	burst  int
	bucket map[string]*rate.Limiter
}

func newLimits(perSecond float64, burst int) *limits {
	return &limits{every: rate.Limit(perSecond), burst: burst, bucket: map[string]*rate.Limiter{}}
}

// allow takes a token from key's bucket at now, and says whether there was one.
func (l *limits) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.bucket[key]
	if !ok {
		if len(l.bucket) >= maxLimits {
			for k, old := range l.bucket {
				if old.TokensAt(now) >= float64(l.burst) {
					delete(l.bucket, k)
				}
			}
		}
		b = rate.NewLimiter(l.every, l.burst)
		l.bucket[key] = b
	}
	return b.AllowN(now, 1)
}

// logPace paces log lines per reason, from a fixed set of reasons (never
// text an attacker chose, which would make the set unbounded).
type logPace struct {
	mu     sync.Mutex
	every  rate.Limit
	burst  int
	reason map[string]*paced
}

type paced struct {
	lim        *rate.Limiter
	suppressed int64
}

func newLogPace(perSecond float64, burst int) *logPace {
	return &logPace{every: rate.Limit(perSecond), burst: burst, reason: map[string]*paced{}}
}

// allow says whether a line for reason may be written now. When it may, fn
// adds how many lines for reason were skipped since the last one.
func (p *logPace) allow(reason string) (fn func(*zerolog.Event), ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.reason[reason]
	if r == nil {
		r = &paced{lim: rate.NewLimiter(p.every, p.burst)}
		p.reason[reason] = r
	}
	if !r.lim.Allow() {
		r.suppressed++
		return nil, false
	}
	n := r.suppressed
	r.suppressed = 0
	return func(e *zerolog.Event) {
		if n > 0 {
			e.Int64("suppressed", n)
		}
	}, true
}
