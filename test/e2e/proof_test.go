package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/workflows"
)

// TestTemporalIsNotABackDoor: someone who can reach Temporal but holds none
// of soar's keys sends what soar's own processes send (the decide Update
// claiming a group, the release signal and the stop Update, an alert signal,
// a start with a playbook of their own, a start copied from a real
// incident's history) and none of it counts: the pod stays contained and
// undeleted until two approvers vote through soar.
func TestTemporalIsNotABackDoor(t *testing.T) {
	ctx := context.Background()
	tc := temporalClient(t)
	id, hash := askToWipe(t, tc, "proof", `["S0SECOPS"]`)

	// The attacker's client is soar's Temporal client without soar's keys:
	// whatever it sends, it sends straight to Temporal.
	decide := func(user string) error {
		h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: id, UpdateName: workflows.UpdateDecide, WaitForStage: client.WorkflowUpdateStageCompleted,
			Args: []any{workflows.Decision{Step: "ask", User: user, Groups: []string{"S0SECOPS"}, Approve: true, Source: workflows.SourceSlack, PlanHash: hash}},
		})
		if err == nil {
			err = h.Get(ctx, nil)
		}
		return err
	}
	for _, user := range []string{"U0MALLORY", "U0TRUDY"} {
		if err := decide(user); err == nil || !strings.Contains(err.Error(), "carries no proof from soar") {
			t.Fatalf("a forged vote by %s claiming S0SECOPS: %v", user, err)
		}
	}
	if err := tc.SignalWorkflow(ctx, id, "", workflows.SignalRelease, "forged release"); err != nil {
		t.Fatal(err)
	}
	if err := tc.SignalWorkflow(ctx, id, "", workflows.SignalAlert, workflows.AlertSignal{
		Alert: alert.Alert{ID: "forged", Rule: "e2e proof", Kubernetes: alert.Kubernetes{Namespace: "proof", Pod: "web-2"}}, DeliveryID: "forged:1",
	}); err != nil {
		t.Fatal(err)
	}
	h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: workflows.UpdateStop, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{workflows.StopRequest{Release: true, Reason: "forged", By: "api:oncall"}},
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if err == nil || !strings.Contains(err.Error(), "carries no proof from soar") {
		t.Fatalf("a forged stop Update: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "the forged signals refused", func() error {
		st, err := incidentState(ctx, tc, id)
		if err != nil {
			return err
		}
		if st.Refused != 2 {
			return fmt.Errorf("refused %d, want the release signal and the alert", st.Refused)
		}
		if st.Status != workflows.StatusAwaitingApproval || st.AlertCount != 1 || len(st.Approvals[0].Votes) != 0 {
			t.Fatalf("after the forgeries: status %s, %d alerts, votes %+v", st.Status, st.AlertCount, st.Approvals[0].Votes)
		}
		return nil
	})
	if _, err := kubeCS.NetworkingV1().NetworkPolicies("proof").Get(ctx, kube.PolicyName(id), metav1.GetOptions{}); err != nil {
		t.Fatalf("the quarantine after a forged release: %v", err)
	}

	// A start with the attacker's own playbook: delete web-2, no approval.
	wipeDir := t.TempDir()
	const wipe = `name: e2e-proof-wipe
match: alert.rule == "never"
incidentKey: alert.id
steps:
  - id: wipe
    action: kubernetes.delete_pod
    withoutApproval: true
`
	if err := os.WriteFile(filepath.Join(wipeDir, "wipe.yaml"), []byte(wipe), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := app.LoadPlaybooks(wipeDir)
	if err != nil {
		t.Fatal(err)
	}
	spec := loaded.Current().Playbooks()[0].Spec()
	evil := workflows.RespondInput{IncidentID: "soar-evil", IncidentKey: "proof/web-2", Playbook: spec, First: &workflows.AlertSignal{
		Alert: alert.Alert{ID: "evil", Rule: "never", Kubernetes: alert.Kubernetes{Namespace: "proof", Pod: "web-2"}},
	}}
	// And a start copied from the real incident's history.
	var copied workflows.RespondInput
	it := tc.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	ev, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := converter.GetDefaultDataConverter().FromPayloads(ev.GetWorkflowExecutionStartedEventAttributes().GetInput(), &copied); err != nil {
		t.Fatal(err)
	}
	if copied.Proof == "" {
		t.Fatal("the real incident's start carries no proof")
	}
	copied.First.Alert.Kubernetes.Pod = "web-2"
	for name, start := range map[string]struct {
		wid  string
		in   workflows.RespondInput
		want string
	}{
		"its own playbook":        {"soar-evil", evil, "refused: the start carries no proof from soar"},
		"a copy under another ID": {"soar-copy", copied, `refused: the input names incident "` + id + `", not this workflow`},
		"a copy with another pod": {id + "-x", func() workflows.RespondInput { c := copied; c.IncidentID = id + "-x"; return c }(), "refused: the start carries an invalid proof"},
	} {
		run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: start.wid, TaskQueue: workflows.TaskQueue}, workflows.RespondName, start.in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var st workflows.IncidentState
		if err := run.Get(ctx, &st); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.HasPrefix(st.CloseReason, start.want) || len(st.Steps) != 0 {
			t.Errorf("%s: closed for %q after steps %+v; want %q and no step", name, st.CloseReason, st.Steps, start.want)
		}
	}
	for _, pod := range []string{"web-1", "web-2"} {
		if _, err := kubeCS.CoreV1().Pods("proof").Get(ctx, pod, metav1.GetOptions{}); err != nil {
			t.Fatalf("%s after the forged starts: %v", pod, err)
		}
	}

	// Two approvers voting through soar (serve's service, which proves
	// what it took from Slack) decide it: the pod is deleted.
	svc := soarService(t, tc)
	for _, user := range []string{"U0ALICE", "U0BOB"} {
		if _, err := svc.Vote(ctx, id, workflows.Decision{User: user, Groups: []string{"S0SECOPS"}, Approve: true, Source: workflows.SourceSlack, PlanHash: hash}); err != nil {
			t.Fatalf("%s's proven vote: %v", user, err)
		}
	}
	testenv.Eventually(t, 30*time.Second, "web-1 deleted after the proven votes", func() error {
		if _, err := kubeCS.CoreV1().Pods("proof").Get(ctx, "web-1", metav1.GetOptions{}); err == nil {
			return errors.New("web-1 still exists")
		}
		return nil
	})
}
