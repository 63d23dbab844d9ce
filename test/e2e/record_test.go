//go:build record

// The history recorder writes fixtures, so it is not part of the ordinary
// test run: build it with the "record" tag ('make record-histories').

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/connectors/slack"
	"github.com/soar-dev/soar/connectors/tickets"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/internal/testenv/fakeslack"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// TestRecordHistories records, from real runs on the real stack, one history
// per path of the Respond workflow into workflows/testdata, where the replay
// test in package workflows checks every future change of the workflow code
// against them. Recorded histories are fixtures: record one when a path is
// added, never to make a failing replay pass. SOAR_RECORD_HISTORIES, when set,
// is a comma-separated list of the files to record; unset, all are recorded.
func TestRecordHistories(t *testing.T) {
	only := os.Getenv("SOAR_RECORD_HISTORIES")
	wanted := func(file string) bool { return only == "" || slices.Contains(strings.Split(only, ","), file) }
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A short window, so that the "closed after the window" path ends quickly.
	write("contain.yaml", `name: record-contain
match: alert.rule == "record contain"
incidentKey: alert.id
window: 2s
steps:
  - id: contain
    action: kubernetes.quarantine
`)
	// One playbook per path of the step language.
	write("approval.yaml", `name: record-approval
match: alert.rule == "record approval"
incidentKey: alert.id
window: 2s
steps:
  - id: ask
    approval: {approvers: [U1, U2], quorum: 1, timeout: 10s}
  - id: contain
    action: kubernetes.quarantine
`)
	write("wait.yaml", `name: record-wait
match: alert.rule == "record wait"
incidentKey: alert.id
window: 2s
steps:
  - id: settle
    wait: 1s
  - id: contain
    action: kubernetes.quarantine
`)
	write("escalate.yaml", `name: record-escalate
match: alert.rule == "record escalate"
incidentKey: alert.id
window: 3s
steps:
  - id: contain
    action: kubernetes.quarantine
    if: incident.alertCount >= 2
`)
	write("continue.yaml", `name: record-continue
match: alert.rule == "record continue"
incidentKey: alert.id
window: 5m
steps:
  - id: ask
    approval: {approvers: [U1], timeout: 10s}
    onError: continue
  - id: contain
    action: kubernetes.quarantine
    if: steps.ask.output.outcome == "approved" || incident.alertCount >= 2
`)
	write("plan.yaml", `name: record-plan
match: alert.rule == "record plan"
incidentKey: alert.id
window: 2s
mode: plan
steps:
  - id: contain
    action: kubernetes.quarantine
`)
	// Generic actions (one activity per catalogue action), evidence, and
	// release: by signal, and by a step failing with onError: release.
	write("release.yaml", `name: record-release
match: alert.rule == "record release"
incidentKey: alert.id
window: 5m
steps:
  - id: contain
    action: kubernetes.quarantine
    with: {detach: true}
  - id: evidence
    action: kubernetes.snapshot
  - id: mark
    action: kubernetes.label_pod
    with: {labels: '{"security.example.com/suspect": "true"}'}
`)
	write("rollback.yaml", `name: record-rollback
match: alert.rule == "record rollback"
incidentKey: alert.id
window: 2s
steps:
  - id: contain
    action: kubernetes.quarantine
  - id: mark
    action: kubernetes.label_pod
    with: {labels: '{"soar.dev/reserved": "no"}'}
    onError: release
`)
	// The storm gets a long window: on a loaded machine 1001 alerts may take
	// longer than two seconds to dispatch.
	write("storm.yaml", `name: record-storm
match: alert.rule == "record storm"
incidentKey: alert.id
window: 1m
steps:
  - id: contain
    action: kubernetes.quarantine
`)
	// Slack approvals: the thread, the request, a reminder, an escalation
	// to another channel, votes from a user group member and an escalation
	// approver, the outcome, and a slack.notify step.
	write("slack.yaml", `name: record-slack
match: alert.rule == "record slack"
incidentKey: alert.id
window: 2s
slack: {channel: "#secops"}
steps:
  - id: contain
    action: kubernetes.quarantine
  - id: ask
    approval:
      approvers: [S0SECOPS]
      requester: alert.fields.user
      remind: 1m
      escalate: {after: 1m, approvers: [U0LEAD], channel: "#ir-leads"}
      timeout: 5m
  - id: remove
    action: kubernetes.delete_pod
  - id: tell
    action: slack.notify
    with: {text: '"Removed " + alert.k8s.pod'}
`)
	// Tickets: opened after containment, a batched comment as alerts
	// join, resolved when the incident closes.
	// Steady incidents: alerts counted while an approval waits, a close
	// that interrupts the approval, a release that interrupts a wait.
	write("interrupt.yaml", `name: record-interrupt
match: alert.rule == "record interrupt"
incidentKey: alert.id
window: 5m
steps:
  - id: contain
    action: kubernetes.quarantine
  - id: ask
    approval: {approvers: [U1], timeout: 30m}
  - id: pause
    wait: 30m
  - id: mark
    action: kubernetes.label_pod
    with: {labels: '{"security.example.com/suspect": "true"}'}
`)
	write("ticket.yaml", `name: record-ticket
match: alert.rule == "record ticket"
incidentKey: alert.id
tickets: {commentEvery: 10s}
steps:
  - id: contain
    action: kubernetes.quarantine
  - id: ticket
    action: ticket.open
    with: {title: '"Recorded: " + alert.rule'}
    onError: continue
`)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"id": "1", "key": "REC-1", "url": "https://tickets.example/REC-1"}`))
	}))
	t.Cleanup(receiver.Close)
	ticketProvider, err := tickets.NewWebhook(tickets.WebhookConfig{URL: receiver.URL, Secret: "record-webhook-secret"})
	if err != nil {
		t.Fatal(err)
	}
	fs := fakeslack.New(t)
	fs.SetChannel("#secops", "C0SECOPS")
	fs.SetChannel("#ir-leads", "C0IRLEADS")
	signer, err := slack.NewSigner([]byte("record-button-key-0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	// Every alert travels alone, so that the storm below is 1001 signals
	// and continues as new; the coalesced paths are recorded at the end
	// with a dispatcher that coalesces.
	soar := startSoarWith(t, app.WorkerConfig{Kube: kubeClient, Tickets: ticketProvider, Slack: activities.SlackConfig{
		Client: slack.New(slack.Config{BotToken: "xoxb-record", APIURL: fs.URL}), Signer: signer,
	}}, js, tc, dir, dispatch.Config{CoalesceWindow: -1})
	testenv.Pod(t, kubeCS, "record", "web-1")
	send := func(rule, id string) string {
		alert := fmt.Appendf(nil, `{"id":%q,"source":"record","rule":%q,"severity":"high","kubernetes":{"namespace":"record","pod":"web-1"}}`, id, rule)
		if _, err := js.Publish(ctx, "alerts.record", alert); err != nil {
			t.Fatal(err)
		}
		return playbooks.IncidentID("record-"+strings.TrimPrefix(rule, "record "), id)
	}
	vote := func(id, user string, approve bool) {
		testenv.Eventually(t, 10*time.Second, "vote on "+id, func() error {
			_, err := soarService(t, tc).Vote(ctx, id, workflows.Decision{User: user, Approve: approve})
			return err
		})
	}

	publish := func(id, ns, pod string) string {
		alert := fmt.Appendf(nil, `{"id":%q,"source":"record","rule":"record contain","severity":"high","kubernetes":{"namespace":%q,"pod":%q}}`, id, ns, pod)
		if _, err := js.Publish(ctx, "alerts.record", alert); err != nil {
			t.Fatal(err)
		}
		return playbooks.IncidentID("record-contain", id)
	}

	paths := map[string]string{
		// Quarantine succeeds, two more alerts join, the window closes it.
		"respond-contained-window.json": publish("contained", "record", "web-1"),
		// The pod does not exist: the step fails without retry.
		"respond-step-failed.json": publish("failed", "record", "no-such-pod"),
		// Protected namespace: refused before any API call.
		"respond-protected.json": publish("protected", "kube-system", "coredns"),
	}
	if wanted("respond-degraded.json") {
		// A hostNetwork pod: labeled, but the policy cannot cut its traffic.
		testenv.Pod(t, kubeCS, "record", "agent-hostnet", func(p *corev1.Pod) { p.Spec.HostNetwork = true })
		paths["respond-degraded.json"] = publish("degraded", "record", "agent-hostnet")
	}
	time.Sleep(200 * time.Millisecond)
	publish("contained", "record", "web-1")
	publish("contained", "record", "web-1")

	// Closed on request.
	closeID := publish("closed", "record", "web-1")
	paths["respond-closed-on-request.json"] = closeID
	testenv.Eventually(t, 10*time.Second, "incident to close", func() error {
		return stopIncident(ctx, t, tc, closeID, false, "recorded: closed on request")
	})

	if wanted("respond-trimmed-alert.json") {
		// An alert too large to keep whole in the state: kept trimmed.
		huge := fmt.Appendf(nil, `{"id":"huge","source":"record","rule":"record contain","severity":"high","summary":%q,"kubernetes":{"namespace":"record","pod":"web-1"}}`,
			strings.Repeat("s", 200_000))
		if _, err := js.Publish(ctx, "alerts.record", huge); err != nil {
			t.Fatal(err)
		}
		id := playbooks.IncidentID("record-contain", "huge")
		testenv.Eventually(t, 10*time.Second, "the alert kept trimmed", func() error {
			st, err := incidentState(ctx, tc, id)
			if err != nil {
				return err
			}
			if st.TrimmedAlerts != 1 {
				return fmt.Errorf("trimmed %d", st.TrimmedAlerts)
			}
			return stopIncident(ctx, t, tc, id, false, "recorded: trimmed alert")
		})
		paths["respond-trimmed-alert.json"] = id
	}
	if wanted("respond-refused-requests.json") {
		// Alert and release signals sent straight to Temporal, without the
		// proofs of soar's processes: counted as refused, never taken.
		id := publish("refused", "record", "web-1")
		testenv.Eventually(t, 10*time.Second, "incident to open", func() error {
			_, err := incidentState(ctx, tc, id)
			return err
		})
		forged := workflows.AlertSignal{Alert: alert.Alert{ID: "forged", Rule: "record contain"}, DeliveryID: "forged:1"}
		if err := tc.SignalWorkflow(ctx, id, "", workflows.SignalAlert, forged); err != nil {
			t.Fatal(err)
		}
		if err := tc.SignalWorkflow(ctx, id, "", workflows.SignalRelease, "forged"); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, "forgeries refused", func() error {
			st, err := incidentState(ctx, tc, id)
			if err != nil {
				return err
			}
			if st.Refused != 2 {
				return fmt.Errorf("refused %d of 2", st.Refused)
			}
			return stopIncident(ctx, t, tc, id, false, "recorded: refused requests")
		})
		paths["respond-refused-requests.json"] = id
	}
	if wanted("respond-refused-start.json") {
		// A start with no proof: the incident closes without acting.
		const id = "soar-record-forged-start"
		run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, workflows.RespondName,
			workflows.RespondInput{IncidentID: id, IncidentKey: "record/web-1", Playbook: playbooks.Spec{Name: "forged"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := run.Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
		paths["respond-refused-start.json"] = id
	}

	approved := send("record approval", "approved")
	vote(approved, "U2", true)
	denied := send("record approval", "denied")
	vote(denied, "U1", false)
	paths["respond-approval-approved.json"] = approved
	paths["respond-approval-denied.json"] = denied
	paths["respond-approval-expired.json"] = send("record approval", "expired")
	paths["respond-wait.json"] = send("record wait", "wait")
	escalated := send("record escalate", "escalated")
	time.Sleep(500 * time.Millisecond)
	send("record escalate", "escalated")
	paths["respond-escalated.json"] = escalated
	paths["respond-plan.json"] = send("record plan", "plan")
	if wanted("respond-ticket.json") {
		id := send("record ticket", "ticket")
		testenv.Eventually(t, 30*time.Second, "ticket opened", func() error {
			st, err := incidentState(ctx, tc, id)
			if err != nil || st.Ticket == nil {
				return fmt.Errorf("no ticket yet (%w)", err)
			}
			return nil
		})
		send("record ticket", "ticket")
		send("record ticket", "ticket")
		testenv.Eventually(t, 30*time.Second, "a batched comment", func() error {
			st, err := incidentState(ctx, tc, id)
			if err != nil || st.Ticket.Comments == 0 {
				return fmt.Errorf("no comment yet (%w)", err)
			}
			return stopIncident(ctx, t, tc, id, false, "recorded: ticket")
		})
		paths["respond-ticket.json"] = id
	}
	if wanted("respond-slack-approval.json") {
		testenv.Pod(t, kubeCS, "record", "web-slack")
		alert := []byte(`{"id":"slack","source":"record","rule":"record slack","severity":"high","kubernetes":{"namespace":"record","pod":"web-slack"},"fields":{"user":"dave"}}`)
		if _, err := js.Publish(ctx, "alerts.record", alert); err != nil {
			t.Fatal(err)
		}
		id := playbooks.IncidentID("record-slack", "slack")
		var hash string
		testenv.Eventually(t, 100*time.Second, "escalation", func() error {
			st, err := incidentState(ctx, tc, id)
			if err != nil {
				return err
			}
			if len(st.Approvals) == 0 || !st.Approvals[0].Escalated || len(st.Approvals[0].Slack) < 2 {
				return fmt.Errorf("approvals %+v", st.Approvals)
			}
			hash = st.Approvals[0].PlanHash
			return nil
		})
		for _, d := range []workflows.Decision{
			{User: "U0ALICE", Groups: []string{"S0SECOPS"}, Approve: true, Source: workflows.SourceSlack, PlanHash: hash},
			{User: "U0LEAD", Approve: true, Source: workflows.SourceSlack, PlanHash: hash},
		} {
			// Slack votes as serve casts them: the groups are serve's word.
			if _, err := soarService(t, tc).Vote(ctx, id, d); err != nil {
				t.Fatal(err)
			}
		}
		paths["respond-slack-approval.json"] = id
	}
	released := send("record release", "released")
	testenv.Eventually(t, 30*time.Second, "steps before the release", func() error {
		st, err := incidentState(ctx, tc, released)
		if err != nil {
			return err
		}
		if st.Status != workflows.StatusContained {
			return fmt.Errorf("status %s, steps %+v", st.Status, st.Steps)
		}
		return stopIncident(ctx, t, tc, released, true, "recorded: false positive")
	})
	paths["respond-generic-release-signal.json"] = released
	paths["respond-generic-onerror-release.json"] = send("record rollback", "rollback")
	if wanted("respond-escalated-after-expiry.json") {
		// The approval expires after 10s; the second alert then escalates.
		continued := send("record continue", "continued")
		testenv.Eventually(t, 30*time.Second, "approval to expire", func() error {
			st, err := incidentState(ctx, tc, continued)
			if err != nil {
				return err
			}
			if len(st.Steps) < 2 {
				return fmt.Errorf("steps %+v", st.Steps)
			}
			return nil
		})
		send("record continue", "continued")
		testenv.Eventually(t, 30*time.Second, "escalation", func() error {
			st, err := incidentState(ctx, tc, continued)
			if err != nil {
				return err
			}
			if st.Steps[1].Status != workflows.StepSucceeded {
				return fmt.Errorf("steps %+v", st.Steps)
			}
			return stopIncident(ctx, t, tc, continued, false, "recorded")
		})
		paths["respond-escalated-after-expiry.json"] = continued
	}

	// A storm: the first run continues as new after absorbing 1000 alerts.
	stormID := send("record storm", "storm")
	for range 1000 {
		send("record storm", "storm")
	}
	var stormRun string
	testenv.Eventually(t, 60*time.Second, "storm run to continue as new", func() error {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = '%s' AND ExecutionStatus = 'ContinuedAsNew'", stormID),
		})
		if err != nil {
			return err
		}
		if len(resp.GetExecutions()) == 0 {
			d, derr := incidentState(ctx, tc, stormID)
			if derr != nil {
				return fmt.Errorf("no continued-as-new run yet (%w)", derr)
			}
			return fmt.Errorf("no continued-as-new run yet: status %s, %d alerts", d.Status, d.AlertCount)
		}
		stormRun = resp.GetExecutions()[0].GetExecution().GetRunId()
		return nil
	})

	// Coalesced alerts: a dispatcher that coalesces takes over.
	if err := soar.dispatcher.Stop(); err != nil {
		t.Fatal(err)
	}
	soar.dispatcher = nil
	startDispatcher(t, js, tc, dir, dispatch.Config{CoalesceWindow: 200 * time.Millisecond})
	statusOf := func(id, want string) func() error {
		return func() error {
			st, err := incidentState(ctx, tc, id)
			if err != nil {
				return err
			}
			if st.Status != want {
				return fmt.Errorf("status %s, steps %+v", st.Status, st.Steps)
			}
			return nil
		}
	}
	if wanted("respond-close-during-approval.json") {
		id := send("record interrupt", "closed")
		testenv.Eventually(t, 30*time.Second, "approval to open", statusOf(id, workflows.StatusAwaitingApproval))
		for range 50 {
			send("record interrupt", "closed")
		}
		testenv.Eventually(t, 30*time.Second, "alerts counted during the approval", func() error {
			st, err := incidentState(ctx, tc, id)
			if err != nil {
				return err
			}
			if st.AlertCount != 51 {
				return fmt.Errorf("%d alerts counted", st.AlertCount)
			}
			return stopIncident(ctx, t, tc, id, false, "recorded: closed during the approval")
		})
		paths["respond-close-during-approval.json"] = id
	}
	if wanted("respond-release-during-wait.json") {
		id := send("record interrupt", "released")
		testenv.Eventually(t, 30*time.Second, "approval to open", statusOf(id, workflows.StatusAwaitingApproval))
		vote(id, "U1", true)
		testenv.Eventually(t, 30*time.Second, "the wait", func() error {
			st, err := incidentState(ctx, tc, id)
			if err != nil {
				return err
			}
			if len(st.Steps) != 2 {
				return fmt.Errorf("steps %+v", st.Steps)
			}
			return stopIncident(ctx, t, tc, id, true, "recorded: released during the wait")
		})
		paths["respond-release-during-wait.json"] = id
	}

	if wanted("respond-cluster-routed.json") || wanted("respond-cluster-unavailable.json") {
		// An alert of cluster rec-a, whose worker polls its own queue: the
		// quarantine runs there after the check. One of rec-none, which no
		// worker serves: the step fails as ClusterUnavailable.
		cw := app.NewClusterWorker(tc, "rec-a", &activities.Activities{Kube: kubeClient, ProtectedNamespaces: activities.DefaultProtectedNamespaces})
		if err := cw.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cw.Stop)
		for file, cluster := range map[string]string{"respond-cluster-routed.json": "rec-a", "respond-cluster-unavailable.json": "rec-none"} {
			alert := fmt.Appendf(nil, `{"id":%q,"cluster":%q,"source":"record","rule":"record contain","severity":"high","kubernetes":{"namespace":"record","pod":"web-1"}}`, cluster, cluster)
			if _, err := js.Publish(ctx, "alerts.record", alert); err != nil {
				t.Fatal(err)
			}
			paths[file] = playbooks.ClusterIncidentID(cluster, "record-contain", cluster)
		}
	}

	record := func(file, id, runID string) {
		var events []*historypb.HistoryEvent
		it := tc.GetWorkflowHistory(ctx, id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
		}
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: events})
		if err != nil {
			t.Fatal(err)
		}
		// SOAR_RECORD_PREFIX records a new generation of histories beside the
		// old ones (respond-<prefix>-<path>.json) instead of replacing them:
		// the old ones are what running incidents look like.
		if p := os.Getenv("SOAR_RECORD_PREFIX"); p != "" {
			file = strings.Replace(file, "respond-", "respond-"+p+"-", 1)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "workflows", "testdata", file), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s (%d events)", file, len(events))
	}
	if wanted("respond-continued-as-new.json") {
		record("respond-continued-as-new.json", stormID, stormRun)
	}
	for file, id := range paths {
		if !wanted(file) {
			continue
		}
		testenv.Eventually(t, 60*time.Second, id+" completed", func() error {
			d, err := tc.DescribeWorkflowExecution(ctx, id, "")
			if err != nil {
				return err
			}
			if s := d.GetWorkflowExecutionInfo().GetStatus(); s != enums.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				return fmt.Errorf("status %s", s)
			}
			return nil
		})
		record(file, id, "")
	}
}
