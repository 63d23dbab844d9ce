package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	tlog "go.temporal.io/server/common/log"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/console"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/proof"
	"github.com/soar-dev/soar/workflows"
)

func newDevCmd(g *globalFlags) *cobra.Command {
	var (
		dataDir      string
		natsPort     int
		temporalPort int
		uiPort       int
		httpPort     int
		localKube    bool
		clusters     int
		df           dispatchFlags
		wf           workerFlags
		cf           consoleFlags
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process: NATS, Temporal and its UI, the worker, the dispatcher and the HTTP server",
		Long: `soar dev runs the whole of soar on one machine for a laptop, a demo or a test:
an embedded NATS server with JetStream, an embedded Temporal server on SQLite
with its Web UI, the worker, the dispatcher and the HTTP endpoints.

Everything durable lives in --data-dir: restart with the same directory and every
incident and every alert not yet dispatched is still there. One soar dev at a
time uses a data directory: it locks <data-dir>/soar-dev.pid, and first stops
whatever a killed soar dev left running there. With --local-kube it
also starts a kube-apiserver and etcd (built by 'make kube-tools') and writes
<data-dir>/kubeconfig, so the demo needs no cluster; it installs deploy/'s
ServiceAccounts, RBAC and admission policies there, and its worker acts as
soar-worker and locks its quarantines (docs/reference-monitor.md). Without
it, --kubeconfig must name the cluster to act on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			if err := os.MkdirAll(dataDir, 0o750); err != nil {
				return fmt.Errorf("data directory: %w", err)
			}
			// One soar dev per data directory; what a killed one left
			// running there is stopped first.
			dd, err := devstack.LockDataDir(dataDir, log)
			if err != nil {
				return err
			}
			defer stopLogged(log, "data directory lock", dd.Close)
			// Playbooks are checked first: a typo should not cost a minute of
			// start-up before it is reported. They are watched from then on,
			// so an edit made during start-up is not missed.
			pb, err := app.LoadPlaybooks(df.playbooks)
			if err != nil {
				return err
			}
			// The console's sign-in too: soar dev's local user votes as
			// the identity of its API token.
			httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
			auth, err := cf.authenticator(ctx, httpAddr, &console.Local{User: "api:" + devUser(), Name: devUser()}, 0, log)
			if err != nil {
				return err
			}
			people, err := cf.peopleMap()
			if err != nil {
				return err
			}
			m := metrics.New()
			watch, err := pb.Watch(ctx, log, m)
			if err != nil {
				return err
			}
			defer watch.Stop()

			// A laptop's current kubeconfig context may well be production:
			// the demo acts on a cluster only when told which.
			if !localKube && wf.kubeconfig == "" {
				return errors.New("soar dev acts on a Kubernetes cluster: pass --local-kube for a local API server, or --kubeconfig FILE to act on the cluster it names")
			}
			if localKube && wf.lockList != "" && wf.lockList != kube.DefaultLockList.String() {
				return fmt.Errorf("--lock-list %s with --local-kube: the policies soar dev installs read %s; pass that, or \"\" for no lock", wf.lockList, kube.DefaultLockList)
			}
			if clusters > 0 && !localKube {
				return errors.New("--clusters starts local API servers: pass --local-kube with it")
			}
			if err := df.clusters.Validate(); err != nil {
				return fmt.Errorf("--allowed-clusters, --default-cluster: %w", err)
			}
			if clusters < 0 || clusters > maxDevClusters {
				return fmt.Errorf("--clusters %d: from 0 (one cluster, no names) to %d (each is an etcd and a kube-apiserver)", clusters, maxDevClusters)
			}
			kubeconfig := wf.kubeconfig
			var locals []devCluster
			if localKube {
				if !cmd.Flags().Changed("lock-list") {
					wf.lockList = kube.DefaultLockList.String()
				}
				// The demo runs as production does: the worker as
				// soar-worker, under deploy/'s RBAC and admission
				// policies, its quarantines locked.
				wf.kubeAs = workerServiceAccount
				names := []string{""}
				if clusters > 0 {
					names = devClusterNames(clusters)
				}
				for _, name := range names {
					c, err := startDevCluster(ctx, dataDir, name, dd.PIDFile(), log)
					if c.stop != nil {
						defer stopLogged(log, "kube-apiserver "+name, c.stop)
					}
					if err != nil {
						return err
					}
					locals = append(locals, c)
				}
				kubeconfig = locals[0].kubeconfig
				if clusters > 0 && df.clusters.Default == "" {
					// Every alert has a cluster: one that names none is dev-1's.
					df.clusters.Default = locals[0].name
				}
				if clusters > 0 && len(df.clusters.Allowed) == 0 {
					// No worker serves any other cluster: an alert naming
					// one is dead-lettered rather than opening an incident
					// that can only fail.
					df.clusters.Allowed = names
				}
			}

			ns, err := devstack.StartNATS(devstack.NATSOptions{Port: natsPort, StoreDir: filepath.Join(dataDir, "nats")})
			if err != nil {
				return err
			}
			defer ns.Shutdown()

			temporalLog := filepath.Join(dataDir, "temporal.log")
			ts, err := devstack.StartTemporal(devstack.TemporalOptions{
				DBPath:     filepath.Join(dataDir, "temporal.db"),
				Port:       temporalPort,
				Namespaces: []string{"default"},
				Logger:     tlog.NewZapLogger(tlog.BuildZapLogger(tlog.Config{Level: "warn", OutputFile: temporalLog})),
			})
			if err != nil {
				return err
			}
			defer stopLogged(log, "temporal", ts.Stop)
			ui, err := devstack.StartUI(ts.Address(), "127.0.0.1", uiPort, "default")
			if err != nil {
				return err
			}
			defer ui.Stop()

			tc, err := app.DialTemporal(ctx, app.TemporalOptions{Address: ts.Address(), Namespace: "default", Identity: identity("dev")}, log)
			if err != nil {
				return err
			}
			defer tc.Close()
			if err := incidents.EnsureSearchAttributes(ctx, tc, "default"); err != nil {
				return err
			}
			if wf.uiURL == "" {
				wf.uiURL = ui.URL()
			}
			keys, token, err := devSecrets(dataDir)
			if err != nil {
				return err
			}
			w, evidenceAt, err := wf.start(tc, keys, kubeconfig, filepath.Join(dataDir, "evidence"), "default", m, log)
			if err != nil {
				return err
			}
			defer w.Stop()
			failed := []<-chan error{w.Failed()}
			for _, c := range locals {
				if c.name == "" {
					continue
				}
				cw := wf
				cw.cluster = c.name
				w, _, err := cw.start(tc, keys, c.kubeconfig, filepath.Join(dataDir, "evidence"), "default", m, log)
				if err != nil {
					return err
				}
				defer w.Stop()
				failed = append(failed, w.Failed())
			}

			nc, err := nats.Connect(ns.ClientURL(), nats.Name(identity("dev")), natsErrorLog(log))
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			dcfg, err := df.config("default", identity("dev"), keys)
			if err != nil {
				return err
			}
			// The dispatcher knows the pods of every cluster the workers
			// act on, so that alerts for pods that do not exist cannot hold
			// back real ones (dispatch/triage.go).
			indexes, as := map[string]string{"": kubeconfig}, rest.ImpersonationConfig{}
			if localKube {
				indexes, as = map[string]string{}, dispatchServiceAccount
				for _, c := range locals {
					indexes[c.name] = c.kubeconfig
				}
			}
			if dcfg.Pods, err = startPodIndexes(ctx, indexes, as, log); err != nil {
				return err
			}
			d, err := app.StartDispatcher(ctx, js, tc, pb, m, log, dcfg)
			if err != nil {
				return err
			}
			defer stopLogged(log, "dispatcher", d.Stop)

			hs := app.Readiness(m, tc, nc, pb)
			hs.AddCheck("backlog", d.BacklogCheck)
			if len(dcfg.Pods) > 0 {
				hs.AddCheck("pod-index", d.PodIndexCheck)
			}
			ap, err := startApprovals(ctx, hs, tc, keys, &wf.slack, incidents.Tokens{token.name: token.token}, log)
			if err != nil {
				return err
			}
			defer ap.Stop()
			store, _, err := wf.evidence.store(filepath.Join(dataDir, "evidence"))
			if err != nil {
				return err
			}
			signIn, err := startConsole(hs, auth, people, cf.downloadsPerMinute, tc, "default", ap.Service, store, log)
			if err != nil {
				return err
			}
			h, err := app.ServeHTTP(httpAddr, hs, log)
			if err != nil {
				return err
			}
			defer func() {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = h.Stop(sctx)
			}()

			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "soar dev is running; data in %s\n", dataDir)
			fmt.Fprintf(out, "  NATS         %s  (alerts on alerts.> and falco.>)\n", ns.ClientURL())
			fmt.Fprintf(out, "  Temporal     %s  (namespace default; server log %s)\n", ts.Address(), temporalLog)
			fmt.Fprintf(out, "  Temporal UI  %s\n", ui.URL())
			fmt.Fprintf(out, "  HTTP         http://%s  (/healthz /readyz /metrics)\n", h.Addr())
			if signIn != "" {
				fmt.Fprintf(out, "  Console      http://%s/console/  (%s)\n", h.Addr(), signIn)
			}
			fmt.Fprintf(out, "  API          http://%s/api/v1  (soar approve, soar incident close|release as api:%s; token in %s)\n", h.Addr(), token.name, filepath.Join(dataDir, devTokenFile))
			for _, c := range locals {
				if c.name == "" {
					fmt.Fprintf(out, "  Kubernetes   %s  (kubeconfig %s)\n", c.url, c.kubeconfig)
				} else {
					fmt.Fprintf(out, "  Cluster      %-6s %s  (kubeconfig %s; its worker polls %s)\n", c.name, c.url, c.kubeconfig, contract.ClusterTaskQueue(workflows.TaskQueue, c.name))
				}
			}
			if len(df.clusters.Allowed) > 0 {
				fmt.Fprintf(out, "  Clusters     alerts may name %s; others go to the dead-letter stream (unknown_cluster)\n", strings.Join(df.clusters.Allowed, ", "))
			}
			if len(locals) > 0 {
				locked := "quarantines locked through " + wf.lockList
				if wf.lockList == "" {
					locked = "quarantines not locked (--lock-list \"\")"
				}
				fmt.Fprintf(out, "  Worker       acts as %s; %s (deploy/'s policies installed)\n", wf.kubeAs.UserName, locked)
			}
			fmt.Fprintf(out, "  Evidence     %s\n", evidenceAt)
			fmt.Fprintf(out, "  Slack        %s\n", slackBanner(ap.Slack))
			fmt.Fprintf(out, "  Playbooks    %s  (%d loaded)\n", pb.Dir(), len(pb.Current().Playbooks()))
			fmt.Fprintln(out, "Press Ctrl-C to stop.")
			// As soar dispatch and soar worker do, soar dev exits when its
			// dispatcher or a worker stopped on its own (the consumer
			// deleted, the namespace gone) rather than run on looking
			// alive; starting it again creates the consumer again.
			failed = append(failed, endedWith(d.Ended(), errDispatcherEnded))
			select {
			case <-ctx.Done():
				log.Info().Msg("shutting down")
				return nil
			case err := <-firstFailure(ctx, failed...):
				// Shut down as Ctrl-C does: the parts that watch the API
				// servers stop with ctx, which lets the servers stop at
				// once (with their watches open, each waited 30 s).
				cancel()
				return err
			}
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dataDir, "data-dir", ".soar", "directory for NATS, Temporal and etcd data")
	fs.IntVar(&natsPort, "nats-port", 4222, "NATS client port")
	fs.IntVar(&temporalPort, "temporal-port", 7233, "Temporal frontend port")
	fs.IntVar(&uiPort, "ui-port", 8233, "Temporal Web UI port")
	fs.IntVar(&httpPort, "http-port", 8080, "soar HTTP port (/healthz, /readyz, /metrics)")
	fs.BoolVar(&localKube, "local-kube", false, "also start a local kube-apiserver and etcd and act on it")
	fs.IntVar(&clusters, "clusters", 0, "with --local-kube: start this many local clusters, dev-1 … dev-N, each with its own worker and <data-dir>/kubeconfig-dev-N; alerts name theirs in the field \"cluster\", those naming none are dev-1's, and those naming another are dead-lettered unless --allowed-clusters lists it (docs/multi-cluster.md)")
	df.register(cmd)
	wf.register(cmd)
	cf.register(fs, true)
	// With --kubeconfig, soar dev runs the worker as the kubeconfig's user
	// on a cluster it installs nothing on: no lock list unless given. With
	// --local-kube it installs deploy/ and locks through its list.
	if f := cmd.Flags().Lookup("lock-list"); f != nil {
		f.DefValue = ""
		f.Usage = "the ConfigMap namespace/name listing the pods locked in quarantine (default with --local-kube, which installs deploy/'s admission policies: " + kube.DefaultLockList.String() + "; with --kubeconfig: none, quarantines are not locked and their results say so)"
		_ = f.Value.Set("")
	}
	return cmd
}

// slackBanner says what soar dev does with Slack.
func slackBanner(s app.SlackSecrets) string {
	if s.BotToken == "" && s.SigningSecret == "" && s.AppToken == "" {
		return "not configured: vote with 'soar approve' (docs/slack.md sets it up)"
	}
	return s.Describe()
}

// devToken is the API token soar dev makes for the user who runs it.
type devToken struct{ name, token string }

// devSecrets returns the signing keys of soar dev's processes and the API
// token of its user, both kept in the data directory so that a restart
// keeps them: SOAR_SIGNING_KEYS when set, else <data-dir>/signing-keys;
// and <data-dir>/api-token, which the CLI reads from .soar/.
func devSecrets(dataDir string) (*proof.Keys, devToken, error) {
	tok, err := readOrCreate(filepath.Join(dataDir, devTokenFile), proof.Generate)
	if err != nil {
		return nil, devToken{}, err
	}
	token := devToken{name: devUser(), token: tok}
	if os.Getenv(app.EnvSigningKeys) != "" || os.Getenv(app.EnvSigningKeys+"_FILE") != "" {
		// Keys given are used, or their error reported: never replaced.
		keys, err := app.SigningKeys()
		return keys, token, err
	}
	file := filepath.Join(dataDir, "signing-keys")
	raw, err := readOrCreate(file, proof.Generate)
	if err != nil {
		return nil, devToken{}, err
	}
	keys, err := proof.Parse(raw)
	if err != nil {
		return nil, devToken{}, fmt.Errorf("%s: %w", file, err)
	}
	return keys, token, nil
}

// readOrCreate returns the content of file, first writing gen() to it
// (mode 0600) if it does not exist.
func readOrCreate(file string, gen func() string) (string, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	v := gen()
	if err := os.WriteFile(file, []byte(v+"\n"), 0o600); err != nil {
		return "", err
	}
	return v, nil
}

// devUser names soar dev's API token: the operating system user, so that
// its votes are api:<user>.
func devUser() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	name = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == ':' || r == ',' {
			return '-'
		}
		return r
	}, name)
	if name == "" {
		return "dev"
	}
	return name
}
