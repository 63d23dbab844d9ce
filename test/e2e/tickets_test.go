package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/connectors/tickets"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
)

// ticketReceiver is a webhook receiver: it checks every request's
// signature, dedupes by Idempotency-Key as the webhook contract asks, and
// can be down for the first requests.
type ticketReceiver struct {
	mu       sync.Mutex
	secret   string
	down     int // answer 503 to this many requests first
	requests int
	events   map[string]int      // event → distinct deliveries
	seen     map[string]bool     // idempotency keys
	bodies   map[string][]string // event → bodies
	bad      int                 // requests whose signature did not verify
}

func (r *ticketReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err := tickets.VerifyWebhook(r.secret, req.Header, body, time.Now()); err != nil {
		r.bad++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if r.down > 0 {
		r.down--
		w.Header().Set("Retry-After", "1")
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	var ev struct {
		Event string `json:"event"`
	}
	_ = json.Unmarshal(body, &ev)
	key := req.Header.Get("Idempotency-Key")
	if !r.seen[key] {
		r.seen[key] = true
		r.events[ev.Event]++
		r.bodies[ev.Event] = append(r.bodies[ev.Event], string(body))
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"id": "T-1", "key": "SEC-1", "url": "https://tickets.example/SEC-1"}`)
}

func (r *ticketReceiver) count(event string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[event]
}

// TestStormOfDuplicateAlertsMakesOneTicketWithAFewComments: the ticket
// system is down when the incident opens; containment does not wait for
// it; the ticket opens once it is back; 500 duplicate alerts make one
// incident, one ticket and a bounded number of comments; closing the
// incident resolves the ticket.
func TestStormOfDuplicateAlertsMakesOneTicketWithAFewComments(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	recv := &ticketReceiver{secret: "e2e-webhook-secret", down: 3, events: map[string]int{}, seen: map[string]bool{}, bodies: map[string][]string{}}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	t.Setenv(app.EnvWebhookSecret, recv.secret)
	provider, err := app.TicketConfig{Provider: "webhook", Webhook: tickets.WebhookConfig{URL: srv.URL}}.Open()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	pb := `name: e2e-tickets
match: alert.rule == "e2e ticket"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
tickets: {commentEvery: 10s}
steps:
  - id: contain
    action: kubernetes.quarantine
  - id: ticket
    action: ticket.open
    with:
      title: '"Shell in " + alert.k8s.pod'
    onError: continue
`
	if err := os.WriteFile(filepath.Join(dir, "tickets.yaml"), []byte(pb), 0o600); err != nil {
		t.Fatal(err)
	}
	startSoarWith(t, app.WorkerConfig{Kube: kubeClient, Tickets: provider}, js, tc, dir, dispatch.Config{})
	pod := testenv.Pod(t, kubeCS, "tickets", "web-storm")
	alert := fmt.Appendf(nil, `{"id":"storm","source":"e2e","rule":"e2e ticket","severity":"critical","summary":"@octocat <script> #1 [x](http://evil)","kubernetes":{"namespace":"tickets","pod":%q}}`, pod.Name)
	if _, err := js.Publish(ctx, "alerts.e2e", alert); err != nil {
		t.Fatal(err)
	}
	id := playbooks.IncidentID("e2e-tickets", "tickets/"+pod.Name)

	// Containment first, whatever the ticket system does.
	testenv.Eventually(t, 10*time.Second, "pod quarantined", func() error { return quarantined(ctx, "tickets", pod.Name) })
	testenv.Eventually(t, 60*time.Second, "the ticket opened once the receiver is back", func() error {
		st, err := incidentState(ctx, tc, id)
		if err != nil {
			return err
		}
		if st.Ticket == nil || st.Ticket.Key != "SEC-1" {
			return fmt.Errorf("ticket %+v, steps %+v", st.Ticket, st.Steps)
		}
		return nil
	})
	for range 499 {
		if _, err := js.Publish(ctx, "alerts.e2e", alert); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 60*time.Second, "500 alerts in one incident, and a comment about them", func() error {
		st, err := incidentState(ctx, tc, id)
		if err != nil {
			return err
		}
		if st.AlertCount != 500 || st.Ticket.Alerts != 500 || st.Ticket.Comments == 0 {
			return fmt.Errorf("%d alerts, ticket %+v", st.AlertCount, st.Ticket)
		}
		return nil
	})
	if err := stopIncident(ctx, t, tc, id, false, "e2e: done"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "ticket resolved", func() error {
		if recv.count("resolve") != 1 {
			return fmt.Errorf("%d resolutions", recv.count("resolve"))
		}
		return nil
	})

	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.events["open"] != 1 || recv.bad != 0 {
		t.Errorf("%d tickets opened, %d badly signed requests; want 1 and 0", recv.events["open"], recv.bad)
	}
	if n := recv.events["comment"]; n < 1 || n > 4 {
		t.Errorf("%d comments for 500 alerts in about 10s of batches; want a handful (1–4)", n)
	}
	open := recv.bodies["open"][0]
	if !strings.Contains(open, id) || !strings.Contains(open, "Shell in web-storm") || !strings.Contains(open, "kubernetes.quarantine") {
		t.Errorf("the ticket lacks the incident, title or actions: %s", open)
	}
	if !strings.Contains(strings.Join(recv.bodies["comment"], ""), "more alert(s) joined") {
		t.Errorf("no comment counts the joining alerts: %v", recv.bodies["comment"])
	}
	t.Logf("%d requests: %d open, %d comments, %d resolve", recv.requests, recv.events["open"], recv.events["comment"], recv.events["resolve"])
}

// TestShippedPlaybookOpensATicketWhenAProviderIsConfigured: the library's
// terminal-shell playbook, on a worker with a ticket provider, contains the
// pod, collects evidence, and opens one ticket that names both.
func TestShippedPlaybookOpensATicketWhenAProviderIsConfigured(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	recv := &ticketReceiver{secret: "e2e-webhook-secret-library", events: map[string]int{}, seen: map[string]bool{}, bodies: map[string][]string{}}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	t.Setenv(app.EnvWebhookSecret, recv.secret)
	provider, err := app.TicketConfig{Provider: "webhook", Webhook: tickets.WebhookConfig{URL: srv.URL}}.Open()
	if err != nil {
		t.Fatal(err)
	}
	startSoarWith(t, app.WorkerConfig{Kube: kubeClient, Tickets: provider}, js, tc, libraryDir, dispatch.Config{})
	pod := testenv.Pod(t, kubeCS, "tickets-library", "checkout-7d9f8b6c5-x2lqp")
	alert := strings.ReplaceAll(string(sharedAlert(t, "falco-terminal-shell.json")), "payments", "tickets-library")
	if _, err := js.Publish(ctx, "falco.notice.terminal_shell_in_container", []byte(alert)); err != nil {
		t.Fatal(err)
	}
	id := playbooks.IncidentID(libraryPlaybook, "tickets-library/"+pod.Name)
	testenv.Eventually(t, 30*time.Second, "the library playbook opened a ticket", func() error {
		st, err := incidentState(ctx, tc, id)
		if err != nil {
			return err
		}
		if st.Ticket == nil || len(st.Steps) != 3 || st.Steps[2].Output["created"] != true {
			return fmt.Errorf("ticket %+v, steps %+v", st.Ticket, st.Steps)
		}
		return nil
	})
	if err := quarantined(ctx, "tickets-library", pod.Name); err != nil {
		t.Error(err)
	}
	if recv.count("open") != 1 {
		t.Fatalf("%d tickets", recv.count("open"))
	}
	recv.mu.Lock()
	body := recv.bodies["open"][0]
	recv.mu.Unlock()
	for _, want := range []string{"kubernetes.quarantine", "manifest", "sha256", "soar incident show " + id} {
		if !strings.Contains(body, want) {
			t.Errorf("the ticket lacks %q: %s", want, body)
		}
	}
}
