package slack

import (
	"errors"
	"sync"
	"time"
)

// errSeenFull means a seenSet holds its maximum of unexpired entries.
var errSeenFull = errors.New("slack: too many requests to remember")

// seenSet remembers keys until their own expiry time: request signatures for
// replay protection, Socket Mode envelope IDs for deduplication. It is
// bounded; expired keys are dropped on every add.
type seenSet struct {
	mu      sync.Mutex
	max     int
	expires map[string]time.Time
}

func newSeenSet(max int) *seenSet {
	return &seenSet{max: max, expires: map[string]time.Time{}}
}

// add records key until expires. It returns false when key was already
// recorded and has not expired, and errSeenFull, recording nothing, when the
// set is full of unexpired keys: forgetting one would let it be replayed.
func (s *seenSet) add(key string, now, expires time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, exp := range s.expires {
		if !now.Before(exp) {
			delete(s.expires, k)
		}
	}
	if _, ok := s.expires[key]; ok {
		return false, nil
	}
	if len(s.expires) >= s.max {
		return false, errSeenFull
	}
	s.expires[key] = expires
	return true, nil
}
