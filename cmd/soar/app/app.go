// Package app wires soar's parts together. cmd/soar and the end-to-end tests
// both build processes from these functions, so the tests run exactly what
// ships.
package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/logging"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/proof"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
	"github.com/soar-dev/soar/workflows/playbooktest"
)

// PlaybookOptions validates playbooks against what this soar's workers can
// run (its actions, their parameters and its workflows) and pins into every
// step what Respond needs to know of its action, from the catalogue as it is
// when the playbook loads.
func PlaybookOptions() playbooks.LoadOptions {
	return playbooks.LoadOptions{Actions: activities.PlaybookActions(), Workflows: []string{workflows.RespondName}}
}

// SimulatedActions describes every catalogue action, inverses included, for
// the author-test runner, which simulates them.
func SimulatedActions() []playbooktest.Action {
	var out []playbooktest.Action
	for _, a := range activities.Catalogue() {
		sa := playbooktest.Action{Name: a.Name}
		for _, f := range a.Output {
			sa.Output = append(sa.Output, playbooktest.Field{Name: f.Name, Type: f.Type})
		}
		out = append(out, sa)
	}
	return out
}

// TemporalOptions says how to reach Temporal.
type TemporalOptions struct {
	Address   string
	Namespace string
	// ConnectionOptions carries TLS; Credentials carries an API key.
	ConnectionOptions client.ConnectionOptions
	Credentials       client.Credentials
	Identity          string
	// Compression is how requests to Temporal and its answers are
	// compressed: CompressionGzip, CompressionNone, or CompressionAuto (or
	// empty): none when Address is a loopback address, gzip (the SDK's
	// default) otherwise.
	Compression string
}

// The values of TemporalOptions.Compression and of --temporal-grpc-compression.
const (
	CompressionAuto = "auto"
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// GrpcCompression says how a client of Temporal at address compresses its
// requests. Over loopback (Temporal in the same process or on the same host,
// as in soar dev) gzip saves no network and costs CPU on both ends: every
// request and answer is compressed and decompressed again, about 7% of soar
// dev's CPU at rest, 1-2 ms of an alert's way to quarantine (measured with
// BenchmarkAlertToQuarantine, docs/operations.md "At rest").
func GrpcCompression(mode, address string) (client.GrpcCompression, error) {
	switch mode {
	case CompressionGzip:
		return &client.GrpcCompressionGzip{}, nil
	case CompressionNone:
		return &client.GrpcCompressionNone{}, nil
	case CompressionAuto, "":
		if isLoopback(address) {
			return &client.GrpcCompressionNone{}, nil
		}
		return &client.GrpcCompressionGzip{}, nil
	}
	return nil, fmt.Errorf("compression %q: want %s, %s or %s", mode, CompressionAuto, CompressionGzip, CompressionNone)
}

// isLoopback reports whether host:port names this host: localhost or a
// loopback IP. A name that resolves to one is not looked up.
func isLoopback(address string) bool {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DialTemporal connects to Temporal and checks that it answers.
func DialTemporal(ctx context.Context, opts TemporalOptions, log zerolog.Logger) (client.Client, error) {
	comp, err := GrpcCompression(opts.Compression, opts.Address)
	if err != nil {
		return nil, err
	}
	opts.ConnectionOptions.GrpcCompression = comp
	c, err := client.DialContext(ctx, client.Options{
		HostPort:          opts.Address,
		Namespace:         opts.Namespace,
		ConnectionOptions: opts.ConnectionOptions,
		Credentials:       opts.Credentials,
		Identity:          opts.Identity,
		Logger:            logging.Temporal{L: log.With().Str("component", "temporal-sdk").Logger()},
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", opts.Address, err)
	}
	return c, nil
}

// TemporalCheck is a readiness check for a Temporal client.
func TemporalCheck(c client.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	}
}

// NATSCheck is a readiness check for a NATS connection.
func NATSCheck(nc *nats.Conn) func(context.Context) error {
	return func(context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			return fmt.Errorf("nats connection %s", s)
		}
		return nil
	}
}

// Readiness returns the HTTP endpoints of a part that reads alerts or serves
// analysts: ready when Temporal answers, NATS is connected and the playbooks
// are loaded.
func Readiness(m *metrics.Metrics, tc client.Client, nc *nats.Conn, pb *Playbooks) *httpserver.Server {
	hs := httpserver.New(m.Registry)
	hs.AddCheck("temporal", TemporalCheck(tc))
	hs.AddCheck("nats", NATSCheck(nc))
	hs.AddCheck("playbooks", pb.Check)
	return hs
}

// workerPollers is how many long polls a worker keeps open per task kind.
const workerPollers = 8

// NewWorker returns a worker, not yet started, that runs soar's workflows and
// the activities in acts on soar's task queue. Its incidents check proofs
// with keys.
func NewWorker(c client.Client, keys *proof.Keys, acts *activities.Activities) worker.Worker {
	return newWorker(c, keys, acts, nil)
}

// newWorker is NewWorker, with onFatal for the SDK's OnFatalError.
func newWorker(c client.Client, keys *proof.Keys, acts *activities.Activities, onFatal func(error)) worker.Worker {
	acts.TaskQueues = c
	// Eight pollers of each kind, not the SDK's two: the SDK serves a
	// worker's sticky queue (incidents it already runs) before the shared
	// one (a new incident's first task) while the sticky queue has a
	// backlog, and in an alert storm two pollers left new incidents waiting
	// behind the open ones. BenchmarkAlertStorm, slowest of 10 new pods
	// quarantined: 2.66 s with two pollers, 0.62 s and 0.86 s with eight.
	w := worker.New(c, workflows.TaskQueue, worker.Options{
		MaxConcurrentWorkflowTaskPollers: workerPollers,
		MaxConcurrentActivityTaskPollers: workerPollers,
		Interceptors:                     []interceptor.WorkerInterceptor{newCallers(c, workflows.TaskQueue, workflows.RespondName)},
		OnFatalError:                     onFatal,
	})
	w.RegisterWorkflowWithOptions(workflows.Responder{Keys: keys}.Respond, workflow.RegisterOptions{Name: workflows.RespondName})
	// The legacy Quarantine method, for incidents started before actions
	// became generic, and one activity per catalogue action.
	w.RegisterActivity(acts)
	activities.Register(w, acts)
	return w
}

// NewClusterWorker returns a worker, not yet started, that runs the
// Kubernetes actions (activities.RegisterKubernetes) of incidents in
// cluster, on that cluster's task queue, and nothing else: no workflows,
// no Slack, no tickets. acts.Kube must reach that cluster.
func NewClusterWorker(c client.Client, cluster string, acts *activities.Activities) worker.Worker {
	return newClusterWorker(c, cluster, acts, nil)
}

// newClusterWorker is NewClusterWorker, with onFatal for the SDK's
// OnFatalError.
func newClusterWorker(c client.Client, cluster string, acts *activities.Activities, onFatal func(error)) worker.Worker {
	w := worker.New(c, contract.ClusterTaskQueue(workflows.TaskQueue, cluster), worker.Options{
		MaxConcurrentActivityTaskPollers: workerPollers,
		Interceptors:                     []interceptor.WorkerInterceptor{newCallers(c, workflows.TaskQueue, workflows.RespondName)},
		OnFatalError:                     onFatal,
	})
	activities.RegisterKubernetes(w, acts)
	return w
}

// ProtectedNamespaces returns the namespaces no action may touch: the defaults,
// the namespace soar itself runs in (from POD_NAMESPACE, set by the manifests
// in deploy/), and extra.
func ProtectedNamespaces(extra []string) []string {
	out := append([]string{}, activities.DefaultProtectedNamespaces...)
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		out = append(out, ns)
	}
	for _, ns := range extra {
		if ns != "" {
			out = append(out, ns)
		}
	}
	return out
}
