package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/proof"
)

func newServeCmd(g *globalFlags) *cobra.Command {
	var (
		tf       temporalFlags
		sf       slackFlags
		cf       consoleFlags
		ef       evidenceFlags
		httpAddr string
		wait     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve soar's HTTP endpoints: /healthz, /readyz, /metrics, Slack's /slack/interactions (or Socket Mode), the vote API and the console",
		Long: `serve takes votes from Slack and the vote API and hands them to the
incidents in Temporal. It needs Temporal and, when configured, Slack; it
reads no alerts and no playbooks, so NATS and the playbook directory do not
decide whether it is ready.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log, tc, err := startTemporalPart(ctx, g, &tf, "serve", wait)
			if err != nil {
				return err
			}
			defer tc.Close()
			auth, err := cf.authenticator(ctx, httpAddr, nil, wait, log)
			if err != nil {
				return err
			}
			people, err := cf.peopleMap()
			if err != nil {
				return err
			}
			hs := httpserver.New(metrics.New().Registry)
			hs.AddCheck("temporal", app.TemporalCheck(tc))
			keys, err := app.SigningKeys()
			if err != nil {
				return err
			}
			ap, err := startApprovals(ctx, hs, tc, keys, &sf, nil, log)
			if err != nil {
				return err
			}
			defer ap.Stop()
			// The console reads evidence bundles where the workers store
			// them, when told where.
			var store evidence.Store
			if ef.configured() {
				if store, _, err = ef.store(""); err != nil {
					return err
				}
			}
			if _, err := startConsole(hs, auth, people, cf.downloadsPerMinute, tc, tf.namespace, ap.Service, store, log); err != nil {
				return err
			}
			return serveUntilDone(ctx, httpAddr, hs, log, "server started", nil)
		},
	}
	tf.register(cmd.Flags())
	sf.register(cmd.Flags(), false)
	cf.register(cmd.Flags(), false)
	ef.register(cmd.Flags(), "directory of the workers' evidence bundles, for the console to show and verify them (or --evidence-s3-bucket); default none: the console shows each manifest's digest only")
	// serve only reads evidence: retention is the workers' to set.
	_ = cmd.Flags().MarkHidden("evidence-s3-retention")
	_ = cmd.Flags().MarkHidden("evidence-s3-retention-mode")
	cmd.Flags().StringVar(&httpAddr, "http-addr", ":8080", "listen address")
	registerStartupWait(cmd.Flags(), &wait)
	return cmd
}

// startApprovals starts what takes votes: Slack interactions and the vote
// API, as the secrets in the environment allow.
// extra are tokens besides SOAR_API_TOKENS (soar dev's for its user).
func startApprovals(ctx context.Context, hs *httpserver.Server, tc client.Client, keys *proof.Keys, sf *slackFlags, extra incidents.Tokens, log zerolog.Logger) (*app.Approvals, error) {
	sec, err := sf.secrets(log)
	if err != nil {
		return nil, err
	}
	raw, err := app.Secret(app.EnvAPITokens)
	if err != nil {
		return nil, err
	}
	tokens, people, err := incidents.ParseTokens(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", app.EnvAPITokens, err)
	}
	for name, tok := range extra {
		if _, dup := tokens[name]; dup {
			return nil, fmt.Errorf("%s: token %q is soar dev's own: name yours differently", app.EnvAPITokens, name)
		}
		tokens[name] = tok
	}
	return app.StartApprovals(ctx, hs, tc, keys, sec, tokens, people, log)
}

// endedWith delivers err once ended is closed.
func endedWith(ended <-chan struct{}, err error) <-chan error {
	out := make(chan error, 1)
	go func() { <-ended; out <- err }()
	return out
}

// firstFailure delivers the first error that one of failed delivers, until
// ctx ends.
func firstFailure(ctx context.Context, failed ...<-chan error) <-chan error {
	out := make(chan error, len(failed))
	for _, f := range failed {
		go func() {
			select {
			case err := <-f:
				out <- err
			case <-ctx.Done():
			}
		}()
	}
	return out
}

// serveUntilDone serves the HTTP endpoints (unless addr is empty) until ctx
// ends, or until a part that stopped on its own sends why on failed (nil:
// none can) and serveUntilDone returns that error, so that the process
// exits and its supervisor restarts it rather than it run on looking alive.
func serveUntilDone(ctx context.Context, addr string, hs *httpserver.Server, log zerolog.Logger, msg string, failed <-chan error) error {
	ev := log.Info()
	if addr != "" {
		h, err := app.ServeHTTP(addr, hs, log)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = h.Stop(sctx)
		}()
		ev = ev.Str("http", h.Addr())
	}
	ev.Msg(msg)
	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
		return nil
	case err := <-failed:
		return err
	}
}
