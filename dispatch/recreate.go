package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamSettle is how long a deleted stream of soar's stays gone before a
// dispatcher creates it again. nats-server takes a deleted stream out of
// the account first (it then reads as not found, and its consumers' pulls
// end) and closes and moves away its files after; a stream of the same
// name created in between opens the deleted one's files, reports its
// messages, and then loses them to the deletion: it stores nothing more,
// and every publication to it goes unanswered. Seen in the dispatch tests
// under load (nats-server 2.15): 30 s of publish timeouts. The files move
// away within milliseconds of the deletion even on a loaded server; two
// seconds leave room.
const streamSettle = 2 * time.Second

// errNotSettled: a stream of soar's was found deleted less than
// streamSettle ago, and is created again once it has settled.
var errNotSettled = errors.New("deleted moments ago: created again once the server has finished deleting it (2 s)")

// errOpenedDeleted: a stream created again opened the files of the one
// deleted before it (streamSettle), and was deleted to be created afresh.
var errOpenedDeleted = errors.New("created again, but on the files of the deleted one (its last message predates its creation), which the deletion takes away; deleted it, to create it afresh")

// goneStreams remembers when each of soar's streams was first found
// deleted, until it is created again.
type goneStreams struct {
	mu    sync.Mutex
	since map[string]time.Time
}

// settled reports whether stream, found deleted at now, has been gone for
// streamSettle, remembering when it was first found gone.
func (g *goneStreams) settled(stream string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.since == nil {
		g.since = map[string]time.Time{}
	}
	first, ok := g.since[stream]
	if !ok {
		g.since[stream] = now
		return false
	}
	return now.Sub(first) >= streamSettle
}

// forget drops what settled remembers of stream, or, with again, makes
// it wait streamSettle from now.
func (g *goneStreams) forget(stream string, again bool, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if again {
		if g.since == nil {
			g.since = map[string]time.Time{}
		}
		g.since[stream] = now
		return
	}
	delete(g.since, stream)
}

// present forgets that stream was found gone: it is there again, created
// by somebody else (another dispatcher, an operator). A later deletion
// then waits streamSettle from when it is found, not from this one.
func (g *goneStreams) present(stream string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.since, stream)
}

// openedDeleted reports whether si is a stream that opened the files of a
// deleted stream of its name (streamSettle): every message a stream holds
// or held was stored after its creation, and its last one says when.
func openedDeleted(si *jetstream.StreamInfo) bool {
	return si.State.LastSeq > 0 && si.State.LastTime.Before(si.Created)
}

// createDeleted creates again the stream of soar's named stream, found
// deleted, with ensure, once it has been gone for streamSettle (before
// then it fails with errNotSettled). ensure (ensureStream) fails with
// errOpenedDeleted when the new stream opened the deleted one's files
// anyway; it is then given streamSettle again.
func (d *Dispatcher) createDeleted(ctx context.Context, stream string, ensure func(context.Context) error) error {
	if !d.gone.settled(stream, time.Now()) {
		return fmt.Errorf("dispatch: stream %s %w", stream, errNotSettled)
	}
	if err := ensure(ctx); err != nil {
		if errors.Is(err, errOpenedDeleted) {
			d.gone.forget(stream, true, time.Now())
		}
		return err
	}
	d.gone.forget(stream, false, time.Now())
	d.metrics.StreamLimitsRestored.WithLabelValues(stream).Inc()
	d.log.Error().Str("stream", stream).Msg("a stream of soar's was deleted; created it again")
	return nil
}
