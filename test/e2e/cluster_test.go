package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// TestAClusterWhoseWorkerLeftAfterTheCheckActsNowhere: the cluster's only
// worker polled its queue, so the check passes (Temporal remembers pollers
// for minutes), and then stopped. The quarantine waits on the cluster's
// queue, where nobody takes it, and fails as ClusterUnavailable before its
// time to close; the shared worker, which could reach a pod of that name,
// never runs it.
func TestAClusterWhoseWorkerLeftAfterTheCheckActsNowhere(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gone.yaml"), []byte(`name: e2e-cluster-gone
match: alert.rule == "E2E cluster gone"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: contain
    action: kubernetes.quarantine
    timeout: 3s
`), 0o600); err != nil {
		t.Fatal(err)
	}
	startSoar(t, js, tc, dir, dispatch.Config{})
	ns := fmt.Sprintf("gone-%d", time.Now().UnixNano())
	testenv.Namespace(t, kubeCS, ns)
	testenv.Pod(t, kubeCS, ns, "web-1")

	cluster := fmt.Sprintf("gone-%d", time.Now().UnixNano()%1_000_000)
	queue := contract.ClusterTaskQueue(workflows.TaskQueue, cluster)
	w := app.NewClusterWorker(tc, cluster, &activities.Activities{Kube: kubeClient, ProtectedNamespaces: activities.DefaultProtectedNamespaces})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the cluster's worker polling", func() error {
		resp, err := tc.DescribeTaskQueue(ctx, queue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
		if err != nil || len(resp.GetPollers()) == 0 {
			return fmt.Errorf("pollers %v, err %w", resp.GetPollers(), err)
		}
		return nil
	})
	w.Stop()

	alert := fmt.Appendf(nil, `{"id":"gone-1","cluster":%q,"rule":"E2E cluster gone","severity":"high","kubernetes":{"namespace":%q,"pod":"web-1"}}`, cluster, ns)
	if _, err := js.Publish(ctx, "alerts.e2e", alert); err != nil {
		t.Fatal(err)
	}
	id := playbooks.ClusterIncidentID(cluster, "e2e-cluster-gone", ns+"/web-1")
	testenv.Eventually(t, 30*time.Second, "the quarantine failed as ClusterUnavailable", func() error {
		st, err := incidentState(ctx, tc, id)
		if err != nil {
			return err
		}
		if len(st.Steps) != 1 || st.Steps[0].ErrorType != workflows.ErrTypeClusterUnavailable {
			return fmt.Errorf("steps %+v", st.Steps)
		}
		if !st.ClusterServed {
			return fmt.Errorf("the check did not pass: the test proves nothing")
		}
		return nil
	})
	pod, err := kubeCS.CoreV1().Pods(ns).Get(ctx, "web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Labels["soar.dev/quarantine"] != "" {
		t.Errorf("the pod was quarantined by a worker of another cluster: labels %v", pod.Labels)
	}
}
