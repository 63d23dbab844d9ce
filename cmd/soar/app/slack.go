package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/connectors/slack"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/proof"
)

// Secrets soar reads from the environment, each also from the file named by
// the variable with _FILE appended (a mounted Kubernetes Secret).
const (
	EnvSlackBotToken      = "SOAR_SLACK_BOT_TOKEN"
	EnvSlackSigningSecret = "SOAR_SLACK_SIGNING_SECRET"
	EnvSlackAppToken      = "SOAR_SLACK_APP_TOKEN"
	EnvSlackButtonKey     = "SOAR_SLACK_BUTTON_KEY"
	EnvAPITokens          = "SOAR_API_TOKENS"
	// EnvSlackTeamID and EnvSlackAppID name the Slack workspace (T…) and
	// app (A…) whose clicks count; not secrets. Without the team ID, serve
	// asks Slack (auth.test) on the first click.
	EnvSlackTeamID = "SOAR_SLACK_TEAM_ID"
	EnvSlackAppID  = "SOAR_SLACK_APP_ID"
)

// Secret returns the value of the environment variable name, or the
// content of the file named by name_FILE (trailing newline removed). Both
// set is an error; neither is "". Errors name the variable, never a value.
func Secret(name string) (string, error) {
	v, file := os.Getenv(name), os.Getenv(name+"_FILE")
	switch {
	case v != "" && file != "":
		return "", fmt.Errorf("both %s and %s_FILE are set: use one", name, name)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %w", name, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return v, nil
}

// SlackSecrets are the Slack app's credentials.
type SlackSecrets struct {
	// BotToken (xoxb-…) posts messages and reads user groups.
	BotToken string
	// SigningSecret verifies requests to /slack/interactions.
	SigningSecret string
	// AppToken (xapp-…) opens a Socket Mode connection instead.
	AppToken string
	// ButtonKey signs the approval buttons (at least 32 bytes); the worker
	// and the server need the same one.
	ButtonKey string
	// TeamID and AppID, when set, are the only workspace and app whose
	// clicks count (see EnvSlackTeamID).
	TeamID, AppID string
	// APIURL is Slack's Web API base URL; empty means Slack's own.
	APIURL string
}

// LoadSlackSecrets reads the Slack secrets from the environment or files.
func LoadSlackSecrets(apiURL string) (SlackSecrets, error) {
	s := SlackSecrets{APIURL: apiURL, TeamID: os.Getenv(EnvSlackTeamID), AppID: os.Getenv(EnvSlackAppID)}
	var errs []error
	for name, dst := range map[string]*string{
		EnvSlackBotToken: &s.BotToken, EnvSlackSigningSecret: &s.SigningSecret,
		EnvSlackAppToken: &s.AppToken, EnvSlackButtonKey: &s.ButtonKey,
	} {
		v, err := Secret(name)
		errs = append(errs, err)
		*dst = v
	}
	return s, errors.Join(errs...)
}

func (s SlackSecrets) client() *slack.Client {
	if s.BotToken == "" {
		return nil
	}
	return slack.New(slack.Config{BotToken: s.BotToken, APIURL: s.APIURL})
}

func (s SlackSecrets) signer() (*slack.Signer, error) {
	if s.ButtonKey == "" {
		return nil, fmt.Errorf("%s is needed with %s: it signs the approval buttons (generate one with: openssl rand -hex 32)", EnvSlackButtonKey, EnvSlackBotToken)
	}
	sg, err := slack.NewSigner([]byte(s.ButtonKey))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvSlackButtonKey, err)
	}
	return sg, nil
}

// WorkerSlack is the worker's Slack: none without a bot token.
func (s SlackSecrets) WorkerSlack(channel string) (activities.SlackConfig, error) {
	c := s.client()
	if c == nil {
		return activities.SlackConfig{}, nil
	}
	sg, err := s.signer()
	if err != nil {
		return activities.SlackConfig{}, err
	}
	return activities.SlackConfig{Client: c, Signer: sg, Channel: channel}, nil
}

// Describe says, for the start-up log, what Slack is set up.
func (s SlackSecrets) Describe() string {
	var parts []string
	if s.BotToken != "" {
		parts = append(parts, "bot token")
	}
	if s.SigningSecret != "" {
		parts = append(parts, "interactions over HTTP")
	}
	if s.AppToken != "" {
		parts = append(parts, "Socket Mode")
	}
	if len(parts) == 0 {
		return "not configured"
	}
	return strings.Join(parts, ", ")
}

// Approvals is what takes votes: Slack's interactions (HTTP, Socket Mode)
// and the HTTP API.
type Approvals struct {
	Service *incidents.Service
	// Slack is what Slack setup the votes came with.
	Slack        SlackSecrets
	interactions *slack.Interactions
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	// socketStopped is why Socket Mode stopped for good (Slack refused
	// the app-level token); nil while it runs or retries.
	socketStopped atomic.Pointer[error]
}

// StartApprovals mounts /slack/interactions on hs when a signing secret is
// set, runs Socket Mode when an app token is set, and mounts the vote API
// when tokens are given. It adds a "slack" readiness check that degrades,
// and never fails, when Slack does not answer or Socket Mode stopped for
// good: votes still arrive through the CLI and the API.
func StartApprovals(ctx context.Context, hs *httpserver.Server, tc client.Client, keys *proof.Keys, sec SlackSecrets, tokens incidents.Tokens, people incidents.People, log zerolog.Logger) (*Approvals, error) {
	if keys == nil {
		return nil, fmt.Errorf("start approvals: %w", errNoKeys)
	}
	c := sec.client()
	svc := &incidents.Service{Temporal: tc, Keys: keys, Log: log.With().Str("component", "approvals").Logger()}
	a := &Approvals{Service: svc, Slack: sec}
	if c != nil {
		svc.Slack = c
		hs.AddCheck("slack", func(ctx context.Context) error {
			// Socket Mode first: with the app-level token refused, the bot
			// token still answers, and the buttons' votes are lost.
			if err := a.socketStopped.Load(); err != nil {
				return &httpserver.Degraded{Detail: "Socket Mode stopped, votes from Slack buttons are not received until a restart with a valid app-level token: " + (*err).Error()}
			}
			if _, _, err := c.AuthTest(ctx); err != nil {
				return &httpserver.Degraded{Detail: "Slack does not answer: " + err.Error()}
			}
			return nil
		})
	}
	if len(tokens) > 0 {
		(&incidents.API{Service: svc, Tokens: tokens, People: people}).Register(hs)
	}
	if sec.SigningSecret == "" && sec.AppToken == "" {
		return a, nil
	}
	if c == nil {
		return nil, fmt.Errorf("slack: interactions need %s too: soar answers the clicker and reads user groups with it", EnvSlackBotToken)
	}
	sg, err := sec.signer()
	if err != nil {
		return nil, err
	}
	in, err := slack.NewInteractions(slack.InteractionsConfig{
		SigningSecret: sec.SigningSecret, Signer: sg, Decider: incidents.SlackDecider{Service: svc}, Client: c,
		Log:  log.With().Str("component", "slack").Logger(),
		Team: sec.TeamID, AppID: sec.AppID,
		Workspace: func(ctx context.Context) (string, error) {
			team, _, err := c.AuthTest(ctx)
			return team, err
		},
	})
	if err != nil {
		return nil, err
	}
	a.interactions = in
	if sec.SigningSecret != "" {
		hs.Handle("POST /slack/interactions", in)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	if sec.AppToken != "" {
		a.wg.Go(func() {
			if err := in.RunSocketMode(rctx, sec.AppToken, sec.APIURL); err != nil {
				a.socketStopped.Store(&err)
				log.Error().Err(err).Msg("slack socket mode stopped: votes from Slack buttons are not received")
			}
		})
	}
	return a, nil
}

// Stop stops Socket Mode and waits for votes in flight.
func (a *Approvals) Stop() {
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	if a.interactions != nil {
		a.interactions.Wait()
	}
}
