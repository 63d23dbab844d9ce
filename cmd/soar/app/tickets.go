package app

import (
	"errors"
	"fmt"
	"strings"

	"github.com/soar-dev/soar/connectors/tickets"
)

// Ticket secrets, from the environment or the file named by NAME_FILE.
const (
	EnvJiraAPIToken  = "SOAR_JIRA_API_TOKEN"
	EnvJiraPAT       = "SOAR_JIRA_PAT"
	EnvGitHubToken   = "SOAR_GITHUB_TOKEN"
	EnvWebhookSecret = "SOAR_WEBHOOK_SECRET"
)

// TicketConfig selects and configures the worker's ticket provider; its
// secrets come from the environment.
type TicketConfig struct {
	// Provider is jira, github, webhook, or empty for none.
	Provider string
	Jira     tickets.JiraConfig
	GitHub   tickets.GitHubConfig
	// GitHubRepo is owner/repo.
	GitHubRepo string
	Webhook    tickets.WebhookConfig
}

// Open returns the configured provider, nil when none is.
func (c TicketConfig) Open() (tickets.Provider, error) {
	switch c.Provider {
	case "":
		return nil, nil
	case "jira":
		cfg := c.Jira
		var err error
		if cfg.Cloud {
			cfg.APIToken, err = Secret(EnvJiraAPIToken)
		} else {
			cfg.PAT, err = Secret(EnvJiraPAT)
		}
		if err != nil {
			return nil, err
		}
		return tickets.NewJira(cfg)
	case "github":
		cfg := c.GitHub
		owner, repo, ok := strings.Cut(c.GitHubRepo, "/")
		if !ok || owner == "" || repo == "" {
			return nil, fmt.Errorf("--github-repo must be owner/repo, not %q", c.GitHubRepo)
		}
		cfg.Owner, cfg.Repo = owner, repo
		tok, err := Secret(EnvGitHubToken)
		if err != nil {
			return nil, err
		}
		cfg.Token = tok
		return tickets.NewGitHub(cfg)
	case "webhook":
		cfg := c.Webhook
		sec, err := Secret(EnvWebhookSecret)
		if err != nil {
			return nil, err
		}
		if sec == "" {
			return nil, errors.New(EnvWebhookSecret + " is needed with --ticket-provider webhook: it signs every request")
		}
		cfg.Secret = sec
		return tickets.NewWebhook(cfg)
	}
	return nil, fmt.Errorf("--ticket-provider %q: use jira, github or webhook", c.Provider)
}
