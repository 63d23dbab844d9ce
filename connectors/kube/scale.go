// RBAC for the scale actions:
//   - ScaleOwnerToZero: "" pods: get; apps replicasets: get; and patch on the
//     workload scaled: apps deployments: get, patch (pods of a Deployment);
//     apps replicasets: patch (pods of a ReplicaSet without a Deployment);
//     apps statefulsets: get, patch (pods of a StatefulSet)
//   - RestoreScale: get, patch on the kind restored: apps deployments,
//     apps replicasets or apps statefulsets

package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Workload kinds ScaleOwnerToZero scales and RestoreScale takes.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindReplicaSet  = "ReplicaSet"
)

// ScaleRequest names a pod whose workload to scale to zero.
type ScaleRequest struct {
	Namespace string
	Pod       string
	// PodUID, when set, must be the live pod's UID (else ErrTargetChanged).
	PodUID string
	// Incident is required: it is recorded on the workload, and only
	// RestoreScale for the same incident scales it back.
	Incident string
	DryRun   bool
}

// ScaleResult says which workload ScaleOwnerToZero scaled, and from what.
type ScaleResult struct {
	Namespace string `json:"namespace" doc:"namespace of the workload"`
	// Kind and Name are the workload: KindDeployment, KindStatefulSet or
	// KindReplicaSet. Pass them to RestoreScale.
	Kind string `json:"kind" doc:"Deployment, StatefulSet or ReplicaSet"`
	Name string `json:"name" doc:"name of the workload"`
	// PreviousReplicas is the replica count to restore: the one recorded in
	// PreviousReplicasAnnotation when the workload was scaled down before.
	PreviousReplicas int32 `json:"previousReplicas" doc:"replicas before, restored by restore_scale"`
	// Scaled is true when this call set replicas to 0.
	Scaled bool `json:"scaled" doc:"whether this step scaled it (false: it was at zero already)"`
	DryRun bool `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// ScaleOwnerToZero stops every replica of the workload behind a pod: the
// pod's ReplicaSet's Deployment (or the ReplicaSet itself when no Deployment
// controls it), or its StatefulSet. One JSON merge patch sets spec.replicas to
// 0 and records the previous count and the incident in
// PreviousReplicasAnnotation and ScaledByAnnotation; it carries the workload's
// resourceVersion, so a concurrent change fails it with a conflict and a retry
// decides afresh.
//
// It is idempotent: a workload scaled down before keeps its recorded count
// (even when another incident recorded it: that incident's restore then wins),
// and nothing is written when replicas is 0 already. A workload at 0 replicas
// without soar's annotations is left alone (PreviousReplicas 0). Errors wrap
// ErrInvalidInput, ErrPodNotFound, ErrTargetChanged, ErrUnsupportedOwner
// (DaemonSets, Jobs, bare pods) or ErrOwnerNotFound, all permanent; any other
// error is transient.
func (c *Client) ScaleOwnerToZero(ctx context.Context, req ScaleRequest) (ScaleResult, error) {
	res := ScaleResult{Namespace: req.Namespace, DryRun: req.DryRun}
	if err := requireFields("scale to zero", "namespace", req.Namespace, "pod", req.Pod, "incident", req.Incident); err != nil {
		return res, err
	}
	pod, err := c.getPod(ctx, req.Namespace, req.Pod, req.PodUID)
	if err != nil {
		return res, err
	}
	w, err := c.podWorkload(ctx, pod)
	if err != nil {
		return res, err
	}
	res.Kind, res.Name = w.kind, w.name

	meta := map[string]any{"resourceVersion": w.meta.ResourceVersion}
	if raw, ok := w.meta.Annotations[PreviousReplicasAnnotation]; ok {
		n, err := parseReplicas(w, raw)
		if err != nil {
			return res, err
		}
		res.PreviousReplicas = n
	} else {
		res.PreviousReplicas = w.replicas
		meta["annotations"] = map[string]any{
			PreviousReplicasAnnotation: strconv.Itoa(int(w.replicas)),
			ScaledByAnnotation:         req.Incident,
		}
	}
	// At 0 already there is nothing to do, and nothing to restore later
	// unless a scale-down recorded a count.
	if w.replicas == 0 {
		return res, nil
	}
	if err := c.patchWorkload(ctx, w, map[string]any{"metadata": meta, "spec": map[string]any{"replicas": 0}}, "scale to zero", req.DryRun); err != nil {
		return res, err
	}
	res.Scaled = true
	return res, nil
}

// RestoreScaleRequest names the workload to scale back, as ScaleResult
// reported it.
type RestoreScaleRequest struct {
	Namespace string
	Kind      string
	Name      string
	Incident  string
	DryRun    bool
}

// RestoreScaleResult says what RestoreScale did.
type RestoreScaleResult struct {
	Namespace string `json:"namespace" doc:"namespace of the workload"`
	Kind      string `json:"kind" doc:"its kind"`
	Name      string `json:"name" doc:"its name"`
	// Replicas is the workload's replica count now (or, in a dry run, after
	// the restore).
	Replicas int32 `json:"replicas" doc:"the replicas restored"`
	// Restored is true when this call scaled the workload back.
	Restored bool `json:"restored" doc:"whether this step scaled it back"`
	// Skipped says why the workload was left as it is, when it was.
	Skipped string `json:"skipped,omitempty" doc:"why nothing was restored, if so"`
	DryRun  bool   `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// RestoreScale is the inverse of ScaleOwnerToZero: it sets the workload's
// replicas back to PreviousReplicasAnnotation and removes soar's annotations,
// only when ScaledByAnnotation names this incident and replicas is still 0. If
// someone scaled the workload meanwhile, their count wins: the annotations are
// removed (they would mislead a later scale-down) and Skipped says so. A
// workload that is gone, or not scaled down by this incident, is success with
// Skipped. It is idempotent. Errors wrap ErrInvalidInput (permanent); any
// other error, including a conflict with a concurrent change, is transient.
func (c *Client) RestoreScale(ctx context.Context, req RestoreScaleRequest) (RestoreScaleResult, error) {
	res := RestoreScaleResult{Namespace: req.Namespace, Kind: req.Kind, Name: req.Name, DryRun: req.DryRun}
	if err := requireFields("restore scale", "namespace", req.Namespace, "kind", req.Kind, "name", req.Name, "incident", req.Incident); err != nil {
		return res, err
	}
	w, err := c.getWorkload(ctx, req.Namespace, req.Kind, req.Name)
	switch {
	case apierrors.IsNotFound(err):
		res.Skipped = req.Kind + " not found"
		return res, nil
	case err != nil:
		return res, fmt.Errorf("kube: get %s %s/%s: %w", req.Kind, req.Namespace, req.Name, err)
	}
	res.Replicas = w.replicas
	by := w.meta.Annotations[ScaledByAnnotation]
	raw, recorded := w.meta.Annotations[PreviousReplicasAnnotation]
	switch {
	case !recorded || by == "":
		res.Skipped = "not scaled down by soar"
		return res, nil
	case by != req.Incident:
		res.Skipped = fmt.Sprintf("scaled down by another incident (%s)", by)
		return res, nil
	}
	meta := map[string]any{
		"resourceVersion": w.meta.ResourceVersion,
		"annotations":     map[string]any{PreviousReplicasAnnotation: nil, ScaledByAnnotation: nil},
	}
	patch := map[string]any{"metadata": meta}
	if w.replicas != 0 {
		res.Skipped = fmt.Sprintf("scaled to %d by someone else since; their count is kept", w.replicas)
	} else {
		n, err := parseReplicas(w, raw)
		if err != nil {
			return res, err
		}
		patch["spec"] = map[string]any{"replicas": n}
		res.Replicas = n
	}
	if err := c.patchWorkload(ctx, w, patch, "restore scale of", req.DryRun); err != nil {
		if apierrors.IsNotFound(err) {
			return RestoreScaleResult{Namespace: req.Namespace, Kind: req.Kind, Name: req.Name, Skipped: req.Kind + " not found", DryRun: req.DryRun}, nil
		}
		return res, err
	}
	res.Restored = res.Skipped == ""
	return res, nil
}

// workload is a Deployment, StatefulSet or ReplicaSet, as far as scaling goes.
type workload struct {
	kind     string
	name     string
	meta     metav1.ObjectMeta
	replicas int32
}

func newWorkload(kind string, meta metav1.ObjectMeta, replicas *int32) *workload {
	w := &workload{kind: kind, name: meta.Name, meta: meta, replicas: 1} // the API's default
	if replicas != nil {
		w.replicas = *replicas
	}
	return w
}

func (w *workload) String() string { return w.meta.Namespace + "/" + w.kind + "/" + w.name }

func parseReplicas(w *workload, raw string) (int32, error) {
	n, err := strconv.ParseInt(raw, 10, 32)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: annotation %s on %s is %q, not a replica count", ErrInvalidInput, PreviousReplicasAnnotation, w, raw)
	}
	return int32(n), nil
}

// getWorkload gets a workload by kind and name. Errors are the API's,
// unwrapped, or ErrInvalidInput for an unknown kind.
func (c *Client) getWorkload(ctx context.Context, namespace, kind, name string) (*workload, error) {
	apps := c.cs.AppsV1()
	var (
		w   *workload
		err error
	)
	switch kind {
	case KindDeployment:
		obj, e := apps.Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err = e; err == nil {
			w = newWorkload(kind, obj.ObjectMeta, obj.Spec.Replicas)
		}
	case KindStatefulSet:
		obj, e := apps.StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err = e; err == nil {
			w = newWorkload(kind, obj.ObjectMeta, obj.Spec.Replicas)
		}
	case KindReplicaSet:
		obj, e := apps.ReplicaSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err = e; err == nil {
			w = newWorkload(kind, obj.ObjectMeta, obj.Spec.Replicas)
		}
	default:
		return nil, invalidf("kind %q: soar scales only %s, %s and %s", kind, KindDeployment, KindStatefulSet, KindReplicaSet)
	}
	return w, err
}

// podWorkload finds the workload that scales pod: its ReplicaSet's controlling
// Deployment, the ReplicaSet itself, or its StatefulSet.
func (c *Client) podWorkload(ctx context.Context, pod *corev1.Pod) (*workload, error) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return nil, fmt.Errorf("%w: pod %s/%s has no controller to scale", ErrUnsupportedOwner, pod.Namespace, pod.Name)
	}
	owner := ref.Kind + "/" + ref.Name
	gv, _ := schema.ParseGroupVersion(ref.APIVersion)
	if gv.Group != "apps" || (ref.Kind != KindReplicaSet && ref.Kind != KindStatefulSet) {
		return nil, fmt.Errorf("%w: pod %s/%s belongs to %s; scaling to zero supports Deployments, ReplicaSets and StatefulSets", ErrUnsupportedOwner, pod.Namespace, pod.Name, owner)
	}
	w, err := c.getWorkload(ctx, pod.Namespace, ref.Kind, ref.Name)
	if err != nil {
		return nil, ownerGetError(pod, owner, err)
	}
	if err := ownerUIDError(pod, owner, ref, w.meta.UID); err != nil {
		return nil, err
	}
	if ref.Kind == KindStatefulSet {
		return w, nil
	}
	dref := metav1.GetControllerOf(&w.meta)
	if dref == nil {
		return w, nil
	}
	if dgv, _ := schema.ParseGroupVersion(dref.APIVersion); dgv.Group != "apps" || dref.Kind != KindDeployment {
		return nil, fmt.Errorf("%w: pod %s/%s belongs to %s, which %s/%s controls; scaling to zero supports Deployments, ReplicaSets and StatefulSets", ErrUnsupportedOwner, pod.Namespace, pod.Name, owner, dref.Kind, dref.Name)
	}
	downer := dref.Kind + "/" + dref.Name
	d, err := c.getWorkload(ctx, pod.Namespace, KindDeployment, dref.Name)
	if err != nil {
		return nil, ownerGetError(pod, downer, err)
	}
	if err := ownerUIDError(pod, downer, dref, d.meta.UID); err != nil {
		return nil, err
	}
	return d, nil
}

// patchWorkload applies a JSON merge patch to w. A 409 (the resourceVersion
// in the patch is stale) is a plain, transient error; apierrors still
// recognizes the wrapped status.
func (c *Client) patchWorkload(ctx context.Context, w *workload, patch map[string]any, what string, dryRun bool) error {
	body, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("kube: encode patch to %s %s: %w", what, w, err)
	}
	opts := metav1.PatchOptions{FieldManager: ManagedByValue, DryRun: dryRunOption(dryRun)}
	apps := c.cs.AppsV1()
	switch w.kind {
	case KindDeployment:
		_, err = apps.Deployments(w.meta.Namespace).Patch(ctx, w.name, types.MergePatchType, body, opts)
	case KindStatefulSet:
		_, err = apps.StatefulSets(w.meta.Namespace).Patch(ctx, w.name, types.MergePatchType, body, opts)
	case KindReplicaSet:
		_, err = apps.ReplicaSets(w.meta.Namespace).Patch(ctx, w.name, types.MergePatchType, body, opts)
	}
	if err != nil {
		return writeError(fmt.Sprintf("%s %s", what, w), err)
	}
	return nil
}
