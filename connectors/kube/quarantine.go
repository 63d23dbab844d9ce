package kube

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// QuarantineRequest names the pod to isolate.
type QuarantineRequest struct {
	Namespace string
	Pod       string
	// PodUID, when known, must match the live pod's UID; otherwise the pod was
	// replaced since the alert and the request fails with ErrTargetChanged.
	PodUID string
	// Incident is recorded on the pod in IncidentAnnotation.
	Incident string
	// DryRun sends every write as a server-side dry run: the API server
	// validates and admits it, and stores nothing. The result says what would
	// have changed.
	DryRun bool
}

// QuarantineResult says what Quarantine found and changed.
type QuarantineResult struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	PodUID    string `json:"podUID"`
	// Label is the key=value now on the pod.
	Label string `json:"label"`
	// Labeled is true when this call added the label, false when it was there.
	Labeled bool `json:"labeled"`
	// Policy is the NetworkPolicy that selects the pod.
	Policy string `json:"policy"`
	// PolicyCreated and PolicyRepaired say whether this call created the
	// policy or restored a policy whose spec had been changed.
	PolicyCreated  bool `json:"policyCreated"`
	PolicyRepaired bool `json:"policyRepaired"`
	// DryRun is true when nothing was stored: the booleans above then say
	// what would have changed.
	DryRun bool `json:"dryRun,omitempty"`
}

// Quarantine isolates one pod: it labels the pod with QuarantineLabel and
// ensures a NetworkPolicy in the pod's namespace that selects that label and
// allows no ingress and no egress. It is idempotent: a second call finds both in
// place and changes nothing. Errors wrap ErrPodNotFound, ErrTargetChanged, or
// the API server's status error (use k8s.io/apimachinery/pkg/api/errors to
// inspect it).
//
// Whether established connections are cut depends on the cluster's network
// plugin; the policy itself only stops new traffic on all plugins.
func (c *Client) Quarantine(ctx context.Context, req QuarantineRequest) (QuarantineResult, error) {
	res := QuarantineResult{
		Namespace: req.Namespace,
		Pod:       req.Pod,
		Label:     QuarantineLabel + "=" + QuarantineValue,
		Policy:    PolicyName,
		DryRun:    req.DryRun,
	}
	var dryRun []string
	if req.DryRun {
		dryRun = []string{metav1.DryRunAll}
	}

	// The pod is re-read right before acting, so the label lands on the pod the
	// alert named and not on a namesake.
	pod, err := c.cs.CoreV1().Pods(req.Namespace).Get(ctx, req.Pod, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return res, fmt.Errorf("%w: %s/%s", ErrPodNotFound, req.Namespace, req.Pod)
	}
	if err != nil {
		return res, fmt.Errorf("kube: get pod %s/%s: %w", req.Namespace, req.Pod, err)
	}
	if req.PodUID != "" && string(pod.UID) != req.PodUID {
		return res, fmt.Errorf("%w: pod %s/%s has UID %s, the alert named %s", ErrTargetChanged, req.Namespace, req.Pod, pod.UID, req.PodUID)
	}
	res.PodUID = string(pod.UID)

	// The policy comes first: once the pod carries the label, it must already
	// be selected by a deny-all policy, never the other way round.
	created, repaired, err := c.ensureDenyAllPolicy(ctx, req.Namespace, dryRun)
	if err != nil {
		return res, err
	}
	res.PolicyCreated, res.PolicyRepaired = created, repaired

	labeled, err := c.labelPod(ctx, pod, req.Incident, dryRun)
	if err != nil {
		return res, err
	}
	res.Labeled = labeled
	return res, nil
}

// labelPod adds the quarantine label unless it is already there. The patch
// carries the pod's UID as a precondition so it cannot land on a replacement.
func (c *Client) labelPod(ctx context.Context, pod *corev1.Pod, incident string, dryRun []string) (bool, error) {
	if pod.Labels[QuarantineLabel] == QuarantineValue {
		return false, nil
	}
	patch := map[string]any{
		"metadata": map[string]any{
			"uid":         pod.UID,
			"labels":      map[string]string{QuarantineLabel: QuarantineValue},
			"annotations": map[string]string{IncidentAnnotation: incident},
		},
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return false, fmt.Errorf("kube: encode label patch: %w", err)
	}
	_, err = c.cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: ManagedByValue, DryRun: dryRun})
	switch {
	case apierrors.IsNotFound(err):
		return false, fmt.Errorf("%w: %s/%s", ErrPodNotFound, pod.Namespace, pod.Name)
	case apierrors.IsConflict(err):
		// A UID precondition failure is a conflict: the pod was replaced
		// between the read and the patch.
		return false, fmt.Errorf("%w: pod %s/%s was replaced while it was being labeled", ErrTargetChanged, pod.Namespace, pod.Name)
	case err != nil:
		return false, fmt.Errorf("kube: label pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return true, nil
}

// DenyAllPolicy is the NetworkPolicy Quarantine keeps in a namespace: it selects
// quarantined pods and, by listing both policy types with no rules, allows them
// no traffic in either direction.
func DenyAllPolicy(namespace string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name:      PolicyName,
			Namespace: namespace,
			Labels:    map[string]string{ManagedByLabel: ManagedByValue},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{QuarantineLabel: QuarantineValue}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
}

// ensureDenyAllPolicy creates the namespace's deny-all policy, or restores its
// spec if someone changed it. It reports whether it created or repaired it.
func (c *Client) ensureDenyAllPolicy(ctx context.Context, namespace string, dryRun []string) (created, repaired bool, err error) {
	want := DenyAllPolicy(namespace)
	policies := c.cs.NetworkingV1().NetworkPolicies(namespace)
	got, err := policies.Get(ctx, PolicyName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = policies.Create(ctx, want, metav1.CreateOptions{FieldManager: ManagedByValue, DryRun: dryRun})
		if err == nil {
			return true, false, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return false, false, fmt.Errorf("kube: create network policy %s/%s: %w", namespace, PolicyName, err)
		}
		// A concurrent quarantine in the same namespace created it first.
		got, err = policies.Get(ctx, PolicyName, metav1.GetOptions{})
	}
	if err != nil {
		return false, false, fmt.Errorf("kube: get network policy %s/%s: %w", namespace, PolicyName, err)
	}
	if apiequality.Semantic.DeepEqual(got.Spec, want.Spec) {
		return false, false, nil
	}
	got.Spec = want.Spec
	if _, err := policies.Update(ctx, got, metav1.UpdateOptions{FieldManager: ManagedByValue, DryRun: dryRun}); err != nil {
		return false, false, fmt.Errorf("kube: restore network policy %s/%s: %w", namespace, PolicyName, err)
	}
	return false, true, nil
}
