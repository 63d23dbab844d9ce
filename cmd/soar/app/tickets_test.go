package app

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/connectors/tickets"
)

// TestTicketSecretsNeverReachTheLog configures each provider with secrets
// from the environment, makes the ticket system refuse them, and logs the
// error as the worker does: the log says what to fix and never holds a
// secret.
func TestTicketSecretsNeverReachTheLog(t *testing.T) {
	const secret = "s3cr3t-token-value-0123456789abcdef"
	var seenAuth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenAuth = append(seenAuth, r.Header.Get("Authorization")+r.Header.Get("X-Soar-Signature"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message": "Bad credentials", "errorMessages": ["unauthorized"]}`))
	}))
	t.Cleanup(srv.Close)
	for _, env := range []string{EnvJiraAPIToken, EnvJiraPAT, EnvGitHubToken, EnvWebhookSecret} {
		t.Setenv(env, secret)
	}
	for _, cfg := range []TicketConfig{
		{Provider: "jira", Jira: tickets.JiraConfig{URL: srv.URL, Cloud: true, Email: "soar@example.com", Project: "SEC"}},
		{Provider: "jira", Jira: tickets.JiraConfig{URL: srv.URL, Cloud: false, Project: "SEC"}},
		{Provider: "github", GitHubRepo: "acme/incidents", GitHub: tickets.GitHubConfig{APIURL: srv.URL + "/"}},
		{Provider: "webhook", Webhook: tickets.WebhookConfig{URL: srv.URL}},
	} {
		name := cfg.Provider
		if cfg.Provider == "jira" && !cfg.Jira.Cloud {
			name = "jira data center"
		}
		t.Run(name, func(t *testing.T) {
			p, err := cfg.Open()
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = tickets.Open(context.Background(), p, tickets.Content{IncidentID: "soar-x-1", Title: "t", Severity: "high"})
			if err == nil {
				t.Fatal("a refused credential was accepted")
			}
			var buf bytes.Buffer
			log := zerolog.New(&buf)
			log.Error().Err(err).Str("provider", p.Name()).Msg("ticket update failed")
			if strings.Contains(buf.String(), secret) {
				t.Errorf("the log holds the secret: %s", buf.String())
			}
			var te *tickets.Error
			if !errors.As(err, &te) || te.Status != http.StatusUnauthorized || te.Retryable || te.Hint == "" || !strings.Contains(buf.String(), te.Hint) {
				t.Errorf("the log does not say the credentials were refused and what to fix: %s", buf.String())
			}
		})
	}
	if len(seenAuth) < 4 {
		t.Fatalf("%d requests", len(seenAuth))
	}
	for _, a := range seenAuth {
		if a == "" {
			t.Error("a request carried no credentials")
		}
	}
}
