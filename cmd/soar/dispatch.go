package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/proof"
)

// dispatchFlags configure the alert pipeline.
type dispatchFlags struct {
	playbooks      string
	stream         string
	consumer       string
	maxAlertBytes  int
	maxAlertValues int
	concurrency    int
	maxAckPending  int
	replicas       int
	maxDeliveries  int
	streamMax      int64
	deadMax        int64

	coalesceWindow    time.Duration
	coalesceInterval  time.Duration
	coalesceMaxRate   float64
	coalesceMaxAlerts int
	coalesceMaxBytes  int
	backlogWarnAge    time.Duration

	clusters       dispatch.ClusterIdentity
	clusterSources []string

	podIndexes            []string
	unknownPodConcurrency int
	unknownPodMaxWaiting  int
	parkedMax             int64
}

func (f *dispatchFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.playbooks, "playbooks", "playbooks/library", "directory of playbook YAML files")
	fs.StringVar(&f.stream, "stream", dispatch.DefaultStream, "JetStream stream that captures alerts (created or updated at start)")
	fs.StringVar(&f.consumer, "consumer", dispatch.DefaultConsumer, "durable consumer shared by all dispatchers")
	fs.IntVar(&f.maxAlertBytes, "max-alert-bytes", alert.DefaultLimits.MaxBytes, "larger alerts go to the dead-letter subject (NATS max_payload must be larger)")
	fs.IntVar(&f.maxAlertValues, "max-alert-values", alert.DefaultLimits.MaxValues, "alerts holding more JSON values (members and elements at any depth) go to the dead-letter subject")
	fs.IntVar(&f.concurrency, "concurrency", dispatch.DefaultConcurrency, "alerts one dispatcher handles at once")
	fs.IntVar(&f.maxAckPending, "max-ack-pending", dispatch.DefaultMaxAckPending, "alerts in flight across all dispatchers, coalesced ones included (set the same value on every dispatcher)")
	fs.DurationVar(&f.coalesceWindow, "coalesce-window", dispatch.DefaultCoalesceWindow, "how long alerts of an open incident wait to travel to Temporal together (0 turns coalescing off)")
	fs.DurationVar(&f.coalesceInterval, "coalesce-interval", dispatch.DefaultCoalesceInterval, "least time between two coalesced signals to one incident: under a storm, batches grow instead of calls")
	fs.Float64Var(&f.coalesceMaxRate, "coalesce-max-signal-rate", dispatch.DefaultCoalesceMaxRate, "coalesced signals a second this dispatcher sends at most when many incidents are busy; the interval stretches instead")
	fs.IntVar(&f.coalesceMaxAlerts, "coalesce-max-alerts", dispatch.DefaultCoalesceMaxAlerts, "a coalesced batch is sent early once it holds this many alerts")
	fs.IntVar(&f.coalesceMaxBytes, "coalesce-max-bytes", dispatch.DefaultCoalesceMaxBytes, "largest coalesced signal; alerts larger than half of it travel alone")
	fs.DurationVar(&f.backlogWarnAge, "backlog-warn-age", dispatch.DefaultBacklogWarnAge, "warn, and report degraded on /readyz, while the oldest waiting alert is older than this")
	fs.Int64Var(&f.streamMax, "stream-max-bytes", dispatch.DefaultStreamMaxBytes, "limit of the alert stream on disk; when full, JetStream refuses new alerts (publishers get an error) instead of dropping any")
	fs.Int64Var(&f.deadMax, "deadletter-max-bytes", dispatch.DefaultDeadLetterMaxBytes, "limit of the dead-letter stream; when full, its oldest dead letters are dropped to make room (refusing new ones would leave poison alerts in the alert consumer until they stopped dispatch)")
	fs.IntVar(&f.maxDeliveries, "max-deliveries", dispatch.DefaultMaxDeliveries, "an alert delivered more often than this without being dispatched goes to the dead-letter subject (reason max_deliveries)")
	fs.IntVar(&f.replicas, "stream-replicas", 1, "copies JetStream keeps of soar's streams (3 on a production cluster)")
	fs.StringVar(&f.clusters.Field, "cluster-field", alert.ClusterField, "alert field that names the alert's Kubernetes cluster (an output field such as Falcosidekick's customfields add, or a generic alert's field); subjects clusters.<name>.> name it first (docs/multi-cluster.md)")
	fs.StringSliceVar(&f.clusterSources, "cluster-source", nil, "cluster=domain[/stream]: the alert stream sources that cluster's own stream (default "+dispatch.DefaultLeafStream+") from the JetStream domain of its leaf node, its alerts arriving as clusters.<cluster>.<subject> (docs/multi-cluster.md); repeat per cluster")
	fs.StringVar(&f.clusters.Default, "default-cluster", "", "cluster of the alerts that name none; empty: such alerts are single-cluster, acted on by the workers without --cluster")
	fs.IntVar(&f.unknownPodConcurrency, "unknown-pod-concurrency", dispatch.DefaultUnknownPodConcurrency, "with a pod index: alerts for pods the cluster does not have that may be opening incidents at once; the others wait their turn without holding back alerts for real pods")
	fs.IntVar(&f.unknownPodMaxWaiting, "unknown-pod-max-waiting", dispatch.DefaultUnknownPodMaxWaiting, "with a pod index: alerts for pods the cluster does not have that wait for their turn in memory (unacknowledged, within --max-ack-pending); more are parked in the stream "+dispatch.DefaultParkedStream)
	fs.Int64Var(&f.parkedMax, "parked-stream-max-bytes", dispatch.DefaultParkedMaxBytes, "limit of the parked stream, where alerts for pods that do not exist wait beyond --unknown-pod-max-waiting; when full, such alerts are redelivered later instead")
	fs.StringSliceVar(&f.clusters.Allowed, "allowed-clusters", nil, "the only clusters alerts may name (comma-separated); an alert naming another goes to the dead-letter subject (reason unknown_cluster) instead of opening an incident; empty: any valid name (soar dev --clusters N: dev-1 … dev-N)")
}

func (f *dispatchFlags) config(namespace, identity string, keys *proof.Keys) (dispatch.Config, error) {
	if f.unknownPodMaxWaiting < 1 || f.parkedMax < 1 {
		return dispatch.Config{}, fmt.Errorf("--unknown-pod-max-waiting %d, --parked-stream-max-bytes %d: want 1 or more", f.unknownPodMaxWaiting, f.parkedMax)
	}
	if err := f.clusters.Validate(); err != nil {
		return dispatch.Config{}, fmt.Errorf("--allowed-clusters, --default-cluster: %w", err)
	}
	sources, err := dispatch.ParseClusterSources(f.clusterSources)
	if err == nil {
		err = f.clusters.ValidateSources(sources)
	}
	if err != nil {
		return dispatch.Config{}, fmt.Errorf("--cluster-source: %w", err)
	}
	return dispatch.Config{
		Clusters:           f.clusters,
		ClusterSources:     sources,
		Keys:               keys,
		Stream:             f.stream,
		Consumer:           f.consumer,
		Limits:             alert.Limits{MaxBytes: f.maxAlertBytes, MaxValues: f.maxAlertValues},
		Concurrency:        f.concurrency,
		MaxAckPending:      f.maxAckPending,
		Replicas:           f.replicas,
		MaxDeliveries:      f.maxDeliveries,
		StreamMaxBytes:     f.streamMax,
		DeadLetterMaxBytes: f.deadMax,

		CoalesceWindow:        coalesceWindow(f.coalesceWindow),
		CoalesceInterval:      f.coalesceInterval,
		CoalesceMaxSignalRate: f.coalesceMaxRate,
		CoalesceMaxAlerts:     f.coalesceMaxAlerts,
		CoalesceMaxBytes:      f.coalesceMaxBytes,
		BacklogWarnAge:        f.backlogWarnAge,
		Namespace:             namespace,
		Identity:              identity,
		UnknownPodConcurrency: f.unknownPodConcurrency,
		UnknownPodMaxWaiting:  f.unknownPodMaxWaiting,
		ParkedMaxBytes:        f.parkedMax,
	}, nil
}

// coalesceWindow maps the flag's 0 ("off") to the Config's negative.
func coalesceWindow(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// errDispatcherEnded: the dispatcher stopped without being told to.
var errDispatcherEnded = errors.New("the dispatcher stopped on its own (its alert consumer could not be created again: a stream soar cannot use took the alert stream's place, the NATS connection closed, or the server refused it for 30 s; the log says which, and a restart tries again)")

func newDispatchCmd(g *globalFlags) *cobra.Command {
	var (
		tf       temporalFlags
		nf       natsFlags
		df       dispatchFlags
		httpAddr string
		wait     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "dispatch",
		Short: "Match alerts from NATS JetStream against playbooks and start or signal incidents",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			keys, err := app.SigningKeys()
			if err != nil {
				return err
			}
			cfg, err := df.config(tf.namespace, identity("dispatch"), keys)
			if err != nil {
				return err
			}
			indexes, err := parsePodIndexes(df.podIndexes)
			if err != nil {
				return err
			}
			c, err := connect(ctx, &tf, &nf, df.playbooks, "dispatch", wait, log)
			if err != nil {
				return err
			}
			defer c.close()
			// The dispatcher sets search attributes when it starts incidents:
			// without them registered, every alert would be retried for ever.
			if err := ensureSearchAttributes(ctx, c.tc, tf.namespace, wait, log); err != nil {
				return err
			}
			js, err := jetstream.New(c.nc)
			if err != nil {
				return err
			}
			if cfg.Pods, err = startPodIndexes(ctx, indexes, rest.ImpersonationConfig{}, log); err != nil {
				return err
			}
			// Connected is not enough: JetStream answers only once its
			// cluster has a meta leader.
			var d *app.Dispatcher
			err = app.StartupRetry(ctx, wait, "JetStream", log, func(ctx context.Context) (err error) {
				d, err = app.StartDispatcher(ctx, js, c.tc, c.pb, c.m, log, cfg)
				return app.UnlessRefused(err)
			})
			if err != nil {
				return err
			}
			defer stopLogged(log, "dispatcher", d.Stop)
			hs := app.Readiness(c.m, c.tc, c.nc, c.pb)
			hs.AddCheck("backlog", d.BacklogCheck)
			if len(cfg.Pods) > 0 {
				hs.AddCheck("pod-index", d.PodIndexCheck)
			}
			// A dispatcher that stopped on its own (its stream deleted)
			// dispatches nothing more: exit, so that a restart creates the
			// stream and the consumer again, rather than run on looking
			// alive. A deleted consumer alone it creates again itself.
			return serveUntilDone(ctx, httpAddr, hs, log, "dispatcher started", endedWith(d.Ended(), errDispatcherEnded))
		},
	}
	tf.register(cmd.Flags())
	nf.register(cmd.Flags())
	df.register(cmd)
	cmd.Flags().StringSliceVar(&df.podIndexes, "pod-index", nil, "[cluster=]"+inCluster+"|KUBECONFIG: index the names of that cluster's pods (its API server reached as the dispatcher's service account, or as the kubeconfig says; it needs list and watch on pods, deploy/dispatch-rbac.yaml), so that alerts for pods it does not have cannot hold back alerts for real ones; no cluster: alerts that name none; repeat per cluster (docs/operations.md)")
	cmd.AddCommand(newDispatchStatusCmd())
	cmd.Flags().StringVar(&httpAddr, "http-addr", ":9091", "address for /healthz, /readyz and /metrics (empty disables)")
	registerStartupWait(cmd.Flags(), &wait)
	return cmd
}
