package slack

import (
	"sync"
	"time"
)

// ttlCache is a map whose entries expire ttl after they were put. Expired
// entries are dropped when a put finds the map full, so it stays bounded by
// what was looked up within one ttl, plus max.
type ttlCache[V any] struct {
	mu      sync.Mutex
	ttl     time.Duration
	now     func() time.Time
	max     int
	entries map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

// cacheMax bounds each cache; a workspace's approvers and groups are far
// fewer.
const cacheMax = 10000

func newTTLCache[V any](ttl time.Duration, now func() time.Time) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, now: now, max: cacheMax, entries: map[string]ttlEntry[V]{}}
}

// get returns the unexpired value for k.
func (c *ttlCache[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put stores v for k for one ttl.
func (c *ttlCache[V]) put(k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.entries) >= c.max {
		for key, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, key)
			}
		}
	}
	if len(c.entries) >= c.max {
		// Still full of live entries: start over rather than grow.
		clear(c.entries)
	}
	c.entries[k] = ttlEntry[V]{v: v, expires: now.Add(c.ttl)}
}
