package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.temporal.io/sdk/client"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/internal/testenv/fakeslack"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

const (
	signingSecret = "e2e-signing-secret-0123456789abcdef"
	buttonKey     = "e2e-button-key-0123456789abcdef0123456789"
	apiToken      = "e2e-api-token-0123456789abcdef0123456789"
	appToken      = "xapp-e2e"
)

// approvalPlaybooks are the playbooks of the Slack test: contain, then two
// distinct approvers (a member of S0SECOPS, or U0CAROL) before deleting the
// pod. The user the alert names may not vote. e2e-slack-expiry is the same
// with a short timeout.
func approvalPlaybooks(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	const body = `match: alert.rule == %q
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
slack: {channel: "#secops"}
steps:
  - id: contain
    action: kubernetes.quarantine
  - id: ask
    approval:
      approvers: [S0SECOPS, U0CAROL]
      requester: alert.fields.user
      timeout: %s
      message: Delete the quarantined pod?
    onError: continue
  - id: remove
    if: steps.ask.output.outcome == "approved"
    action: kubernetes.delete_pod
`
	for name, pb := range map[string]string{
		"e2e-slack.yaml":        "name: e2e-slack\n" + fmt.Sprintf(body, "e2e slack", "30m"),
		"e2e-slack-expiry.yaml": "name: e2e-slack-expiry\n" + fmt.Sprintf(body, "e2e slack expiry", "40s"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pb), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// slackSoar is a worker, a dispatcher and a 'soar serve' taking votes, on
// one Temporal server.
type slackSoar struct {
	tc       client.Client
	worker   interface{ Stop() }
	disp     *app.Dispatcher
	votes    *app.Approvals
	http     *app.HTTP
	endpoint string
	// replica starts another serve (Slack interactions and the API) on the
	// same Temporal, as a second replica would run, and returns its URL.
	replica func(t *testing.T) string
}

func startSlackSoar(t *testing.T, temporalAddr string, js jetstream.JetStream, slackAPI, playbookDir string, logs io.Writer) *slackSoar {
	t.Helper()
	ctx := context.Background()
	log := zerolog.New(io.MultiWriter(logs, zerolog.NewTestWriter(t))).Level(zerolog.InfoLevel)
	tc, err := app.DialTemporal(ctx, app.TemporalOptions{Address: temporalAddr, Namespace: "default"}, log)
	if err != nil {
		t.Fatal(err)
	}
	// Clicks arrive both ways: over HTTP and over Socket Mode.
	sec := app.SlackSecrets{BotToken: "xoxb-e2e", SigningSecret: signingSecret, AppToken: appToken, ButtonKey: buttonKey, APIURL: slackAPI}
	sl, err := sec.WorkerSlack("")
	if err != nil {
		t.Fatal(err)
	}
	w, err := app.StartWorker(tc, app.WorkerConfig{
		Kube:                kubeClient,
		Evidence:            evidence.NewLocal(evidenceDir(t)),
		Collector:           evidence.Collector{Tool: "soar", Version: "e2e", Identity: "soar-worker@e2e"},
		ProtectedNamespaces: app.ProtectedNamespaces(nil),
		Slack:               sl,
		Keys:                testenv.SigningKeys(),
	})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := app.LoadPlaybooks(playbookDir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := app.StartDispatcher(ctx, js, tc, pb, metrics.New(), log, dispatch.Config{Keys: testenv.SigningKeys()})
	if err != nil {
		t.Fatal(err)
	}
	// serve: Slack interactions and the API, on the same Temporal; the
	// test starts a second one as another replica would run.
	startServe := func(t *testing.T) (*app.Approvals, *app.HTTP) {
		t.Helper()
		hs := httpserver.New(metrics.New().Registry)
		votes, err := app.StartApprovals(ctx, hs, tc, testenv.SigningKeys(), sec, incidents.Tokens{"oncall-bot": apiToken}, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		h, err := app.ServeHTTP("127.0.0.1:0", hs, log)
		if err != nil {
			t.Fatal(err)
		}
		return votes, h
	}
	votes, h := startServe(t)
	s := &slackSoar{tc: tc, worker: w, disp: d, votes: votes, http: h, endpoint: "http://" + h.Addr()}
	t.Cleanup(s.stop)
	s.replica = func(t *testing.T) string {
		votes, h := startServe(t)
		t.Cleanup(func() {
			_ = h.Stop(context.Background())
			votes.Stop()
		})
		return "http://" + h.Addr()
	}
	return s
}

func (s *slackSoar) stop() {
	if s.http == nil {
		return
	}
	_ = s.http.Stop(context.Background())
	s.votes.Stop()
	_ = s.disp.Stop()
	s.worker.Stop()
	s.tc.Close()
	s.http = nil
}

// click posts a signed block_actions request for user's click on a button
// of message m, as Slack would, and returns the status.
func (s *slackSoar) click(t *testing.T, user fakeslack.User, m fakeslack.Message, approve bool) int {
	t.Helper()
	approveValue, denyValue := m.ButtonValues()
	id, value := "soar_deny", denyValue
	if approve {
		id, value = "soar_approve", approveValue
	}
	if value == "" {
		t.Fatalf("message %s has no %s button", m.TS, id)
	}
	return s.post(t, fakeslack.ClickBody(t, user, m.Channel, m.TS, id, value), time.Now(), "")
}

// post sends body to /slack/interactions signed at ts (with signature
// instead, when set).
func (s *slackSoar) post(t *testing.T, body []byte, ts time.Time, signature string) int {
	t.Helper()
	return postInteraction(t, s.endpoint, body, ts, signature)
}

// postInteraction is post to the serve at endpoint.
func postInteraction(t *testing.T, endpoint string, body []byte, ts time.Time, signature string) int {
	t.Helper()
	req := fakeslack.SignedRequest(t, endpoint+"/slack/interactions", signingSecret, ts, body)
	if signature != "" {
		req.Header.Set("X-Slack-Signature", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// apiVote votes through the HTTP API.
func (s *slackSoar) apiVote(t *testing.T, incident, token string, approve bool) (int, string) {
	t.Helper()
	return postVote(t, s.endpoint, incident, token, fmt.Sprintf(`{"step": "ask", "approve": %t, "comment": "from the API"}`, approve))
}

// postVote posts body to the vote API at endpoint with token and returns
// the answer's status and body.
func postVote(t *testing.T, endpoint, incident, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/api/v1/incidents/"+incident+"/votes", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// approvalMessage returns the approval request of the incident in the
// fake's channel.
func approvalMessage(fs *fakeslack.Server, incident string) (fakeslack.Message, error) {
	for _, m := range fs.Messages("C0SECOPS") {
		if m.Metadata == nil || m.Ephemeral {
			continue
		}
		payload, _ := m.Metadata["event_payload"].(map[string]any)
		if payload["incident"] == incident && payload["kind"] == "approval" {
			return m, nil
		}
	}
	return fakeslack.Message{}, fmt.Errorf("no approval message for %s", incident)
}

func waitEphemeral(t *testing.T, fs *fakeslack.Server, user string, n int, want string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, fmt.Sprintf("reply %d to %s saying %q", n, user, want), func() error {
		ms := fs.Ephemerals(user)
		if len(ms) < n {
			return fmt.Errorf("%d replies", len(ms))
		}
		if got := ms[n-1].Text; !strings.Contains(got, want) {
			return fmt.Errorf("reply %q", got)
		}
		return nil
	})
}

// freePort is a port for a server that binds it later (devstack.FreePort).
func freePort(t *testing.T) int {
	t.Helper()
	p, err := devstack.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSlackApprovalsSurviveRestartsAndRefuseWhatTheyMust runs the issue's
// end-to-end story: alerts → incidents waiting for two approvers in Slack →
// Temporal, the worker and the server restarted → signed clicks. One
// incident is approved by two distinct approvers and its pod deleted, one
// denied and its pod kept, one expires and its pod kept. Forged, stale,
// replayed and tampered requests, an outsider, the requester, a double
// click, a vote after expiry and a vote on a closed incident are each
// refused, change nothing, and are logged.
func TestSlackApprovalsSurviveRestartsAndRefuseWhatTheyMust(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	fs := fakeslack.New(t)
	fs.SetChannel("#secops", "C0SECOPS")
	fs.SetAppToken(appToken)
	alice := fakeslack.User{ID: "U0ALICE", Name: "alice", Email: "alice@example.com", Team: fakeslack.TeamID}
	bob := fakeslack.User{ID: "U0BOB", Name: "bob", Email: "bob@example.com", Team: fakeslack.TeamID}
	carol := fakeslack.User{ID: "U0CAROL", Name: "carol", Email: "carol@example.com", Team: fakeslack.TeamID}
	dave := fakeslack.User{ID: "U0DAVE", Name: "dave", Email: "dave@example.com", Team: fakeslack.TeamID}
	mallory := fakeslack.User{ID: "U0MALLORY", Name: "mallory", Email: "mallory@example.com", Team: fakeslack.TeamID}
	for _, u := range []fakeslack.User{alice, bob, carol, dave, mallory} {
		fs.SetUser(u)
	}
	fs.SetGroup("S0SECOPS", alice.ID, bob.ID, dave.ID)

	// A Temporal server of its own, on SQLite, so that it can be restarted.
	dbPath := filepath.Join(t.TempDir(), "temporal.db")
	port := freePort(t)
	startTemporal := func() *devstack.Temporal {
		ts, err := devstack.StartTemporal(devstack.TemporalOptions{DBPath: dbPath, Port: port, Namespaces: []string{"default"}})
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	ts := startTemporal()
	defer func() { _ = ts.Stop() }()
	tc0, err := client.DialContext(ctx, client.Options{HostPort: ts.Address()})
	if err != nil {
		t.Fatal(err)
	}
	if err := incidents.EnsureSearchAttributes(ctx, tc0, "default"); err != nil {
		t.Fatal(err)
	}
	tc0.Close()

	dir := approvalPlaybooks(t)
	logs := &testenv.SyncBuffer{}
	s := startSlackSoar(t, ts.Address(), js, fs.URL, dir, logs)

	testenv.Namespace(t, kubeCS, "slack-e2e")
	pods := map[string]string{"approve": "web-approve", "deny": "web-deny", "expire": "web-expire"}
	ids := map[string]string{}
	for what, pod := range pods {
		testenv.Pod(t, kubeCS, "slack-e2e", pod)
		rule, name := "e2e slack", "e2e-slack"
		if what == "expire" {
			rule, name = "e2e slack expiry", "e2e-slack-expiry"
		}
		a := fmt.Sprintf(`{"id":"slack-%s","source":"e2e","rule":%q,"severity":"high","summary":"<!channel> shell by dave in <https://evil.example|%s>","kubernetes":{"namespace":"slack-e2e","pod":%q},"fields":{"user":"dave"}}`, what, rule, pod, pod)
		if _, err := js.Publish(ctx, "alerts.e2e", []byte(a)); err != nil {
			t.Fatal(err)
		}
		ids[what] = playbooks.IncidentID(name, "slack-e2e/"+pod)
	}
	messages := map[string]fakeslack.Message{}
	for what, id := range ids {
		testenv.Eventually(t, 30*time.Second, what+": approval request posted with buttons", func() error {
			m, err := approvalMessage(fs, id)
			if err != nil {
				return err
			}
			if a, d := m.ButtonValues(); a == "" || d == "" {
				return errors.New("no buttons")
			}
			messages[what] = m
			return nil
		})
		st, err := incidentState(ctx, s.tc, id)
		if err != nil || st.Status != workflows.StatusAwaitingApproval || st.Slack == nil || st.Slack.TS == "" {
			t.Fatalf("%s: incident %+v (%v)", what, st, err)
		}
	}
	// The alert's text cannot mention the channel or link.
	for _, m := range fs.Messages("C0SECOPS") {
		raw := string(m.Blocks) + m.Text
		if strings.Contains(raw, "<!channel>") || strings.Contains(raw, "<https://evil") {
			t.Errorf("alert text reached Slack unescaped: %s", raw)
		}
	}

	// Restart everything: Temporal, the worker, the dispatcher, the server.
	s.stop()
	if err := ts.Stop(); err != nil {
		t.Logf("stop temporal: %v", err)
	}
	ts = startTemporal()
	s = startSlackSoar(t, ts.Address(), js, fs.URL, dir, logs)

	approveMsg := messages["approve"]
	unchanged := func(what string) {
		t.Helper()
		st, err := incidentState(ctx, s.tc, ids[what])
		if err != nil {
			t.Fatal(err)
		}
		if n := len(st.Approvals[0].Votes); n != 0 {
			t.Fatalf("%s: %d votes recorded, want none", what, n)
		}
	}

	// Requests that never were Slack's: 401 and nothing changes.
	body := fakeslack.ClickBody(t, alice, approveMsg.Channel, approveMsg.TS, "soar_approve", must(approveMsg.ButtonValues()))
	if got := s.post(t, body, time.Now(), "v0="+strings.Repeat("ab", 32)); got != http.StatusUnauthorized {
		t.Errorf("forged signature: %d", got)
	}
	if got := s.post(t, body, time.Now().Add(-6*time.Minute), ""); got != http.StatusUnauthorized {
		t.Errorf("stale timestamp: %d", got)
	}
	if got := s.post(t, body, time.Now().Add(6*time.Minute), ""); got != http.StatusUnauthorized {
		t.Errorf("future timestamp: %d", got)
	}
	// A tampered button: the value names another step.
	tampered := strings.Replace(string(body), "soar_approve", "soar_deny", 1)
	if got := s.post(t, []byte(tampered), time.Now(), ""); got != http.StatusOK {
		t.Errorf("tampered button: %d", got)
	}
	waitEphemeral(t, fs, alice.ID, 1, "not valid")
	unchanged("approve")

	// An outsider and the requester are refused, with the reason.
	if got := s.click(t, mallory, approveMsg, true); got != http.StatusOK {
		t.Fatalf("click: %d", got)
	}
	waitEphemeral(t, fs, mallory.ID, 1, "is not an approver")
	if got := s.click(t, dave, approveMsg, true); got != http.StatusOK {
		t.Fatalf("click: %d", got)
	}
	waitEphemeral(t, fs, dave.ID, 1, "is the requester")
	// Alice's ID clicking from another workspace the app is installed in:
	// Slack signs it with the same secret, soar refuses it unanswered.
	foreign := alice
	foreign.Team = "T0OTHERWORKSPACE"
	if got := s.click(t, foreign, approveMsg, true); got != http.StatusOK {
		t.Fatalf("click: %d", got)
	}
	unchanged("approve")

	// A flood of forged requests, 2,000 over 32 connections: each is
	// refused, the log gets a few lines rather than 2,000, and Alice's
	// real click right after still counts (below).
	before := strings.Count(logs.String(), "slack interaction rejected")
	var flood sync.WaitGroup
	var refused atomic.Int64
	for range 32 {
		flood.Go(func() {
			for range 2000 / 32 {
				req, _ := http.NewRequest(http.MethodPost, s.endpoint+"/slack/interactions", bytes.NewReader(body))
				req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(time.Now().Unix(), 10))
				req.Header.Set("X-Slack-Signature", "v0="+strings.Repeat("cd", 32))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue // counted as not refused
				}
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusServiceUnavailable {
					refused.Add(1)
				}
			}
		})
	}
	flood.Wait()
	if n := refused.Load(); n != 2000/32*32 {
		t.Errorf("%d of %d forged requests refused", n, 2000/32*32)
	}
	if lines := strings.Count(logs.String(), "slack interaction rejected") - before; lines > 200 {
		t.Errorf("the forged flood wrote %d log lines; the log must not grow with an attacker's request rate", lines)
	}
	unchanged("approve")

	// Alice approves, once: her replayed request and her second click are
	// refused; the incident waits for a second approver.
	ts1 := time.Now()
	if got := s.post(t, body, ts1, ""); got != http.StatusOK {
		t.Fatalf("click: %d", got)
	}
	if got := s.post(t, body, ts1, ""); got != http.StatusUnauthorized {
		t.Errorf("replayed request: %d", got)
	}
	waitEphemeral(t, fs, alice.ID, 2, "1 of 2 approvals")
	// Replayed to a second serve replica, whose replay memory has not seen
	// it: its signature is valid there, and the incident, which every
	// replica votes on, refuses the second vote.
	if got := postInteraction(t, s.replica(t), body, ts1, ""); got != http.StatusOK {
		t.Fatalf("replayed to another replica: %d", got)
	}
	waitEphemeral(t, fs, alice.ID, 3, "has already voted")
	if got := s.click(t, alice, approveMsg, true); got != http.StatusOK {
		t.Fatalf("click: %d", got)
	}
	waitEphemeral(t, fs, alice.ID, 4, "has already voted")
	st, _ := incidentState(ctx, s.tc, ids["approve"])
	if a := st.Approvals[0]; len(a.Votes) != 1 || a.Outcome != "" || a.Votes[0].Via != "S0SECOPS" || a.Votes[0].Source != workflows.SourceSlack || a.Votes[0].Team != fakeslack.TeamID {
		t.Fatalf("after alice: %+v", a)
	}
	if _, err := kubeCS.CoreV1().Pods("slack-e2e").Get(ctx, pods["approve"], metav1.GetOptions{}); err != nil {
		t.Fatalf("the pod was deleted after one approval: %v", err)
	}
	// Carol approves, over Socket Mode (the restarted server reconnected):
	// two distinct approvers, the pod is deleted.
	carolApproves, _ := approveMsg.ButtonValues()
	fs.SendInteractive(t, "envelope-carol", fakeslack.ClickPayload(carol, approveMsg.Channel, approveMsg.TS, "soar_approve", carolApproves))
	waitEphemeral(t, fs, carol.ID, 1, "the step is approved")
	if acks := fs.Acks(); len(acks) != 1 || acks[0] != "envelope-carol" {
		t.Errorf("socket mode acks %v", acks)
	}
	if n := fs.Connections(); n < 2 {
		t.Errorf("%d socket mode connections; the restarted server should have opened its own", n)
	}
	testenv.Eventually(t, 30*time.Second, "the approved pod deleted", func() error {
		p, err := kubeCS.CoreV1().Pods("slack-e2e").Get(ctx, pods["approve"], metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err == nil && p.DeletionTimestamp != nil {
			return nil
		}
		return fmt.Errorf("pod still there (%w)", err)
	})
	testenv.Eventually(t, 15*time.Second, "the request updated: approved, no buttons", func() error {
		m, err := approvalMessage(fs, ids["approve"])
		if err != nil {
			return err
		}
		if a, d := m.ButtonValues(); a != "" || d != "" || !strings.Contains(string(m.Blocks), "Approved by") {
			return fmt.Errorf("message %s", m.Blocks)
		}
		return nil
	})

	// Bob denies the second incident: its pod stays, quarantined.
	if got := s.click(t, bob, messages["deny"], false); got != http.StatusOK {
		t.Fatalf("click: %d", got)
	}
	waitEphemeral(t, fs, bob.ID, 1, "the step is denied")
	testenv.Eventually(t, 15*time.Second, "denied incident settled", func() error {
		st, err := incidentState(ctx, s.tc, ids["deny"])
		if err != nil {
			return err
		}
		if len(st.Steps) != 3 || st.Steps[2].Status != workflows.StepSkipped || st.Steps[1].ErrorType != workflows.ErrTypeApprovalDenied {
			return fmt.Errorf("steps %+v", st.Steps)
		}
		return nil
	})
	if err := quarantined(ctx, "slack-e2e", pods["deny"]); err != nil {
		t.Errorf("denied: %v", err)
	}

	// The third expires with no answer: denied by default, pod kept; a
	// late click is refused by its button, a late API vote by the incident.
	testenv.Eventually(t, 60*time.Second, "approval expired", func() error {
		st, err := incidentState(ctx, s.tc, ids["expire"])
		if err != nil {
			return err
		}
		if len(st.Steps) < 2 || st.Steps[1].ErrorType != workflows.ErrTypeApprovalExpired {
			return fmt.Errorf("steps %+v", st.Steps)
		}
		return nil
	})
	if err := quarantined(ctx, "slack-e2e", pods["expire"]); err != nil {
		t.Errorf("expired: %v", err)
	}
	if got := s.click(t, bob, messages["expire"], true); got != http.StatusOK {
		t.Fatalf("click: %d", got)
	}
	waitEphemeral(t, fs, bob.ID, 2, "expired")
	if code, resp := s.apiVote(t, ids["expire"], apiToken, true); code != http.StatusConflict || !strings.Contains(resp, "expired") {
		t.Errorf("API vote after expiry: %d %s", code, resp)
	}
	if code, _ := s.apiVote(t, ids["expire"], "wrong-"+apiToken, true); code != http.StatusUnauthorized {
		t.Errorf("API vote with a bad token: %d", code)
	}
	testenv.Eventually(t, 15*time.Second, "the expired request updated", func() error {
		m, err := approvalMessage(fs, ids["expire"])
		if err != nil {
			return err
		}
		if a, _ := m.ButtonValues(); a != "" || !strings.Contains(string(m.Blocks), "Expired") {
			return fmt.Errorf("message %s", m.Blocks)
		}
		return nil
	})

	// A vote on a closed incident is refused.
	if err := stopIncident(ctx, t, s.tc, ids["deny"], false, "e2e"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "incident closed", func() error {
		st, err := incidentState(ctx, s.tc, ids["deny"])
		if err != nil || st.Status != workflows.StatusClosed {
			return fmt.Errorf("%v %w", st, err)
		}
		return nil
	})
	if code, resp := s.apiVote(t, ids["deny"], apiToken, true); code != http.StatusConflict || !strings.Contains(resp, "closed") {
		t.Errorf("API vote on a closed incident: %d %s", code, resp)
	}

	// The thread tells the story, and every refusal is in the log.
	var notes []string
	for _, m := range fs.Messages("C0SECOPS") {
		if m.ThreadTS != "" && !m.Ephemeral {
			notes = append(notes, m.Text)
		}
	}
	joined := strings.Join(notes, "\n")
	for _, want := range []string{"approved by <@U0ALICE>, <@U0CAROL>", "denied by <@U0BOB>", "expired with no decision"} {
		if !strings.Contains(joined, want) {
			t.Errorf("thread notes lack %q:\n%s", want, joined)
		}
	}
	s.votes.Stop() // let the replies and logs of votes in flight finish
	for _, reason := range []string{"forged signature", "stale timestamp", "replayed request", "tampered button value", "is not an approver", "is the requester", "has already voted", "expired", "is closed"} {
		if !strings.Contains(logs.String(), reason) {
			t.Errorf("the log does not show %q", reason)
		}
	}
}

func must(approve, _ string) string { return approve }
