package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.temporal.io/api/serviceerror"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// How alerts travel to Temporal.
//
// An alert that may open an incident travels alone and at once (the fast
// lane): its message is the only one in its SignalWithStart, and nothing
// waits for it but Temporal. Alerts of incidents this dispatcher knows to be
// open are coalesced instead: those that arrive within CoalesceWindow of the
// first travel together as one signal that carries how many messages it
// stands for, the first and latest alert and the messages' stream sequences,
// without the playbook spec. An incident that keeps receiving alerts gets at
// most one signal per CoalesceInterval: under a storm the batches grow
// instead of the calls to Temporal. Their messages are acknowledged only once that
// signal was accepted; the incident counts each sequence once, so neither a
// redelivery nor a second dispatcher can count an alert twice.
//
// Messages delivered a third time or more, alerts too large to share a
// signal, and messages matching an incident this dispatcher does not know,
// all travel alone, where every error has the message at hand to be retried
// or dead-lettered.

// Coalescing defaults.
const (
	DefaultCoalesceWindow    = 100 * time.Millisecond
	DefaultCoalesceInterval  = time.Second
	DefaultCoalesceMaxRate   = 10.0
	DefaultCoalesceMaxAlerts = 1000
	DefaultCoalesceMaxBytes  = 256 << 10
	// maxKnownIncidents bounds the incidents a dispatcher remembers as open.
	// Forgetting one costs one alert travelling alone, nothing else.
	maxKnownIncidents = 1 << 16
)

// incident is what the dispatcher knows of one open incident.
type incident struct {
	// ready is closed when the alert that opened (or first reached) the
	// incident was answered; open then says whether Temporal accepted it.
	ready chan struct{}
	open  bool
	// lastSent is when a batch was last sent to it, lastSeen when an alert
	// for it last arrived, both in Unix nanoseconds.
	lastSent, lastSeen atomic.Int64
}

// knownFor is how long an incident stays known without alerts. An incident
// closes only after its quiet window (an hour by default) or on request;
// after a minute without alerts the next alert travels alone again, so that
// an incident closed meanwhile reopens at once, not after a batch's delay.
const knownFor = time.Minute

// inflight is one coalesced message: how to acknowledge it, and how many of
// its signals are unanswered. It holds none of the alert's bytes.
type inflight struct {
	life      *streamLife
	reply     string
	seq       uint64
	delivered uint64
	published time.Time
	remaining atomic.Int32
	failed    atomic.Pointer[error]
}

// batch is the coalesced alerts of one incident waiting to travel.
type batch struct {
	wid      string
	match    playbooks.Match
	known    *incident
	first    alert.Alert
	latest   alert.Alert
	msgs     []*inflight
	timer    *time.Timer
	flushing bool
}

// coalescer holds the open batches and the incidents known to be open.
type coalescer struct {
	mu        sync.Mutex
	batches   map[string]*batch
	incidents map[string]*incident
	// batchesLeft counts the batches not yet sent; slots bounds the sends
	// at once.
	batchesLeft sync.WaitGroup
	slots       chan struct{}
}

func newCoalescer(concurrency int) *coalescer {
	return &coalescer{
		batches:   map[string]*batch{},
		incidents: map[string]*incident{},
		slots:     make(chan struct{}, concurrency),
	}
}

// rememberLocked records wid as open (or about to open), forgetting others
// when too many are known.
func (c *coalescer) rememberLocked(wid string, inc *incident) {
	if len(c.incidents) >= maxKnownIncidents {
		for k := range c.incidents {
			delete(c.incidents, k)
			if len(c.incidents) < maxKnownIncidents*9/10 {
				break
			}
		}
	}
	c.incidents[wid] = inc
}

// forget drops wid unless it now names another entry.
func (c *coalescer) forget(wid string, inc *incident) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.incidents[wid] == inc {
		delete(c.incidents, wid)
	}
}

// claim reports whether this dispatcher knows all of matches' incidents
// (with an alert in the last knownFor), and claims the others: it records
// them as opening, so that alerts that follow wait for the opening alert
// instead of racing it. It returns the claims to settle once the opening
// alert was answered.
func (c *coalescer) claim(matches []playbooks.Match) (allKnown bool, claims map[string]*incident) {
	c.mu.Lock()
	defer c.mu.Unlock()
	allKnown = true
	now := time.Now().UnixNano()
	for _, m := range matches {
		wid := m.IncidentID()
		if inc, ok := c.incidents[wid]; ok && now-inc.lastSeen.Load() < int64(knownFor) {
			inc.lastSeen.Store(now)
			continue
		}
		allKnown = false
		if claims == nil {
			claims = map[string]*incident{}
		}
		inc := &incident{ready: make(chan struct{})}
		inc.lastSeen.Store(now)
		c.rememberLocked(wid, inc)
		claims[wid] = inc
	}
	return allKnown, claims
}

// settle publishes the outcome of the alert that travelled alone for the
// claimed incidents.
func (c *coalescer) settle(claims map[string]*incident, accepted map[string]bool) {
	for wid, inc := range claims {
		inc.open = accepted[wid]
		close(inc.ready)
		if !inc.open {
			c.forget(wid, inc)
		}
	}
}

// coalescible reports whether a, of a message of raw size n, may share a
// signal: the batch's first and latest alert must both fit in maxBytes.
// Small messages are let through on their size alone (an alert encodes to
// at most a dozen times the bytes it was decoded from: JSON escapes are six
// bytes, and the pod and namespace appear twice); larger ones are encoded
// to find out.
func coalescible(a alert.Alert, n, maxBytes int) bool {
	half := maxBytes / 2
	if n*12 <= half {
		return true
	}
	b, err := json.Marshal(a)
	return err == nil && len(b) <= half
}

// enqueue adds one coalesced message to the batches of its matches.
func (d *Dispatcher) enqueue(ctx context.Context, matches []playbooks.Match, a alert.Alert, f *inflight) {
	f.remaining.Store(int32(len(matches)))
	c := d.co
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range matches {
		wid := m.IncidentID()
		b := c.batches[wid]
		if b != nil && b.msgs[0].life != f.life {
			// One signal names messages of one life of the stream: the
			// batch of the earlier life goes now (it waited for its
			// window), and the next one takes this message.
			delete(c.batches, wid)
			if b.timer.Stop() {
				go d.flushBatch(ctx, b)
			}
			b = nil
		}
		if b == nil {
			now := time.Now()
			b = &batch{wid: wid, match: m, known: c.incidents[wid], first: a}
			c.batches[wid] = b
			c.batchesLeft.Add(1)
			b.timer = time.AfterFunc(d.batchDelay(b.known, now, len(c.batches)), func() { d.flushBatch(ctx, b) })
		}
		b.latest = a
		b.msgs = append(b.msgs, f)
		if len(b.msgs) >= d.cfg.CoalesceMaxAlerts {
			// Full: later alerts open the next batch. Send it now, unless
			// it is already waiting for its turn.
			delete(c.batches, wid)
			if b.timer.Stop() {
				go d.flushBatch(ctx, b)
			}
		}
	}
}

// batchDelay is how long a new batch for inc waits: the window, or longer
// while the incident's previous batch went out less than an interval ago.
// The interval is CoalesceInterval, stretched so that the open batches
// (busy incidents) together make at most CoalesceMaxSignalRate signals a
// second: every signal costs the incident a workflow task, and a worker
// that is behind on those starves new incidents' first task (the Go SDK
// polls an incident's sticky queue before the shared one while it has a
// backlog).
func (d *Dispatcher) batchDelay(inc *incident, now time.Time, open int) time.Duration {
	delay := d.cfg.CoalesceWindow
	if inc != nil {
		if last := inc.lastSent.Load(); last != 0 {
			interval := max(d.cfg.CoalesceInterval, time.Duration(float64(open)/d.cfg.CoalesceMaxSignalRate*float64(time.Second)))
			delay = max(delay, time.Unix(0, last).Add(interval).Sub(now))
		}
	}
	return delay
}

// flushBatch sends b, unless another flush took it. The batch keeps taking
// alerts until a send slot is free: when Temporal is slow, batches grow
// instead of queueing, so the calls adapt to what Temporal can take.
func (d *Dispatcher) flushBatch(ctx context.Context, b *batch) {
	c := d.co
	c.mu.Lock()
	if b.flushing {
		c.mu.Unlock()
		return
	}
	b.flushing = true
	c.mu.Unlock()
	defer c.batchesLeft.Done()

	// A batch whose incident is still being opened waits for that before
	// it takes a send slot: the opening alert may wait for its lane a long
	// time (triage.go), and batches waiting with slots in hand would hold
	// back every other incident's.
	if b.known != nil {
		select {
		case <-b.known.ready:
		case <-ctx.Done():
		}
	}
	c.slots <- struct{}{}
	defer func() { <-c.slots }()
	c.mu.Lock()
	if c.batches[b.wid] == b {
		delete(c.batches, b.wid)
	}
	c.mu.Unlock()
	err := d.sendBatch(ctx, b)
	d.metrics.CoalescedBatches.Inc()
	d.metrics.CoalescedAlerts.Add(float64(len(b.msgs)))
	log := d.log.With().Str("playbook", b.match.Playbook.Name).Str("incident_id", b.wid).Int("alerts", len(b.msgs)).Logger()
	if err != nil {
		log.Error().Err(err).Msg("coalesced alerts not accepted; they will be redelivered")
	} else {
		d.accepted()
		d.metrics.Signals.WithLabelValues(b.match.Playbook.Name).Add(float64(len(b.msgs)))
		log.Debug().Msg("alerts joined incident")
	}
	for _, f := range b.msgs {
		d.answered(f, err, log)
	}
}

// flushAll sends every open batch now and waits for every flush; used at
// shutdown.
func (d *Dispatcher) flushAll(ctx context.Context) {
	c := d.co
	c.mu.Lock()
	var pending []*batch
	for _, b := range c.batches {
		if b.timer.Stop() {
			pending = append(pending, b)
		}
	}
	c.mu.Unlock()
	for _, b := range pending {
		go d.flushBatch(ctx, b)
	}
	c.batchesLeft.Wait()
}

// answered records one signal's outcome for a coalesced message and, after
// its last, acknowledges the message or leaves it for redelivery.
func (d *Dispatcher) answered(f *inflight, err error, log zerolog.Logger) {
	if err != nil {
		f.failed.CompareAndSwap(nil, &err)
	}
	if f.remaining.Add(-1) > 0 {
		return
	}
	nc := d.js.Conn()
	if perr := f.failed.Load(); perr != nil {
		d.metrics.DispatchErrors.Inc()
		delay := Backoff(f.delivered)
		body := fmt.Appendf(nil, "-NAK {\"delay\": %d}", delay.Nanoseconds())
		if err := nc.Publish(f.reply, body); err != nil {
			log.Warn().Err(err).Uint64("stream_seq", f.seq).Msg("negative-acknowledge alert; it will be redelivered after the ack wait")
		}
		return
	}
	if err := nc.Publish(f.reply, []byte("+ACK")); err != nil {
		// A lost acknowledgement only means a redelivery, which the
		// incident recognises by its sequence.
		log.Warn().Err(err).Uint64("stream_seq", f.seq).Msg("acknowledge alert")
	}
	d.metrics.DispatchLatency.Observe(time.Since(f.published).Seconds())
}

// sendBatch delivers b to its incident: as a plain signal when the incident
// is known to be open, else (or when it closed meanwhile) with
// SignalWithStart, which opens a new one.
func (d *Dispatcher) sendBatch(ctx context.Context, b *batch) error {
	if b.known != nil {
		select {
		case <-b.known.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	seqs := make([]uint64, len(b.msgs))
	for i, f := range b.msgs {
		seqs[i] = f.seq
	}
	sig := workflows.AlertSignal{
		Alert:      b.first,
		Count:      len(b.msgs),
		Deliveries: d.deliveries(b.msgs[0].life, seqs...),
	}
	if len(b.msgs) > 1 {
		latest := b.latest
		sig.Latest = &latest
	}
	rid := batchRequestID(b.wid, seqs)
	if b.known != nil && b.known.open {
		b.known.lastSent.Store(time.Now().UnixNano())
		err := d.signal(ctx, b.wid, sig, rid)
		var nf *serviceerror.NotFound
		if !errors.As(err, &nf) {
			return err
		}
		// The incident closed since: the batch opens the next one.
		d.co.forget(b.wid, b.known)
	}
	started, err := d.signalWithStart(ctx, b.match, sig, rid)
	if err != nil {
		return err
	}
	inc := &incident{ready: make(chan struct{}), open: true}
	inc.lastSent.Store(time.Now().UnixNano())
	inc.lastSeen.Store(time.Now().UnixNano())
	close(inc.ready)
	d.co.mu.Lock()
	d.co.rememberLocked(b.wid, inc)
	d.co.mu.Unlock()
	if started {
		d.metrics.WorkflowsStarted.WithLabelValues(b.match.Playbook.Name).Inc()
		d.log.Info().Str("playbook", b.match.Playbook.Name).Str("incident_id", b.wid).Msg("incident opened")
	}
	return nil
}

// deliveries names the messages seqs of one life of the alert stream,
// with the floor and epoch that let the incident count each once.
func (d *Dispatcher) deliveries(life *streamLife, seqs ...uint64) *workflows.Deliveries {
	return &workflows.Deliveries{
		Stream: d.cfg.Stream,
		Epoch:  life.epoch,
		Floor:  life.floor.Load(),
		Seqs:   workflows.NewSeqList(seqs),
	}
}

// batchRequestID identifies one batch's signal, so that Temporal recognises
// a retried call.
func batchRequestID(wid string, seqs []uint64) string {
	h := sha256.New()
	h.Write([]byte(wid))
	var buf [8]byte
	for _, s := range seqs {
		binary.BigEndian.PutUint64(buf[:], s)
		h.Write(buf[:])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
