package dispatch

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/internal/httpserver"
)

// PodIndex tells which pods a cluster holds (kube.PodIndex).
type PodIndex interface {
	// Exists reports whether the pod namespace/name exists; known is false
	// while the index cannot tell (before its first list).
	Exists(namespace, name string) (exists, known bool)
}

// DefaultUnknownPodConcurrency is how many alerts for pods the pod index
// does not know may be opening incidents at once.
const DefaultUnknownPodConcurrency = 8

// Triage of alerts for pods that do not exist.
//
// Alerts that open incidents are dispatched in the order they arrive, and
// each costs a durable start in Temporal. A flood of alerts that each name
// another pod that does not exist (someone who can publish to the alert
// subjects, or a detector reporting names an attacker chooses) therefore
// held a real pod's alert behind all of the flood's that came before it:
// tens of seconds (docs/operations.md, known limitations).
//
// With a pod index for the alert's cluster (Config.Pods), an alert that
// would open an incident for a pod the index does not know goes through a
// narrow lane of its own (Config.UnknownPodConcurrency), in the order such
// alerts arrived. While it waits for the lane it gives back its slot among
// Config.Concurrency, so the dispatcher goes on to the alerts behind it and
// a real pod's alert is reached and started at once. At most
// Config.UnknownPodMaxWaiting alerts (and maxUnknownWaitingBytes) wait in
// memory; beyond that an alert is parked (park.go), or, if the parked
// stream refuses it, deferred: JetStream redelivers it after deferDelay.
// Nothing is dropped or counted twice: a waiting alert stays
// unacknowledged (and is kept from redelivery while it waits), a parked one
// keeps its identity, a deferred one is the same message delivered again,
// and each opens its incident once, in its turn, or, deferred
// maxDeferrals times, like any alert.
//
// An alert for a pod the index does not know is not necessarily false: the
// pod may have been deleted since, or be too new for the watch
// (milliseconds). Such an alert waits only behind others like it, and only
// while the lane is full.
func (d *Dispatcher) unknownPod(a alert.Alert) bool {
	idx := d.cfg.Pods[a.Cluster]
	if idx == nil || a.Kubernetes.Namespace == "" || a.Kubernetes.Pod == "" {
		return false
	}
	exists, known := idx.Exists(a.Kubernetes.Namespace, a.Kubernetes.Pod)
	return known && !exists
}

// Bounds on the alerts that wait in memory for the unknown pods' lane: the
// default count (Config.UnknownPodMaxWaiting) and their bytes.
const (
	DefaultUnknownPodMaxWaiting = 4096
	maxUnknownWaitingBytes      = 32 << 20
)

// inProgressEvery is how often a waiting alert tells JetStream it is being
// worked on, well within the consumer's 30 s ack wait.
const inProgressEvery = 10 * time.Second

// triage admits an alert that opens an incident to dispatch now, with a
// release to call once it is dispatched, or parks or defers it (then it
// has acknowledged the message or asked JetStream to redeliver it, and the
// caller settles its claims and returns). free gives back the alert's slot
// among Config.Concurrency.
func (d *Dispatcher) triage(ctx context.Context, a alert.Alert, msg jetstream.Msg, meta *jetstream.MsgMetadata, life *streamLife, free func(), log zerolog.Logger) (release func(), deferred bool) {
	if d.unknownLane == nil || !d.unknownPod(a) {
		return func() {}, false
	}
	release = func() { <-d.unknownLane }
	select {
	case d.unknownLane <- struct{}{}:
		d.metrics.UnknownPodAlerts.WithLabelValues("admitted").Inc()
		return release, false
	default:
	}
	if size := int64(len(msg.Data())); d.unknownWaiting.enter(size) {
		defer d.unknownWaiting.leave(size)
		free()
		if !d.awaitLane(ctx, msg) {
			// Shutting down: the message is redelivered, to this
			// dispatcher after a restart or to another.
			return nil, true
		}
		d.metrics.UnknownPodAlerts.WithLabelValues("waited").Inc()
		return release, false
	}
	if d.park(ctx, msg, meta, life, log) {
		d.metrics.UnknownPodAlerts.WithLabelValues("parked").Inc()
		return nil, true
	}
	if int(meta.NumDelivered) > d.maxDeferrals() {
		d.metrics.UnknownPodAlerts.WithLabelValues("overdue").Inc()
		return func() {}, false
	}
	delay := deferDelay(meta.NumDelivered)
	d.metrics.UnknownPodAlerts.WithLabelValues("deferred").Inc()
	log.Debug().Str("namespace", a.Kubernetes.Namespace).Str("pod", a.Kubernetes.Pod).Uint64("delivery", meta.NumDelivered).Dur("retry_in", delay).
		Msg("alert for a pod the cluster does not have deferred: too many like it wait for their lane")
	if err := msg.NakWithDelay(delay); err != nil {
		log.Warn().Err(err).Msg("negative-acknowledge deferred alert; it will be redelivered after the ack wait")
	}
	return nil, true
}

// awaitLane takes a token of the unknown pods' lane for msg, telling
// JetStream every inProgressEvery that msg is being worked on; false when
// ctx ended first. Alerts waiting for a token get it in the order they
// began to wait (a channel's blocked senders are served in order).
func (d *Dispatcher) awaitLane(ctx context.Context, msg jetstream.Msg) bool {
	tick := time.NewTicker(inProgressEvery)
	defer tick.Stop()
	for {
		select {
		case d.unknownLane <- struct{}{}:
			return true
		case <-tick.C:
			_ = msg.InProgress()
		case <-ctx.Done():
			return false
		}
	}
}

// waitRoom counts the alerts that wait in memory for the unknown pods'
// lane, and their bytes.
type waitRoom struct {
	maxN  int
	mu    sync.Mutex
	n     int
	bytes int64
}

// enter reports whether an alert of size bytes may wait, and counts it.
func (w *waitRoom) enter(size int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n >= w.maxN || w.bytes+size > maxUnknownWaitingBytes {
		return false
	}
	w.n++
	w.bytes += size
	return true
}

func (w *waitRoom) leave(size int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n--
	w.bytes -= size
}

// deferDelay is how long an alert deferred on its nth delivery waits: up
// to 2 s, then up to twice as long each time, up to 30 s, so that a lasting
// flood costs the dispatcher a look at each deferred alert every 15 to 30 s.
// Each delay is drawn from its upper half, so that alerts deferred together
// come back spread out rather than all at once to a full lane.
func deferDelay(delivery uint64) time.Duration {
	const first, most = 2 * time.Second, 30 * time.Second
	d := most
	if delivery <= 1 {
		d = first
	} else if delivery <= 5 {
		d = min(first<<(delivery-1), most)
	}
	return d/2 + rand.N(d/2)
}

// maxDeferrals is how many deliveries an alert may be deferred for: 20
// (about eight and a half minutes of deferDelay), and never so many that
// deferring would bring it to Config.MaxDeliveries and the dead letters.
func (d *Dispatcher) maxDeferrals() int {
	return min(20, d.cfg.MaxDeliveries/2)
}

// PodIndexCheck is a readiness check: degraded while a pod index has not
// listed its cluster's pods, when that cluster's alerts are dispatched
// without triage.
func (d *Dispatcher) PodIndexCheck(context.Context) error {
	var waiting []string
	for cluster, idx := range d.cfg.Pods {
		if _, known := idx.Exists("", ""); !known {
			waiting = append(waiting, cmp.Or(cluster, `""`))
		}
	}
	if len(waiting) == 0 {
		return nil
	}
	slices.Sort(waiting)
	return &httpserver.Degraded{Detail: "the pod index of cluster " + strings.Join(waiting, ", ") + " has not listed its pods (it needs list and watch on pods): alerts for pods that do not exist are not triaged"}
}
