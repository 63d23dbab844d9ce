package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/soar-dev/soar/internal/httpserver"
)

// Backlog is what waits in the alert stream. The stream keeps a message only
// until it is acknowledged (work-queue retention), so everything in it is
// undispatched and its first message is the oldest alert waiting.
type Backlog struct {
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	// Waiting is the number of messages in the stream: not yet delivered,
	// or delivered and not yet acknowledged.
	Waiting uint64 `json:"waiting"`
	// Undelivered is the part of Waiting no dispatcher has taken yet.
	Undelivered uint64 `json:"undelivered"`
	// InFlight is what the dispatchers hold unacknowledged (JetStream's ack
	// pending), and Redelivering what waits to be delivered again.
	InFlight     int `json:"inFlight"`
	Redelivering int `json:"redelivering"`
	// MaxInFlight is the consumer's limit on InFlight (max ack pending):
	// once InFlight reaches it, JetStream delivers no more alerts until
	// some are acknowledged (WindowFull).
	MaxInFlight int `json:"maxInFlight"`
	// Oldest is when the oldest waiting alert was published (zero when
	// none waits); OldestAge is its age when read.
	Oldest    time.Time     `json:"oldest,omitzero"`
	OldestAge time.Duration `json:"oldestAge"`
	// AckFloor is the stream sequence at or below which every message was
	// acknowledged.
	AckFloor uint64 `json:"ackFloor"`
	// Bytes is what the stream holds on disk, MaxBytes its limit (-1 for
	// none) and Full their ratio: at 1 JetStream refuses new alerts.
	Bytes    uint64  `json:"bytes"`
	MaxBytes int64   `json:"maxBytes"`
	Full     float64 `json:"full"`
	// Epoch is the stream's creation time.
	Epoch time.Time `json:"epoch"`
	// ReadAt is when the numbers were read.
	ReadAt time.Time `json:"readAt"`
	// DeadLetters is set by `soar dispatch status` when the dead-letter
	// stream cannot take dead letters.
	DeadLetters *DeadLetterState `json:"deadLetters,omitempty"`
	// Sources are the clusters' streams the alert stream sources
	// (ClusterSource), as its server last heard from them.
	Sources []SourceState `json:"sources,omitempty"`
	// Paused is set while the consumer is paused (JetStream's pause, until
	// PausedUntil) and delivers nothing; a running dispatcher resumes it.
	Paused      bool      `json:"paused,omitempty"`
	PausedUntil time.Time `json:"pausedUntil,omitzero"`
	// Drops lists the stream's settings that make it drop alerts nobody
	// dispatched, refuse new ones, or delete its consumers when idle (a
	// running dispatcher puts them back; see dropping).
	Drops []string `json:"drops,omitempty"`
	// Sealed is set when somebody sealed the alert stream: JetStream then
	// refuses every alert, and nobody can unseal it (operations.md).
	Sealed bool `json:"sealed,omitempty"`
	// Altered lists the consumer's settings that keep alerts from the
	// dispatchers, strip them or deliver them late (no dispatcher sets
	// them; a running one puts them back), and those no update can change
	// (a deliver subject: a push consumer; a running dispatcher replaces
	// the consumer).
	Altered []string `json:"altered,omitempty"`
	// Parked is what waits in the parked stream (park.go).
	Parked *ParkedState `json:"parked,omitempty"`
	// replace is set when Altered holds settings no update can change
	// (unchangeable): only replacing the consumer puts them back.
	replace bool
}

// SourceState is how the alert stream's copy of one cluster's stream
// stands. While the cluster's link is down, the cluster's alerts wait in
// its leaf and Inactive grows; Lag is what the hub knows it has not copied
// yet, as of the last word from the leaf.
type SourceState struct {
	// Cluster is the source's cluster (its delivery subject's), empty for
	// a source soar did not configure.
	Cluster string `json:"cluster"`
	// Domain is the JetStream domain the source is read from (or its API
	// prefix, when that is not a domain's), empty for a stream of the hub's
	// own domain.
	Domain string `json:"domain,omitempty"`
	Stream string `json:"stream"`
	Lag    uint64 `json:"lag"`
	// Inactive is how long ago the hub last heard from the source; -1 if
	// never.
	Inactive time.Duration `json:"inactive"`
	// Error is what the server reports when sourcing fails.
	Error string `json:"error,omitempty"`
}

// silent says whether the source deserves a warning: not heard from for
// longer than warnAge, never heard from although the dispatcher has run for
// longer than that, or failing.
func (s SourceState) silent(warnAge, running time.Duration) bool {
	switch {
	case s.Error != "":
		return true
	case s.Inactive < 0:
		return running > warnAge
	}
	return s.Inactive > warnAge
}

// inactiveSeconds is Inactive for the metric: seconds, and -1 for a source
// never heard from (the server's -1 is a nanosecond, which as seconds would
// read as a source heard from just now).
func (s SourceState) inactiveSeconds() float64 {
	if s.Inactive < 0 {
		return -1
	}
	return s.Inactive.Seconds()
}

// key tells the sources of one alert stream apart: those soar did not
// configure share the empty cluster.
func (s SourceState) key() string { return s.Cluster + "/" + s.Domain + "/" + s.Stream }

func sourceStates(sources []*jetstream.StreamSourceInfo) []SourceState {
	var out []SourceState
	for _, src := range sources {
		st := SourceState{Stream: src.Name, Lag: src.Lag, Inactive: src.Active}
		if src.External != nil {
			st.Domain = src.External.APIPrefix
			if d, ok := strings.CutPrefix(st.Domain, "$JS."); ok && strings.HasSuffix(d, ".API") {
				st.Domain = strings.TrimSuffix(d, ".API")
			}
			if cluster, ok := strings.CutPrefix(src.External.DeliverPrefix, SourceDeliverPrefix); ok {
				st.Cluster = cluster
			}
		}
		if src.Error != nil {
			st.Error = src.Error.Error()
		}
		out = append(out, st)
	}
	return out
}

// ReadBacklog reads the backlog of the alert stream and its consumer.
// Drops and Altered leave out what only a dispatcher's flags tell
// (readBacklog).
func ReadBacklog(ctx context.Context, js jetstream.JetStream, stream, consumer string) (Backlog, error) {
	return readBacklog(ctx, js, jetstream.StreamConfig{Name: stream}, alertConsumerConfig(consumer, 0))
}

// readBacklog is ReadBacklog of want's stream and wantC's consumer, with
// Drops and Altered against the sizes and subjects in want and wantC (a
// dispatcher's flags; zero for none).
func readBacklog(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, wantC jetstream.ConsumerConfig) (Backlog, error) {
	stream, consumer := want.Name, wantC.Durable
	// Looking a stream or consumer up reads its info: one call each.
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return Backlog{}, fmt.Errorf("dispatch: stream %s: %w", stream, err)
	}
	var ci *jetstream.ConsumerInfo
	c, err := s.Consumer(ctx, consumer)
	if errors.Is(err, jetstream.ErrNotPullConsumer) {
		// Deleted and created again as a push consumer: read it, to
		// name its deliver subject.
		var p jetstream.PushConsumer
		if p, err = s.PushConsumer(ctx, consumer); err == nil {
			ci = p.CachedInfo()
		}
	} else if err == nil {
		ci = c.CachedInfo()
	}
	if err != nil {
		return Backlog{}, fmt.Errorf("dispatch: consumer %s: %w", consumer, err)
	}
	si := s.CachedInfo()
	now := time.Now()
	b := Backlog{
		Stream:       stream,
		Consumer:     consumer,
		Waiting:      si.State.Msgs,
		Undelivered:  ci.NumPending,
		InFlight:     ci.NumAckPending,
		MaxInFlight:  ci.Config.MaxAckPending,
		Redelivering: ci.NumRedelivered,
		AckFloor:     ci.AckFloor.Stream,
		Bytes:        si.State.Bytes,
		MaxBytes:     si.Config.MaxBytes,
		Epoch:        si.Created,
		ReadAt:       now,
		Sources:      sourceStates(si.Sources),
	}
	if b.MaxBytes > 0 {
		b.Full = float64(b.Bytes) / float64(b.MaxBytes)
	}
	if ci.Paused {
		b.Paused, b.PausedUntil = true, now.Add(ci.PauseRemaining)
	}
	b.Drops = dropping(si.Config, want)
	b.Sealed = si.Config.Sealed
	b.Altered = altered(ci.Config, wantC)
	if u := unchangeable(ci.Config, wantC); len(u) > 0 {
		b.Altered, b.replace = append(b.Altered, u...), true
	}
	if si.State.Msgs > 0 {
		b.Oldest = si.State.FirstTime
		b.OldestAge = now.Sub(si.State.FirstTime)
	}
	return b, nil
}

// WindowFull reports whether the dispatchers hold as many alerts
// unacknowledged as the consumer allows: JetStream then delivers none
// more, a new attack's alert included, until some are acknowledged. A
// storm outrunning the coalescer fills it, and so do alerts retried while
// Temporal refuses them, or deferred phantoms.
func (b Backlog) WindowFull() bool { return b.MaxInFlight > 0 && b.InFlight >= b.MaxInFlight }

// backlogEvery is how often a dispatcher reads the backlog.
const backlogEvery = time.Second

// observe reads the backlog once: the metrics, the floor and epoch that go
// with every signal, and the warning when the oldest alert waits too long;
// and it resumes soar's consumers when somebody paused them, and puts back
// the streams' settings when somebody made them drop alerts and the
// consumers' when somebody made them withhold or spoil alerts.
func (d *Dispatcher) observe(ctx context.Context) error {
	b, err := readBacklog(ctx, d.js, d.alertStreamFloor(), d.consumerConfig())
	if err != nil {
		return err
	}
	// After the consumer's floor, never before: an alert acknowledged by
	// then was parked by then too (park.go).
	genuine := func(h nats.Header, data []byte) bool {
		_, err := d.unparkHeaders(h, data)
		return err == nil
	}
	p, err := readParked(ctx, d.js, d.parkedStreamFloor(), genuine)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Deleted while this dispatcher runs: every read of the backlog
		// would fail until a restart, and with it every put-back here,
		// and no alert could be parked. Until it is created again
		// (createDeleted waits for the deletion to settle) it holds
		// nothing, so it holds the floor down at nothing either.
		if err = d.createDeleted(ctx, d.cfg.ParkedStream, d.ensureParked); err == nil {
			p, err = readParked(ctx, d.js, d.parkedStreamFloor(), genuine)
		} else if errors.Is(err, errNotSettled) {
			p, err = ParkedState{}, nil
		}
	} else if err == nil {
		d.gone.present(d.cfg.ParkedStream) // created again by somebody else
	}
	if err != nil {
		return err
	}
	b.Parked = &p
	d.parkedHint.Store(int64(p.Waiting))
	// The floor only rises within a life, and a stale one is merely less
	// useful. A read of a stream created since the current life began
	// leaves it alone: its floor is another life's, and the next life
	// begins when the consumer is created again (consumeAgain).
	floor := capFloor(b.AckFloor, epochOf(b.Epoch), p)
	if l := d.life.Load(); l == nil {
		first := &streamLife{epoch: epochOf(b.Epoch)}
		first.floor.Store(floor)
		if !d.life.CompareAndSwap(nil, first) {
			d.raiseFloor(first.epoch, floor)
		}
	} else {
		d.raiseFloor(epochOf(b.Epoch), floor)
	}
	d.backlog.Store(&b)
	if b.Paused {
		d.resume(ctx, d.cfg.Stream, d.cfg.Consumer, b.PausedUntil)
	}
	if len(b.Drops) > 0 {
		d.undoDrops(ctx, d.alertStreamFloor(), b.Drops)
	}
	if len(p.Drops) > 0 {
		d.undoDrops(ctx, d.parkedStreamFloor(), p.Drops)
	}
	if b.replace {
		if err := d.ensureConsumer(ctx, d.cfg.Stream, d.consumerConfig()); err != nil && ctx.Err() == nil {
			d.log.Error().Err(err).Str("consumer", d.cfg.Consumer).Msg("a consumer of soar's could not be read or created again")
		}
	} else if len(b.Altered) > 0 {
		d.putBack(ctx, d.cfg.Stream, d.consumerConfig(), b.Altered)
	}
	if d.unknownLane != nil {
		d.observeParkedConsumer(ctx)
	}
	d.observeDeadLetters(ctx)
	d.metrics.BacklogWaiting.Set(float64(b.Waiting))
	d.metrics.BacklogInFlight.Set(float64(b.InFlight))
	d.metrics.BacklogOldestAge.Set(b.OldestAge.Seconds())
	d.metrics.StreamFull.Set(b.Full)
	d.metrics.ParkedWaiting.Set(float64(p.Waiting))
	d.metrics.ParkedOldestAge.Set(p.OldestAge.Seconds())
	// A source removed from the stream must not linger in the metrics.
	d.metrics.SourceLag.Reset()
	d.metrics.SourceInactive.Reset()
	for _, src := range b.Sources {
		d.metrics.SourceLag.WithLabelValues(src.Cluster, src.Domain, src.Stream).Set(float64(src.Lag))
		d.metrics.SourceInactive.WithLabelValues(src.Cluster, src.Domain, src.Stream).Set(src.inactiveSeconds())
	}
	return nil
}

// epochOf is the epoch of a stream created at created.
func epochOf(created time.Time) string { return strconv.FormatInt(created.UnixNano(), 10) }

// raiseFloor raises the current life's floor to floor, read from the
// stream of epoch: from another life it says nothing about this one.
func (d *Dispatcher) raiseFloor(epoch string, floor uint64) {
	if l := d.life.Load(); l != nil && l.epoch == epoch {
		l.raise(floor)
	}
}

// observeParkedConsumer does for the parked alerts' consumer, pulled only
// with pod indexes, what observe does for the alert consumer, and more:
// deleted, or created again as a push consumer or with settings no update
// can change, it would keep parked alerts from this dispatcher until it
// restarts, so it is created again at once (ensureConsumer), as Run does
// for the alert consumer when its pull ends (consumeAgain).
func (d *Dispatcher) observeParkedConsumer(ctx context.Context) {
	want := parkedConsumerConfig(d.cfg.ParkedConsumer)
	c, err := d.js.Consumer(ctx, d.cfg.ParkedStream, d.cfg.ParkedConsumer)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if err = d.ensureConsumer(ctx, d.cfg.ParkedStream, want); err == nil {
			d.metrics.ConsumerSettingsRestored.WithLabelValues(want.Durable).Inc()
			d.log.Error().Str("consumer", want.Durable).Msg("a consumer of soar's was deleted; created it again")
			return
		}
	case errors.Is(err, jetstream.ErrNotPullConsumer):
		err = d.ensureConsumer(ctx, d.cfg.ParkedStream, want)
	case err == nil:
		ci := c.CachedInfo()
		if ci.Paused {
			d.resume(ctx, d.cfg.ParkedStream, d.cfg.ParkedConsumer, time.Now().Add(ci.PauseRemaining))
		}
		if len(unchangeable(ci.Config, want)) > 0 {
			err = d.ensureConsumer(ctx, d.cfg.ParkedStream, want)
		} else if a := altered(ci.Config, want); len(a) > 0 {
			d.putBack(ctx, d.cfg.ParkedStream, want, a)
		}
	}
	if err != nil && ctx.Err() == nil {
		d.log.Error().Err(err).Str("consumer", want.Durable).Msg("a consumer of soar's could not be read or created again")
	}
}

// observeDeadLetters keeps the dead-letter stream able to take dead
// letters: while it refuses them, each alert to be dead-lettered is
// retried in the alert consumer's ack pending, never dropped, so a flood
// of bad alerts would fill the window and stop all dispatch. Deleted, it
// is created again; settings that refuse dead letters
// (deadLettersRefused) are put back; a seal, which nobody can take back,
// is named once a minute.
func (d *Dispatcher) observeDeadLetters(ctx context.Context) {
	want := d.deadLetterStreamConfig()
	s, err := d.js.Stream(ctx, want.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		err = d.createDeleted(ctx, want.Name, func(ctx context.Context) error { return d.ensureStream(ctx, want) })
		if err == nil || errors.Is(err, errNotSettled) {
			return
		}
	case err == nil:
		d.gone.present(want.Name)
		cfg := s.CachedInfo().Config
		if cfg.Sealed {
			if last := d.deadLettersSealedLog.Load(); time.Since(time.Unix(0, last)) > time.Minute && d.deadLettersSealedLog.CompareAndSwap(last, time.Now().UnixNano()) {
				d.log.Error().Str("stream", want.Name).
					Msg("the dead-letter stream is sealed: bad alerts wait in the alert consumer's window, and nobody can unseal it; recreate the stream (docs/operations.md#backlog)")
			}
			return
		}
		refused := deadLettersRefused(cfg, want)
		if len(refused) == 0 {
			return
		}
		cfg.NoAck, cfg.Discard, cfg.DiscardNewPerSubject, cfg.MaxMsgSize = false, jetstream.DiscardOld, false, -1
		for _, subject := range want.Subjects {
			if !captures(cfg.Subjects, subject) {
				cfg.Subjects = append(cfg.Subjects, subject)
			}
		}
		if _, err = d.js.UpdateStream(ctx, cfg); err == nil {
			d.metrics.StreamLimitsRestored.WithLabelValues(want.Name).Inc()
			d.log.Error().Str("stream", want.Name).Strs("settings", refused).Msg("the dead-letter stream was set to refuse dead letters; put back")
			return
		}
	}
	if err != nil && ctx.Err() == nil {
		d.log.Error().Err(err).Str("stream", want.Name).Msg("the dead-letter stream could not be read, created or put back")
	}
}

// DeadLetterState is what `soar dispatch status` says of the dead-letter
// stream when it cannot take dead letters (observeDeadLetters).
type DeadLetterState struct {
	Stream string `json:"stream"`
	// Missing: the stream is gone.
	Missing bool `json:"missing,omitempty"`
	Sealed  bool `json:"sealed,omitempty"`
	// Refuses lists the settings that make it refuse dead letters.
	Refuses []string `json:"refuses,omitempty"`
}

// Broken reports whether the stream cannot take dead letters.
func (s DeadLetterState) Broken() bool { return s.Missing || s.Sealed || len(s.Refuses) > 0 }

// ReadDeadLetters reads the dead-letter stream that takes the dead letters
// of subjects under prefix.
func ReadDeadLetters(ctx context.Context, js jetstream.JetStream, stream, prefix string) (DeadLetterState, error) {
	st := DeadLetterState{Stream: stream}
	s, err := js.Stream(ctx, stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		st.Missing = true
		return st, nil
	case err != nil:
		return st, fmt.Errorf("dispatch: stream %s: %w", stream, err)
	}
	cfg := s.CachedInfo().Config
	st.Sealed = cfg.Sealed
	st.Refuses = deadLettersRefused(cfg, jetstream.StreamConfig{Subjects: []string{prefix + ".>"}})
	return st, nil
}

// deadLettersRefused lists the settings of the dead-letter stream that make
// it refuse dead letters, or never answer their publication: no
// acknowledgement to publishers, discarding new messages when full (the
// stream is a record that drops its oldest), a limit of a message's size
// (a dead letter may be as large as the server allows), and subjects of
// want's it no longer captures. Limits that only drop old dead letters
// sooner (age, bytes, messages) are an operator's to set.
func deadLettersRefused(have, want jetstream.StreamConfig) []string {
	var out settingList
	add := out.add
	add(have.NoAck, "no_ack", "")
	add(have.Discard == jetstream.DiscardNew, "discard new", "")
	add(have.DiscardNewPerSubject, "discard_new_per_subject", "")
	add(have.MaxMsgSize > 0, "max_msg_size", have.MaxMsgSize)
	for _, subject := range want.Subjects {
		add(!captures(have.Subjects, subject), "subjects lack", subject)
	}
	return out
}

// alertStreamFloor and parkedStreamFloor are what this dispatcher's flags
// hold the alert stream and the parked stream to at least, between
// starts: their sizes and subjects (see dropping).
func (d *Dispatcher) alertStreamFloor() jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: d.cfg.Stream, Subjects: d.cfg.Subjects, MaxBytes: d.cfg.StreamMaxBytes,
		Sources: streamSources(d.cfg.ClusterSources)}
}

func (d *Dispatcher) parkedStreamFloor() jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: d.cfg.ParkedStream, Subjects: []string{d.cfg.ParkedSubject}, MaxBytes: d.cfg.ParkedMaxBytes}
}

// dropping lists the settings of the alert stream, or of the parked
// stream, that make JetStream drop alerts before they are dispatched, or
// refuse them, and that no dispatcher sets (EnsureStreams): an age limit,
// a limit per subject, discarding the oldest when full, a limit of
// messages or of a message's size, rollups (a publisher's header would
// purge what waits), no acknowledgement to publishers; and an inactivity
// limit for its consumers, which would delete soar's while no dispatcher
// pulls.
//
// Against want (a dispatcher's flags), it also lists a byte limit below
// want's, subjects of want's that the stream does not capture (published
// there, an alert goes nowhere), and cluster sources of want's that the
// stream lacks or that were altered (sourceIntact: a cluster cut off, or
// its alerts under another cluster's name). Flags may differ between
// dispatchers during an upgrade, so these are only ever raised or added:
// dispatchers with different flags end at the largest, never fight.
func dropping(have, want jetstream.StreamConfig) []string {
	var out settingList
	add := out.add
	add(have.MaxAge > 0, "max_age", have.MaxAge)
	add(have.MaxMsgsPerSubject > 0, "max_msgs_per_subject", have.MaxMsgsPerSubject)
	add(have.Discard == jetstream.DiscardOld, "discard old", "")
	add(have.MaxMsgs > 0, "max_msgs", have.MaxMsgs)
	add(have.MaxMsgSize > 0, "max_msg_size", have.MaxMsgSize)
	add(have.AllowRollup, "allow_rollup_hdrs", "")
	// Not a drop either: the stream stores alerts but answers no
	// publisher, so every publish that waits for its answer (a
	// detector's, a dispatcher's parking) fails after its timeout.
	add(have.NoAck, "no_ack", "")
	// Not a drop, but it would stick to the consumer as its own inactivity
	// threshold (altered) through every put-back.
	add(have.ConsumerLimits.InactiveThreshold > 0, "consumer_limits.inactive_threshold", have.ConsumerLimits.InactiveThreshold)
	add(lowered(have.MaxBytes, want.MaxBytes), "max_bytes", have.MaxBytes)
	for _, subject := range want.Subjects {
		add(!captures(have.Subjects, subject), "subjects lack", subject)
	}
	for _, src := range want.Sources {
		i := sameSource(have.Sources, src)
		add(i < 0, "sources lack", sourceLabel(src))
		add(i >= 0 && !sourceIntact(have.Sources[i], src), "source altered", sourceLabel(src))
	}
	return out
}

// sameSource is the index of the source among sources that is src's
// stream in src's domain, or -1.
func sameSource(sources []*jetstream.StreamSource, src *jetstream.StreamSource) int {
	return slices.IndexFunc(sources, func(s *jetstream.StreamSource) bool {
		return s.Name == src.Name && apiPrefix(s) == apiPrefix(src)
	})
}

func apiPrefix(s *jetstream.StreamSource) string {
	if s.External == nil {
		return ""
	}
	return s.External.APIPrefix
}

// sourceIntact reports whether have sources what want does, under the same
// subjects: a filter, another subject transform (alerts of one cluster
// under another's name) or another deliver prefix would withhold or
// misname a cluster's alerts.
func sourceIntact(have, want *jetstream.StreamSource) bool {
	return have.FilterSubject == want.FilterSubject && slices.Equal(have.SubjectTransforms, want.SubjectTransforms) &&
		have.External != nil && want.External != nil && have.External.DeliverPrefix == want.External.DeliverPrefix
}

// sourceLabel names a cluster source of want's in a setting as its flag
// does: cluster=domain/stream.
func sourceLabel(s *jetstream.StreamSource) string {
	cluster := ""
	if len(s.SubjectTransforms) > 0 {
		cluster = strings.TrimSuffix(strings.TrimPrefix(s.SubjectTransforms[0].Destination, ClusterSubjectPrefix), ".>")
	}
	domain := strings.TrimSuffix(strings.TrimPrefix(apiPrefix(s), "$JS."), ".API")
	return cluster + "=" + domain + "/" + s.Name
}

// settingList is what dropping and altered list: "name value" per setting.
type settingList []string

// add lists setting with its value when it differs from soar's.
func (l *settingList) add(differs bool, setting string, value any) {
	if differs {
		*l = append(*l, strings.TrimSpace(fmt.Sprint(setting, " ", value)))
	}
}

// lowered reports whether a positive limit is below the want of a flag
// (0 for none).
func lowered[T int | int64](have, want T) bool { return have > 0 && have < want }

// captures reports whether the subjects a stream captures cover every
// subject that subject matches.
func captures(subjects []string, subject string) bool {
	return slices.ContainsFunc(subjects, func(pattern string) bool { return covers(pattern, subject) })
}

// covers reports whether the NATS subject pattern matches every subject
// that subject (which may hold wildcards too) matches.
func covers(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, t := range p {
		switch {
		case t == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case t == "*":
			if s[i] == ">" {
				return false
			}
		case t != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

// undoDrops puts back the settings of one of soar's work-queue streams (the
// alert stream, the parked stream) that dropping found against want, and
// keeps every other: those are the dispatchers' flags, which may differ
// between them (a rolling upgrade), so they are left to EnsureStreams.
func (d *Dispatcher) undoDrops(ctx context.Context, want jetstream.StreamConfig, drops []string) {
	s, err := d.js.Stream(ctx, want.Name)
	if err == nil {
		cfg := s.CachedInfo().Config
		cfg.MaxAge, cfg.MaxMsgsPerSubject, cfg.Discard, cfg.DiscardNewPerSubject = 0, -1, jetstream.DiscardNew, false
		cfg.MaxMsgs, cfg.MaxMsgSize, cfg.AllowRollup, cfg.NoAck = -1, -1, false, false
		cfg.ConsumerLimits.InactiveThreshold = 0
		// An age limit forces the duplicate window under it; both streams'
		// is alertDuplicates.
		cfg.Duplicates = max(cfg.Duplicates, alertDuplicates)
		if lowered(cfg.MaxBytes, want.MaxBytes) {
			cfg.MaxBytes = want.MaxBytes
		}
		for _, subject := range want.Subjects {
			if !captures(cfg.Subjects, subject) {
				cfg.Subjects = append(cfg.Subjects, subject)
			}
		}
		for _, src := range want.Sources {
			if i := sameSource(cfg.Sources, src); i < 0 {
				cfg.Sources = append(cfg.Sources, src)
			} else if !sourceIntact(cfg.Sources[i], src) {
				cfg.Sources[i] = src
			}
		}
		_, err = d.js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error().Err(err).Str("stream", want.Name).Strs("settings", drops).
				Msg("a stream of soar's is set to drop or refuse alerts and could not be put back")
		}
		return
	}
	d.metrics.StreamLimitsRestored.WithLabelValues(want.Name).Inc()
	d.log.Error().Str("stream", want.Name).Strs("settings", drops).Msg("a stream of soar's was set to drop or refuse alerts; put back")
}

// altered lists the settings of a consumer of soar's that differ from
// want, the configuration its dispatchers create, and that keep alerts from
// them or spoil their delivery:
//   - a filter subject or a priority group, and limits on pull requests,
//     withhold every alert (the dispatchers' pulls match none, or are
//     refused), silently: the backlog's undelivered count filters too;
//   - headers only strips each alert's body, so that it would be dead-
//     lettered as undecodable and deleted from the stream;
//   - an ack wait, a delivery limit or a backoff other than soar's deliver
//     alerts late, too often, or never again;
//   - an inactivity threshold deletes the consumer while no dispatcher
//     runs.
//
// No dispatcher sets any of them otherwise, so putting them back never
// fights a dispatcher's flags. Max ack pending is a flag (dispatchers may
// differ during an upgrade): it is listed only below want's (0 for none)
// and only ever raised, so dispatchers with different flags end at the
// largest. A description, metadata or replicas are left alone.
func altered(have, want jetstream.ConsumerConfig) []string {
	var out settingList
	add := out.add
	add(have.FilterSubject != want.FilterSubject, "filter_subject", have.FilterSubject)
	add(!slices.Equal(have.FilterSubjects, want.FilterSubjects), "filter_subjects", strings.Join(have.FilterSubjects, " "))
	if have.PriorityPolicy != want.PriorityPolicy || !slices.Equal(have.PriorityGroups, want.PriorityGroups) {
		policy, _ := have.PriorityPolicy.MarshalJSON()
		add(true, "priority_policy", strings.Trim(string(policy), `"`)+" groups "+strings.Join(have.PriorityGroups, " "))
	}
	add(have.MaxRequestBatch != want.MaxRequestBatch, "max_batch", have.MaxRequestBatch)
	add(have.MaxRequestExpires != want.MaxRequestExpires, "max_expires", have.MaxRequestExpires)
	add(have.MaxRequestMaxBytes != want.MaxRequestMaxBytes, "max_bytes", have.MaxRequestMaxBytes)
	add(have.HeadersOnly != want.HeadersOnly, "headers_only", "")
	add(have.AckWait != want.AckWait, "ack_wait", have.AckWait)
	add(have.MaxDeliver != want.MaxDeliver, "max_deliver", have.MaxDeliver)
	add(!slices.Equal(have.BackOff, want.BackOff), "backoff", have.BackOff)
	add(have.InactiveThreshold != want.InactiveThreshold, "inactive_threshold", have.InactiveThreshold)
	add(lowered(have.MaxAckPending, want.MaxAckPending), "max_ack_pending", have.MaxAckPending)
	return out
}

// unchangeable lists the settings of a consumer of soar's that differ from
// want and that no update can change, so that only deleting the consumer
// puts them back (ensureConsumer): a deliver subject (a push consumer,
// which hands alerts to whoever subscribes to it), a replay policy other
// than instant (alerts come at the pace they were published), memory
// storage (what was delivered and acknowledged is forgotten when the
// server restarts), and a limit on waiting pulls other than the server's
// default (dispatchers' pulls beyond it are refused). No dispatcher sets
// any of them otherwise. Work queues refuse a deliver or ack policy other
// than soar's.
func unchangeable(have, want jetstream.ConsumerConfig) []string {
	var out settingList
	add := out.add
	add(have.DeliverSubject != want.DeliverSubject, "deliver_subject", have.DeliverSubject)
	add(have.ReplayPolicy != want.ReplayPolicy, "replay_policy", have.ReplayPolicy)
	add(have.MemoryStorage != want.MemoryStorage, "mem_storage", "")
	// A push consumer has none; its deliver subject is listed.
	add(have.DeliverSubject == "" && have.MaxWaiting != cmp.Or(want.MaxWaiting, defaultMaxWaiting), "max_waiting", have.MaxWaiting)
	return out
}

// unchangeableStream lists the settings of one of soar's streams that
// differ from want and that no update can take back (ensureStream): its
// retention (a work queue is what keeps an alert until a dispatcher
// acknowledges it), its storage (in memory, a server's restart loses every
// alert), and a seal.
func unchangeableStream(have, want jetstream.StreamConfig) []string {
	var out settingList
	add := out.add
	add(have.Retention != want.Retention, "retention", have.Retention)
	add(have.Storage != want.Storage, "storage", have.Storage)
	add(have.Sealed, "sealed", "")
	return out
}

// defaultMaxWaiting is how many pulls nats-server lets wait on a pull
// consumer that sets no limit (JSWaitQueueDefaultMax).
const defaultMaxWaiting = 512

// putBack puts back a consumer's settings that altered found, as of a fresh
// read, and keeps every other. Headers only among them tells stripped that
// empty messages arriving now are stripped alerts.
func (d *Dispatcher) putBack(ctx context.Context, stream string, want jetstream.ConsumerConfig, settings []string) {
	if slices.Contains(settings, "headers_only") {
		d.headersOnlyAt.Store(time.Now().UnixNano())
	}
	c, err := d.js.Consumer(ctx, stream, want.Durable)
	if err == nil {
		cfg := c.CachedInfo().Config
		cfg.FilterSubject, cfg.FilterSubjects = want.FilterSubject, want.FilterSubjects
		cfg.PriorityPolicy, cfg.PriorityGroups, cfg.PinnedTTL = want.PriorityPolicy, want.PriorityGroups, want.PinnedTTL
		cfg.MaxRequestBatch, cfg.MaxRequestExpires, cfg.MaxRequestMaxBytes = want.MaxRequestBatch, want.MaxRequestExpires, want.MaxRequestMaxBytes
		cfg.HeadersOnly = want.HeadersOnly
		cfg.AckWait, cfg.MaxDeliver, cfg.BackOff = want.AckWait, want.MaxDeliver, want.BackOff
		cfg.InactiveThreshold = want.InactiveThreshold
		if lowered(cfg.MaxAckPending, want.MaxAckPending) {
			cfg.MaxAckPending = want.MaxAckPending
		}
		cfg.PauseUntil = nil // a pause is resume's
		_, err = d.js.UpdateConsumer(ctx, stream, cfg)
	}
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error().Err(err).Str("consumer", want.Durable).Strs("settings", settings).
				Msg("a consumer of soar's is set to withhold or spoil alerts and could not be put back")
		}
		return
	}
	d.metrics.ConsumerSettingsRestored.WithLabelValues(want.Durable).Inc()
	d.log.Error().Str("consumer", want.Durable).Strs("settings", settings).Msg("a consumer of soar's was set to withhold or spoil alerts; put back")
	if slices.ContainsFunc(settings, func(s string) bool { return strings.HasPrefix(s, "filter_subject") }) {
		d.rewind(ctx, stream, want.Durable)
	}
}

// rewind sends a consumer of soar's back to its acknowledgement floor,
// after a filter of somebody's: whenever the consumer looked for a message
// to deliver while its filter matched none of soar's, JetStream passed
// over every alert published meanwhile, and putting the filter back does
// not go back for them. Both streams are work queues, so what lies above
// the floor is only what no dispatcher has acknowledged: the alerts passed
// over, and those in a dispatcher's hands, which come again as after an
// ack wait (and open no second incident).
//
// It needs nats-server 2.14 (the consumer reset API); an older server
// does not answer, and the alerts passed over wait until an operator
// resets the consumer.
func (d *Dispatcher) rewind(ctx context.Context, stream, consumer string) {
	r, err := d.js.ResetConsumer(ctx, stream, consumer)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error().Err(err).Str("consumer", consumer).
				Msg("a consumer of soar's could not be sent back to its acknowledgement floor: alerts its altered filter passed over wait in the stream until it is")
		}
		return
	}
	d.log.Warn().Str("consumer", consumer).Uint64("stream_seq", r.ResetSeq).
		Msg("a consumer of soar's was sent back to its acknowledgement floor for the alerts its altered filter passed over")
}

// resume resumes a consumer of soar's that somebody paused. A paused
// consumer delivers nothing, says nothing, and stays paused across restarts,
// so a pause (one call by anyone the NATS account lets use the JetStream
// API) would stop containment until whenever its author chose. soar's
// consumers are never paused on purpose: to stop intake, stop the
// dispatchers.
func (d *Dispatcher) resume(ctx context.Context, stream, consumer string, until time.Time) {
	if _, err := d.js.ResumeConsumer(ctx, stream, consumer); err != nil {
		if ctx.Err() == nil {
			d.log.Error().Err(err).Str("consumer", consumer).Time("paused_until", until.UTC()).
				Msg("a consumer of soar's is paused and could not be resumed: it delivers nothing")
		}
		return
	}
	d.metrics.ConsumersResumed.WithLabelValues(consumer).Inc()
	d.log.Error().Str("consumer", consumer).Time("paused_until", until.UTC()).Msg("a consumer of soar's was paused; resumed it")
}

// streamFullWarning is the fill ratio of the alert stream from which the
// dispatcher warns and /readyz reports degraded: past it, a flood is close
// to making JetStream refuse alerts.
const streamFullWarning = 0.8

// watchBacklog reads the backlog every second until ctx ends, and warns
// (at most once a minute) while the oldest alert is older than
// BacklogWarnAge.
func (d *Dispatcher) watchBacklog(ctx context.Context) {
	t := time.NewTicker(backlogEvery)
	defer t.Stop()
	var warned, warnedParked, warnedSealed, warnedWindow time.Time
	warnedSource := map[string]time.Time{}
	started := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.observe(ctx); err != nil {
			if ctx.Err() == nil {
				d.log.Warn().Err(err).Msg("read alert backlog")
			}
			continue
		}
		b := d.backlog.Load()
		if b.Sealed && time.Since(warnedSealed) > time.Minute {
			warnedSealed = time.Now()
			d.log.Error().Str("stream", b.Stream).
				Msg("the alert stream is sealed: JetStream refuses every alert, and nobody can unseal it; recreate the stream (docs/operations.md#backlog)")
		}
		if b.WindowFull() && time.Since(warnedWindow) > time.Minute {
			warnedWindow = time.Now()
			d.log.Warn().Int("in_flight", b.InFlight).Int("max_ack_pending", b.MaxInFlight).Int("redelivering", b.Redelivering).
				Msg("the alert consumer's window is full: JetStream delivers no more alerts until some are acknowledged (docs/operations.md#backlog)")
		}
		if b.Full >= streamFullWarning && time.Since(warned) > time.Minute {
			warned = time.Now()
			d.log.Warn().Uint64("bytes", b.Bytes).Int64("max_bytes", b.MaxBytes).Float64("full", b.Full).
				Msg("alert stream nearly full: at its limit JetStream refuses new alerts; add dispatchers or raise --stream-max-bytes")
		}
		for _, src := range b.Sources {
			if src.silent(d.cfg.BacklogWarnAge, time.Since(started)) && time.Since(warnedSource[src.key()]) > time.Minute {
				warnedSource[src.key()] = time.Now()
				d.log.Warn().Str("cluster", src.Cluster).Str("source", src.Stream).Dur("inactive", src.Inactive).Uint64("lag", src.Lag).Str("source_error", src.Error).
					Msg("cluster source silent: the hub has not heard from this cluster's leaf for longer than the warning age; its alerts wait there (check the leaf node link, docs/multi-cluster-intake.md)")
			}
		}
		if p := b.Parked; p != nil && p.OldestAge > d.cfg.BacklogWarnAge && time.Since(warnedParked) > time.Minute {
			warnedParked = time.Now()
			d.log.Warn().Uint64("parked", p.Waiting).Dur("oldest_age", p.OldestAge).
				Msg("alerts for pods that do not exist are parked and wait for their lane: a flood of them (check the alerts' source); real pods' alerts go first")
		}
		if b.OldestAge > d.cfg.BacklogWarnAge && time.Since(warned) > time.Minute {
			warned = time.Now()
			d.log.Warn().Uint64("waiting", b.Waiting).Dur("oldest_age", b.OldestAge).Dur("warn_age", d.cfg.BacklogWarnAge).
				Msg("alert backlog: the oldest alert waits longer than the warning age; add dispatchers or check Temporal")
		}
	}
}

// Backlog returns the backlog as last read, and whether it was read yet.
func (d *Dispatcher) Backlog() (Backlog, bool) {
	b := d.backlog.Load()
	if b == nil {
		return Backlog{}, false
	}
	return *b, true
}

// BacklogCheck is a readiness check: degraded while the oldest alert waits
// longer than BacklogWarnAge (the dispatcher works, but falls behind), or
// while the backlog cannot be read.
func (d *Dispatcher) BacklogCheck(context.Context) error {
	b, ok := d.Backlog()
	switch {
	case !ok:
		return &httpserver.Degraded{Detail: "backlog not read yet"}
	case time.Since(b.ReadAt) > 5*backlogEvery:
		return &httpserver.Degraded{Detail: fmt.Sprintf("backlog last read %s ago", time.Since(b.ReadAt).Round(time.Second))}
	case b.Sealed:
		return &httpserver.Degraded{Detail: "the alert stream is sealed: JetStream refuses every alert, and nobody can unseal it; recreate the stream (docs/operations.md#backlog)"}
	case b.WindowFull():
		return &httpserver.Degraded{Detail: fmt.Sprintf("%d alerts in flight, the consumer's limit (max ack pending): JetStream delivers no more until some are acknowledged", b.InFlight)}
	case b.Full >= streamFullWarning:
		return &httpserver.Degraded{Detail: fmt.Sprintf("alert stream %.0f%% full (%d of %d bytes): at 100%% new alerts are refused", 100*b.Full, b.Bytes, b.MaxBytes)}
	case b.OldestAge > d.cfg.BacklogWarnAge:
		return &httpserver.Degraded{Detail: fmt.Sprintf("%d alerts waiting, the oldest for %s (warning age %s)", b.Waiting, b.OldestAge.Round(time.Second), d.cfg.BacklogWarnAge)}
	}
	return nil
}
