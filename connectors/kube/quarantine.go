// RBAC for Quarantine:
//   - "" pods: get, patch
//   - networking.k8s.io networkpolicies: get, list, create, update
//   - apps replicasets: get (detach only, pods owned by a ReplicaSet)
//   - "" replicationcontrollers: get (detach only, pods owned by a ReplicationController)

package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// IncidentHash is the short, label-safe form of an incident ID that names
// soar's per-incident labels, annotations and policies: the first 16 hex
// digits of its SHA-256.
func IncidentHash(incident string) string {
	sum := sha256.Sum256([]byte(incident))
	return hex.EncodeToString(sum[:])[:16]
}

// IncidentLabel is the pod label key, soar.dev/quarantine-<hash>, by which the
// incident's deny-all policy selects the pods it quarantined. Its value is
// QuarantineValue.
func IncidentLabel(incident string) string {
	return incidentLabelPrefix + IncidentHash(incident)
}

// PodIncidentAnnotation is the pod annotation key, soar.dev/incident-<hash>,
// whose value is the incident ID behind IncidentLabel.
func PodIncidentAnnotation(incident string) string {
	return podIncidentAnnotationPrefix + IncidentHash(incident)
}

// PolicyName is the name of the incident's deny-all NetworkPolicy,
// soar-quarantine-<hash>.
func PolicyName(incident string) string {
	return "soar-quarantine-" + IncidentHash(incident)
}

const (
	incidentLabelPrefix         = QuarantineLabel + "-"
	podIncidentAnnotationPrefix = IncidentAnnotation + "-"
)

// QuarantineRequest names the pod to isolate and the incident isolating it.
type QuarantineRequest struct {
	Namespace string
	Pod       string
	// PodUID, when known, must match the live pod's UID; otherwise the pod was
	// replaced since the alert and the request fails with ErrTargetChanged.
	PodUID string
	// Incident is required: each incident has its own label and policy, so
	// releasing one incident never frees a pod another still holds.
	Incident string
	// Detach also removes the labels by which the pod's ReplicaSet (or
	// ReplicationController) selects it. The controller then no longer counts
	// the pod and starts a clean replacement, while the suspect pod is kept,
	// isolated, for forensics.
	Detach bool
	// DryRun sends every write as a server-side dry run: the API server
	// validates and admits it, and stores nothing. The result says what would
	// have changed.
	DryRun bool
}

// QuarantineResult says what Quarantine found and changed.
type QuarantineResult struct {
	Namespace string `json:"namespace" doc:"namespace of the pod"`
	Pod       string `json:"pod" doc:"name of the pod"`
	PodUID    string `json:"podUID" doc:"UID of the pod acted on"`
	// Label is the summary key=value on the pod (soar.dev/quarantine=true).
	Label string `json:"label" doc:"the label now on the pod (soar.dev/quarantine=true)"`
	// Labeled is true when this call added the quarantine labels, false when
	// the pod carried them already.
	Labeled bool `json:"labeled" doc:"whether this step added the label (false: it was already there)"`
	// Policy is the incident's NetworkPolicy that selects the pod.
	Policy string `json:"policy" doc:"name of the incident's deny-all NetworkPolicy"`
	// PolicyCreated and PolicyRepaired say whether this call created the
	// policy or restored a policy whose spec had been changed.
	PolicyCreated  bool `json:"policyCreated" doc:"whether this step created the policy"`
	PolicyRepaired bool `json:"policyRepaired" doc:"whether this step restored a policy whose spec had been changed"`
	// Detached is true when this call removed the owner's selector labels.
	// DetachedLabels are the labels removed, by this call or an earlier one,
	// as recorded in DetachedLabelsAnnotation; Owner is the controller they
	// were removed from ("ReplicaSet/web-7d9c"), when it still owns the pod.
	Detached       bool              `json:"detached,omitempty" doc:"whether this step detached the pod from its owner (false on a repeat: detachedLabels says it is)"`
	DetachedLabels map[string]string `json:"detachedLabels,omitempty" doc:"the labels removed to detach it, restored on release"`
	Owner          string            `json:"owner,omitempty" doc:"the owner it was detached from (ReplicaSet/name)"`
	// OtherPolicies are NetworkPolicies not managed by soar that also select
	// the pod. NetworkPolicies only ever add allowed traffic, so any of them
	// with rules may still let traffic reach or leave the pod.
	OtherPolicies []string `json:"otherPolicies,omitempty" doc:"other NetworkPolicies that select the pod: they may still allow it traffic, since policies only add allows"`
	// HostNetwork: the pod shares its node's network, where NetworkPolicies
	// do not apply.
	HostNetwork bool `json:"hostNetwork,omitempty" doc:"the pod uses its node's network: NetworkPolicies do not apply to it, so the quarantine policy cuts none of its traffic"`
	// Degraded says why traffic may still reach or leave the pod despite
	// the quarantine: the pod uses the host's network, or other policies
	// with allow rules select it. Empty when the deny-all policy is all
	// that selects the pod.
	Degraded string `json:"degraded,omitempty" doc:"why the pod may still have traffic although labeled behind the deny-all policy (host network, allow policies named); empty when it is contained"`
	// TamperProof says the pod is on the quarantine lock list and the API
	// server refused soar itself dry runs removing its quarantine label and
	// deleting the incident's policy:
	// nobody but the break-glass group can undo the containment until
	// release (deploy/quarantine-lock.yaml). NotTamperProof says why not.
	TamperProof    bool   `json:"tamperProof" doc:"the API server's quarantine lock holds the pod: soar's own dry runs removing its label and deleting the incident's policy were refused"`
	NotTamperProof string `json:"notTamperProof,omitempty" doc:"why the containment is not tamper-proof (no lock list, the admission policy missing)"`
	// DryRun is true when nothing was stored: the booleans above then say
	// what would have changed.
	DryRun bool `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// Quarantine isolates one pod for one incident. It ensures the incident's
// deny-all NetworkPolicy (PolicyName) in the pod's namespace, selecting
// IncidentLabel and allowing no ingress and no egress, and only then labels the
// pod with QuarantineLabel and IncidentLabel and annotates it with the incident
// ID, so the pod is never labeled without a policy in place. With Detach, the
// same patch removes the labels by which the pod's ReplicaSet selects it.
// Afterwards it reads the pod and the policy back and checks that the policy
// is deny-all and selects the pod.
//
// It is idempotent: a second call finds everything in place and writes
// nothing; a policy whose spec was changed is restored. Errors wrap
// ErrInvalidInput (no incident), ErrPodNotFound, ErrTargetChanged,
// ErrNamespaceTerminating, ErrUnsupportedOwner or ErrOwnerNotFound (Detach),
// all permanent; any other error, including a failed verification and an
// optimistic-lock conflict, is transient and the call may be retried.
//
// Whether established connections are cut depends on the cluster's network
// plugin; the policy itself only stops new traffic on all plugins.
func (c *Client) Quarantine(ctx context.Context, req QuarantineRequest) (QuarantineResult, error) {
	res := QuarantineResult{
		Namespace: req.Namespace,
		Pod:       req.Pod,
		Label:     QuarantineLabel + "=" + QuarantineValue,
		DryRun:    req.DryRun,
	}
	if err := requireFields("quarantine", "namespace", req.Namespace, "pod", req.Pod, "incident", req.Incident); err != nil {
		return res, err
	}
	res.Policy = PolicyName(req.Incident)

	// The policy comes first: once the pod carries the label, it must already
	// be selected by a deny-all policy, never the other way round.
	var (
		pod *corev1.Pod
		det *detachment
		err error
	)
	if req.Detach {
		// Detaching is planned before anything is written, so a pod whose
		// owner cannot be detached from is left entirely alone.
		if pod, err = c.getPod(ctx, req.Namespace, req.Pod, req.PodUID); err != nil {
			return res, err
		}
		if det, err = c.planDetach(ctx, pod); err != nil {
			return res, err
		}
		res.Owner, res.DetachedLabels = det.owner, det.recorded
		if res.PolicyCreated, res.PolicyRepaired, err = c.ensureDenyAllPolicy(ctx, req.Namespace, req.Incident, req.DryRun); err != nil {
			return res, err
		}
	} else if pod, err = c.podAndPolicy(ctx, req, &res); err != nil {
		return res, err
	}
	res.PodUID = string(pod.UID)

	labelPatch, annotationPatch := quarantinePatch(pod, req.Incident, det)
	if len(labelPatch) > 0 || len(annotationPatch) > 0 {
		labeled := pod.Labels[QuarantineLabel] != QuarantineValue || pod.Labels[IncidentLabel(req.Incident)] != QuarantineValue
		if pod, err = c.patchPodMetadata(ctx, pod, labelPatch, annotationPatch, "quarantine", req.DryRun); err != nil {
			return res, err
		}
		res.Labeled = labeled
		res.Detached = det != nil && len(det.remove) > 0
	}

	// In a dry run nothing was stored, so there is nothing to read back; the
	// dry-run patch returned the pod as it would be, which is enough to tell
	// which other policies would select it.
	policyVersion := "0"
	if !req.DryRun {
		if pod, policyVersion, err = c.verifyQuarantine(ctx, pod, req.Incident, det); err != nil {
			return res, err
		}
	}
	var allowing []string
	if res.OtherPolicies, allowing, err = c.otherPolicies(ctx, pod, policyVersion); err != nil {
		return res, err
	}
	res.HostNetwork = pod.Spec.HostNetwork
	res.Degraded = degraded(res.HostNetwork, allowing)
	if !req.DryRun {
		c.lockQuarantine(ctx, pod, req.Incident, &res)
	}
	return res, nil
}

// lockQuarantine puts the pod on the lock list and proves the lock. A
// failure leaves the containment as it is and is reported in the result:
// the pod is isolated either way.
func (c *Client) lockQuarantine(ctx context.Context, pod *corev1.Pod, incident string, res *QuarantineResult) {
	if c.locks == nil {
		res.NotTamperProof = "no quarantine lock list (--lock-list)"
		return
	}
	if c.locks.proven != nil {
		defer func() { c.locks.proven(res.TamperProof) }()
	}
	if err := c.lockPod(ctx, pod.Namespace, pod.Name, incident, true); err != nil {
		res.NotTamperProof = "not on the lock list: " + err.Error()
		return
	}
	if pod.Labels[LockedLabel] != QuarantineValue {
		if _, err := c.patchPodMetadata(ctx, pod, map[string]any{LockedLabel: QuarantineValue}, nil, "lock", false); err != nil {
			res.NotTamperProof = "on the lock list, but not labelled " + LockedLabel + ": " + err.Error()
			return
		}
	}
	// The proof waits for a lock being loaded, not for policies missing.
	if res.NotTamperProof = c.policiesInForce(ctx); res.NotTamperProof == "" {
		res.NotTamperProof = c.proveHeld(ctx, pod, PolicyName(incident))
	}
	res.TamperProof = res.NotTamperProof == ""
}

// degraded explains why a quarantined pod may still have traffic, or is "".
func degraded(hostNetwork bool, allowing []string) string {
	var why []string
	if hostNetwork {
		why = append(why, "the pod uses its node's network (hostNetwork), where NetworkPolicies do not apply")
	}
	if len(allowing) > 0 {
		why = append(why, "NetworkPolicies with allow rules also select the pod and may let traffic through: "+strings.Join(allowing, ", "))
	}
	return strings.Join(why, "; ")
}

// podAndPolicy reads the pod and ensures the incident's policy at the same
// time: the first containment of an incident waits for one round trip to the
// API server instead of two. The policy selects only pods carrying the
// incident's label, which nothing carries yet, so creating it before the pod
// is known changes no traffic; when the pod turns out to be missing or
// another pod, a policy this call created is deleted again.
//
// That speculation costs a missing pod three requests instead of one, so
// while the client's request budget is short (Client.pressed) it reads the
// pod first and creates the policy only for a pod that is there.
func (c *Client) podAndPolicy(ctx context.Context, req QuarantineRequest, res *QuarantineResult) (*corev1.Pod, error) {
	if c.pressed() {
		// Short of requests: no speculation. A pod that is not there costs
		// one read instead of a read, a policy and its deletion.
		pod, err := c.getPod(ctx, req.Namespace, req.Pod, req.PodUID)
		if err != nil {
			return nil, err
		}
		if res.PolicyCreated, res.PolicyRepaired, err = c.ensureDenyAllPolicy(ctx, req.Namespace, req.Incident, req.DryRun); err != nil {
			return nil, err
		}
		return pod, nil
	}
	var (
		pod    *corev1.Pod
		podErr error
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		pod, podErr = c.getPod(ctx, req.Namespace, req.Pod, req.PodUID)
	}()
	created, repaired, err := c.ensureDenyAllPolicy(ctx, req.Namespace, req.Incident, req.DryRun)
	<-done
	if podErr != nil {
		if created && !req.DryRun {
			c.deleteStrayPolicy(ctx, req.Namespace, req.Incident)
		}
		return nil, podErr
	}
	if err != nil {
		return nil, err
	}
	res.PolicyCreated, res.PolicyRepaired = created, repaired
	return pod, nil
}

// deleteStrayPolicy deletes the incident's policy that podAndPolicy created
// for a pod that is not there. Failing to is harmless, since the policy
// selects no pod, and a release of the incident deletes it anyway.
func (c *Client) deleteStrayPolicy(ctx context.Context, namespace, incident string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = c.cs.NetworkingV1().NetworkPolicies(namespace).Delete(ctx, PolicyName(incident), metav1.DeleteOptions{})
}

// quarantinePatch returns the label and annotation changes (nil removes a key)
// that quarantine pod for incident and, when det is set, detach it. Both are
// empty when the pod is quarantined and detached already.
func quarantinePatch(pod *corev1.Pod, incident string, det *detachment) (labelPatch, annotationPatch map[string]any) {
	labelPatch, annotationPatch = map[string]any{}, map[string]any{}
	for _, key := range []string{QuarantineLabel, IncidentLabel(incident)} {
		if pod.Labels[key] != QuarantineValue {
			labelPatch[key] = QuarantineValue
		}
	}
	if key := PodIncidentAnnotation(incident); pod.Annotations[key] != incident {
		annotationPatch[key] = incident
	}
	if det != nil {
		for _, key := range det.remove {
			labelPatch[key] = nil
		}
		if det.record != "" {
			annotationPatch[DetachedLabelsAnnotation] = det.record
		}
	}
	return labelPatch, annotationPatch
}

// detachment is what Quarantine does to take a pod out of its controller.
type detachment struct {
	// owner is "Kind/name" of the controller, when the pod still has one.
	owner string
	// selector is the owner's selector, nil when the owner is gone.
	selector labels.Selector
	// recorded are the removed labels, as recorded or to be recorded.
	recorded map[string]string
	// remove are the label keys still to remove from the pod.
	remove []string
	// record is the JSON for DetachedLabelsAnnotation when it is still to be
	// written, empty otherwise.
	record string
}

// planDetach works out which labels to remove from pod so that its controller
// no longer selects it. A pod detached before (it carries
// DetachedLabelsAnnotation) keeps the labels recorded then: once detached, the
// controller usually drops its ownerReference, and the labels the pod has now
// say nothing about the ones it had.
func (c *Client) planDetach(ctx context.Context, pod *corev1.Pod) (*detachment, error) {
	det := &detachment{}
	if raw, ok := pod.Annotations[DetachedLabelsAnnotation]; ok {
		if err := json.Unmarshal([]byte(raw), &det.recorded); err != nil {
			return nil, fmt.Errorf("kube: annotation %s on pod %s/%s is not a JSON object of labels: %w", DetachedLabelsAnnotation, pod.Namespace, pod.Name, err)
		}
		for _, key := range slices.Sorted(maps.Keys(det.recorded)) {
			if _, present := pod.Labels[key]; present {
				det.remove = append(det.remove, key)
			}
		}
		// The owner, if it still claims the pod, is checked after the write.
		if ref := metav1.GetControllerOf(pod); ref != nil {
			owner, sel, _, err := c.controllerSelector(ctx, pod, ref)
			switch {
			case err == nil:
				det.owner, det.selector = owner, sel
			case !errors.Is(err, ErrOwnerNotFound) && !errors.Is(err, ErrUnsupportedOwner):
				return nil, err
			}
		}
		return det, nil
	}

	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return nil, fmt.Errorf("%w: pod %s/%s has no controller, so nothing would start a replacement; detach needs a ReplicaSet or ReplicationController", ErrUnsupportedOwner, pod.Namespace, pod.Name)
	}
	owner, sel, keys, err := c.controllerSelector(ctx, pod, ref)
	if err != nil {
		return nil, err
	}
	det.owner, det.selector = owner, sel
	det.recorded = map[string]string{}
	for _, key := range keys {
		if v, present := pod.Labels[key]; present {
			det.recorded[key] = v
			det.remove = append(det.remove, key)
		}
	}
	// Check before writing anything that the removal will work.
	after := labels.Set(maps.Clone(pod.Labels))
	for _, key := range det.remove {
		delete(after, key)
	}
	if sel.Matches(after) {
		return nil, fmt.Errorf("%w: %s's selector %q would still select pod %s/%s without the labels it names", ErrUnsupportedOwner, owner, sel, pod.Namespace, pod.Name)
	}
	if len(det.recorded) > 0 {
		raw, err := json.Marshal(det.recorded)
		if err != nil {
			return nil, fmt.Errorf("kube: encode detached labels: %w", err)
		}
		det.record = string(raw)
	}
	return det, nil
}

// controllerSelector gets the pod's controller and returns its "Kind/name",
// its selector, and the label keys whose removal can break the selector's
// match: those in matchLabels and in In and Exists expressions (NotIn and
// DoesNotExist match a pod without the key). Only ReplicaSets and
// ReplicationControllers are supported.
func (c *Client) controllerSelector(ctx context.Context, pod *corev1.Pod, ref *metav1.OwnerReference) (string, labels.Selector, []string, error) {
	owner := ref.Kind + "/" + ref.Name
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return owner, nil, nil, fmt.Errorf("%w: pod %s/%s: owner %s has apiVersion %q: %w", ErrUnsupportedOwner, pod.Namespace, pod.Name, owner, ref.APIVersion, err)
	}
	switch {
	case gv.Group == "apps" && ref.Kind == "ReplicaSet":
		rs, err := c.cs.AppsV1().ReplicaSets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return owner, nil, nil, ownerGetError(pod, owner, err)
		}
		if err := ownerUIDError(pod, owner, ref, rs.UID); err != nil {
			return owner, nil, nil, err
		}
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err != nil {
			return owner, nil, nil, fmt.Errorf("%w: %s has an invalid selector: %w", ErrUnsupportedOwner, owner, err)
		}
		var keys []string
		if rs.Spec.Selector != nil {
			keys = slices.Sorted(maps.Keys(rs.Spec.Selector.MatchLabels))
			for _, req := range rs.Spec.Selector.MatchExpressions {
				if req.Operator == metav1.LabelSelectorOpIn || req.Operator == metav1.LabelSelectorOpExists {
					keys = append(keys, req.Key)
				}
			}
		}
		return owner, sel, keys, nil
	case gv.Group == "" && ref.Kind == "ReplicationController":
		rc, err := c.cs.CoreV1().ReplicationControllers(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return owner, nil, nil, ownerGetError(pod, owner, err)
		}
		if err := ownerUIDError(pod, owner, ref, rc.UID); err != nil {
			return owner, nil, nil, err
		}
		if len(rc.Spec.Selector) == 0 {
			return owner, nil, nil, fmt.Errorf("%w: %s has no selector", ErrUnsupportedOwner, owner)
		}
		return owner, labels.SelectorFromSet(rc.Spec.Selector), slices.Sorted(maps.Keys(rc.Spec.Selector)), nil
	case ref.Kind == "StatefulSet":
		return owner, nil, nil, fmt.Errorf("%w: pod %s/%s belongs to %s, which names its pods: it cannot start a replacement while the detached pod keeps the name; detach needs a ReplicaSet or ReplicationController", ErrUnsupportedOwner, pod.Namespace, pod.Name, owner)
	default:
		return owner, nil, nil, fmt.Errorf("%w: pod %s/%s belongs to %s; detach needs a ReplicaSet or ReplicationController, whose replacement pod is interchangeable with the detached one", ErrUnsupportedOwner, pod.Namespace, pod.Name, owner)
	}
}

// ownerGetError interprets the error from getting the pod's controller:
// missing is ErrOwnerNotFound.
func ownerGetError(pod *corev1.Pod, owner string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: %s, the controller of pod %s/%s", ErrOwnerNotFound, owner, pod.Namespace, pod.Name)
	}
	return fmt.Errorf("kube: get %s in %s: %w", owner, pod.Namespace, err)
}

// ownerUIDError fails with ErrOwnerNotFound when the controller found under
// the name in ref is not the one ref names: the pod's owner was deleted and a
// namesake created.
func ownerUIDError(pod *corev1.Pod, owner string, ref *metav1.OwnerReference, uid types.UID) error {
	if uid != ref.UID {
		return fmt.Errorf("%w: %s, the controller of pod %s/%s, was replaced (UID %s, the pod names %s)", ErrOwnerNotFound, owner, pod.Namespace, pod.Name, uid, ref.UID)
	}
	return nil
}

// DenyAllPolicy is the NetworkPolicy Quarantine keeps in a namespace for one
// incident: it selects the pods carrying the incident's label and, by listing
// both policy types with no rules, allows them no traffic in either direction.
func DenyAllPolicy(namespace, incident string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name:        PolicyName(incident),
			Namespace:   namespace,
			Labels:      map[string]string{ManagedByLabel: ManagedByValue},
			Annotations: map[string]string{IncidentAnnotation: incident},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{IncidentLabel(incident): QuarantineValue}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
}

// ensureDenyAllPolicy creates the incident's deny-all policy, or restores its
// spec and managed-by label if someone changed them. It reports whether it
// created or repaired it.
func (c *Client) ensureDenyAllPolicy(ctx context.Context, namespace, incident string, dryRun bool) (created, repaired bool, err error) {
	want := DenyAllPolicy(namespace, incident)
	policies := c.cs.NetworkingV1().NetworkPolicies(namespace)
	// Create first: an incident's first quarantine, the one that matters for
	// speed, finds no policy, and a repeat pays one more round trip.
	_, err = policies.Create(ctx, want, metav1.CreateOptions{FieldManager: ManagedByValue, DryRun: dryRunOption(dryRun)})
	switch {
	case err == nil:
		return true, false, nil
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return false, false, fmt.Errorf("%w: cannot create network policy %s/%s: %w", ErrNamespaceTerminating, namespace, want.Name, err)
	case !apierrors.IsAlreadyExists(err):
		return false, false, writeError(fmt.Sprintf("create network policy %s/%s", namespace, want.Name), err)
	}
	// An earlier attempt, or a concurrent quarantine for the same incident,
	// created it: check that it is still what soar wants.
	got, err := policies.Get(ctx, want.Name, metav1.GetOptions{})
	if err != nil {
		return false, false, fmt.Errorf("kube: get network policy %s/%s: %w", namespace, want.Name, err)
	}
	if apiequality.Semantic.DeepEqual(got.Spec, want.Spec) && got.Labels[ManagedByLabel] == ManagedByValue {
		return false, false, nil
	}
	got.Spec = want.Spec
	if got.Labels == nil {
		got.Labels = map[string]string{}
	}
	got.Labels[ManagedByLabel] = ManagedByValue
	// The update carries the resourceVersion read above: if someone changes
	// the policy meanwhile, it fails with a conflict and a retry starts over.
	if _, err := policies.Update(ctx, got, metav1.UpdateOptions{FieldManager: ManagedByValue, DryRun: dryRunOption(dryRun)}); err != nil {
		return false, false, writeError(fmt.Sprintf("restore network policy %s/%s", namespace, want.Name), err)
	}
	return false, true, nil
}

// verifyQuarantine reads the pod and the incident's policy back and checks
// that the policy exists, allows nothing and selects the pod, and that the
// detached pod's controller no longer selects it. A failure is a plain
// (transient) error: a retry of Quarantine repairs what it can. It returns the
// pod as read and the policy's resourceVersion.
func (c *Client) verifyQuarantine(ctx context.Context, pod *corev1.Pod, incident string, det *detachment) (*corev1.Pod, string, error) {
	pod, err := c.getPod(ctx, pod.Namespace, pod.Name, string(pod.UID))
	if err != nil {
		return nil, "", err
	}
	want := DenyAllPolicy(pod.Namespace, incident)
	np, err := c.cs.NetworkingV1().NetworkPolicies(pod.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, "", fmt.Errorf("kube: verify quarantine of pod %s/%s: network policy %s disappeared", pod.Namespace, pod.Name, want.Name)
	case err != nil:
		return nil, "", fmt.Errorf("kube: verify quarantine of pod %s/%s: get network policy %s: %w", pod.Namespace, pod.Name, want.Name, err)
	case !apiequality.Semantic.DeepEqual(np.Spec, want.Spec):
		return nil, "", fmt.Errorf("kube: verify quarantine of pod %s/%s: network policy %s was changed and is no longer deny-all for the incident", pod.Namespace, pod.Name, want.Name)
	}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		return nil, "", fmt.Errorf("kube: verify quarantine of pod %s/%s: network policy %s does not select the pod (labels %v)", pod.Namespace, pod.Name, want.Name, pod.Labels)
	}
	if det != nil && det.selector != nil && det.selector.Matches(labels.Set(pod.Labels)) {
		return nil, "", fmt.Errorf("kube: verify quarantine of pod %s/%s: %s still selects the pod (labels %v)", pod.Namespace, pod.Name, det.owner, pod.Labels)
	}
	return pod, np.ResourceVersion, nil
}

// otherPolicies lists the namespace's NetworkPolicies not managed by soar whose
// pod selector selects pod (an empty selector selects every pod), sorted.
//
// The list is served from the API server's watch cache once it holds
// version, the incident's policy as verified: it then holds every policy
// written before soar's own. (A plainly consistent list right after that
// write makes the API server ask etcd for a progress notification first,
// about 80 ms that every quarantine paid.) "0" takes the cache as it is, for
// a dry run, which wrote nothing.
//
// It also returns those of them with any allow rule. A policy is skipped as
// soar's only when it is what soar writes for an incident: named after the
// incident it is annotated with, and deny-all for that incident's label. A
// label or a name alone proves nothing: anyone who may write policies in
// the namespace can put soar's label on an allow-all policy.
func (c *Client) otherPolicies(ctx context.Context, pod *corev1.Pod, version string) (names, allowing []string, err error) {
	opts := metav1.ListOptions{ResourceVersion: version}
	if version != "0" {
		opts.ResourceVersionMatch = metav1.ResourceVersionMatchNotOlderThan
	}
	list, err := c.cs.NetworkingV1().NetworkPolicies(pod.Namespace).List(ctx, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("kube: list network policies in %s: %w", pod.Namespace, err)
	}
	for _, np := range list.Items {
		if isIncidentPolicy(&np) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			continue // the API server validates selectors; an invalid one selects nothing
		}
		if !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		names = append(names, np.Name)
		if len(np.Spec.Ingress)+len(np.Spec.Egress) > 0 {
			allowing = append(allowing, np.Name)
		}
	}
	slices.Sort(names)
	slices.Sort(allowing)
	return names, allowing, nil
}

// isIncidentPolicy reports whether np is exactly a deny-all policy soar
// writes for an incident (DenyAllPolicy): one that can only take traffic
// away.
func isIncidentPolicy(np *networkingv1.NetworkPolicy) bool {
	incident := np.Annotations[IncidentAnnotation]
	if incident == "" || np.Name != PolicyName(incident) {
		return false
	}
	return apiequality.Semantic.DeepEqual(np.Spec, DenyAllPolicy(np.Namespace, incident).Spec)
}

// otherIncidents returns the per-incident quarantine label keys on pod other
// than except, sorted.
func otherIncidents(pod *corev1.Pod, except string) []string {
	var keys []string
	for key := range pod.Labels {
		if strings.HasPrefix(key, incidentLabelPrefix) && key != except {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return keys
}
