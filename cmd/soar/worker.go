package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/proof"
	"github.com/soar-dev/soar/workflows"
)

// workerFlags configure the worker's actions.
type workerFlags struct {
	kubeconfig  string
	kubeTimeout time.Duration
	// kubeQPS and kubeBurst bound the worker's requests to the API server
	// on the client side (client-go's rate limiter).
	kubeQPS   float32
	kubeBurst int
	protected []string
	evidence  evidenceFlags
	slack     slackFlags
	tickets   app.TicketConfig
	// uiURL is the Temporal Web UI, for links to incidents.
	uiURL string
	// lockList is the quarantine lock list, namespace/name; empty: none.
	lockList string
	// kubeAs is who the worker acts as on the cluster when set: soar dev
	// --local-kube acts as soar-worker, holding only deploy/rbac.yaml's
	// rights, not the kubeconfig's.
	kubeAs rest.ImpersonationConfig
	// cluster, when set, makes this one of that cluster's workers: it runs
	// the Kubernetes actions of that cluster's incidents only.
	cluster string
}

func (f *workerFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.cluster, "cluster", "", "be a worker of this cluster only: run the Kubernetes actions of incidents whose alerts name it, on its own task queue, and no workflows, Slack or ticket steps (docs/multi-cluster.md); empty: run everything, with Kubernetes actions for alerts that name no cluster")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster service account, then $KUBECONFIG or ~/.kube/config)")
	fs.Float32Var(&f.kubeQPS, "kube-api-qps", kube.DefaultQPS, "requests per second the worker sends the Kubernetes API server at most, on average (a quarantine under the lock makes about ten); the API server's own priority and fairness applies too")
	fs.IntVar(&f.kubeBurst, "kube-api-burst", kube.DefaultBurst, "requests the worker may send the Kubernetes API server at once above --kube-api-qps")
	fs.DurationVar(&f.kubeTimeout, "kube-timeout", 0, "timeout of one Kubernetes API request; 0 bounds each only by its step's attempt (30s, 5m for snapshots, whose logs and checkpoints take longer). A timed-out attempt is retried")
	fs.StringSliceVar(&f.protected, "protected-namespaces", nil, "namespaces no action may touch, in addition to Kubernetes' own, soar's, and those where soar, Temporal, NATS, Falco and ingress-nginx install by convention (docs/actions.md)")
	fs.StringVar(&f.lockList, "lock-list", kube.DefaultLockList.String(), "the ConfigMap namespace/name listing the pods locked in quarantine, which deploy/quarantine-lock.yaml's admission policy enforces; empty: quarantines are not locked, and their results say so")
	f.evidence.register(fs, "directory that stores snapshot evidence bundles when no S3 bucket is set (default: soar-evidence in the working directory; <data-dir>/evidence for soar dev)")
	f.slack.register(fs, true)
	t := &f.tickets
	fs.StringVar(&t.Provider, "ticket-provider", "", "where ticket steps open tickets: jira, github or webhook (default none: ticket steps skip and say so)")
	fs.StringVar(&t.Jira.URL, "jira-url", "", "Jira base URL, e.g. https://example.atlassian.net")
	fs.BoolVar(&t.Jira.Cloud, "jira-cloud", true, "Jira Cloud (REST v3, e-mail and SOAR_JIRA_API_TOKEN); false for Data Center (REST v2, SOAR_JIRA_PAT)")
	fs.StringVar(&t.Jira.Email, "jira-email", "", "Jira Cloud account e-mail of the API token")
	fs.StringVar(&t.Jira.Project, "jira-project", "", "Jira project key, e.g. SEC")
	fs.StringVar(&t.Jira.IssueType, "jira-issue-type", "Task", "Jira issue type of incident tickets")
	fs.StringToStringVar(&t.Jira.Priorities, "jira-priorities", nil, "severity=priority pairs that replace the default mapping (critical, alert and emergency=Highest, high=High, warning=Medium, notice=Low, info and debug=Lowest)")
	fs.BoolVar(&t.Jira.NoPriority, "jira-no-priority", false, "set no priority on tickets (for projects whose create screen has no Priority field)")
	fs.StringVar(&t.Jira.ResolveTransition, "jira-resolve-transition", "Done", "Jira transition that resolves a ticket")
	fs.StringVar(&t.GitHubRepo, "github-repo", "", "GitHub repository of incident issues, owner/repo (token from SOAR_GITHUB_TOKEN)")
	fs.StringVar(&t.GitHub.APIURL, "github-api-url", "", "GitHub API URL (default api.github.com; GitHub Enterprise: https://HOST/api/v3/)")
	fs.StringSliceVar(&t.GitHub.Labels, "github-labels", []string{"security-incident"}, "labels of every incident issue")
	fs.StringVar(&f.uiURL, "temporal-ui-url", "", "Temporal Web UI base URL, e.g. https://temporal.example.com: tickets and Slack threads link to each incident there")
	fs.StringVar(&t.Webhook.URL, "ticket-webhook-url", "", "URL that receives ticket events as signed JSON (secret from SOAR_WEBHOOK_SECRET)")
}

// evidenceFlags say where evidence bundles are: the worker stores them,
// serve's console reads them.
type evidenceFlags struct {
	dir string
	s3  evidence.S3Config
}

func (f *evidenceFlags) register(fs *pflag.FlagSet, dirUsage string) {
	fs.StringVar(&f.dir, "evidence-dir", "", dirUsage)
	fs.StringVar(&f.s3.Bucket, "evidence-s3-bucket", "", "S3 bucket for evidence bundles (credentials from SOAR_EVIDENCE_S3_ACCESS_KEY_ID and SOAR_EVIDENCE_S3_SECRET_ACCESS_KEY, else the AWS environment or instance role)")
	fs.StringVar(&f.s3.Endpoint, "evidence-s3-endpoint", "s3.amazonaws.com", "S3-compatible endpoint, host[:port]")
	fs.StringVar(&f.s3.Region, "evidence-s3-region", "", "S3 region")
	fs.StringVar(&f.s3.Prefix, "evidence-s3-prefix", "soar/", "key prefix of evidence bundles in the bucket")
	fs.BoolVar(&f.s3.Insecure, "evidence-s3-insecure", false, "reach the S3 endpoint over plain HTTP (test setups only)")
	fs.BoolVar(&f.s3.PathStyle, "evidence-s3-path-style", false, "path-style bucket addressing (MinIO and most self-hosted stores)")
	fs.DurationVar(&f.s3.Retention, "evidence-s3-retention", 0, "lock every evidence object for this long with S3 Object Lock (the bucket must have it enabled), e.g. 2160h; 0 sets no lock of soar's own (a bucket's default retention still applies)")
	fs.StringVar(&f.s3.RetentionMode, "evidence-s3-retention-mode", "COMPLIANCE", "Object Lock mode with --evidence-s3-retention: COMPLIANCE (nobody can shorten it) or GOVERNANCE")
}

// configured reports whether a directory or a bucket was named.
func (f *evidenceFlags) configured() bool { return f.dir != "" || f.s3.Bucket != "" }

// store opens the S3 bucket when one is named, else the directory.
func (f *evidenceFlags) store(defaultDir string) (evidence.Store, string, error) {
	if f.s3.Bucket != "" {
		cfg := f.s3
		cfg.AccessKeyID = os.Getenv("SOAR_EVIDENCE_S3_ACCESS_KEY_ID")
		cfg.SecretAccessKey = os.Getenv("SOAR_EVIDENCE_S3_SECRET_ACCESS_KEY")
		cfg.SessionToken = os.Getenv("SOAR_EVIDENCE_S3_SESSION_TOKEN")
		st, err := evidence.NewS3(cfg)
		if err != nil {
			return nil, "", err
		}
		return st, st.Location(""), nil
	}
	dir := cmp.Or(f.dir, defaultDir, "soar-evidence")
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	st := evidence.NewLocal(abs)
	return st, st.Location(""), nil
}

// start starts a worker acting on the cluster of kubeconfig. It returns
// where evidence bundles go.
func (f *workerFlags) start(tc client.Client, keys *proof.Keys, kubeconfig, defaultEvidenceDir, namespace string, m *metrics.Metrics, log zerolog.Logger) (*app.Worker, string, error) {
	if f.cluster != "" {
		if err := alert.ValidCluster(f.cluster); err != nil {
			return nil, "", fmt.Errorf("--cluster: %w", err)
		}
	}
	cfg, err := kube.RESTConfig(kubeconfig)
	if err != nil {
		return nil, "", err
	}
	cfg.Timeout = f.kubeTimeout
	if f.kubeQPS <= 0 || f.kubeBurst <= 0 {
		return nil, "", fmt.Errorf("--kube-api-qps %v and --kube-api-burst %d: want both above 0", f.kubeQPS, f.kubeBurst)
	}
	cfg.QPS, cfg.Burst = f.kubeQPS, f.kubeBurst
	cfg.Impersonate = f.kubeAs
	kc, err := kube.NewForConfig(cfg)
	if err != nil {
		return nil, "", err
	}
	if f.lockList != "" {
		list, err := parseLockList(f.lockList)
		if err != nil {
			return nil, "", err
		}
		kc.WithLocks(list, func(ok bool) {
			m.QuarantineLocks.WithLabelValues(map[bool]string{true: "tamper_proof", false: "not_tamper_proof"}[ok]).Inc()
		})
		log.Info().Str("lock_list", f.lockList).Msg("quarantines are locked through this list")
	} else {
		log.Warn().Msg("no --lock-list: quarantined pods are not locked against tampering")
	}
	store, where, err := f.evidence.store(defaultEvidenceDir)
	if err != nil {
		return nil, "", err
	}
	log.Info().Str("evidence", where).Msg("evidence bundles are stored here")
	wc := app.WorkerConfig{
		Kube:                kc,
		Evidence:            store,
		Collector:           evidence.Collector{Tool: "soar", Version: version, Identity: identity("worker")},
		ProtectedNamespaces: app.ProtectedNamespaces(f.protected),
		Keys:                keys,
		Cluster:             f.cluster,
	}
	if f.cluster != "" {
		// A cluster's worker runs Kubernetes actions only: no Slack, no
		// tickets (app.NewClusterWorker).
		w, err := app.StartWorker(tc, wc)
		if err == nil {
			log.Info().Str("cluster", f.cluster).Str("task_queue", contract.ClusterTaskQueue(workflows.TaskQueue, f.cluster)).Msg("this worker runs the Kubernetes actions of its cluster's incidents only")
		}
		return w, where, err
	}
	sec, err := f.slack.secrets(log)
	if err != nil {
		return nil, "", err
	}
	if wc.Slack, err = sec.WorkerSlack(f.slack.channel); err != nil {
		return nil, "", err
	}
	if wc.Tickets, err = f.tickets.Open(); err != nil {
		return nil, "", err
	}
	if wc.Tickets != nil {
		log.Info().Str("tickets", wc.Tickets.Name()).Msg("ticket steps open tickets here")
	} else {
		log.Info().Msg("no ticket provider: ticket steps skip (--ticket-provider)")
	}
	wc.IncidentURL = app.IncidentURL(f.uiURL, namespace)
	w, err := app.StartWorker(tc, wc)
	return w, where, err
}

func newWorkerCmd(g *globalFlags) *cobra.Command {
	var (
		tf       temporalFlags
		wf       workerFlags
		httpAddr string
		wait     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run incident workflows and their actions against an external Temporal cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			// A cluster's worker runs in that cluster, sets no search
			// attributes and checks no proofs: it needs no rights to
			// create attributes and gets no signing keys (app.StartWorker).
			var keys *proof.Keys
			if wf.cluster == "" {
				var err error
				if keys, err = app.SigningKeys(); err != nil {
					return err
				}
			}
			log, tc, err := startTemporalPart(ctx, g, &tf, "worker", wait)
			if err != nil {
				return err
			}
			defer tc.Close()
			if wf.cluster == "" {
				if err := ensureSearchAttributes(ctx, tc, tf.namespace, wait, log); err != nil {
					return err
				}
			}
			m := metrics.New()
			w, _, err := wf.start(tc, keys, wf.kubeconfig, "", tf.namespace, m, log)
			if err != nil {
				return err
			}
			defer w.Stop()
			hs := httpserver.New(m.Registry)
			hs.AddCheck("temporal", app.TemporalCheck(tc))
			// The cluster its actions act on, as they reach it: a worker
			// that cannot contains nothing.
			hs.AddCheck("kubernetes", w.Kube.Reachable)
			return serveUntilDone(ctx, httpAddr, hs, log, "worker started", w.Failed())
		},
	}
	tf.register(cmd.Flags())
	wf.register(cmd)
	cmd.Flags().StringVar(&httpAddr, "http-addr", ":9090", "address for /healthz, /readyz and /metrics (empty disables)")
	registerStartupWait(cmd.Flags(), &wait)
	return cmd
}

// parseLockList reads a --lock-list, namespace/name.
func parseLockList(s string) (kube.LockList, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" {
		return kube.LockList{}, fmt.Errorf("--lock-list %q: want namespace/name", s)
	}
	return kube.LockList{Namespace: ns, Name: name}, nil
}
