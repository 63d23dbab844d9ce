package kube_test

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/testenv"
)

// One API server serves every test in this file; each test uses its own
// namespace.
func setup(t *testing.T) (*kube.Client, kubernetes.Interface) {
	t.Helper()
	_, cs := testenv.Kube(t)
	return kube.New(cs), cs
}

func TestQuarantine(t *testing.T) {
	c, cs := setup(t)
	ctx := context.Background()

	t.Run("a dry run reports what it would change and stores nothing", func(t *testing.T) {
		testenv.Pod(t, cs, "plan", "web-1")
		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "plan", Pod: "web-1", DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if !res.DryRun || !res.Labeled || !res.PolicyCreated {
			t.Errorf("dry-run result = %+v, want it to report label and policy", res)
		}
		got, _ := cs.CoreV1().Pods("plan").Get(ctx, "web-1", metav1.GetOptions{})
		if _, ok := got.Labels[kube.QuarantineLabel]; ok {
			t.Error("a dry run labeled the pod")
		}
		if _, err := cs.NetworkingV1().NetworkPolicies("plan").Get(ctx, kube.PolicyName, metav1.GetOptions{}); err == nil {
			t.Error("a dry run created the policy")
		}
	})

	t.Run("labels the pod and creates a deny-all policy that selects it", func(t *testing.T) {
		pod := testenv.Pod(t, cs, "shop", "web-1")
		testenv.Pod(t, cs, "shop", "web-2") // a sibling that must stay untouched

		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "shop", Pod: "web-1", PodUID: string(pod.UID), Incident: "soar-x"})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Labeled || !res.PolicyCreated || res.PolicyRepaired || res.PodUID != string(pod.UID) {
			t.Errorf("result = %+v", res)
		}
		got, _ := cs.CoreV1().Pods("shop").Get(ctx, "web-1", metav1.GetOptions{})
		if got.Labels[kube.QuarantineLabel] != "true" || got.Labels["app"] != "web" || got.Annotations[kube.IncidentAnnotation] != "soar-x" {
			t.Errorf("pod labels %v annotations %v", got.Labels, got.Annotations)
		}
		sibling, _ := cs.CoreV1().Pods("shop").Get(ctx, "web-2", metav1.GetOptions{})
		if _, ok := sibling.Labels[kube.QuarantineLabel]; ok {
			t.Error("the sibling pod was labeled too")
		}
		np, err := cs.NetworkingV1().NetworkPolicies("shop").Get(ctx, kube.PolicyName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertDenyAll(t, np)
		assertSelects(t, np, got, true)
		assertSelects(t, np, sibling, false)
	})

	t.Run("a second run changes nothing", func(t *testing.T) {
		before, _ := cs.CoreV1().Pods("shop").Get(ctx, "web-1", metav1.GetOptions{})
		npBefore, _ := cs.NetworkingV1().NetworkPolicies("shop").Get(ctx, kube.PolicyName, metav1.GetOptions{})
		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "shop", Pod: "web-1", Incident: "soar-x"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Labeled || res.PolicyCreated || res.PolicyRepaired {
			t.Errorf("second run reports changes: %+v", res)
		}
		after, _ := cs.CoreV1().Pods("shop").Get(ctx, "web-1", metav1.GetOptions{})
		npAfter, _ := cs.NetworkingV1().NetworkPolicies("shop").Get(ctx, kube.PolicyName, metav1.GetOptions{})
		if after.ResourceVersion != before.ResourceVersion || npAfter.ResourceVersion != npBefore.ResourceVersion {
			t.Errorf("objects were written: pod %s→%s, policy %s→%s", before.ResourceVersion, after.ResourceVersion, npBefore.ResourceVersion, npAfter.ResourceVersion)
		}
	})

	t.Run("a tampered policy is restored", func(t *testing.T) {
		np, _ := cs.NetworkingV1().NetworkPolicies("shop").Get(ctx, kube.PolicyName, metav1.GetOptions{})
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if _, err := cs.NetworkingV1().NetworkPolicies("shop").Update(ctx, np, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "shop", Pod: "web-1"})
		if err != nil || !res.PolicyRepaired {
			t.Fatalf("result %+v, err %v; want policy repaired", res, err)
		}
		np, _ = cs.NetworkingV1().NetworkPolicies("shop").Get(ctx, kube.PolicyName, metav1.GetOptions{})
		assertDenyAll(t, np)
	})

	t.Run("a missing pod is ErrPodNotFound", func(t *testing.T) {
		testenv.Namespace(t, cs, "empty")
		_, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "empty", Pod: "gone"})
		if !errors.Is(err, kube.ErrPodNotFound) {
			t.Fatalf("err = %v, want ErrPodNotFound", err)
		}
		if _, err := cs.NetworkingV1().NetworkPolicies("empty").Get(ctx, kube.PolicyName, metav1.GetOptions{}); err == nil {
			t.Error("a policy was created for a pod that does not exist")
		}
	})

	t.Run("a replaced pod is ErrTargetChanged and is left alone", func(t *testing.T) {
		old := testenv.Pod(t, cs, "billing", "api-1")
		if err := cs.CoreV1().Pods("billing").Delete(ctx, "api-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
		testenv.Pod(t, cs, "billing", "api-1") // a namesake, as a StatefulSet would create
		_, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "billing", Pod: "api-1", PodUID: string(old.UID)})
		if !errors.Is(err, kube.ErrTargetChanged) {
			t.Fatalf("err = %v, want ErrTargetChanged", err)
		}
		now, _ := cs.CoreV1().Pods("billing").Get(ctx, "api-1", metav1.GetOptions{})
		if _, ok := now.Labels[kube.QuarantineLabel]; ok {
			t.Error("the namesake was quarantined")
		}
	})
}

func assertDenyAll(t *testing.T, np *networkingv1.NetworkPolicy) {
	t.Helper()
	want := kube.DenyAllPolicy(np.Namespace).Spec
	if !apiequality.Semantic.DeepEqual(np.Spec, want) {
		t.Errorf("policy spec = %+v, want deny-all %+v", np.Spec, want)
	}
	if len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 0 || len(np.Spec.PolicyTypes) != 2 {
		t.Errorf("policy allows traffic: %+v", np.Spec)
	}
}

func assertSelects(t *testing.T, np *networkingv1.NetworkPolicy, pod *corev1.Pod, want bool) {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	if got := sel.Matches(labels.Set(pod.Labels)); got != want {
		t.Errorf("policy selects pod %s = %v, want %v", pod.Name, got, want)
	}
}
