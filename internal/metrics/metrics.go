// Package metrics defines soar's Prometheus metrics. Each process creates one
// Metrics on its own registry and serves it at /metrics.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the counters, gauges and histograms soar's parts update.
type Metrics struct {
	Registry *prometheus.Registry

	AlertsReceived     prometheus.Counter
	AlertsMatched      prometheus.Counter
	AlertsUnmatched    prometheus.Counter
	AlertsDeadLettered *prometheus.CounterVec // by reason
	PlaybookErrors     *prometheus.CounterVec // by playbook
	WorkflowsStarted   *prometheus.CounterVec // by playbook
	Signals            *prometheus.CounterVec // by playbook: alerts joining an open incident
	DispatchErrors     prometheus.Counter     // Temporal or NATS refused; the alert is retried
	DispatchLatency    prometheus.Histogram   // from publish to Temporal's acceptance

	// Coalescing, the fast lane and the backlog (see package dispatch).
	TemporalCalls    *prometheus.CounterVec // by call: start, signal_with_start or signal
	TemporalBytes    prometheus.Counter     // payload bytes sent with them
	CoalescedBatches prometheus.Counter
	CoalescedAlerts  prometheus.Counter
	FastLaneLatency  prometheus.Histogram
	// UnknownPodAlerts counts alerts that would open an incident for a pod
	// the dispatcher's pod index does not know, by what became of them
	// (admitted, waited, parked, unparked, deferred, overdue): see
	// dispatch.Config.Pods.
	UnknownPodAlerts *prometheus.CounterVec
	// ParkedWaiting and ParkedOldestAge describe the stream where such
	// alerts wait for their lane (dispatch/park.go).
	ParkedWaiting    prometheus.Gauge
	ParkedOldestAge  prometheus.Gauge
	BacklogWaiting   prometheus.Gauge
	BacklogInFlight  prometheus.Gauge
	BacklogOldestAge prometheus.Gauge
	StreamFull       prometheus.Gauge
	// SourceLag and SourceInactive are per cluster source of the alert
	// stream (multi-cluster intake).
	SourceLag      *prometheus.GaugeVec
	SourceInactive *prometheus.GaugeVec
	// ConsumersResumed counts the pauses of soar's consumers that a
	// dispatcher undid (dispatch/backlog.go), by consumer.
	ConsumersResumed *prometheus.CounterVec
	// StreamLimitsRestored counts the times a dispatcher put back a
	// stream's settings after somebody made it drop alerts, by stream.
	StreamLimitsRestored *prometheus.CounterVec
	// ConsumerSettingsRestored counts the times a dispatcher put back a
	// consumer's settings after somebody made it withhold or spoil
	// alerts, by consumer.
	ConsumerSettingsRestored *prometheus.CounterVec

	// QuarantineLocks counts quarantines by whether the API server's lock
	// was proven (result: tamper_proof or not_tamper_proof), on the worker.
	QuarantineLocks *prometheus.CounterVec

	// Playbook reloads, on the processes that load playbooks.
	PlaybookReloads       *prometheus.CounterVec // by result: success or failure
	PlaybooksLoaded       prometheus.Gauge       // playbooks in force
	PlaybookReloadFailing prometheus.Gauge       // 1 while the latest reload failed
	PlaybooksLastReload   prometheus.Gauge       // Unix time the set in force was loaded
}

// New creates and registers soar's metrics, plus the Go runtime and process
// collectors, on a fresh registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		QuarantineLocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "soar_quarantine_locks_total",
			Help: "Quarantines by whether the API server's quarantine lock was proven (dry runs removing the pod's label and deleting its policy refused): result tamper_proof or not_tamper_proof.",
		}, []string{"result"}),
		AlertsReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "soar_alerts_received_total", Help: "Alert messages taken from the stream, including redeliveries.",
		}),
		AlertsMatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "soar_alerts_matched_total", Help: "Alerts that matched at least one playbook.",
		}),
		AlertsUnmatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "soar_alerts_unmatched_total", Help: "Alerts that matched no playbook (acknowledged and dropped).",
		}),
		AlertsDeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "soar_alerts_dead_lettered_total", Help: "Messages moved to the dead-letter subject, by reason.",
		}, []string{"reason"}),
		PlaybookErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "soar_playbook_errors_total", Help: "Playbook expressions that failed on an alert, by playbook.",
		}, []string{"playbook"}),
		WorkflowsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "soar_workflows_started_total", Help: "Incidents opened (workflows started), by playbook.",
		}, []string{"playbook"}),
		Signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "soar_signals_total", Help: "Alerts that joined an open incident (signals), by playbook.",
		}, []string{"playbook"}),
		DispatchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "soar_dispatch_errors_total", Help: "Alerts whose dispatch failed and were scheduled for redelivery.",
		}),
		DispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "soar_dispatch_latency_seconds",
			Help:    "Time from an alert's publication to Temporal accepting it.",
			Buckets: []float64{.005, .01, .025, .05, .1, .15, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		TemporalCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "soar_dispatch_temporal_calls_total", Help: "Calls the dispatcher made to Temporal, by call: start (an incident's first alert), signal_with_start (an alert that may open an incident) or signal (coalesced alerts of an open one).",
		}, []string{"call"}),
		TemporalBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "soar_dispatch_temporal_payload_bytes_total", Help: "Payload bytes (workflow input and signal) the dispatcher sent to Temporal.",
		}),
		CoalescedBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "soar_dispatch_coalesced_batches_total", Help: "Batches of coalesced alerts sent as one signal; soar_dispatch_coalesced_alerts_total divided by this is the coalescing ratio.",
		}),
		CoalescedAlerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "soar_dispatch_coalesced_alerts_total", Help: "Alerts that travelled in a coalesced batch.",
		}),
		FastLaneLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "soar_dispatch_fast_lane_latency_seconds",
			Help:    "Time from the publication of an alert that opens an incident (as far as the dispatcher knows) to Temporal accepting it.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		UnknownPodAlerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "soar_dispatch_unknown_pod_alerts_total", Help: "Alerts that would open an incident for a pod the dispatcher's pod index does not know, by outcome: admitted (at once, through the narrow lane for such pods), waited (admitted after waiting in memory for the lane), parked (too many waited: moved to the parked stream, where they wait their turn without holding the alert consumer), unparked (pulled from the parked stream into the lane), deferred (too many waited and the parked stream refused them: redelivered later) or overdue (deferred too often: dispatched like any alert).",
		}, []string{"outcome"}),
		ParkedWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "soar_dispatch_parked_alerts", Help: "Alerts for pods the pod index does not know that wait in the parked stream for their lane, as last read.",
		}),
		ParkedOldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "soar_dispatch_parked_oldest_age_seconds", Help: "Age of the oldest alert waiting in the parked stream; 0 when none waits.",
		}),
		BacklogWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "soar_dispatch_backlog_alerts", Help: "Alerts in the stream not yet acknowledged (undelivered or in flight), as last read.",
		}),
		BacklogInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "soar_dispatch_backlog_in_flight_alerts", Help: "Alerts delivered to dispatchers and not yet acknowledged (JetStream ack pending).",
		}),
		BacklogOldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "soar_dispatch_backlog_oldest_age_seconds", Help: "Age of the oldest alert waiting in the stream; 0 when none waits.",
		}),
		StreamFull: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "soar_dispatch_stream_full_ratio", Help: "Bytes in the alert stream divided by its limit; at 1 JetStream refuses new alerts.",
		}),
		ConsumersResumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "soar_dispatch_consumers_resumed_total", Help: "Times a dispatcher found one of soar's JetStream consumers paused, which delivers nothing, and resumed it; each is somebody's pause.",
		}, []string{"consumer"}),
		StreamLimitsRestored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "soar_dispatch_stream_limits_restored_total", Help: "Times a dispatcher found one of soar's work-queue streams (the alert stream, the parked stream) set to drop undispatched alerts (an age limit, a limit per subject, discarding the oldest, rollups), to refuse new ones (a limit of messages or of a message's size, a byte limit below the dispatcher's flag, a subject taken away) or to delete its consumers when idle, and put its settings back, by stream; each is somebody's change.",
		}, []string{"stream"}),
		ConsumerSettingsRestored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "soar_dispatch_consumer_settings_restored_total", Help: "Times a dispatcher found one of soar's JetStream consumers set to withhold alerts (a filter subject, a priority group, limits on pull requests), strip them (headers only) or deliver them otherwise than soar does (ack wait, deliveries, backoff, an inactivity threshold), and put its settings back; each is somebody's change.",
		}, []string{"consumer"}),
		SourceLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "soar_dispatch_source_lag_alerts", Help: "Alerts a cluster's stream holds that the alert stream has not copied yet, as of the hub's last word from the cluster's leaf node; by cluster (empty for a source soar did not configure), the source's JetStream domain and stream.",
		}, []string{"cluster", "domain", "stream"}),
		SourceInactive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "soar_dispatch_source_inactive_seconds", Help: "Seconds since the alert stream last heard from a cluster's stream (-1: never); grows while the cluster's leaf node link is down; by cluster (empty for a source soar did not configure), the source's JetStream domain and stream.",
		}, []string{"cluster", "domain", "stream"}),
		PlaybookReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "soar_playbook_reloads_total", Help: "Playbook reloads, by result: success (the new set is in force) or failure (the previous set stays).",
		}, []string{"result"}),
		PlaybooksLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "soar_playbooks_loaded", Help: "Playbooks in force.",
		}),
		PlaybookReloadFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "soar_playbook_reload_failing", Help: "1 while the latest playbook reload failed and the previous playbooks stay in force, else 0.",
		}),
		PlaybooksLastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "soar_playbooks_last_reload_timestamp_seconds", Help: "Unix time at which the playbooks in force were loaded, at start or by the latest successful reload.",
		}),
	}
	// Both results are exported from the start, so that rate() and
	// increase() see the first failure.
	m.PlaybookReloads.WithLabelValues("success")
	m.PlaybookReloads.WithLabelValues("failure")
	for _, o := range []string{"admitted", "waited", "parked", "unparked", "deferred", "overdue"} {
		m.UnknownPodAlerts.WithLabelValues(o)
	}
	reg.MustRegister(m.AlertsReceived, m.AlertsMatched, m.AlertsUnmatched, m.AlertsDeadLettered,
		m.PlaybookErrors, m.WorkflowsStarted, m.Signals, m.DispatchErrors, m.DispatchLatency,
		m.TemporalCalls, m.TemporalBytes, m.CoalescedBatches, m.CoalescedAlerts, m.FastLaneLatency, m.UnknownPodAlerts,
		m.ParkedWaiting, m.ParkedOldestAge, m.BacklogWaiting, m.BacklogInFlight, m.BacklogOldestAge, m.StreamFull, m.SourceLag, m.SourceInactive, m.ConsumersResumed, m.StreamLimitsRestored, m.ConsumerSettingsRestored,
		m.PlaybookReloads, m.PlaybooksLoaded, m.PlaybookReloadFailing, m.PlaybooksLastReload, m.QuarantineLocks)
	return m
}
