package kube_test

import (
	"context"
	"errors"
	"testing"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/testenv"
)

func testRelease(t *testing.T, cs kubernetes.Interface) {
	c := kube.New(cs)
	ctx := context.Background()
	quarantine := func(t *testing.T, namespace, pod, incident string, detach bool) {
		t.Helper()
		if _, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: namespace, Pod: pod, Incident: incident, Detach: detach}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("lifts the quarantine, reattaches the pod and deletes the policy; a second run changes nothing", func(t *testing.T) {
		_, rs, pod := testenv.DeploymentChain(t, cs, "lift", "api", 2)
		quarantine(t, "lift", pod.Name, "inc-1", true)

		res, err := c.Release(ctx, kube.ReleaseRequest{Namespace: "lift", Pod: pod.Name, PodUID: string(pod.UID), Incident: "inc-1"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"app": "api", "pod-template-hash": "5d8f7"}
		if !res.Unlabeled || !res.MarkerRemoved || !res.PolicyDeleted || !apiequality.Semantic.DeepEqual(res.LabelsRestored, want) || len(res.StillQuarantinedBy) != 0 {
			t.Errorf("result = %+v", res)
		}
		got := getPod(t, cs, "lift", pod.Name)
		if !apiequality.Semantic.DeepEqual(got.Labels, pod.Labels) {
			t.Errorf("labels = %v, want the original %v", got.Labels, pod.Labels)
		}
		for key := range got.Annotations {
			t.Errorf("annotation %s left on the pod", key)
		}
		sel, _ := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if !sel.Matches(labels.Set(got.Labels)) {
			t.Error("the ReplicaSet does not select the pod again")
		}
		assertNoPolicy(t, cs, "lift", "inc-1")

		before := snapshot(t, cs, "lift", pod.Name, kube.PolicyName("inc-1"))
		again, err := c.Release(ctx, kube.ReleaseRequest{Namespace: "lift", Pod: pod.Name, PodUID: string(pod.UID), Incident: "inc-1"})
		if err != nil {
			t.Fatal(err)
		}
		if again.Unlabeled || again.MarkerRemoved || again.PolicyDeleted || again.LabelsRestored != nil {
			t.Errorf("second run reports changes: %+v", again)
		}
		before.assertUnchanged(t)
	})

	t.Run("releasing one of two incidents keeps the pod quarantined by the other", func(t *testing.T) {
		_, _, pod := testenv.DeploymentChain(t, cs, "twice", "api", 2)
		quarantine(t, "twice", pod.Name, "inc-a", true)
		quarantine(t, "twice", pod.Name, "inc-b", false)

		res, err := c.Release(ctx, kube.ReleaseRequest{Namespace: "twice", Pod: pod.Name, Incident: "inc-a"})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Unlabeled || res.MarkerRemoved || res.LabelsRestored != nil || !res.PolicyDeleted || len(res.StillQuarantinedBy) != 1 || res.StillQuarantinedBy[0] != "inc-b" {
			t.Errorf("result = %+v, want inc-a released and inc-b still holding the pod", res)
		}
		got := getPod(t, cs, "twice", pod.Name)
		if got.Labels[kube.QuarantineLabel] != "true" || got.Labels["app"] != "" || got.Annotations[kube.DetachedLabelsAnnotation] == "" {
			t.Errorf("the pod lost its quarantine or was reattached: labels %v annotations %v", got.Labels, got.Annotations)
		}
		assertSelects(t, getPolicy(t, cs, "twice", kube.PolicyName("inc-b")), got, true)
		assertNoPolicy(t, cs, "twice", "inc-a")

		last, err := c.Release(ctx, kube.ReleaseRequest{Namespace: "twice", Pod: pod.Name, Incident: "inc-b"})
		if err != nil {
			t.Fatal(err)
		}
		if !last.MarkerRemoved || len(last.LabelsRestored) != 2 || !last.PolicyDeleted {
			t.Errorf("releasing the last incident = %+v", last)
		}
		if got := getPod(t, cs, "twice", pod.Name); !apiequality.Semantic.DeepEqual(got.Labels, pod.Labels) {
			t.Errorf("labels = %v, want the original %v", got.Labels, pod.Labels)
		}
	})

	t.Run("the policy stays while another pod carries the incident's label", func(t *testing.T) {
		testenv.Pod(t, cs, "pair", "web-1")
		testenv.Pod(t, cs, "pair", "web-2")
		quarantine(t, "pair", "web-1", "inc-1", false)
		quarantine(t, "pair", "web-2", "inc-1", false)

		res, err := c.Release(ctx, kube.ReleaseRequest{Namespace: "pair", Pod: "web-1", Incident: "inc-1"})
		if err != nil || !res.Unlabeled || res.PolicyDeleted {
			t.Fatalf("first release = %+v, %v; want the policy kept", res, err)
		}
		getPolicy(t, cs, "pair", kube.PolicyName("inc-1"))
		res, err = c.Release(ctx, kube.ReleaseRequest{Namespace: "pair", Pod: "web-2", Incident: "inc-1"})
		if err != nil || !res.PolicyDeleted {
			t.Fatalf("second release = %+v, %v; want the policy deleted", res, err)
		}
	})

	t.Run("a pod that died is still cleaned up after", func(t *testing.T) {
		pod := testenv.Pod(t, cs, "dead", "web-1")
		quarantine(t, "dead", "web-1", "inc-1", false)
		if err := cs.CoreV1().Pods("dead").Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		res, err := c.Release(ctx, kube.ReleaseRequest{Namespace: "dead", Pod: "web-1", PodUID: string(pod.UID), Incident: "inc-1"})
		if err != nil || !res.PodGone || !res.PolicyDeleted || res.Unlabeled {
			t.Fatalf("release = %+v, %v; want pod gone and policy deleted", res, err)
		}
		assertNoPolicy(t, cs, "dead", "inc-1")
	})

	t.Run("a replaced pod is left alone and the policy is still cleaned up", func(t *testing.T) {
		testenv.Pod(t, cs, "swap", "db-0")
		quarantine(t, "swap", "db-0", "inc-1", false)
		old := testenv.ReplacedPod(t, cs, "swap", "db-0")
		// The namesake carries a label of its own that release must not touch.
		namesake := getPod(t, cs, "swap", "db-0")
		namesake.Labels[kube.QuarantineLabel] = "true"
		if _, err := cs.CoreV1().Pods("swap").Update(ctx, namesake, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, cs, "swap", "db-0", "none")
		res, err := c.Release(ctx, kube.ReleaseRequest{Namespace: "swap", Pod: "db-0", PodUID: string(old.UID), Incident: "inc-1"})
		if err != nil || !res.PodReplaced || !res.PolicyDeleted || res.MarkerRemoved {
			t.Fatalf("release = %+v, %v; want pod replaced and policy deleted", res, err)
		}
		before.assertUnchanged(t)
	})

	t.Run("a dry run reports what it would change and stores nothing", func(t *testing.T) {
		testenv.Pod(t, cs, "release-plan", "web-1")
		quarantine(t, "release-plan", "web-1", "inc-1", false)
		before := snapshot(t, cs, "release-plan", "web-1", kube.PolicyName("inc-1"))
		res, err := c.Release(ctx, kube.ReleaseRequest{Namespace: "release-plan", Pod: "web-1", Incident: "inc-1", DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if !res.DryRun || !res.Unlabeled || !res.MarkerRemoved || !res.PolicyDeleted {
			t.Errorf("dry-run result = %+v", res)
		}
		before.assertUnchanged(t)
	})

	t.Run("a missing incident is invalid input", func(t *testing.T) {
		if _, err := c.Release(ctx, kube.ReleaseRequest{Namespace: "release-plan", Pod: "web-1"}); !errors.Is(err, kube.ErrInvalidInput) {
			t.Fatalf("err = %v, want ErrInvalidInput", err)
		}
	})
}

func assertNoPolicy(t *testing.T, cs kubernetes.Interface, namespace, incident string) {
	t.Helper()
	_, err := cs.NetworkingV1().NetworkPolicies(namespace).Get(context.Background(), kube.PolicyName(incident), metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("policy for %s in %s: err = %v, want it deleted", incident, namespace, err)
	}
}
