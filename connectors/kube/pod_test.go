package kube_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/testenv"
)

// TestPodActions covers DeletePod, EvictPod, LabelPod, AnnotatePod and their
// restores on one API server.
func TestPodActions(t *testing.T) {
	k, cs := testenv.Kube(t)
	t.Run("delete and evict", func(t *testing.T) { testRemovePod(t, k, cs) })
	t.Run("labels and annotations", func(t *testing.T) { testPodMetadata(t, cs) })
}

func testRemovePod(t *testing.T, k *devstack.Kube, cs kubernetes.Interface) {
	c := kube.New(cs)
	ctx := context.Background()

	t.Run("delete starts a graceful deletion; a retry finds the pod terminating and writes nothing", func(t *testing.T) {
		pod := testenv.Pod(t, cs, "del", "web-1", onNode("node-1"))
		res, err := c.DeletePod(ctx, kube.DeletePodRequest{Namespace: "del", Pod: "web-1", PodUID: string(pod.UID)})
		if err != nil || !res.Deleted || res.AlreadyGone || res.PodUID != string(pod.UID) {
			t.Fatalf("delete = %+v, %v", res, err)
		}
		if got := getPod(t, cs, "del", "web-1"); got.DeletionTimestamp == nil {
			t.Fatal("the pod is not terminating")
		}
		before := snapshot(t, cs, "del", "web-1", "none")
		again, err := c.DeletePod(ctx, kube.DeletePodRequest{Namespace: "del", Pod: "web-1", PodUID: string(pod.UID)})
		if err != nil || again.Deleted || !again.AlreadyGone {
			t.Fatalf("retry = %+v, %v; want already gone", again, err)
		}
		before.assertUnchanged(t)
	})

	t.Run("delete with grace period 0 removes the pod; a retry finds it gone", func(t *testing.T) {
		pod := testenv.Pod(t, cs, "del", "web-2", onNode("node-1"))
		req := kube.DeletePodRequest{Namespace: "del", Pod: "web-2", PodUID: string(pod.UID), GracePeriodSeconds: new(int64(0))}
		res, err := c.DeletePod(ctx, req)
		if err != nil || !res.Deleted || res.GracePeriodSeconds == nil || *res.GracePeriodSeconds != 0 {
			t.Fatalf("delete = %+v, %v", res, err)
		}
		assertPodGone(t, cs, "del", "web-2")
		if again, err := c.DeletePod(ctx, req); err != nil || !again.AlreadyGone || again.Deleted {
			t.Fatalf("retry = %+v, %v; want already gone", again, err)
		}
	})

	t.Run("a dry-run delete stores nothing", func(t *testing.T) {
		testenv.Pod(t, cs, "del", "web-3")
		before := snapshot(t, cs, "del", "web-3", "none")
		res, err := c.DeletePod(ctx, kube.DeletePodRequest{Namespace: "del", Pod: "web-3", DryRun: true})
		if err != nil || !res.Deleted || !res.DryRun {
			t.Fatalf("dry run = %+v, %v", res, err)
		}
		before.assertUnchanged(t)
	})

	t.Run("a namesake is ErrTargetChanged and survives delete and evict", func(t *testing.T) {
		old := testenv.ReplacedPod(t, cs, "del", "db-0")
		before := snapshot(t, cs, "del", "db-0", "none")
		if _, err := c.DeletePod(ctx, kube.DeletePodRequest{Namespace: "del", Pod: "db-0", PodUID: string(old.UID)}); !errors.Is(err, kube.ErrTargetChanged) {
			t.Errorf("delete: err = %v, want ErrTargetChanged", err)
		}
		if _, err := c.EvictPod(ctx, kube.EvictPodRequest{Namespace: "del", Pod: "db-0", PodUID: string(old.UID)}); !errors.Is(err, kube.ErrTargetChanged) {
			t.Errorf("evict: err = %v, want ErrTargetChanged", err)
		}
		before.assertUnchanged(t)
	})

	t.Run("a pod replaced between read and delete is ErrTargetChanged", func(t *testing.T) {
		testenv.Pod(t, cs, "del", "db-1")
		racy := interceptPodWrite(t, k, http.MethodDelete, func() { testenv.ReplacedPod(t, cs, "del", "db-1") })
		_, err := racy.DeletePod(ctx, kube.DeletePodRequest{Namespace: "del", Pod: "db-1"})
		if !errors.Is(err, kube.ErrTargetChanged) {
			t.Fatalf("err = %v, want ErrTargetChanged", err)
		}
		if got := getPod(t, cs, "del", "db-1"); got.DeletionTimestamp != nil {
			t.Error("the namesake was deleted")
		}
	})

	t.Run("a disruption budget blocks eviction until it allows one", func(t *testing.T) {
		pod := testenv.Pod(t, cs, "pdb", "web-1", onNode("node-1"))
		runningAndReady(t, cs, pod)
		pdb := disruptionBudget(t, cs, "pdb", 0)
		req := kube.EvictPodRequest{Namespace: "pdb", Pod: "web-1", PodUID: string(pod.UID)}

		for _, dryRun := range []bool{false, true} {
			req.DryRun = dryRun
			_, err := c.EvictPod(ctx, req)
			if !errors.Is(err, kube.ErrDisruptionBudget) || !apierrors.IsTooManyRequests(err) {
				t.Fatalf("dry run %v: err = %v, want ErrDisruptionBudget", dryRun, err)
			}
		}
		if got := getPod(t, cs, "pdb", "web-1"); got.DeletionTimestamp != nil {
			t.Fatal("the pod was evicted despite its budget")
		}

		setDisruptionsAllowed(t, cs, pdb, 1)
		before := snapshot(t, cs, "pdb", "web-1", "none")
		req.DryRun = true
		if res, err := c.EvictPod(ctx, req); err != nil || !res.Evicted || !res.DryRun {
			t.Fatalf("dry-run eviction = %+v, %v", res, err)
		}
		before.assertUnchanged(t)

		req.DryRun = false
		res, err := c.EvictPod(ctx, req)
		if err != nil || !res.Evicted || res.AlreadyGone {
			t.Fatalf("eviction = %+v, %v", res, err)
		}
		if got := getPod(t, cs, "pdb", "web-1"); got.DeletionTimestamp == nil {
			t.Fatal("the evicted pod is not terminating")
		}
		budget, _ := cs.PolicyV1().PodDisruptionBudgets("pdb").Get(ctx, pdb.Name, metav1.GetOptions{})
		if budget.Status.DisruptionsAllowed != 0 {
			t.Errorf("the eviction did not use up the budget: %+v", budget.Status)
		}

		before = snapshot(t, cs, "pdb", "web-1", "none")
		if again, err := c.EvictPod(ctx, req); err != nil || again.Evicted || !again.AlreadyGone {
			t.Fatalf("retry = %+v, %v; want already gone", again, err)
		}
		before.assertUnchanged(t)
	})

	t.Run("evicting a missing pod is already gone", func(t *testing.T) {
		res, err := c.EvictPod(ctx, kube.EvictPodRequest{Namespace: "pdb", Pod: "never"})
		if err != nil || !res.AlreadyGone {
			t.Fatalf("evict = %+v, %v", res, err)
		}
	})

	t.Run("a negative grace period is invalid input", func(t *testing.T) {
		_, err := c.DeletePod(ctx, kube.DeletePodRequest{Namespace: "del", Pod: "web-3", GracePeriodSeconds: new(int64(-1))})
		if !errors.Is(err, kube.ErrInvalidInput) {
			t.Fatalf("err = %v, want ErrInvalidInput", err)
		}
	})
}

func testPodMetadata(t *testing.T, cs kubernetes.Interface) {
	c := kube.New(cs)
	ctx := context.Background()
	withMeta := func(p *corev1.Pod) {
		p.Labels["tier"] = "frontend"
		p.Annotations = map[string]string{"owner": "team-a"}
	}

	t.Run("labels are set and restored; each step is idempotent", func(t *testing.T) {
		pod := testenv.Pod(t, cs, "meta", "web-1", withMeta)
		req := kube.MetadataRequest{Namespace: "meta", Pod: "web-1", PodUID: string(pod.UID), Values: map[string]string{"tier": "quarantine", "team": "sec", "app": "web"}}
		res, err := c.LabelPod(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changed || !slices.Equal(res.Added, []string{"team"}) || !apiequality.Semantic.DeepEqual(res.Previous, map[string]string{"tier": "frontend"}) || res.PodUID != string(pod.UID) {
			t.Errorf("result = %+v", res)
		}
		got := getPod(t, cs, "meta", "web-1")
		if want := map[string]string{"app": "web", "tier": "quarantine", "team": "sec"}; !apiequality.Semantic.DeepEqual(got.Labels, want) {
			t.Errorf("labels = %v, want %v", got.Labels, want)
		}

		before := snapshot(t, cs, "meta", "web-1", "none")
		if again, err := c.LabelPod(ctx, req); err != nil || again.Changed {
			t.Fatalf("second run = %+v, %v", again, err)
		}
		before.assertUnchanged(t)

		restore := restoreOf(res)
		undone, err := c.RestorePodLabels(ctx, restore)
		if err != nil || !slices.Equal(undone.Restored, []string{"team", "tier"}) || len(undone.Skipped) != 0 {
			t.Fatalf("restore = %+v, %v", undone, err)
		}
		if got := getPod(t, cs, "meta", "web-1"); !apiequality.Semantic.DeepEqual(got.Labels, pod.Labels) {
			t.Errorf("labels = %v, want the original %v", got.Labels, pod.Labels)
		}
		before = snapshot(t, cs, "meta", "web-1", "none")
		if again, err := c.RestorePodLabels(ctx, restore); err != nil || len(again.Skipped) != 0 {
			t.Fatalf("second restore = %+v, %v", again, err)
		}
		before.assertUnchanged(t)
	})

	t.Run("a restore leaves alone what someone changed since", func(t *testing.T) {
		testenv.Pod(t, cs, "meta", "web-2", withMeta)
		res, err := c.LabelPod(ctx, kube.MetadataRequest{Namespace: "meta", Pod: "web-2", Values: map[string]string{"tier": "quarantine", "team": "sec"}})
		if err != nil {
			t.Fatal(err)
		}
		p := getPod(t, cs, "meta", "web-2")
		p.Labels["team"] = "red"
		if _, err := cs.CoreV1().Pods("meta").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		undone, err := c.RestorePodLabels(ctx, restoreOf(res))
		if err != nil || !slices.Equal(undone.Restored, []string{"tier"}) || !slices.Equal(undone.Skipped, []string{"team"}) {
			t.Fatalf("restore = %+v, %v", undone, err)
		}
		if got := getPod(t, cs, "meta", "web-2"); got.Labels["team"] != "red" || got.Labels["tier"] != "frontend" {
			t.Errorf("labels = %v", got.Labels)
		}
	})

	t.Run("annotations are set and restored", func(t *testing.T) {
		pod := testenv.Pod(t, cs, "meta", "web-3", withMeta)
		res, err := c.AnnotatePod(ctx, kube.MetadataRequest{Namespace: "meta", Pod: "web-3", Values: map[string]string{"owner": "incident response", "note": "suspected miner; do not delete"}})
		if err != nil || !res.Changed || !slices.Equal(res.Added, []string{"note"}) || res.Previous["owner"] != "team-a" {
			t.Fatalf("annotate = %+v, %v", res, err)
		}
		if got := getPod(t, cs, "meta", "web-3"); got.Annotations["note"] != "suspected miner; do not delete" {
			t.Errorf("annotations = %v", got.Annotations)
		}
		if _, err := c.RestorePodAnnotations(ctx, restoreOf(res)); err != nil {
			t.Fatal(err)
		}
		if got := getPod(t, cs, "meta", "web-3"); !apiequality.Semantic.DeepEqual(got.Annotations, pod.Annotations) {
			t.Errorf("annotations = %v, want the original %v", got.Annotations, pod.Annotations)
		}
	})

	t.Run("a dry run stores nothing", func(t *testing.T) {
		testenv.Pod(t, cs, "meta", "web-4")
		before := snapshot(t, cs, "meta", "web-4", "none")
		res, err := c.LabelPod(ctx, kube.MetadataRequest{Namespace: "meta", Pod: "web-4", Values: map[string]string{"team": "sec"}, DryRun: true})
		if err != nil || !res.Changed || !res.DryRun {
			t.Fatalf("dry run = %+v, %v", res, err)
		}
		before.assertUnchanged(t)
	})

	t.Run("reserved and invalid keys are refused", func(t *testing.T) {
		testenv.Pod(t, cs, "meta", "web-5")
		before := snapshot(t, cs, "meta", "web-5", "none")
		for _, tc := range []struct {
			name     string
			call     func() error
			reserved bool
		}{
			{name: "label under soar.dev/", reserved: true, call: func() error {
				_, err := c.LabelPod(ctx, kube.MetadataRequest{Namespace: "meta", Pod: "web-5", Values: map[string]string{kube.QuarantineLabel: "false"}})
				return err
			}},
			{name: "annotation under soar.dev/", reserved: true, call: func() error {
				_, err := c.AnnotatePod(ctx, kube.MetadataRequest{Namespace: "meta", Pod: "web-5", Values: map[string]string{kube.DetachedLabelsAnnotation: "{}"}})
				return err
			}},
			{name: "restore that would remove a soar.dev/ label", reserved: true, call: func() error {
				_, err := c.RestorePodLabels(ctx, kube.RestoreMetadataRequest{Namespace: "meta", Pod: "web-5", Set: map[string]string{kube.QuarantineLabel: "true"}, Added: []string{kube.QuarantineLabel}})
				return err
			}},
			{name: "invalid label key", call: func() error {
				_, err := c.LabelPod(ctx, kube.MetadataRequest{Namespace: "meta", Pod: "web-5", Values: map[string]string{"not a key": "x"}})
				return err
			}},
			{name: "invalid label value", call: func() error {
				_, err := c.LabelPod(ctx, kube.MetadataRequest{Namespace: "meta", Pod: "web-5", Values: map[string]string{"team": "red team!"}})
				return err
			}},
			{name: "no values", call: func() error {
				_, err := c.AnnotatePod(ctx, kube.MetadataRequest{Namespace: "meta", Pod: "web-5"})
				return err
			}},
		} {
			err := tc.call()
			if !errors.Is(err, kube.ErrInvalidInput) || errors.Is(err, kube.ErrReservedKey) != tc.reserved {
				t.Errorf("%s: err = %v, want ErrInvalidInput (reserved: %v)", tc.name, err, tc.reserved)
			}
		}
		before.assertUnchanged(t)
	})

	t.Run("a replaced pod is ErrTargetChanged; its restore finds the pod gone", func(t *testing.T) {
		old := testenv.ReplacedPod(t, cs, "meta", "db-0")
		_, err := c.LabelPod(ctx, kube.MetadataRequest{Namespace: "meta", Pod: "db-0", PodUID: string(old.UID), Values: map[string]string{"team": "sec"}})
		if !errors.Is(err, kube.ErrTargetChanged) {
			t.Fatalf("err = %v, want ErrTargetChanged", err)
		}
		res, err := c.RestorePodLabels(ctx, kube.RestoreMetadataRequest{Namespace: "meta", Pod: "db-0", PodUID: string(old.UID), Set: map[string]string{"app": "web"}, Added: []string{"app"}})
		if err != nil || !res.AlreadyGone || len(res.Restored) != 0 {
			t.Fatalf("restore = %+v, %v; want already gone", res, err)
		}
		if got := getPod(t, cs, "meta", "db-0"); got.Labels["app"] != "web" {
			t.Error("the restore touched the namesake")
		}
	})
}

func restoreOf(res kube.MetadataResult) kube.RestoreMetadataRequest {
	return kube.RestoreMetadataRequest{Namespace: res.Namespace, Pod: res.Pod, PodUID: res.PodUID, Set: res.Set, Previous: res.Previous, Added: res.Added}
}

func assertPodGone(t *testing.T, cs kubernetes.Interface, namespace, name string) {
	t.Helper()
	if _, err := cs.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod %s/%s: err = %v, want it gone", namespace, name, err)
	}
}

// runningAndReady sets the status a kubelet would report for a healthy pod:
// only then does eviction consult the disruption budget (a Pending pod is
// deleted regardless).
func runningAndReady(t *testing.T, cs kubernetes.Interface, pod *corev1.Pod) {
	t.Helper()
	pod = getPod(t, cs, pod.Namespace, pod.Name)
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if _, err := cs.CoreV1().Pods(pod.Namespace).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// disruptionBudget creates a budget for app=web pods with the status the
// disruption controller would compute for one healthy pod that must stay,
// except that it allows the given number of disruptions.
func disruptionBudget(t *testing.T, cs kubernetes.Interface, namespace string, allowed int32) *policyv1.PodDisruptionBudget {
	t.Helper()
	minAvailable := intstr.FromInt32(1)
	pdb, err := cs.PolicyV1().PodDisruptionBudgets(namespace).Create(context.Background(), &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: namespace},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &minAvailable,
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return setDisruptionsAllowed(t, cs, pdb, allowed)
}

func setDisruptionsAllowed(t *testing.T, cs kubernetes.Interface, pdb *policyv1.PodDisruptionBudget, allowed int32) *policyv1.PodDisruptionBudget {
	t.Helper()
	pdb, err := cs.PolicyV1().PodDisruptionBudgets(pdb.Namespace).Get(context.Background(), pdb.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pdb.Status = policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation,
		DisruptionsAllowed: allowed,
		CurrentHealthy:     1 + allowed,
		DesiredHealthy:     1,
		ExpectedPods:       1 + allowed,
	}
	pdb, err = cs.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(context.Background(), pdb, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pdb
}
