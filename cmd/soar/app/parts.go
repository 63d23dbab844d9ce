package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/connectors/tickets"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/proof"
)

// WorkerConfig configures StartWorker.
type WorkerConfig struct {
	// Kube is the Kubernetes connector the actions use.
	Kube *kube.Client
	// Evidence stores snapshot bundles; Collector is written in their
	// manifests.
	Evidence  evidence.Store
	Collector evidence.Collector
	// ProtectedNamespaces are refused by every action (see ProtectedNamespaces).
	ProtectedNamespaces []string
	// Slack posts incident threads and approval requests (see
	// SlackSecrets.WorkerSlack); the zero value means none.
	Slack activities.SlackConfig
	// Tickets opens incident tickets; nil means none.
	Tickets tickets.Provider
	// IncidentURL, followed by an incident ID, is its page in the Temporal
	// UI (see IncidentURL); empty means no links.
	IncidentURL string
	// Keys check the proofs of what incidents receive (see SigningKeys).
	Keys *proof.Keys
	// Cluster, when set, makes the worker one of that cluster's: it runs
	// only the Kubernetes actions of that cluster's incidents
	// (NewClusterWorker), and Kube must reach that cluster.
	Cluster string
}

// IncidentURL is the prefix of incident links in the Temporal UI at ui,
// for the namespace; "" when ui is.
func IncidentURL(ui, namespace string) string {
	if ui == "" {
		return ""
	}
	return strings.TrimRight(ui, "/") + "/namespaces/" + url.PathEscape(namespace) + "/workflows/"
}

// Worker is a running worker.
type Worker struct {
	worker.Worker
	// Kube is the Kubernetes connector its actions use (WorkerConfig.Kube).
	Kube   *kube.Client
	failed chan error
}

// Failed delivers the error for which the worker stopped on its own:
// Temporal refused its polls as no retry can mend (the namespace is gone,
// the SDK's version is no longer supported, an argument refused) for longer
// than the SDK's grace period of 2 minutes. It then runs nothing more, and
// the process should exit so that it is seen and restarted.
func (w *Worker) Failed() <-chan error { return w.failed }

// StartWorker starts a worker for soar's workflows and activities. Stop it
// with its Stop method.
func StartWorker(tc client.Client, cfg WorkerConfig) (*Worker, error) {
	// A cluster's worker runs no workflow, so it checks no proofs and
	// holds no keys: a compromised cluster cannot sign for the others.
	if cfg.Keys == nil && cfg.Cluster == "" {
		return nil, fmt.Errorf("start worker: %w", errNoKeys)
	}
	acts := &activities.Activities{
		Kube:                cfg.Kube,
		Evidence:            cfg.Evidence,
		Collector:           cfg.Collector,
		ProtectedNamespaces: cfg.ProtectedNamespaces,
		Slack:               cfg.Slack,
		Tickets:             cfg.Tickets,
		IncidentURL:         cfg.IncidentURL,
		Cluster:             cfg.Cluster,
	}
	w := &Worker{Kube: cfg.Kube, failed: make(chan error, 1)}
	// Called once, on a goroutine of its own; the SDK stops the worker
	// after it.
	onFatal := func(err error) {
		w.failed <- fmt.Errorf("the worker stopped on its own: Temporal refused its polls for over 2 minutes with an error no retry mends (a restart tries again): %w", err)
	}
	if cfg.Cluster != "" {
		w.Worker = newClusterWorker(tc, cfg.Cluster, acts, onFatal)
	} else {
		w.Worker = newWorker(tc, cfg.Keys, acts, onFatal)
	}
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	return w, nil
}

// Dispatcher is a running dispatcher.
type Dispatcher struct {
	*dispatch.Dispatcher
	cancel context.CancelFunc
	ended  chan struct{}
	err    error // Run's, once ended is closed
}

// StartDispatcher creates the streams and consumer if needed and dispatches
// alerts in the background until Stop.
func StartDispatcher(ctx context.Context, js jetstream.JetStream, tc client.Client, pb dispatch.PlaybookSource, m *metrics.Metrics, log zerolog.Logger, cfg dispatch.Config) (*Dispatcher, error) {
	if cfg.Keys == nil {
		return nil, fmt.Errorf("start dispatcher: %w", errNoKeys)
	}
	d := dispatch.New(js, tc, pb, m, log, cfg)
	if err := d.EnsureStreams(ctx); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rd := &Dispatcher{Dispatcher: d, cancel: cancel, ended: make(chan struct{})}
	go func() {
		defer close(rd.ended)
		rd.err = d.Run(rctx)
	}()
	return rd, nil
}

// Ended is closed when the dispatcher stopped: after Stop, or on its own
// when its alert consumer is gone (then it dispatches nothing more, and the
// process should exit so that a restart creates the consumer again).
func (d *Dispatcher) Ended() <-chan struct{} { return d.ended }

// Stop stops pulling alerts and waits for in-flight ones to finish.
func (d *Dispatcher) Stop() error {
	d.cancel()
	<-d.ended
	return d.err
}

// httpReadTimeout bounds reading a whole request; a variable for tests.
var httpReadTimeout = 10 * time.Second

// HTTP is a running HTTP server.
type HTTP struct {
	srv  *http.Server
	addr string
}

// ServeHTTP listens on addr and serves h in the background.
func ServeHTTP(addr string, h *httpserver.Server, log zerolog.Logger) (*HTTP, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	srv := &http.Server{
		Handler:           h.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		// A client must send its whole request within ReadTimeout: one
		// that stalls mid-body (slowloris) is cut off instead of holding
		// its buffer. Slack and the vote API send a few kilobytes.
		ReadTimeout: httpReadTimeout,
		// Vote API answers wait for Temporal up to incidents.VoteTimeout.
		WriteTimeout:   incidents.VoteTimeout + 15*time.Second,
		IdleTimeout:    time.Minute,
		MaxHeaderBytes: 64 << 10,
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server stopped")
		}
	}()
	return &HTTP{srv: srv, addr: l.Addr().String()}, nil
}

// Addr is the bound address.
func (h *HTTP) Addr() string { return h.addr }

// Stop shuts the server down gracefully.
func (h *HTTP) Stop(ctx context.Context) error { return h.srv.Shutdown(ctx) }
