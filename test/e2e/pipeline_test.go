package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

const (
	libraryDir      = "../../playbooks/library"
	libraryPlaybook = "terminal-shell-in-container"
)

// waitStatus waits up to 30 s until the incident's detailed status is
// status.
func waitStatus(ctx context.Context, t testing.TB, tc client.Client, id, status string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "incident "+id+" "+status, func() error {
		st, err := incidentState(ctx, tc, id)
		if err != nil {
			return err
		}
		if st.Status != status {
			return fmt.Errorf("status %s", st.Status)
		}
		return nil
	})
}

// quarantined reports nil once the pod carries the quarantine label and a
// deny-all policy of soar's (an incident's) selects it.
func quarantined(ctx context.Context, namespace, pod string) error {
	p, err := kubeCS.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if p.Labels[kube.QuarantineLabel] != kube.QuarantineValue {
		return fmt.Errorf("pod %s/%s labels %v", namespace, pod, p.Labels)
	}
	nps, err := kubeCS.NetworkingV1().NetworkPolicies(namespace).List(ctx, metav1.ListOptions{LabelSelector: kube.ManagedByLabel + "=" + kube.ManagedByValue})
	if err != nil {
		return err
	}
	for _, np := range nps.Items {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			return err
		}
		if sel.Matches(labels.Set(p.Labels)) && len(np.Spec.Ingress)+len(np.Spec.Egress) == 0 && len(np.Spec.PolicyTypes) == 2 {
			return nil
		}
	}
	return fmt.Errorf("no deny-all policy of soar's selects pod %s/%s (labels %v)", namespace, pod, p.Labels)
}

func incidentState(ctx context.Context, tc client.Client, id string) (*workflows.IncidentState, error) {
	d, err := incidents.Show(ctx, tc, "default", id)
	if err != nil {
		return nil, err
	}
	if d.State == nil {
		return nil, fmt.Errorf("incident %s has no state (%s)", id, d.Failure)
	}
	return d.State, nil
}

// runs counts every run, open or closed, of the workflow ID.
func runs(ctx context.Context, tc client.Client, id string) (int64, error) {
	resp, err := tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: fmt.Sprintf("WorkflowId = '%s'", id)})
	if err != nil {
		return 0, err
	}
	return resp.GetCount(), nil
}

func TestAlertToQuarantineOneIncidentSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	pod := testenv.Pod(t, kubeCS, "payments", "checkout-7d9f8b6c5-x2lqp")
	s := startSoar(t, js, tc, libraryDir, dispatch.Config{})

	alert := sharedAlert(t, "falco-terminal-shell.json")
	const subject = "falco.notice.terminal_shell_in_container" // as Falcosidekick publishes it
	if _, err := js.Publish(ctx, subject, alert); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "pod quarantined", func() error { return quarantined(ctx, "payments", pod.Name) })

	id := playbooks.IncidentID(libraryPlaybook, "payments/checkout-7d9f8b6c5-x2lqp")
	for range 100 {
		if _, err := js.Publish(ctx, subject, alert); err != nil {
			t.Fatal(err)
		}
	}
	// Alerts are counted as they arrive, also while the steps still run.
	testenv.Eventually(t, 30*time.Second, "101 alerts in the incident and its steps done", func() error {
		st, err := incidentState(ctx, tc, id)
		if err != nil {
			return err
		}
		if st.AlertCount != 101 || !st.StepsDone {
			return fmt.Errorf("alert count %d, steps done %t", st.AlertCount, st.StepsDone)
		}
		return nil
	})
	// Started at workflows.Baseline, the incident asked Temporal for no
	// version: no marker, and no TemporalChangeVersion upsert (each of those
	// rewrote its visibility record).
	if markers, upserts := versionRecords(ctx, t, tc, id); markers != 0 || upserts != 0 {
		t.Errorf("the incident recorded %d version markers and %d TemporalChangeVersion upserts, want none", markers, upserts)
	}
	testenv.Eventually(t, 10*time.Second, "one workflow", func() error {
		n, err := runs(ctx, tc, id)
		if err != nil || n != 1 {
			return fmt.Errorf("%d runs of %s (%w)", n, id, err)
		}
		return nil
	})
	// The dispatcher counts after Temporal answers, which may be after the
	// workflow has already seen the signal.
	testenv.Eventually(t, 5*time.Second, "dispatch metrics", func() error {
		started := testutil.ToFloat64(s.metrics.WorkflowsStarted.WithLabelValues(libraryPlaybook))
		signals := testutil.ToFloat64(s.metrics.Signals.WithLabelValues(libraryPlaybook))
		if started != 1 || signals != 100 {
			return fmt.Errorf("%v workflows started, %v signals; want 1 and 100", started, signals)
		}
		return nil
	})

	st, err := incidentState(ctx, tc, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != workflows.StatusContained || len(st.Steps) != 3 || st.Steps[0].Status != workflows.StepSucceeded || st.Steps[1].Status != workflows.StepSucceeded || st.Steps[2].Output["skipped"] == nil {
		t.Fatalf("incident = status %s, steps %+v", st.Status, st.Steps)
	}
	if st.PlaybookVersion == "" || st.FirstAlert.ID != "5d1f3c0e-8a57-4b43-9a8e-1f2b7f0c4a11" {
		t.Errorf("incident version %q, first alert %q", st.PlaybookVersion, st.FirstAlert.ID)
	}
	podBefore, _ := kubeCS.CoreV1().Pods("payments").Get(ctx, pod.Name, metav1.GetOptions{})
	npBefore, _ := kubeCS.NetworkingV1().NetworkPolicies("payments").Get(ctx, kube.PolicyName(id), metav1.GetOptions{})

	// Restart the dispatcher and the worker: the incident and the cluster are
	// as they were, and the next alert joins the same incident.
	s.stop()
	s2 := startSoar(t, js, tc, libraryDir, dispatch.Config{})
	if _, err := js.Publish(ctx, subject, alert); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the alert after the restart joins the incident", func() error {
		st, err := incidentState(ctx, tc, id)
		if err != nil {
			return err
		}
		if st.AlertCount != 102 || len(st.Steps) != 3 {
			return fmt.Errorf("alert count %d, %d steps", st.AlertCount, len(st.Steps))
		}
		return nil
	})
	if n, err := runs(ctx, tc, id); err != nil || n != 1 {
		t.Errorf("%d runs after restart (%v), want 1", n, err)
	}
	if got := testutil.ToFloat64(s2.metrics.WorkflowsStarted.WithLabelValues(libraryPlaybook)); got != 0 {
		t.Errorf("restarted dispatcher started %v workflows", got)
	}
	podAfter, _ := kubeCS.CoreV1().Pods("payments").Get(ctx, pod.Name, metav1.GetOptions{})
	npAfter, _ := kubeCS.NetworkingV1().NetworkPolicies("payments").Get(ctx, kube.PolicyName(id), metav1.GetOptions{})
	if podAfter.ResourceVersion != podBefore.ResourceVersion || npAfter.ResourceVersion != npBefore.ResourceVersion {
		t.Errorf("the cluster changed after the restart: pod %s→%s, policy %s→%s",
			podBefore.ResourceVersion, podAfter.ResourceVersion, npBefore.ResourceVersion, npAfter.ResourceVersion)
	}
	assertDrained(t, js, dispatch.DefaultStream)
}

// playbookVersionOf returns the SoarPlaybookVersion search attribute of an incident.
func playbookVersionOf(ctx context.Context, tc client.Client, id string) (string, error) {
	d, err := incidents.Show(ctx, tc, "default", id)
	if err != nil {
		return "", err
	}
	return d.PlaybookVersion, nil
}

// versionRecords counts, in the history of workflow id, the version markers
// workflow.GetVersion recorded and the upserts of TemporalChangeVersion that
// came with them.
func versionRecords(ctx context.Context, t *testing.T, tc client.Client, id string) (markers, upserts int) {
	t.Helper()
	it := tc.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetMarkerRecordedEventAttributes().GetMarkerName() == "Version" {
			markers++
		}
		if _, ok := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()["TemporalChangeVersion"]; ok {
			upserts++
		}
	}
	return markers, upserts
}
