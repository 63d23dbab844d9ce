package console

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultDownloadsPerMinute is how many evidence downloads one person may
// start a minute, and at once, unless Config.DownloadsPerMinute says
// otherwise.
const DefaultDownloadsPerMinute = 60

// downloadLimits gives each person a token bucket of downloads: perMinute
// a minute on average, as many at once. Every download, served or not,
// costs the console a read of the incident from Temporal and of the whole
// bundle (to check its digests), and costs the store a record when it is
// served, so a person (or a stolen session) who asks in a loop is slowed
// down instead of filling the evidence store with records and keeping
// Temporal busy. People are limited apart: one person's loop does not stop
// another's downloads.
type downloadLimits struct {
	perMinute int
	mu        sync.Mutex
	people    map[string]*bucket
	swept     time.Time
}

type bucket struct {
	lim *rate.Limiter
	// warned is when a refusal of this person's was last logged.
	warned time.Time
}

func newDownloadLimits(perMinute int) *downloadLimits {
	return &downloadLimits{perMinute: perMinute, people: map[string]*bucket{}}
}

// sweepEvery is how often the buckets that filled up again are forgotten:
// a full bucket is what a new one would be, so forgetting it changes
// nothing, and the map holds only people who downloaded in the last minute
// or so.
const sweepEvery = time.Minute

// allow takes one download from user's bucket at now. When the bucket is
// empty it says how long until the next download, and whether to log the
// refusal: once a minute per person, so that a loop does not flood the log.
func (l *downloadLimits) allow(user string, now time.Time) (ok bool, wait time.Duration, warn bool) {
	if l == nil || l.perMinute <= 0 {
		return true, 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) >= sweepEvery {
		for p, b := range l.people {
			if b.lim.TokensAt(now) >= float64(l.perMinute) && now.Sub(b.warned) >= time.Minute {
				delete(l.people, p)
			}
		}
		l.swept = now
	}
	b := l.people[user]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(float64(l.perMinute)/60), l.perMinute)}
		l.people[user] = b
	}
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		warn = now.Sub(b.warned) >= time.Minute
		if warn {
			b.warned = now
		}
		return false, d, warn
	}
	return true, 0, false
}
