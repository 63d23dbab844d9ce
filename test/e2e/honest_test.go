package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/slack"

	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// TestHostNetworkPodIsReportedDegradedNotContained: a quarantine cannot cut
// the traffic of a pod on its node's network. The pod is labeled behind
// the policy, and the incident says it is degraded and why, never
// contained.
func TestHostNetworkPodIsReportedDegradedNotContained(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	startSoar(t, js, tc, libraryDir, dispatch.Config{})
	testenv.Pod(t, kubeCS, "hostnet", "agent-1", func(p *corev1.Pod) { p.Spec.HostNetwork = true })
	alert := `{"id":"hostnet-1","source":"e2e","rule":"Terminal shell in container","severity":"notice","kubernetes":{"namespace":"hostnet","pod":"agent-1"}}`
	if _, err := js.Publish(ctx, "falco.e2e", []byte(alert)); err != nil {
		t.Fatal(err)
	}
	id := playbooks.IncidentID("terminal-shell-in-container", "hostnet/agent-1")
	var st *workflows.IncidentState
	testenv.Eventually(t, 30*time.Second, "the incident settles", func() error {
		var err error
		if st, err = incidentState(ctx, tc, id); err != nil {
			return err
		}
		if !st.StepsDone {
			return fmt.Errorf("status %s, steps not done", st.Status)
		}
		return nil
	})
	if st.Status != workflows.StatusDegraded {
		t.Errorf("status %q, want degraded", st.Status)
	}
	if len(st.Steps) == 0 || st.Steps[0].ID != "contain" || !strings.Contains(st.Steps[0].Degraded, "hostNetwork") {
		t.Errorf("steps %+v: the quarantine does not say the host network defeats it", st.Steps)
	}
	// The label and the policy are in place all the same, so that release
	// undoes them and nothing else selects a quarantined pod by mistake.
	if err := quarantined(ctx, "hostnet", "agent-1"); err != nil {
		t.Error(err)
	}
}

// TestEachOccurrenceOfAnIncidentKeepsItsOwnEvidence: an incident that
// closes and opens again for the same key (here a new pod of the same name)
// collects a bundle of its own, and the first bundle is untouched.
func TestEachOccurrenceOfAnIncidentKeepsItsOwnEvidence(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	startSoar(t, js, tc, libraryDir, dispatch.Config{})
	id := playbooks.IncidentID("terminal-shell-in-container", "occur/web-0")
	occurrence := func(n int) {
		t.Helper()
		alert := fmt.Sprintf(`{"id":"occur-%d","source":"e2e","rule":"Terminal shell in container","severity":"notice","kubernetes":{"namespace":"occur","pod":"web-0"}}`, n)
		if _, err := js.Publish(ctx, "falco.e2e", []byte(alert)); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, "evidence collected", func() error {
			st, err := incidentState(ctx, tc, id)
			if err != nil {
				return err
			}
			if !st.StepsDone || st.Status == workflows.StatusClosed {
				return fmt.Errorf("status %s", st.Status)
			}
			return nil
		})
		if err := stopIncident(ctx, t, tc, id, false, "e2e: next occurrence"); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, "closed", func() error {
			st, err := incidentState(ctx, tc, id)
			if err != nil || st.Status != workflows.StatusClosed {
				return fmt.Errorf("not closed (%w)", err)
			}
			return nil
		})
	}
	first := testenv.Pod(t, kubeCS, "occur", "web-0")
	occurrence(1)
	// The pod is replaced by a namesake (a StatefulSet's web-0, say) and
	// the shell comes back.
	testenv.ReplacedPod(t, kubeCS, "occur", "web-0")
	// Occurrences are named by the second they opened.
	time.Sleep(time.Second)
	occurrence(2)

	manifests, _ := filepath.Glob(filepath.Join(evidenceDir(t), id, "*", "evidence", "manifest.json"))
	if len(manifests) != 2 {
		t.Fatalf("manifests %v, want one per occurrence", manifests)
	}
	uids := map[string]bool{}
	for _, m := range manifests {
		key, _ := filepath.Rel(evidenceDir(t), m)
		man, err := evidence.Verify(ctx, evidence.NewLocal(evidenceDir(t)), filepath.ToSlash(key), "")
		if err != nil {
			t.Fatal(err)
		}
		uids[man.Target.PodUID] = true
	}
	if !uids[string(first.UID)] || len(uids) != 2 {
		t.Errorf("bundles name pods %v, want the first pod (%s) and its namesake", uids, first.UID)
	}
}

// askToWipe starts soar with a playbook "e2e-<ns>" that quarantines a pod,
// asks approvers (a YAML list) and deletes it; creates the pods web-1 and
// web-2 in ns, sends an alert for web-1 (with the JSON members extra, if
// any) and waits until the approval opens. It returns the incident and the
// plan's hash.
func askToWipe(t *testing.T, tc client.Client, ns, approvers string, extra ...string) (id, hash string) {
	t.Helper()
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	dir := t.TempDir()
	pb := fmt.Sprintf(`name: e2e-%s
match: alert.rule == "e2e %s"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: contain
    action: kubernetes.quarantine
  - id: ask
    approval: {approvers: %s, timeout: 30m}
  - id: wipe
    action: kubernetes.delete_pod
`, ns, ns, approvers)
	if err := os.WriteFile(filepath.Join(dir, ns+".yaml"), []byte(pb), 0o600); err != nil {
		t.Fatal(err)
	}
	startSoar(t, js, tc, dir, dispatch.Config{})
	testenv.Pod(t, kubeCS, ns, "web-1")
	testenv.Pod(t, kubeCS, ns, "web-2")
	alert := fmt.Sprintf(`{"id":"%s-1","source":"e2e","rule":"e2e %s","severity":"high","kubernetes":{"namespace":%q,"pod":"web-1"}%s}`,
		ns, ns, ns, strings.Join(append([]string{""}, extra...), ","))
	if _, err := js.Publish(ctx, "alerts.e2e", []byte(alert)); err != nil {
		t.Fatal(err)
	}
	id = playbooks.IncidentID("e2e-"+ns, ns+"/web-1")
	testenv.Eventually(t, 30*time.Second, "the approval opens", func() error {
		st, err := incidentState(ctx, tc, id)
		if err != nil {
			return err
		}
		if st.Status != workflows.StatusAwaitingApproval || len(st.Approvals) == 0 || st.Approvals[0].PlanHash == "" {
			return fmt.Errorf("status %s, no approval yet", st.Status)
		}
		hash = st.Approvals[0].PlanHash
		return nil
	})
	return id, hash
}

// TestApprovingADestructivePlanNeedsItsHash: a vote through the CLI or the
// API (both go through incidents.Service.Vote) that approves a plan with a
// destructive action must name the plan by its hash, as Slack's buttons do;
// one that names it is taken and the pod is deleted with the parameters
// the plan showed.
func TestApprovingADestructivePlanNeedsItsHash(t *testing.T) {
	ctx := context.Background()
	tc := temporalClient(t)
	id, hash := askToWipe(t, tc, "wipe", `["api:alice", "api:bob"]`)
	svc := soarService(t, tc)
	vote := func(user, plan string) error {
		_, err := svc.Vote(ctx, id, workflows.Decision{User: user, Approve: true, Source: workflows.SourceAPI, PlanHash: plan})
		return err
	}
	var refused *incidents.Refused
	if err := vote("api:alice", ""); !errors.As(err, &refused) || !strings.Contains(err.Error(), "must name it by its hash, plan "+hash) {
		t.Fatalf("an approval without the plan's hash: %v", err)
	}
	if err := vote("api:alice", "0123456789ab"); !errors.As(err, &refused) || !strings.Contains(err.Error(), "asks about plan "+hash) {
		t.Fatalf("an approval of another plan: %v", err)
	}
	for _, user := range []string{"api:alice", "api:bob"} {
		if err := vote(user, hash); err != nil {
			t.Fatalf("%s approving plan %s: %v", user, hash, err)
		}
	}
	testenv.Eventually(t, 30*time.Second, "the pod deleted", func() error {
		_, err := kubeCS.CoreV1().Pods("wipe").Get(ctx, "web-1", metav1.GetOptions{})
		if err == nil {
			return errors.New("the pod is still there")
		}
		return nil
	})
}

// TestAHugeAlertLeavesTheIncidentVotable: an alert just under the decoder's
// 1 MiB limit, made of large fields, used to fill the incident's state past
// Temporal's 2 MiB limits, so that every vote failed (the vote reads the
// state first) and the run was terminated at close. The state keeps it
// trimmed: the incident shows, votes count and it closes.
func TestAHugeAlertLeavesTheIncidentVotable(t *testing.T) {
	ctx := context.Background()
	tc := temporalClient(t)
	var fields []string
	for i := range 450 {
		fields = append(fields, fmt.Sprintf(`"f%03d":%q`, i, strings.Repeat("a", 2000)))
	}
	summary := `"summary":"` + strings.Repeat("s", 100_000) + `"`
	id, hash := askToWipe(t, tc, "huge", `["api:alice", "api:bob"]`, summary, `"fields":{`+strings.Join(fields, ",")+`}`)

	st, err := incidentState(ctx, tc, id)
	if err != nil {
		t.Fatalf("the state query: %v", err)
	}
	kept, err := json.Marshal(st.FirstAlert)
	if err != nil {
		t.Fatal(err)
	}
	if st.TrimmedAlerts != 1 || len(kept) > alert.TrimBytes || st.FirstAlert.Kubernetes.Pod != "web-1" {
		t.Fatalf("state keeps %d bytes of the alert (trimmed %d), pod %q", len(kept), st.TrimmedAlerts, st.FirstAlert.Kubernetes.Pod)
	}
	for _, user := range []string{"api:alice", "api:bob"} {
		if _, err := soarService(t, tc).Vote(ctx, id, workflows.Decision{User: user, Approve: true, Source: workflows.SourceAPI, PlanHash: hash}); err != nil {
			t.Fatalf("%s's vote: %v", user, err)
		}
	}
	testenv.Eventually(t, 30*time.Second, "web-1 deleted", func() error {
		if _, err := kubeCS.CoreV1().Pods("huge").Get(ctx, "web-1", metav1.GetOptions{}); err == nil {
			return errors.New("web-1 still exists")
		}
		return nil
	})
	if err := stopIncident(ctx, t, tc, id, false, "e2e: done"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "closed, not terminated", func() error {
		d, err := incidents.Show(ctx, tc, "default", id)
		if err != nil {
			return err
		}
		if d.State == nil || d.State.Status != workflows.StatusClosed || d.WorkflowStatus != "Completed" {
			return fmt.Errorf("status %s, workflow %s (%s)", d.Status, d.WorkflowStatus, d.Failure)
		}
		return nil
	})
}

// TestOnePersonCountsOnceTowardAQuorum: alice may vote in Slack (U0ALICE)
// and with her API token (api:alice), both listed as approvers. Her second
// vote, through the other identity, is refused: a quorum of two needs two
// people. Both votes go through serve's own code: the Slack decider and
// the HTTP API, which knows whose token it is from SOAR_API_TOKENS.
func TestOnePersonCountsOnceTowardAQuorum(t *testing.T) {
	ctx := context.Background()
	tc := temporalClient(t)
	id, hash := askToWipe(t, tc, "person", `["U0ALICE", "api:alice", "U0BOB"]`)
	svc := soarService(t, tc)
	const token = "alice-token-0123456789abcdef0123456789"
	tokens, people, err := incidents.ParseTokens("alice:" + token + ":U0ALICE")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	(&incidents.API{Service: svc, Tokens: tokens, People: people}).Register(mux)
	api := httptest.NewServer(mux)
	defer api.Close()
	apiVote := func() (int, string) {
		return postVote(t, api.URL, id, token, fmt.Sprintf(`{"approve": true, "planHash": %q}`, hash))
	}
	click := func(user string) error {
		_, err := incidents.SlackDecider{Service: svc}.Decide(ctx, slack.Click{Incident: id, Step: "ask", User: user, Approve: true, PlanHash: hash})
		return err
	}

	if err := click("U0ALICE"); err != nil {
		t.Fatalf("alice in Slack: %v", err)
	}
	if code, body := apiVote(); code != http.StatusConflict || !strings.Contains(body, "api:alice is U0ALICE, who has already voted on step") {
		t.Fatalf("alice again with her token: %d %s", code, body)
	}
	st, err := incidentState(ctx, tc, id)
	if err != nil {
		t.Fatal(err)
	}
	if a := st.Approvals[0]; a.Outcome != "" || a.Approved() != 1 {
		t.Fatalf("after alice twice: outcome %q, %d approvals; want still open with one", a.Outcome, a.Approved())
	}
	if err := click("U0BOB"); err != nil {
		t.Fatalf("bob in Slack: %v", err)
	}
	testenv.Eventually(t, 30*time.Second, "web-1 deleted after two people approved", func() error {
		if _, err := kubeCS.CoreV1().Pods("person").Get(ctx, "web-1", metav1.GetOptions{}); err == nil {
			return errors.New("web-1 still exists")
		}
		return nil
	})
}
