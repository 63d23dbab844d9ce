package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/metrics"
)

// slackFlags locate Slack; its secrets come from the environment (see
// app.LoadSlackSecrets).
type slackFlags struct {
	channel string
	apiURL  string
}

func (f *slackFlags) register(fs *pflag.FlagSet, worker bool) {
	if worker {
		fs.StringVar(&f.channel, "slack-channel", "", "Slack channel (ID, or #name) of incident threads when the playbook names none; Slack needs SOAR_SLACK_BOT_TOKEN and SOAR_SLACK_BUTTON_KEY")
	}
	fs.StringVar(&f.apiURL, "slack-api-url", "", "Slack Web API base URL (default Slack's own; for a proxy or a test server)")
}

func (f *slackFlags) secrets(log zerolog.Logger) (app.SlackSecrets, error) {
	sec, err := app.LoadSlackSecrets(f.apiURL)
	if err != nil {
		return sec, err
	}
	log.Info().Str("slack", sec.Describe()).Msg("slack set-up")
	return sec, nil
}

func identity(part string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("soar-%s@%s", part, host)
}

// conns are what a part that reads alerts or serves analysts connects to,
// and the playbooks and metrics it keeps up to date.
type conns struct {
	tc    client.Client
	nc    *nats.Conn
	pb    *app.Playbooks
	watch *app.PlaybookWatch
	m     *metrics.Metrics
}

// connect loads the playbooks first (a typo is reported before any network
// wait) and watches them for changes from then on, so that an edit made
// while Temporal and NATS are dialled is not missed; then it dials them,
// each for up to wait (--startup-wait).
func connect(ctx context.Context, tf *temporalFlags, nf *natsFlags, playbookDir, part string, wait time.Duration, log zerolog.Logger) (*conns, error) {
	pb, err := app.LoadPlaybooks(playbookDir)
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	watch, err := pb.Watch(ctx, log, m)
	if err != nil {
		return nil, err
	}
	tc, err := tf.dial(ctx, identity(part), wait, log)
	if err != nil {
		watch.Stop()
		return nil, err
	}
	nc, err := nf.connect(ctx, identity(part), wait, log)
	if err != nil {
		tc.Close()
		watch.Stop()
		return nil, err
	}
	return &conns{tc: tc, nc: nc, pb: pb, watch: watch, m: m}, nil
}

func (c *conns) close() {
	c.nc.Close()
	c.tc.Close()
	c.watch.Stop()
}

// stopLogged stops a part on the way out, logging (not returning) a failure:
// the process is ending either way, and the operator should see why a part
// did not stop cleanly.
func stopLogged(log zerolog.Logger, part string, stop func() error) {
	if err := stop(); err != nil {
		log.Warn().Err(err).Str("part", part).Msg("stop failed")
	}
}

// startTemporalPart starts a part that reads no playbooks and needs Temporal
// (worker, serve): its logger, SIGHUP ignored (a reload sent to every soar
// process must not end it), and its Temporal client, dialled for up to wait
// (--startup-wait), which the caller closes.
func startTemporalPart(ctx context.Context, g *globalFlags, tf *temporalFlags, part string, wait time.Duration) (zerolog.Logger, client.Client, error) {
	log, err := g.logger()
	if err != nil {
		return log, nil, err
	}
	signal.Ignore(syscall.SIGHUP)
	tc, err := tf.dial(ctx, identity(part), wait, log)
	return log, tc, err
}

// ensureSearchAttributes registers soar's search attributes on the
// namespace, trying again for up to wait while Temporal cannot answer (a
// namespace an install is still creating); a refusal (no permission) fails
// at once.
func ensureSearchAttributes(ctx context.Context, tc client.Client, namespace string, wait time.Duration, log zerolog.Logger) error {
	return app.StartupRetry(ctx, wait, "Temporal namespace "+namespace, log, func(ctx context.Context) error {
		return app.UnlessRefused(incidents.EnsureSearchAttributes(ctx, tc, namespace))
	})
}
