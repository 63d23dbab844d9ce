package tickets_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/soar-dev/soar/connectors/tickets"
)

func TestOpenFindsBeforeItCreates(t *testing.T) {
	ctx := context.Background()
	t.Run("jira: a ticket exists", func(t *testing.T) {
		j := newFakeJira(t, true)
		j.add(&jiraIssue{id: "10000", key: "SEC-24", labels: []string{tickets.IncidentLabel("inc-2024-0042")}})
		tk, created, err := tickets.Open(ctx, newJira(t, j), sampleContent())
		if err != nil || created || tk.Key != "SEC-24" {
			t.Errorf("Open = %+v, %v, %v; want SEC-24, not created", tk, created, err)
		}
		if n := j.count(http.MethodPost, "/rest/api/3/issue"); n != 0 {
			t.Errorf("%d creates, want none", n)
		}
	})
	t.Run("jira: no ticket yet", func(t *testing.T) {
		j := newFakeJira(t, true)
		j.add(&jiraIssue{id: "10000", key: "SEC-24", labels: []string{tickets.IncidentLabel("another incident")}})
		tk, created, err := tickets.Open(ctx, newJira(t, j), sampleContent())
		if err != nil || !created || tk.Key != "SEC-25" {
			t.Errorf("Open = %+v, %v, %v; want SEC-25, created", tk, created, err)
		}
		if n := j.count(http.MethodPost, "/rest/api/3/issue"); n != 1 {
			t.Errorf("%d creates, want 1", n)
		}
	})
	t.Run("github: a ticket exists, closed", func(t *testing.T) {
		g := newFakeGitHub(t)
		g.add(&ghIssue{labels: []string{tickets.IncidentLabel("inc-2024-0042")}, state: "closed"})
		tk, created, err := tickets.Open(ctx, newGitHub(t, g), sampleContent())
		if err != nil || created || tk.Key != "acme/secops#1347" {
			t.Errorf("Open = %+v, %v, %v; want acme/secops#1347, not created", tk, created, err)
		}
		if n := g.count(http.MethodPost, "/repos/acme/secops/issues"); n != 0 {
			t.Errorf("%d creates, want none", n)
		}
	})
}

func TestOpenAfterALostAnswerFindsTheFirstTicket(t *testing.T) {
	lost := []struct {
		name   string
		answer canned
	}{
		{"bad gateway", canned{after: true, status: http.StatusBadGateway, body: "<html>502 Bad Gateway</html>", header: map[string]string{"Content-Type": "text/html"}}},
		{"connection dropped", canned{after: true, drop: true}},
		{"timeout", canned{after: true, delay: 5 * time.Second}},
	}
	providers := []struct {
		name    string
		start   func(t *testing.T, client *http.Client) (tickets.Provider, *fake, func() int)
		pattern string
	}{
		{"jira", func(t *testing.T, client *http.Client) (tickets.Provider, *fake, func() int) {
			j := newFakeJira(t, false)
			return newJira(t, j, func(c *tickets.JiraConfig) { c.HTTPClient = client }), j.fake, func() int { return len(j.all()) }
		}, "POST /rest/api/2/issue"},
		{"github", func(t *testing.T, client *http.Client) (tickets.Provider, *fake, func() int) {
			g := newFakeGitHub(t)
			return newGitHub(t, g, func(c *tickets.GitHubConfig) { c.HTTPClient = client }), g.fake, func() int { return len(g.all()) }
		}, "POST /repos/{owner}/{repo}/issues"},
	}
	for _, pv := range providers {
		for _, l := range lost {
			t.Run(pv.name+": "+l.name, func(t *testing.T) {
				ctx := context.Background()
				p, f, count := pv.start(t, &http.Client{Timeout: 200 * time.Millisecond})
				f.failNext(pv.pattern, l.answer)

				_, _, err := tickets.Open(ctx, p, sampleContent())
				if te := asError(t, err); !te.Retryable {
					t.Fatalf("first Open: %v; want a retryable error", err)
				}
				if count() != 1 {
					t.Fatalf("%d tickets after the lost answer, want 1", count())
				}
				tk, created, err := tickets.Open(ctx, p, sampleContent())
				if err != nil || created || tk.Key == "" {
					t.Errorf("second Open = %+v, %v, %v; want the first ticket, not created", tk, created, err)
				}
				if count() != 1 {
					t.Errorf("%d tickets, want still 1", count())
				}
			})
		}
	}
}

func TestOpenRetriedAfterServiceUnavailableSucceeds(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		start   func(t *testing.T) (tickets.Provider, *fake)
		pattern string
	}{
		{"jira", func(t *testing.T) (tickets.Provider, *fake) {
			j := newFakeJira(t, true)
			return newJira(t, j), j.fake
		}, "POST /rest/api/3/issue"},
		{"github", func(t *testing.T) (tickets.Provider, *fake) {
			g := newFakeGitHub(t)
			return newGitHub(t, g), g.fake
		}, "POST /repos/{owner}/{repo}/issues"},
		{"webhook", func(t *testing.T) (tickets.Provider, *fake) {
			r := newReceiver(t)
			return newWebhook(t, r), r.fake
		}, "POST /hooks/soar"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, f := tc.start(t)
			f.failNext(tc.pattern, canned{status: http.StatusServiceUnavailable, header: map[string]string{"Retry-After": "2"}, body: `{"message":"Service Unavailable"}`})
			_, _, err := tickets.Open(ctx, p, sampleContent())
			var te *tickets.Error
			if !errors.As(err, &te) || !te.Retryable || te.RetryAfter != 2*time.Second || te.Status != 503 {
				t.Fatalf("first Open: %#v; want retryable after 2s", err)
			}
			assertNoSecret(t, err)
			if _, created, err := tickets.Open(ctx, p, sampleContent()); err != nil || !created {
				t.Fatalf("second Open: created %v, %v", created, err)
			}
		})
	}
}
