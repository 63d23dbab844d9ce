package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/internal/proof"
	"github.com/soar-dev/soar/workflows"
)

// Parking: alerts for pods that do not exist, beyond the waiting room.
//
// An alert waiting for the unknown pods' lane (triage.go) is unacknowledged,
// and so is one deferred with NakWithDelay: both count toward the alert
// consumer's MaxAckPending. A flood longer than that, tens of thousands of
// such alerts, would fill it, and JetStream would deliver nothing more, a
// real pod's alert included, until the lane had worked through the flood.
//
// So an alert the waiting room cannot take is parked instead: the
// dispatcher publishes it, unchanged, to the parked stream (Config
// ParkedStream, work-queue retention, durable like the alert stream), waits
// for JetStream to store it, and only then acknowledges the original. The
// alert consumer is free again at once. Dispatchers with a pod index pull
// the parked stream through the same lane, in the order alerts were parked.
//
// Counts stay exact because a parked alert keeps its identity: the stream
// and sequence of the original, in headers that a proof (internal/proof,
// purpose park) binds to the body, so that nobody who can publish to the
// parked subject can make up an alert's identity or cluster. The incidents
// count each (stream, sequence) once however often it arrives, parked or
// not; a redelivered original that is parked again is the same message to
// JetStream (Nats-Msg-Id) and to the incident.
//
// One thing had to change for that: the floor. Incidents skip every
// sequence at or below the floor that comes with a signal, taking it as
// acknowledged and so already counted (workflows.CountedSet). A parked
// original is acknowledged before it is counted, so the floor the
// dispatchers send is held below every parked alert's sequence: each parked
// alert records the floor its dispatcher knew when it parked it (lower than
// its own sequence, which was not acknowledged yet), those floors rise in
// the order alerts are parked, and the floor sent is the lower of the
// consumer's and the one recorded by the oldest alert still parked
// (floorCap, read after the consumer's floor).
//
// If the parked stream refuses an alert (full, unreachable) the alert is
// deferred as before.

// Defaults of the parked stream.
const (
	DefaultParkedStream   = "SOAR_PARKED"
	DefaultParkedSubject  = "soar.parked.alerts"
	DefaultParkedConsumer = "soar-dispatch-parked"
	DefaultParkedMaxBytes = 256 << 20
)

// Headers of a parked alert.
const (
	HeaderOriginalStream = "Soar-Original-Stream"
	HeaderOriginalEpoch  = "Soar-Original-Epoch"
	HeaderOriginalTime   = "Soar-Original-Time"
	HeaderFloor          = "Soar-Floor"
	HeaderProof          = "Soar-Proof"
)

// ReasonForgedParked: a message on the parked subject without a valid
// proof of the dispatcher that parked it.
const ReasonForgedParked alert.Reason = "forged_parked"

// parked is what a parked alert's proof covers: the original's identity
// and when it was published, the floor its dispatcher knew, the body's
// digest.
type parked struct {
	Stream  string `json:"stream"`
	Epoch   string `json:"epoch"`
	Seq     uint64 `json:"seq"`
	Subject string `json:"subject"`
	Time    int64  `json:"time"`
	Floor   uint64 `json:"floor"`
	Body    string `json:"body"`
}

func bodyDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// parkTimeout bounds the publication of one parked alert.
const parkTimeout = 5 * time.Second

// park moves msg to the parked stream and acknowledges it, reporting
// whether it did; when the parked stream refuses it, msg is left as it was.
func (d *Dispatcher) park(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, life *streamLife, log zerolog.Logger) bool {
	p := parked{
		Stream: meta.Stream, Epoch: life.epoch, Seq: meta.Sequence.Stream, Subject: msg.Subject(),
		Time: meta.Timestamp.UnixNano(), Floor: life.floor.Load(), Body: bodyDigest(msg.Data()),
	}
	sig, err := proof.Sign(d.cfg.Keys, proof.Park, d.cfg.ParkedStream, p)
	if err != nil {
		log.Warn().Err(err).Msg("park alert: cannot sign it; deferring it instead")
		return false
	}
	pm := nats.NewMsg(d.cfg.ParkedSubject)
	pm.Data = msg.Data()
	pm.Header.Set(HeaderOriginalStream, p.Stream)
	pm.Header.Set(HeaderOriginalEpoch, p.Epoch)
	pm.Header.Set(HeaderOriginalSeq, strconv.FormatUint(p.Seq, 10))
	pm.Header.Set(HeaderOriginalSubject, p.Subject)
	pm.Header.Set(HeaderOriginalTime, strconv.FormatInt(p.Time, 10))
	pm.Header.Set(HeaderFloor, strconv.FormatUint(p.Floor, 10))
	pm.Header.Set(HeaderProof, sig)
	// An original delivered again after it was parked is parked once.
	pm.Header.Set(nats.MsgIdHdr, "park:"+p.Stream+":"+p.Epoch+":"+strconv.FormatUint(p.Seq, 10))
	pctx, cancel := context.WithTimeout(ctx, parkTimeout)
	defer cancel()
	if _, err := d.js.PublishMsg(pctx, pm); err != nil {
		log.Warn().Err(err).Msg("park alert: the parked stream refused it; deferring it instead")
		return false
	}
	d.parkedHint.Add(1)
	d.ack(msg, log)
	return true
}

// unpark reads a parked alert's identity, refusing one whose proof does not
// hold.
func (d *Dispatcher) unpark(msg jetstream.Msg) (parked, error) {
	return d.unparkHeaders(msg.Headers(), msg.Data())
}

// unparkHeaders is unpark for a message's headers and body.
func (d *Dispatcher) unparkHeaders(h nats.Header, data []byte) (parked, error) {
	seq, err1 := strconv.ParseUint(h.Get(HeaderOriginalSeq), 10, 64)
	at, err2 := strconv.ParseInt(h.Get(HeaderOriginalTime), 10, 64)
	floor, err3 := strconv.ParseUint(h.Get(HeaderFloor), 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return parked{}, fmt.Errorf("dispatch: parked alert without its identity: %w", err)
	}
	p := parked{
		Stream: h.Get(HeaderOriginalStream), Epoch: h.Get(HeaderOriginalEpoch), Seq: seq, Subject: h.Get(HeaderOriginalSubject),
		Time: at, Floor: floor, Body: bodyDigest(data),
	}
	if err := proof.Verify(d.cfg.Keys, proof.Park, d.cfg.ParkedStream, p, h.Get(HeaderProof)); err != nil {
		return parked{}, fmt.Errorf("dispatch: parked alert carries %w", err)
	}
	if p.Stream != d.cfg.Stream {
		return parked{}, fmt.Errorf("dispatch: parked alert of stream %q, not %q", p.Stream, d.cfg.Stream)
	}
	return p, nil
}

// parkedMsg is a parked alert as the original: its subject, for the
// cluster it names and its dead letter.
type parkedMsg struct {
	jetstream.Msg
	subject string
}

func (m parkedMsg) Subject() string { return m.subject }

// handleParked dispatches one parked alert, alone, as the original would
// have been (it holds a token of the lane), then acknowledges it.
func (d *Dispatcher) handleParked(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		d.log.Error().Err(err).Msg("parked message without JetStream metadata ignored")
		return
	}
	if d.stripped(ctx, msg, meta) {
		return
	}
	log := d.log.With().Str("stream", meta.Stream).Uint64("stream_seq", meta.Sequence.Stream).Logger()
	p, err := d.unpark(msg)
	if err != nil {
		d.deadLetterWithReason(ctx, msg, meta, ReasonForgedParked, err, log)
		return
	}
	orig := *meta
	orig.Stream, orig.Sequence.Stream, orig.Timestamp = p.Stream, p.Seq, time.Unix(0, p.Time)
	om := parkedMsg{Msg: msg, subject: p.Subject}
	log = d.log.With().Str("subject", p.Subject).Uint64("stream_seq", p.Seq).Bool("parked", true).Logger()
	if meta.NumDelivered > uint64(d.cfg.MaxDeliveries) {
		d.deadLetterWithReason(ctx, om, &orig, ReasonMaxDeliveries,
			fmt.Errorf("dispatch: parked alert delivered %d times without being dispatched (--max-deliveries %d)", meta.NumDelivered, d.cfg.MaxDeliveries), log)
		return
	}
	a, matches, ok := d.decodeAndMatch(ctx, om, &orig, log)
	if !ok {
		return
	}
	_, claims := d.co.claim(matches)
	dl := d.deliveries(d.currentLife(), p.Seq)
	if p.Epoch != dl.Epoch {
		// Parked before the alert stream was created again: its sequence
		// means nothing next to today's floor.
		dl = &workflows.Deliveries{Stream: p.Stream, Epoch: p.Epoch, Seqs: workflows.NewSeqList([]uint64{p.Seq})}
	}
	d.alone(ctx, om, &orig, a, matches, claims, dl, log)
}

// parkedIdle is how often a dispatcher looks for parked alerts while it
// knows of none.
const parkedIdle = 250 * time.Millisecond

// runParked pulls parked alerts one at a time while ctx lasts, and
// dispatches each with work once it holds a token of the lane, in turn with
// the alerts that wait in memory; wg counts them.
func (d *Dispatcher) runParked(ctx, work context.Context, wg *sync.WaitGroup) {
	cons, err := d.js.Consumer(ctx, d.cfg.ParkedStream, d.cfg.ParkedConsumer)
	if err != nil {
		d.log.Error().Err(err).Str("stream", d.cfg.ParkedStream).Msg("parked alerts: no consumer; parked alerts wait for another dispatcher")
		return
	}
	tick := time.NewTicker(parkedIdle)
	defer tick.Stop()
	for ctx.Err() == nil {
		if d.parkedHint.Load() <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				continue
			}
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
				// None deliverable (some may be in another dispatcher's
				// hands): until the next read of the stream, or a park.
				d.parkedHint.Store(0)
			} else if ctx.Err() == nil {
				d.log.Warn().Err(err).Msg("pull parked alert; retrying")
				time.Sleep(parkedIdle)
			}
			continue
		}
		d.parkedHint.Add(-1)
		if !d.awaitLane(ctx, msg) {
			// Shutting down: another dispatcher, or this one restarted,
			// takes it.
			_ = msg.Nak()
			return
		}
		d.metrics.UnknownPodAlerts.WithLabelValues("unparked").Inc()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-d.unknownLane }()
			d.handleParked(work, msg)
		}()
	}
}

// ParkedState is what waits in the parked stream.
type ParkedState struct {
	Waiting uint64 `json:"waiting"`
	// Oldest is when the oldest parked alert was parked; OldestAge its age
	// when read.
	Oldest    time.Time     `json:"oldest,omitzero"`
	OldestAge time.Duration `json:"oldestAge"`
	// FloorCap is the floor recorded by the oldest parked alert: the
	// floor sent with signals stays at or below it (0 with none parked).
	FloorCap uint64 `json:"floorCap,omitempty"`
	// Epoch is the alert stream's epoch the oldest parked alert recorded
	// (see streamLife): its FloorCap says nothing about another life's.
	Epoch string `json:"epoch,omitempty"`
	// Drops lists the parked stream's settings that make it drop alerts
	// (see Backlog.Drops).
	Drops []string `json:"drops,omitempty"`
}

// errParkedRace: the oldest parked alert was taken between two reads.
var errParkedRace = errors.New("dispatch: the oldest parked alert went while it was read")

// ReadParked reads the parked stream: how many alerts wait there, since
// when, and the floor its oldest alert recorded. With genuine, the floor
// of an oldest message it refuses is taken as 0: a message someone else put
// on the parked subject must not raise the floor past parked alerts.
func ReadParked(ctx context.Context, js jetstream.JetStream, stream string, genuine func(nats.Header, []byte) bool) (ParkedState, error) {
	return readParked(ctx, js, jetstream.StreamConfig{Name: stream}, genuine)
}

// readParked is ReadParked of want's stream, with Drops against want's
// size and subjects (see dropping).
func readParked(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, genuine func(nats.Header, []byte) bool) (ParkedState, error) {
	stream := want.Name
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return ParkedState{}, fmt.Errorf("dispatch: stream %s: %w", stream, err)
	}
	si := s.CachedInfo() // read by the lookup
	for attempt := range 3 {
		if attempt > 0 {
			if si, err = s.Info(ctx); err != nil {
				return ParkedState{}, fmt.Errorf("dispatch: stream %s: %w", stream, err)
			}
		}
		st := ParkedState{Waiting: si.State.Msgs, Drops: dropping(si.Config, want)}
		if st.Waiting == 0 {
			return st, nil
		}
		st.Oldest, st.OldestAge = si.State.FirstTime, time.Since(si.State.FirstTime)
		m, err := s.GetMsg(ctx, si.State.FirstSeq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return ParkedState{}, fmt.Errorf("dispatch: stream %s: oldest message: %w", stream, err)
		}
		// A forged message (dead-lettered when it is pulled) holds the floor
		// at 0 meanwhile: lower is always safe.
		if genuine == nil || genuine(m.Header, m.Data) {
			st.FloorCap, _ = strconv.ParseUint(m.Header.Get(HeaderFloor), 10, 64)
			st.Epoch = m.Header.Get(HeaderOriginalEpoch)
		}
		return st, nil
	}
	return ParkedState{}, errParkedRace
}

// capFloor is the floor to send for the alert stream's life of epoch: the
// consumer's, held below every parked alert (see Parking). Parked alerts
// wait in order, so the oldest one's recorded floor holds it below all of
// them, but only within one life: while the oldest is of an earlier life
// (the stream was created again), the current life's parked alerts wait
// behind it, with floors nobody read, and the floor is held at 0.
func capFloor(ackFloor uint64, epoch string, p ParkedState) uint64 {
	switch {
	case p.Waiting == 0:
		return ackFloor
	case p.Epoch != epoch:
		return 0
	}
	return min(ackFloor, p.FloorCap)
}
