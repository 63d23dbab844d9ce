// Package dispatch turns alert messages into incidents. It pulls alerts from a
// durable JetStream consumer, decodes and matches them against the playbooks,
// and hands every match to Temporal: the first alert of an incident alone and
// at once with SignalWithStart (the fast lane), the later ones of an open
// incident coalesced into one signal per window (coalesce.go).
//
// A message is acknowledged only after Temporal accepted every signal it
// is part of; when Temporal cannot be reached it is redelivered with backoff,
// so nothing is lost, and incidents count each message's stream sequence
// once, so nothing is counted twice. Messages that can never be decoded, or
// that Temporal refuses for good, go to a dead-letter subject with the reason
// and are terminated, as do messages delivered more than MaxDeliveries times.
package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/proof"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// Config configures a Dispatcher. Zero fields take the defaults below.
type Config struct {
	// Stream captures alerts; created or updated at start. Default SOAR_ALERTS.
	Stream string
	// Subjects the stream captures. Default alerts.> and falco.> (where
	// Falcosidekick's NATS output publishes).
	Subjects []string
	// Consumer is the durable consumer all dispatchers share. Default soar-dispatch.
	Consumer string
	// DeadLetterStream keeps dead letters. Default SOAR_DEADLETTER.
	DeadLetterStream string
	// DeadLetterPrefix is the subject prefix of dead letters; the reason is
	// appended. Default soar.deadletter.
	DeadLetterPrefix string
	// Limits bound what the decoder accepts.
	Limits alert.Limits
	// Concurrency is how many alerts are dispatched at once. Default 32.
	Concurrency int
	// Namespace and TaskQueue locate the workflows in Temporal.
	Namespace string
	TaskQueue string
	// Identity names this dispatcher in Temporal's history.
	Identity string
	// Keys sign every incident start and alert signal: workers refuse
	// what carries no proof (internal/proof).
	Keys *proof.Keys
	// TemporalTimeout bounds one call to Temporal; on timeout the alert is
	// redelivered later. Default 10s.
	TemporalTimeout time.Duration
	// MaxTemporalPayload bounds the encoded workflow input plus alert signal.
	// Temporal rejects larger requests (2 MiB by default), so retrying them
	// would stall the consumer forever; they are dead-lettered instead.
	// Default 2 MiB less 64 KiB of headroom.
	MaxTemporalPayload int
	// MaxAckPending bounds the alerts in flight across all dispatchers
	// sharing the consumer. Coalesced alerts stay in flight until their
	// batch was accepted: up to CoalesceInterval plus the wait for a send
	// slot and one call to Temporal. When the limit is reached JetStream
	// stops delivering, and a new incident's alert waits in the stream
	// behind the others, so it must exceed the alert rate times that delay:
	// at 7,000 alerts/s and a Temporal that needs seconds per call under
	// the storm, tens of thousands. The dispatcher keeps about 100 bytes
	// per alert in flight. Default 65536.
	MaxAckPending int
	// CoalesceWindow is how long the alerts of an open incident wait for
	// others to travel with them in one signal. Default 100 ms; negative
	// turns coalescing off (every alert travels alone, as before soar 0.3).
	CoalesceWindow time.Duration
	// CoalesceInterval is the least time between two coalesced signals to
	// one incident: an incident that keeps receiving alerts gets one signal
	// per interval, however many alerts. Default 1s.
	CoalesceInterval time.Duration
	// CoalesceMaxSignalRate bounds the coalesced signals a second this
	// dispatcher sends when many incidents are busy: with more open batches
	// than CoalesceInterval allows at this rate, the interval stretches to
	// open batches / rate. Default 10.
	CoalesceMaxSignalRate float64
	// CoalesceMaxAlerts sends a batch before its window ends once it holds
	// this many alerts. Default 1000.
	CoalesceMaxAlerts int
	// CoalesceMaxBytes bounds one coalesced signal: its first and latest
	// alert each take at most half of it, and an alert larger than that
	// travels alone. Default 256 KiB.
	CoalesceMaxBytes int
	// BacklogWarnAge: when the oldest alert waiting in the stream is older,
	// the dispatcher logs a warning and /readyz reports it degraded.
	// Default 30s.
	BacklogWarnAge time.Duration
	// Replicas is the number of copies JetStream keeps of each stream: 1 for
	// a single server, 3 for a production cluster. Default 1.
	Replicas int
	// StreamMaxBytes bounds the alert stream on disk. When it is full,
	// JetStream refuses new alerts (the publisher gets an error and can
	// retry or buffer) rather than dropping any: undispatched alerts are
	// never deleted to make room. Default 1 GiB.
	StreamMaxBytes int64
	// DeadLetterMaxBytes bounds the dead-letter stream; when it is full,
	// its oldest dead letters are dropped to make room. Default 256 MiB.
	DeadLetterMaxBytes int64
	// Clusters says how an alert's cluster is found (ClusterIdentity).
	Clusters ClusterIdentity
	// ClusterSources are the clusters' own alert streams that the alert
	// stream sources from (ClusterSource); none for a single cluster or
	// when clusters publish to the hub directly.
	ClusterSources []ClusterSource
	// MaxDeliveries bounds how often an alert is delivered: one delivered
	// more often is dead-lettered (ReasonMaxDeliveries) instead of retried.
	// With the backoff capped at a minute, the default of 1000 waits out
	// about 16 hours of Temporal outage.
	MaxDeliveries int
	// Pods tell, per cluster (alert.Alert.Cluster, "" for alerts without
	// one), which pods exist. An alert that would open an incident for a
	// pod its cluster's index does not know goes through a narrow lane,
	// waiting its turn in memory, or beyond UnknownPodMaxWaiting deferred
	// through JetStream (triage.go), so that a flood of alerts for pods
	// that do not exist does not hold back real pods' alerts. Clusters
	// without an index are not triaged.
	Pods map[string]PodIndex
	// UnknownPodConcurrency is how many alerts for pods the index does not
	// know may be opening incidents at once. Default 8.
	UnknownPodConcurrency int
	// UnknownPodMaxWaiting bounds the alerts for unknown pods that wait in
	// memory for their lane; more are parked (park.go). Default 4096 (and
	// 32 MiB of alerts).
	UnknownPodMaxWaiting int
	// ParkedStream keeps alerts for unknown pods beyond
	// UnknownPodMaxWaiting, published to ParkedSubject and pulled through
	// ParkedConsumer (park.go). Defaults SOAR_PARKED, soar.parked.alerts,
	// soar-dispatch-parked.
	ParkedStream   string
	ParkedSubject  string
	ParkedConsumer string
	// ParkedMaxBytes bounds the parked stream; when it is full, alerts are
	// deferred instead. Default 256 MiB.
	ParkedMaxBytes int64
}

// Defaults.
const (
	DefaultStream           = "SOAR_ALERTS"
	DefaultConsumer         = "soar-dispatch"
	DefaultDeadLetterStream = "SOAR_DEADLETTER"
	DefaultDeadLetterPrefix = "soar.deadletter"
	DefaultConcurrency      = 32
	DefaultMaxAckPending    = 65536
	DefaultMaxDeliveries    = 1000

	DefaultStreamMaxBytes     = 1 << 30
	DefaultDeadLetterMaxBytes = 256 << 20
	DefaultBacklogWarnAge     = 30 * time.Second
)

// DefaultSubjects are the subjects the alert stream captures.
//
// They do not include ClusterSubjectPrefix: only the stream's cluster
// sources (ClusterSource) write there, so no publisher can claim a cluster
// by its subject.
func DefaultSubjects() []string { return []string{"alerts.>", "falco.>"} }

// Dead-letter message headers.
const (
	HeaderReason          = "Soar-Reason"
	HeaderError           = "Soar-Error"
	HeaderOriginalSubject = "Soar-Original-Subject"
	HeaderOriginalSeq     = "Soar-Original-Sequence"
	// HeaderTruncatedFrom is set, to the original length in bytes, when the
	// original did not fit in a dead letter and the body holds its beginning.
	HeaderTruncatedFrom = "Soar-Truncated-From"
)

func (c *Config) setDefaults() {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if len(c.Subjects) == 0 {
		c.Subjects = DefaultSubjects()
	}
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer
	}
	if c.DeadLetterStream == "" {
		c.DeadLetterStream = DefaultDeadLetterStream
	}
	if c.DeadLetterPrefix == "" {
		c.DeadLetterPrefix = DefaultDeadLetterPrefix
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.TaskQueue == "" {
		c.TaskQueue = "soar"
	}
	if c.Identity == "" {
		c.Identity = "soar-dispatch"
	}
	if c.TemporalTimeout <= 0 {
		c.TemporalTimeout = 10 * time.Second
	}
	if c.MaxTemporalPayload <= 0 {
		c.MaxTemporalPayload = 2<<20 - 64<<10
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.CoalesceWindow == 0 {
		c.CoalesceWindow = DefaultCoalesceWindow
	}
	if c.CoalesceInterval <= 0 {
		c.CoalesceInterval = DefaultCoalesceInterval
	}
	if c.CoalesceMaxSignalRate <= 0 {
		c.CoalesceMaxSignalRate = DefaultCoalesceMaxRate
	}
	if c.CoalesceMaxAlerts <= 0 {
		c.CoalesceMaxAlerts = DefaultCoalesceMaxAlerts
	}
	if c.CoalesceMaxBytes <= 0 {
		c.CoalesceMaxBytes = DefaultCoalesceMaxBytes
	}
	if c.BacklogWarnAge <= 0 {
		c.BacklogWarnAge = DefaultBacklogWarnAge
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.StreamMaxBytes <= 0 {
		c.StreamMaxBytes = DefaultStreamMaxBytes
	}
	if c.DeadLetterMaxBytes <= 0 {
		c.DeadLetterMaxBytes = DefaultDeadLetterMaxBytes
	}
	if c.MaxDeliveries <= 0 {
		c.MaxDeliveries = DefaultMaxDeliveries
	}
	if c.UnknownPodConcurrency <= 0 {
		c.UnknownPodConcurrency = DefaultUnknownPodConcurrency
	}
	if c.UnknownPodMaxWaiting <= 0 {
		c.UnknownPodMaxWaiting = DefaultUnknownPodMaxWaiting
	}
	if c.ParkedStream == "" {
		c.ParkedStream = DefaultParkedStream
	}
	if c.ParkedSubject == "" {
		c.ParkedSubject = DefaultParkedSubject
	}
	if c.ParkedConsumer == "" {
		c.ParkedConsumer = DefaultParkedConsumer
	}
	if c.ParkedMaxBytes <= 0 {
		c.ParkedMaxBytes = DefaultParkedMaxBytes
	}
}

// Dead-letter reasons of alerts that decode but cannot be dispatched.
const (
	// ReasonTooLargeForTemporal: the incident's input would exceed
	// Config.MaxTemporalPayload.
	ReasonTooLargeForTemporal alert.Reason = "too_large_for_temporal"
	// ReasonRefusedByTemporal: Temporal refused this alert's request as
	// invalid (InvalidArgument: a search attribute value over its size
	// limit, a workflow past its signal limit) on permanentAfter deliveries
	// while it accepted other requests.
	ReasonRefusedByTemporal alert.Reason = "refused_by_temporal"
	// ReasonMaxDeliveries: the alert was delivered Config.MaxDeliveries
	// times without being dispatched.
	ReasonMaxDeliveries alert.Reason = "max_deliveries"
)

// permanentAfter is how many deliveries Temporal must refuse an alert as
// invalid, while accepting others, before it is dead-lettered.
const permanentAfter = 3

// PlaybookSource returns the playbooks in force; it may change between calls
// when playbooks are reloaded.
type PlaybookSource interface {
	Current() *playbooks.Set
}

// Dispatcher consumes alerts and starts or signals incident workflows.
type Dispatcher struct {
	cfg       Config
	js        jetstream.JetStream
	temporal  client.Client
	playbooks PlaybookSource
	metrics   *metrics.Metrics
	log       zerolog.Logger
	// strippedLog says at most once a minute that alerts came without
	// their bodies (stripped). headersOnlyAt is when a consumer of this
	// dispatcher's was last seen delivering headers only, headersOnlyRead
	// when stripped last read one (unix nanoseconds).
	strippedLog     zerolog.Logger
	headersOnlyAt   atomic.Int64
	headersOnlyRead atomic.Int64

	co *coalescer
	// life is the alert stream's current life (see streamLife): its epoch
	// and the acknowledgement floor last read for it.
	life    atomic.Pointer[streamLife]
	backlog atomic.Pointer[Backlog]
	// lastAccepted is when Temporal last accepted a request, in Unix
	// nanoseconds.
	lastAccepted atomic.Int64
	// unknownLane holds a token for each alert for an unknown pod being
	// dispatched (triage.go); nil without pod indexes. unknownWaiting
	// counts the alerts waiting for a token.
	unknownLane    chan struct{}
	unknownWaiting waitRoom
	// parkedHint is how many parked alerts this dispatcher believes wait:
	// read from the stream every second, raised by its own parking.
	parkedHint atomic.Int64
	// deadLettersSealedLog is when the sealed dead-letter stream was last
	// named (UnixNano).
	deadLettersSealedLog atomic.Int64
	// consumedAgain is when Run last created its consumer again
	// (consumeAgain); only Run's goroutine uses it.
	consumedAgain time.Time
	// gone remembers since when each deleted stream of soar's is gone
	// (createDeleted).
	gone goneStreams
}

// New returns a Dispatcher. Call EnsureStreams before Run.
func New(js jetstream.JetStream, tc client.Client, pb PlaybookSource, m *metrics.Metrics, log zerolog.Logger, cfg Config) *Dispatcher {
	cfg.setDefaults()
	d := &Dispatcher{cfg: cfg, js: js, temporal: tc, playbooks: pb, metrics: m, log: log, co: newCoalescer(cfg.Concurrency),
		strippedLog: log.Sample(&zerolog.BurstSampler{Burst: 1, Period: time.Minute})}
	if len(cfg.Pods) > 0 {
		d.unknownLane = make(chan struct{}, cfg.UnknownPodConcurrency)
		d.unknownWaiting.maxN = cfg.UnknownPodMaxWaiting
	}
	return d
}

// streamLife is one life of the alert stream, from its creation to its
// deletion. A stream created again numbers its messages from 1 again, so
// the incidents tell its sequences from those of earlier lives by the
// epoch, its creation time; the floor is the highest acknowledgement
// floor read for it (see workflows.Deliveries). A message belongs to the
// life during which the consumer that delivered it was created: Run
// begins one, and consumeAgain another when the stream it finds was
// created since. Sending a new life's sequences with an earlier life's
// floor would make every incident take them as counted already: a new
// incident would never see its first alert, and never act.
type streamLife struct {
	epoch string
	floor atomic.Uint64
}

// raise raises the floor to f; it never falls within a life.
func (l *streamLife) raise(f uint64) {
	for {
		old := l.floor.Load()
		if f <= old || l.floor.CompareAndSwap(old, f) {
			return
		}
	}
}

// noLife is the life before the first read of the backlog: one for all,
// so that messages handled then share their batches.
var noLife = &streamLife{}

// currentLife is the life messages delivered now belong to.
func (d *Dispatcher) currentLife() *streamLife {
	if l := d.life.Load(); l != nil {
		return l
	}
	return noLife
}

func (d *Dispatcher) epoch() string { return d.currentLife().epoch }

func (d *Dispatcher) floor() uint64 { return d.currentLife().floor.Load() }

// alertDuplicates is the alert stream's duplicate window.
const alertDuplicates = 2 * time.Minute

// EnsureStreams creates or updates the alert stream, the dead-letter stream
// and the durable consumer. It is safe to call from every dispatcher at start.
func (d *Dispatcher) EnsureStreams(ctx context.Context) error {
	if err := d.ensureAlertStream(ctx); err != nil {
		return err
	}
	if err := d.ensureStream(ctx, d.deadLetterStreamConfig()); err != nil {
		return err
	}
	if err := d.ensureConsumer(ctx, d.cfg.Stream, d.consumerConfig()); err != nil {
		return err
	}
	// Every dispatcher reads the parked stream for the floor, with a pod
	// index or without (park.go).
	return d.ensureParked(ctx)
}

// ensureAlertStream creates or updates the alert stream.
func (d *Dispatcher) ensureAlertStream(ctx context.Context) error {
	sources, err := d.alertSources(ctx)
	if err != nil {
		return err
	}
	// Work-queue retention deletes an alert once it is acknowledged and keeps
	// it, however long, until then: undispatched alerts survive any outage.
	return d.ensureStream(ctx, jetstream.StreamConfig{
		Name:        d.cfg.Stream,
		Description: "Security alerts waiting for soar's dispatcher",
		Subjects:    d.cfg.Subjects,
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    d.cfg.Replicas,
		// Publishers that set Nats-Msg-Id get transport duplicates removed.
		Duplicates: alertDuplicates,
		// Full means full: new alerts are refused, none is dropped.
		MaxBytes: d.cfg.StreamMaxBytes,
		Discard:  jetstream.DiscardNew,
		Sources:  sources,
	})
}

// ensureParked creates or updates the parked stream and its consumer.
func (d *Dispatcher) ensureParked(ctx context.Context) error {
	if err := d.ensureStream(ctx, jetstream.StreamConfig{
		Name:        d.cfg.ParkedStream,
		Description: "Alerts for pods the pod index does not know, waiting for their lane (moved from " + d.cfg.Stream + ")",
		Subjects:    []string{d.cfg.ParkedSubject},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    d.cfg.Replicas,
		// Longer than the ack wait: an original delivered again after it
		// was parked is parked once.
		Duplicates: 2 * time.Minute,
		MaxBytes:   d.cfg.ParkedMaxBytes,
		Discard:    jetstream.DiscardNew,
	}); err != nil {
		return err
	}
	return d.ensureConsumer(ctx, d.cfg.ParkedStream, parkedConsumerConfig(d.cfg.ParkedConsumer))
}

// deadLetterStreamConfig is the dead-letter stream's configuration.
func (d *Dispatcher) deadLetterStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        d.cfg.DeadLetterStream,
		Description: "Alert messages soar could not decode, with the reason in the Soar-Reason header",
		Subjects:    []string{d.cfg.DeadLetterPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    d.cfg.Replicas,
		MaxAge:      30 * 24 * time.Hour,
		Duplicates:  2 * time.Minute,
		MaxBytes:    d.cfg.DeadLetterMaxBytes,
		// Full, it drops its oldest: were it to refuse new dead letters,
		// each poison alert would be retried in the alert consumer's ack
		// pending, and a flood of them (after enough to fill this stream)
		// would stop JetStream delivering any alert. Dead letters are a
		// record of bad input, kept 30 days or this many bytes.
		Discard: jetstream.DiscardOld,
	}
}

// errUnchangeableStream: one of soar's streams has settings no update can
// take back (unchangeableStream). Only its owner can mend it. Its text is
// the package's prefix, so that the message reads as the others.
var errUnchangeableStream = errors.New("dispatch")

// ensureStream creates or updates one of soar's streams. Of an existing
// stream it keeps denied deletes and purges, which nobody can take back
// and which take nothing from soar (it neither deletes nor purges
// messages): an operator may deny both to keep the record, and before,
// every dispatcher's start failed on them for good. A retention, a
// storage or a seal that differs from soar's cannot be taken back either
// (unchangeableStream); for those it says what to do instead of deleting
// a stream that may hold alerts.
func (d *Dispatcher) ensureStream(ctx context.Context, want jetstream.StreamConfig) error {
	s, err := d.js.Stream(ctx, want.Name)
	switch {
	case err == nil:
		have := s.CachedInfo().Config
		want.DenyDelete, want.DenyPurge = have.DenyDelete, have.DenyPurge
		if settings := unchangeableStream(have, want); len(settings) > 0 {
			return fmt.Errorf("%w: stream %s has settings no update can take back (%s): somebody changed it, or deleted it and created it again so. "+
				"soar does not delete a stream that may hold alerts: save what it holds if it matters (nats stream backup %s DIR), delete it (nats stream rm %s) and start again, which creates soar's",
				errUnchangeableStream, want.Name, strings.Join(settings, ", "), want.Name, want.Name)
		}
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("dispatch: stream %s: %w", want.Name, err)
	}
	created, cerr := d.js.CreateOrUpdateStream(ctx, want)
	if cerr != nil {
		return fmt.Errorf("dispatch: create or update stream %s: %w", want.Name, cerr)
	}
	if err != nil && openedDeleted(created.CachedInfo()) {
		// Created on the files of a stream deleted a moment ago, which
		// its deletion takes away (recreate.go): unusable.
		if derr := d.js.DeleteStream(ctx, want.Name); derr != nil && !errors.Is(derr, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("dispatch: stream %s %w: %w", want.Name, errOpenedDeleted, derr)
		}
		return fmt.Errorf("dispatch: stream %s %w", want.Name, errOpenedDeleted)
	}
	return nil
}

// ensureConsumer creates or updates one of soar's consumers. Somebody who
// may use the account's JetStream API can delete it and create it again
// with settings that no update can change (unchangeable): every
// dispatcher's start would then fail for good, and a push consumer would
// hand the alerts to a subject of theirs. ensureConsumer deletes such a
// consumer and creates soar's. Both streams are work queues, so nothing
// is lost with it: a new consumer delivers every alert not yet
// acknowledged, and those a dispatcher held join their incidents again.
func (d *Dispatcher) ensureConsumer(ctx context.Context, stream string, want jetstream.ConsumerConfig) error {
	_, err := d.js.CreateOrUpdateConsumer(ctx, stream, want)
	if err == nil {
		return nil
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeConsumerCreate {
		if have, ierr := d.consumerInfo(ctx, stream, want.Durable); ierr == nil {
			if settings := unchangeable(have.Config, want); len(settings) > 0 {
				err = d.js.DeleteConsumer(ctx, stream, want.Durable)
				if err == nil || errors.Is(err, jetstream.ErrConsumerNotFound) {
					_, err = d.js.CreateOrUpdateConsumer(ctx, stream, want)
				}
				if err == nil {
					d.metrics.ConsumerSettingsRestored.WithLabelValues(want.Durable).Inc()
					d.log.Error().Str("consumer", want.Durable).Strs("settings", settings).
						Msg("a consumer of soar's had settings no update can change; deleted it and created soar's")
					return nil
				}
			}
		}
	}
	return fmt.Errorf("dispatch: create or update consumer %s: %w", want.Durable, err)
}

// consumerInfo reads a consumer of soar's, pull or push.
func (d *Dispatcher) consumerInfo(ctx context.Context, stream, consumer string) (*jetstream.ConsumerInfo, error) {
	c, err := d.js.Consumer(ctx, stream, consumer)
	if err == nil {
		return c.CachedInfo(), nil
	}
	if !errors.Is(err, jetstream.ErrNotPullConsumer) {
		return nil, err
	}
	p, err := d.js.PushConsumer(ctx, stream, consumer)
	if err != nil {
		return nil, err
	}
	return p.CachedInfo(), nil
}

// alertSources are the sources the alert stream gets: those of
// Config.ClusterSources, or, when it names none, those the stream already
// has. A dispatcher started without --cluster-source (a forgotten flag, a
// soar dev on the hub) thus never cuts the clusters off; sources are
// removed with the nats CLI (docs/multi-cluster-intake.md).
func (d *Dispatcher) alertSources(ctx context.Context) ([]*jetstream.StreamSource, error) {
	if err := ValidateClusterSources(d.cfg.ClusterSources); err != nil {
		return nil, fmt.Errorf("dispatch: cluster sources: %w", err)
	}
	if len(d.cfg.ClusterSources) > 0 {
		return streamSources(d.cfg.ClusterSources), nil
	}
	s, err := d.js.Stream(ctx, d.cfg.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("dispatch: read stream %s: %w", d.cfg.Stream, err)
	}
	kept := s.CachedInfo().Config.Sources
	if len(kept) > 0 {
		d.log.Info().Int("sources", len(kept)).Str("stream", d.cfg.Stream).Msg("no --cluster-source: the alert stream keeps the cluster sources it has")
	}
	return kept, nil
}

func (d *Dispatcher) consumerConfig() jetstream.ConsumerConfig {
	return alertConsumerConfig(d.cfg.Consumer, d.cfg.MaxAckPending)
}

// consumerAckWait is how long a dispatcher may hold an alert before
// JetStream delivers it again, on both of soar's consumers.
const consumerAckWait = 30 * time.Second

// alertConsumerConfig is the configuration of the alert consumer. Of its
// settings only maxAckPending comes from a flag; altered (backlog.go)
// holds the consumer to the others.
func alertConsumerConfig(durable string, maxAckPending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:     durable,
		Description: "soar dispatchers: alerts to incidents",
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     consumerAckWait,
		MaxDeliver:  -1, // never give up on an alert; failures are retried with backoff
		// One value for the consumer, shared by every dispatcher: it must not
		// depend on which dispatcher started last.
		MaxAckPending: maxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// parkedConsumerConfig is the configuration of the parked alerts'
// consumer (park.go); no flag sets any of it.
func parkedConsumerConfig(durable string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "soar dispatchers: parked alerts for pods the pod index does not know",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       consumerAckWait,
		MaxDeliver:    -1,
		MaxAckPending: 4096,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// pullBuffer is how many messages the client keeps ready. Coalescing makes
// handling one cheap, so the buffer, not Temporal, sets the pace; a count
// rather than bytes, so that dispatchers sharing the consumer share its
// messages too.
const pullBuffer = 512

// pullRequestBytes bounds each pull request, so that the buffer holds
// about two requests' worth, not 512 alerts of the largest size (512 MiB,
// the dispatcher's whole memory limit). It is at least two of the largest
// alerts, or the consumer would stall on one.
func (d *Dispatcher) pullRequestBytes() int {
	return max(8<<20, 2*d.cfg.Limits.MaxBytes)
}

// handBackDelay is how long an alert a stopping dispatcher gives back
// waits before the next dispatcher gets it.
const handBackDelay = time.Second

// drainTimeout bounds how long in-flight alerts may finish after Run's context
// ends; what does not finish is redelivered to another dispatcher.
const drainTimeout = 10 * time.Second

// Run dispatches alerts until ctx ends, then lets in-flight alerts finish.
func (d *Dispatcher) Run(ctx context.Context) error {
	// The pull ends with ctx or with its consumer (deleted, or the
	// connection closed for good); either way the backlog's watch and the
	// parked alerts' pull end with it, or the drain below would wait for
	// them for ever.
	ctx, endRun := context.WithCancel(ctx)
	defer endRun()
	// Sequences mean something to the incidents only with the stream's
	// epoch and floor: read them before the first alert. The read also
	// puts back what somebody changed on the consumer, before the pull
	// below takes its settings (a priority group would refuse it).
	if err := d.observe(ctx); err != nil {
		return err
	}
	cons, err := d.js.Consumer(ctx, d.cfg.Stream, d.cfg.Consumer)
	if err != nil {
		return fmt.Errorf("dispatch: consumer %s: %w", d.cfg.Consumer, err)
	}
	// The stream the consumer belongs to, should it have been created
	// again since the read above.
	if err := d.beginLife(ctx); err != nil {
		return fmt.Errorf("dispatch: stream %s: %w", d.cfg.Stream, err)
	}
	go d.watchBacklog(ctx)

	// In-flight alerts get their own context so that a shutdown lets them
	// reach Temporal instead of failing them all at once.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	if d.unknownLane != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d.runParked(ctx, work, &wg) }()
	}
	sem := make(chan struct{}, d.cfg.Concurrency)
	// The pull (pull) gives handler one alert at a time; it holds the next
	// ones back while every slot is busy.
	handler := func(msg jetstream.Msg) {
		// Here, not in the goroutine below: consumeAgain begins the next
		// life only after the last call of the previous pull's handler.
		life := d.currentLife()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			// Shutting down: hand it back rather than let it wait out the
			// ack wait. Not at once: until Stop below takes effect, the
			// server would deliver it straight back to this handler (seen:
			// 431 times in a row).
			_ = msg.NakWithDelay(handBackDelay)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			free := func() { once.Do(func() { <-sem }) }
			defer free()
			d.handle(work, msg, life, free)
		}()
	}
	cc, refused, err := d.pull(cons, handler)
	if err != nil {
		return err
	}
	d.log.Info().Str("stream", d.cfg.Stream).Str("consumer", d.cfg.Consumer).Int("concurrency", d.cfg.Concurrency).Msg("dispatcher started")
	for {
		select {
		case <-ctx.Done():
		case <-cc.Closed():
			again := d.consumeAgain
			if refused.Load() {
				again = d.pullAgain
			}
			if next, r, ok := again(ctx, handler); ok {
				cc, refused = next, r
				continue
			}
			if ctx.Err() == nil {
				// The consumer could not be created or pulled again (a
				// stream soar cannot use in the alert stream's place, or
				// the connection closed for good).
				d.log.Error().Str("consumer", d.cfg.Consumer).Msg("the alert consumer stopped; dispatcher stopping")
			}
		}
		break
	}
	endRun()
	cc.Stop()
	// Closed once the handler has returned for the last time, so that no
	// alert is added to wg after the wait below began.
	<-cc.Closed()
	done := make(chan struct{})
	go func() { wg.Wait(); d.flushAll(work); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		cancelWork()
		<-done
	}
	d.log.Info().Msg("dispatcher stopped")
	return nil
}

// pull starts the pull that feeds handler. Refused reports whether the
// server refused one of its requests (400 Bad Request), which ends it for
// good while the consumer lives on.
//
// Consume, not Messages: Messages buffers in a channel as long as the
// pull, shared with the server's status notes ("409 Batch Completed"
// after every request), so a full buffer dropped either that note or the
// last alert of the next pull, which then came back only after the ack
// wait, 30 s late (the dispatch tests caught it once in a few runs after a
// burst). Consume queues both without a limit of its own; the pull
// (pullBuffer alerts, pullRequestBytes) still bounds what waits. The
// handler runs one message at a time and holds the next ones back while
// every slot is busy, as the loop over Messages did.
func (d *Dispatcher) pull(cons jetstream.Consumer, handler jetstream.MessageHandler) (jetstream.ConsumeContext, *atomic.Bool, error) {
	refused := new(atomic.Bool)
	cc, err := cons.Consume(handler,
		jetstream.PullMaxMessagesWithBytesLimit(pullBuffer, d.pullRequestBytes()),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) {
				return // the end of the pull, logged by Run
			}
			if errors.Is(err, jetstream.ErrBadRequest) {
				refused.Store(true)
			}
			d.log.Warn().Err(err).Msg("pull from alert stream failed; retrying")
		}),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("dispatch: pull from %s: %w", d.cfg.Consumer, err)
	}
	return cc, refused, nil
}

// pullAgain makes the alert pull again after the server refused one of its
// requests, which ended it (pull): somebody gave the consumer a priority
// group or limits on pulls. The next read of the backlog puts those back
// (observe); pulling again at once would only be refused again, and
// stopping instead would stop every dispatcher together. A consumer deleted
// meanwhile is created again (consumeAgain). It reports false once ctx ends
// or the pull cannot be made again.
func (d *Dispatcher) pullAgain(ctx context.Context, handler jetstream.MessageHandler) (jetstream.ConsumeContext, *atomic.Bool, bool) {
	d.log.Warn().Str("consumer", d.cfg.Consumer).Msg("the alert pull was refused and ended; pulling again")
	for {
		select {
		case <-ctx.Done():
			return nil, nil, false
		case <-time.After(backlogEvery):
		}
		// A fresh handle: Consume checks the consumer's priority groups
		// as the handle last read them.
		cons, err := d.js.Consumer(ctx, d.cfg.Stream, d.cfg.Consumer)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrNotPullConsumer) {
			return d.consumeAgain(ctx, handler) // deleted meanwhile
		}
		if err == nil {
			var cc jetstream.ConsumeContext
			var refused *atomic.Bool
			if cc, refused, err = d.pull(cons, handler); err == nil {
				return cc, refused, true
			}
			if errors.Is(err, jetstream.ErrInvalidOption) {
				continue // it still has a priority group: not yet put back
			}
		}
		if ctx.Err() == nil {
			d.log.Error().Err(err).Str("consumer", d.cfg.Consumer).Msg("the alert pull could not be made again")
		}
		return nil, nil, false
	}
}

// consumeAgain creates the alert consumer again after its pull ended while
// ctx lives and no request was refused: somebody deleted the consumer, or
// deleted it and created another in its place (a push consumer handing the
// alerts to a subject of theirs, or settings no update can change), which
// ensureConsumer replaces; or somebody deleted the alert stream, and the
// consumer with it, and both are created again. Stopping instead stopped
// every dispatcher at once, and a few deletions in a row left their
// restarts in a supervisor's back-off (Kubernetes': up to five minutes)
// with every alert waiting. A deleted consumer loses nothing: a new one on
// the work queue delivers every alert not yet acknowledged, and those this
// dispatcher holds join their incidents again. A deleted stream loses what
// it held, as it would with any restart; the alerts published after it was
// created again begin the stream's next life (beginLife).
//
// Each try waits a backlog read since the last, so that deletions in a loop
// cost the server a creation a second. A creation the server refuses for a
// moment (right after a deletion, a busy server answers "error creating
// store for consumer") is tried again for consumeAgainFor. It reports false
// once ctx ends, or when the consumer cannot be created or pulled: a stream
// somebody created in the alert stream's place has settings no update can
// take back (memory storage, another retention), the connection closed for
// good, or the tries ran out. Then Run stops, and the restart creates what
// it can or says what to do.
func (d *Dispatcher) consumeAgain(ctx context.Context, handler jetstream.MessageHandler) (jetstream.ConsumeContext, *atomic.Bool, bool) {
	giveUp := time.Now().Add(consumeAgainFor)
	for {
		if wait := backlogEvery - time.Since(d.consumedAgain); wait > 0 {
			select {
			case <-ctx.Done():
				return nil, nil, false
			case <-time.After(wait):
			}
		}
		if ctx.Err() != nil {
			return nil, nil, false
		}
		d.consumedAgain = time.Now()
		cc, refused, err := d.createAndPull(ctx, handler)
		switch {
		case err == nil:
			return cc, refused, true
		case ctx.Err() != nil:
			return nil, nil, false
		case errors.Is(err, errUnchangeableStream), errors.Is(err, nats.ErrConnectionClosed), time.Now().After(giveUp):
			d.log.Error().Err(err).Str("consumer", d.cfg.Consumer).Msg("the alert consumer could not be created again")
			return nil, nil, false
		}
		d.log.Warn().Err(err).Str("consumer", d.cfg.Consumer).Msg("the alert consumer could not be created again yet; trying again")
	}
}

// consumeAgainFor is how long consumeAgain tries to create the alert
// consumer again before Run stops.
const consumeAgainFor = 30 * time.Second

// createAndPull is one try of consumeAgain: create the alert stream again
// if it is gone, create or replace the alert consumer, and pull from it.
func (d *Dispatcher) createAndPull(ctx context.Context, handler jetstream.MessageHandler) (jetstream.ConsumeContext, *atomic.Bool, error) {
	want := d.consumerConfig()
	_, gone := d.js.Consumer(ctx, d.cfg.Stream, d.cfg.Consumer)
	deleted := errors.Is(gone, jetstream.ErrConsumerNotFound) || errors.Is(gone, jetstream.ErrStreamNotFound)
	// The stream too may have been deleted, and created again by somebody
	// else: ensureAlertStream does what a start would, creating it when it
	// is gone (what it held is lost with it; what is published from now on
	// is not) and refusing one created in its place with settings no update
	// can take back. The other streams are observe's: a sealed dead-letter
	// stream, which a start refuses, must not stop a running dispatcher.
	var err error
	switch {
	case errors.Is(gone, jetstream.ErrStreamNotFound):
		err = d.createDeleted(ctx, d.cfg.Stream, d.ensureAlertStream)
	case deleted:
		d.gone.present(d.cfg.Stream) // created again by somebody else
		err = d.ensureAlertStream(ctx)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := d.ensureConsumer(ctx, d.cfg.Stream, want); err != nil {
		return nil, nil, err
	}
	if deleted {
		d.metrics.ConsumerSettingsRestored.WithLabelValues(want.Durable).Inc()
		d.log.Error().Str("consumer", want.Durable).Msg("a consumer of soar's was deleted; created it again")
	}
	cons, err := d.js.Consumer(ctx, d.cfg.Stream, d.cfg.Consumer)
	if err != nil {
		return nil, nil, err
	}
	if err := d.beginLife(ctx); err != nil {
		return nil, nil, err
	}
	return d.pull(cons, handler)
}

// beginLife begins the alert stream's next life (streamLife) when the
// stream was created since the current one began: somebody deleted it
// and created it again, or another dispatcher's start did. Its floor
// starts at 0, always safe, until the next read of the backlog raises it.
// Called before the pull from a new consumer starts, so that every
// message the new consumer delivers carries the new epoch and floor.
func (d *Dispatcher) beginLife(ctx context.Context) error {
	s, err := d.js.Stream(ctx, d.cfg.Stream)
	if err != nil {
		return err
	}
	epoch := epochOf(s.CachedInfo().Created)
	prev := d.life.Load()
	if prev != nil && prev.epoch == epoch {
		return nil
	}
	d.life.Store(&streamLife{epoch: epoch})
	if prev != nil {
		d.log.Warn().Str("stream", d.cfg.Stream).Time("created", s.CachedInfo().Created.UTC()).Str("epoch", epoch).Str("previous_epoch", prev.epoch).Uint64("previous_floor", prev.floor.Load()).
			Msg("the alert stream was created again: its sequences start afresh, and incidents count them apart from the earlier ones")
	}
	return nil
}

// Handle dispatches one message: dead-letter it, drop it (no playbook
// matched), or start or signal one workflow per matching playbook, then
// acknowledge it. Any failure to reach NATS or Temporal leaves the message
// for redelivery with backoff. Handle never panics on message content.
func (d *Dispatcher) Handle(ctx context.Context, msg jetstream.Msg) {
	d.handle(ctx, msg, d.currentLife(), func() {})
}

// handle is Handle for Run, which gives it a slot among Config.Concurrency
// and free to give it back early (triage.go: an alert that waits for its
// lane does not hold a slot other alerts need).
func (d *Dispatcher) handle(ctx context.Context, msg jetstream.Msg, life *streamLife, free func()) {
	d.metrics.AlertsReceived.Inc()
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to acknowledge or redeliver.
		d.log.Error().Err(err).Str("subject", msg.Subject()).Msg("message without JetStream metadata ignored")
		return
	}
	log := d.log.With().Str("subject", msg.Subject()).Uint64("stream_seq", meta.Sequence.Stream).Logger()
	if meta.NumDelivered > uint64(d.cfg.MaxDeliveries) {
		d.deadLetterWithReason(ctx, msg, meta, ReasonMaxDeliveries,
			fmt.Errorf("dispatch: delivered %d times without being dispatched (--max-deliveries %d)", meta.NumDelivered, d.cfg.MaxDeliveries), log)
		return
	}
	if d.stripped(ctx, msg, meta) {
		return
	}

	a, matches, ok := d.decodeAndMatch(ctx, msg, meta, log)
	if !ok {
		return
	}
	log = log.With().Str("alert_id", a.ID).Str("rule", a.Rule).Logger()

	allKnown, claims := d.co.claim(matches)
	if allKnown && meta.NumDelivered <= maxCoalescedDeliveries && d.coalescible(a, len(msg.Data())) {
		d.enqueue(ctx, matches, a, &inflight{
			life:      life,
			reply:     msg.Reply(),
			seq:       meta.Sequence.Stream,
			delivered: meta.NumDelivered,
			published: meta.Timestamp,
		})
		return
	}
	release, deferred := d.triage(ctx, a, msg, meta, life, free, log)
	if deferred {
		d.co.settle(claims, nil)
		return
	}
	defer release()
	d.alone(ctx, msg, meta, a, matches, claims, d.deliveries(life, meta.Sequence.Stream), log)
}

// strippedRetries is how often an alert that came without its body
// (stripped) is asked for again before it goes the way of any empty
// message: a dead letter.
const strippedRetries = 5

// headersOnlyWindow is how long after a dispatcher last saw one of its
// consumers deliver headers only it takes an empty message with the size
// header for a stripped alert without asking the server again.
const headersOnlyWindow = 5 * time.Second

// stripped reports whether msg came without its body because its consumer
// delivers headers only, and if so asks JetStream for it again, a second
// later: the alert is whole in the stream, and nobody sets headers only on
// soar's consumers but somebody meddling, whose change observe puts back
// within a second. Dead-lettering it instead would delete it.
//
// A publisher can forge the size header on an empty message. Asking again
// for each of a flood of those would hold them in the consumer's ack
// pending until it stopped delivering, so an empty message counts as
// stripped only while the consumer delivers headers only, or did within
// headersOnlyWindow (as the backlog read saw it, or a read of the
// consumer made here at most once a second), and for strippedRetries
// deliveries at most.
func (d *Dispatcher) stripped(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) bool {
	if len(msg.Data()) > 0 || msg.Headers().Get(headersOnlySize) == "" || meta.NumDelivered >= strippedRetries {
		return false
	}
	if !d.headersOnlyLately(ctx, meta.Stream, meta.Consumer) {
		return false
	}
	d.strippedLog.Warn().Str("stream", meta.Stream).Uint64("stream_seq", meta.Sequence.Stream).Uint64("delivery", meta.NumDelivered).
		Msg("an alert came without its body (its consumer was set to deliver headers only); asked for it again")
	if err := msg.NakWithDelay(time.Second); err != nil {
		d.log.Warn().Err(err).Uint64("stream_seq", meta.Sequence.Stream).Msg("negative-acknowledge alert; it will be redelivered after the ack wait")
	}
	return true
}

// headersOnlyLately reports whether a consumer of this dispatcher's
// delivered headers only within headersOnlyWindow. Past the window it
// reads the consumer, at most once a second whatever the messages.
func (d *Dispatcher) headersOnlyLately(ctx context.Context, stream, consumer string) bool {
	now := time.Now()
	if now.Sub(time.Unix(0, d.headersOnlyAt.Load())) < headersOnlyWindow {
		return true
	}
	last := d.headersOnlyRead.Load()
	if now.Sub(time.Unix(0, last)) < time.Second || !d.headersOnlyRead.CompareAndSwap(last, now.UnixNano()) {
		return false
	}
	c, err := d.js.Consumer(ctx, stream, consumer)
	if err != nil || !c.CachedInfo().Config.HeadersOnly {
		return false
	}
	d.headersOnlyAt.Store(now.UnixNano())
	return true
}

// headersOnlySize is the header in which JetStream gives the size of the
// body it left out of a headers-only delivery.
const headersOnlySize = "Nats-Msg-Size"

// decodeAndMatch decodes msg's alert, names its cluster and matches it
// against the playbooks. It returns ok false when it has dealt with the
// message: dead-lettered it, or acknowledged it because no playbook
// matched.
func (d *Dispatcher) decodeAndMatch(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, log zerolog.Logger) (alert.Alert, []playbooks.Match, bool) {
	a, err := alert.Decode(msg.Data(), d.cfg.Limits)
	if err != nil {
		d.deadLetter(ctx, msg, meta, err, log)
		return a, nil, false
	}
	if err := d.cfg.Clusters.resolve(msg.Subject(), &a); err != nil {
		reason := alert.ReasonInvalidCluster
		if errors.Is(err, ErrUnknownCluster) {
			reason = alert.ReasonUnknownCluster
		}
		d.deadLetter(ctx, msg, meta, &alert.DecodeError{Reason: reason, Err: err}, log)
		return a, nil, false
	}
	if a.Time.IsZero() {
		a.Time = meta.Timestamp
	}
	log = log.With().Str("alert_id", a.ID).Str("rule", a.Rule).Logger()

	set := d.playbooks.Current()
	matches, errs := set.Match(a)
	for _, err := range errs {
		// One playbook failing on one alert is that alert's problem: it is
		// reported and the other playbooks still run.
		var pe *playbooks.MatchError
		name := "unknown"
		if errors.As(err, &pe) {
			name = pe.Playbook
		}
		d.metrics.PlaybookErrors.WithLabelValues(name).Inc()
		log.Warn().Err(err).Str("playbook", name).Msg("playbook failed on alert")
	}
	if len(matches) == 0 {
		d.metrics.AlertsUnmatched.Inc()
		log.Debug().Msg("alert matched no playbook")
		d.ack(msg, log)
		return a, nil, false
	}
	d.metrics.AlertsMatched.Inc()
	return a, matches, true
}

// maxCoalescedDeliveries: a message delivered more often than this travels
// alone, where every error is the message's own: a batch that keeps failing
// cannot hold its messages back for ever.
const maxCoalescedDeliveries = 2

func (d *Dispatcher) coalescible(a alert.Alert, n int) bool {
	return d.cfg.CoalesceWindow > 0 && coalescible(a, n, d.cfg.CoalesceMaxBytes)
}

// alone sends one message's alert to each of its incidents by itself, with
// SignalWithStart, then acknowledges it; claims are the incidents it opens
// as far as this dispatcher knows, whose followers wait for the outcome,
// and dl the message's identity.
func (d *Dispatcher) alone(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, a alert.Alert, matches []playbooks.Match, claims map[string]*incident, dl *workflows.Deliveries, log zerolog.Logger) {
	accepted := make(map[string]bool, len(matches))
	defer d.co.settle(claims, accepted)
	seq := meta.Sequence.Stream
	sig := workflows.AlertSignal{Alert: a, Count: 1, Deliveries: dl}
	deliveryID := meta.Stream + ":" + strconv.FormatUint(seq, 10)
	for i, m := range matches {
		if i > 0 {
			// Each match may take up to TemporalTimeout; keep the message from
			// being redelivered to another dispatcher meanwhile.
			_ = msg.InProgress()
		}
		wid := m.IncidentID()
		started, err := d.deliver(ctx, m, sig, claims[wid] != nil, requestID(deliveryID, wid))
		var tooLarge *payloadTooLargeError
		if errors.As(err, &tooLarge) {
			d.deadLetterWithReason(ctx, msg, meta, ReasonTooLargeForTemporal, err, log)
			return
		}
		if err != nil {
			if d.refusedForGood(err, meta) {
				d.deadLetterWithReason(ctx, msg, meta, ReasonRefusedByTemporal, err, log)
				return
			}
			d.retryLater(msg, meta, log.With().Str("playbook", m.Playbook.Name).Logger(), err)
			return
		}
		d.accepted()
		accepted[wid] = true
		if claims[wid] != nil {
			d.metrics.FastLaneLatency.Observe(time.Since(meta.Timestamp).Seconds())
		}
		var ev *zerolog.Event
		what := "incident opened"
		if started {
			d.metrics.WorkflowsStarted.WithLabelValues(m.Playbook.Name).Inc()
			ev = log.Info()
		} else {
			d.metrics.Signals.WithLabelValues(m.Playbook.Name).Inc()
			ev, what = log.Debug(), "alert joined incident"
		}
		if meta.NumDelivered > 1 {
			// Delivered again: the first delivery failed, was deferred, or
			// its acknowledgement never arrived within the ack wait.
			ev = ev.Uint64("delivery", meta.NumDelivered)
		}
		ev.Str("playbook", m.Playbook.Name).Str("incident_id", wid).Msg(what)
	}
	d.metrics.DispatchLatency.Observe(time.Since(meta.Timestamp).Seconds())
	d.ack(msg, log)
}

// deliver sends sig to the incident of m by itself and reports whether that
// started the incident. An incident this dispatcher believes new (fresh) is
// started with sig in its input, eagerly; one that is open after all, or
// any other, gets a SignalWithStart.
func (d *Dispatcher) deliver(ctx context.Context, m playbooks.Match, sig workflows.AlertSignal, fresh bool, requestID string) (bool, error) {
	if fresh {
		err := d.start(ctx, m, sig)
		if !errors.Is(err, errAlreadyOpen) {
			return err == nil, err
		}
	}
	return d.signalWithStart(ctx, m, sig, requestID)
}

// accepted records that Temporal accepted a request just now.
func (d *Dispatcher) accepted() { d.lastAccepted.Store(time.Now().UnixNano()) }

// refusedForGood reports whether err, Temporal's answer to a message
// delivered as described by meta, means the message can never be
// dispatched: Temporal called it invalid on permanentAfter deliveries while
// it accepted other requests in the last minute. An invalid-argument error
// that every request gets (search attributes not registered yet) is a
// misconfiguration, and the alerts wait for it to be fixed.
func (d *Dispatcher) refusedForGood(err error, meta *jetstream.MsgMetadata) bool {
	var invalid *serviceerror.InvalidArgument
	if !errors.As(err, &invalid) || meta.NumDelivered < permanentAfter {
		return false
	}
	return time.Since(time.Unix(0, d.lastAccepted.Load())) < time.Minute
}

func (d *Dispatcher) ack(msg jetstream.Msg, log zerolog.Logger) {
	// A lost acknowledgement only means a redelivery, which the delivery ID
	// makes harmless.
	if err := msg.Ack(); err != nil {
		log.Warn().Err(err).Msg("acknowledge alert")
	}
}

// retryLater asks JetStream to redeliver the message after a backoff that
// grows with each delivery: 1s, 2s, 4s … capped at one minute.
func (d *Dispatcher) retryLater(msg jetstream.Msg, meta *jetstream.MsgMetadata, log zerolog.Logger, cause error) {
	d.metrics.DispatchErrors.Inc()
	delay := Backoff(meta.NumDelivered)
	log.Error().Err(cause).Uint64("delivery", meta.NumDelivered).Dur("retry_in", delay).Msg("dispatch failed; alert will be redelivered")
	if err := msg.NakWithDelay(delay); err != nil {
		log.Warn().Err(err).Msg("negative-acknowledge alert; it will be redelivered after the ack wait")
	}
}

// Backoff is the redelivery delay after the nth failed delivery.
func Backoff(delivery uint64) time.Duration {
	const maxDelay = time.Minute
	if delivery == 0 {
		delivery = 1
	}
	if delivery > 7 {
		return maxDelay
	}
	return min(time.Second<<(delivery-1), maxDelay)
}

// deadLetter publishes the original bytes to <prefix>.<reason> with the reason
// and the error in headers, then terminates the message so it is never
// redelivered. If the dead letter cannot be stored, the message is left for
// redelivery instead: it is never dropped.
func (d *Dispatcher) deadLetter(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, cause error, log zerolog.Logger) {
	reason := alert.ReasonInvalidJSON
	var de *alert.DecodeError
	if errors.As(cause, &de) {
		reason = de.Reason
	}
	d.deadLetterWithReason(ctx, msg, meta, reason, cause, log)
}

// deadLetterHeadroom is what a dead letter's headers may take of the server's
// maximum payload.
const deadLetterHeadroom = 4 << 10

func (d *Dispatcher) deadLetterWithReason(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, reason alert.Reason, cause error, log zerolog.Logger) {
	dl := nats.NewMsg(d.cfg.DeadLetterPrefix + "." + string(reason))
	dl.Data = msg.Data()
	// The original came in under the server's limit, but with the dead-letter
	// headers it may not fit; a truncated dead letter beats one retried for
	// ever. The header says how long the original was.
	if limit := int(d.js.Conn().MaxPayload()) - deadLetterHeadroom; limit > 0 && len(dl.Data) > limit {
		dl.Header.Set(HeaderTruncatedFrom, strconv.Itoa(len(dl.Data)))
		dl.Data = dl.Data[:limit]
	}
	dl.Header.Set(HeaderReason, string(reason))
	dl.Header.Set(HeaderError, cause.Error())
	dl.Header.Set(HeaderOriginalSubject, msg.Subject())
	dl.Header.Set(HeaderOriginalSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
	// A redelivered poison message must not be dead-lettered twice.
	dl.Header.Set(nats.MsgIdHdr, deadLetterID(meta))
	if _, err := d.js.PublishMsg(ctx, dl); err != nil {
		d.retryLater(msg, meta, log, fmt.Errorf("dispatch: store dead letter: %w", err))
		return
	}
	d.metrics.AlertsDeadLettered.WithLabelValues(string(reason)).Inc()
	log.Warn().Str("reason", string(reason)).Err(cause).Int("bytes", len(msg.Data())).Msg("alert dead-lettered")
	if err := msg.TermWithReason(string(reason)); err != nil {
		log.Warn().Err(err).Msg("terminate dead-lettered message")
	}
}

func deadLetterID(meta *jetstream.MsgMetadata) string {
	return "deadletter:" + meta.Stream + ":" + strconv.FormatUint(meta.Sequence.Stream, 10)
}

// requestID makes Temporal treat a redelivered message's SignalWithStart as a
// retry of the first one.
func requestID(deliveryID, workflowID string) string {
	sum := sha256.Sum256([]byte(deliveryID + "\x00" + workflowID))
	return hex.EncodeToString(sum[:16])
}
