// RBAC for the pod actions:
//   - DeletePod: "" pods: get, delete
//   - EvictPod: "" pods: get; "" pods/eviction: create
//   - LabelPod, RestorePodLabels: "" pods: get, patch
//   - AnnotatePod, RestorePodAnnotations: "" pods: get, patch

package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// DeletePodRequest names the pod to delete.
type DeletePodRequest struct {
	Namespace string
	Pod       string
	// PodUID, when set, must be the live pod's UID (else ErrTargetChanged).
	// Without it a retry after a successful delete may find, and delete, a
	// namesake a StatefulSet created meanwhile: callers should pass it.
	PodUID string
	// GracePeriodSeconds overrides the pod's terminationGracePeriodSeconds;
	// 0 kills the containers at once. Nil keeps the pod's own.
	GracePeriodSeconds *int64
	// DryRun sends the delete as a server-side dry run.
	DryRun bool
}

// DeletePodResult says what DeletePod did.
type DeletePodResult struct {
	Namespace string `json:"namespace" doc:"namespace of the pod"`
	Pod       string `json:"pod" doc:"name of the pod"`
	PodUID    string `json:"podUID,omitempty" doc:"UID of the pod acted on"`
	// Deleted is true when this call deleted the pod (or, in a dry run, would
	// have). A pod with a grace period keeps running, terminating, for that
	// long.
	Deleted bool `json:"deleted" doc:"whether this step deleted it"`
	// AlreadyGone is true when the pod did not exist or was terminating
	// already: the work was done, by an earlier attempt or by someone else.
	AlreadyGone        bool   `json:"alreadyGone,omitempty" doc:"the pod was already gone or terminating"`
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty" doc:"the grace period asked for, if any"`
	DryRun             bool   `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// DeletePod deletes one pod. The delete carries the pod's UID as a
// precondition, so it cannot hit a replacement. A pod that is gone or already
// terminating counts as success (AlreadyGone), which makes DeletePod
// idempotent under retries; but a namesake with another UID than PodUID is
// ErrTargetChanged, since the pod the alert named may have been replaced by
// an innocent one. Errors wrap ErrInvalidInput or ErrTargetChanged (permanent);
// any other error is transient.
func (c *Client) DeletePod(ctx context.Context, req DeletePodRequest) (DeletePodResult, error) {
	res := DeletePodResult{Namespace: req.Namespace, Pod: req.Pod, PodUID: req.PodUID, GracePeriodSeconds: req.GracePeriodSeconds, DryRun: req.DryRun}
	if err := validateRemoval("delete pod", req.Namespace, req.Pod, req.GracePeriodSeconds); err != nil {
		return res, err
	}
	pod, gone, err := c.podToRemove(ctx, req.Namespace, req.Pod, req.PodUID)
	if err != nil || gone {
		res.AlreadyGone = gone
		if pod != nil {
			res.PodUID = string(pod.UID)
		}
		return res, err
	}
	res.PodUID = string(pod.UID)
	err = c.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		GracePeriodSeconds: req.GracePeriodSeconds,
		DryRun:             dryRunOption(req.DryRun),
	})
	res.AlreadyGone, err = c.removalError(ctx, pod, "delete", err)
	res.Deleted = err == nil && !res.AlreadyGone
	return res, err
}

// EvictPodRequest names the pod to evict.
type EvictPodRequest struct {
	Namespace string
	Pod       string
	// PodUID, when set, must be the live pod's UID (else ErrTargetChanged).
	PodUID string
	// GracePeriodSeconds overrides the pod's terminationGracePeriodSeconds.
	GracePeriodSeconds *int64
	// DryRun sends the eviction as a server-side dry run: the API server
	// still checks the disruption budget.
	DryRun bool
}

// EvictPodResult says what EvictPod did.
type EvictPodResult struct {
	Namespace string `json:"namespace" doc:"namespace of the pod"`
	Pod       string `json:"pod" doc:"name of the pod"`
	PodUID    string `json:"podUID,omitempty" doc:"UID of the pod acted on"`
	// Evicted is true when this call evicted the pod (or would have).
	Evicted bool `json:"evicted" doc:"whether this step evicted it"`
	// AlreadyGone is true when the pod did not exist or was terminating
	// already.
	AlreadyGone bool `json:"alreadyGone,omitempty" doc:"the pod was already gone or terminating"`
	DryRun      bool `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// EvictPod evicts one pod through the policy/v1 Eviction API, which deletes it
// only if its PodDisruptionBudget allows. A budget that does not allow it now
// is ErrDisruptionBudget, transient: retry with backoff, as kubectl drain does.
// A pod covered by more than one budget is refused by the API server with a
// 500, which retrying does not fix until the budgets are. Like DeletePod it
// guards the eviction with the pod's UID and counts a pod gone or terminating
// as success (AlreadyGone), except when a namesake has replaced it
// (ErrTargetChanged). Other errors wrap ErrInvalidInput (permanent) or are
// transient.
func (c *Client) EvictPod(ctx context.Context, req EvictPodRequest) (EvictPodResult, error) {
	res := EvictPodResult{Namespace: req.Namespace, Pod: req.Pod, PodUID: req.PodUID, DryRun: req.DryRun}
	if err := validateRemoval("evict pod", req.Namespace, req.Pod, req.GracePeriodSeconds); err != nil {
		return res, err
	}
	pod, gone, err := c.podToRemove(ctx, req.Namespace, req.Pod, req.PodUID)
	if err != nil || gone {
		res.AlreadyGone = gone
		if pod != nil {
			res.PodUID = string(pod.UID)
		}
		return res, err
	}
	res.PodUID = string(pod.UID)
	err = c.cs.CoreV1().Pods(pod.Namespace).EvictV1(ctx, &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
		DeleteOptions: &metav1.DeleteOptions{
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
			GracePeriodSeconds: req.GracePeriodSeconds,
			DryRun:             dryRunOption(req.DryRun),
		},
	})
	if apierrors.IsTooManyRequests(err) {
		return res, fmt.Errorf("%w: evict pod %s/%s: %w", ErrDisruptionBudget, pod.Namespace, pod.Name, err)
	}
	res.AlreadyGone, err = c.removalError(ctx, pod, "evict", err)
	res.Evicted = err == nil && !res.AlreadyGone
	return res, err
}

func validateRemoval(action, namespace, pod string, grace *int64) error {
	if err := requireFields(action, "namespace", namespace, "pod", pod); err != nil {
		return err
	}
	if grace != nil && *grace < 0 {
		return invalidf("%s: gracePeriodSeconds is %d, must not be negative", action, *grace)
	}
	return nil
}

// podToRemove reads the pod to delete or evict. gone is true when it does not
// exist or is terminating already (then pod is the terminating one, or nil).
// A namesake with another UID is ErrTargetChanged.
func (c *Client) podToRemove(ctx context.Context, namespace, name, uid string) (pod *corev1.Pod, gone bool, err error) {
	pod, err = c.getPod(ctx, namespace, name, uid)
	switch {
	case errors.Is(err, ErrPodNotFound):
		return nil, true, nil
	case err != nil:
		return nil, false, err
	case pod.DeletionTimestamp != nil:
		return pod, true, nil
	}
	return pod, false, nil
}

// removalError interprets the error of a delete or eviction guarded by pod's
// UID: not found means gone (nothing of that name exists); a conflict is
// explained by podConflict, where a vanished pod is gone too.
func (c *Client) removalError(ctx context.Context, pod *corev1.Pod, what string, err error) (gone bool, _ error) {
	switch {
	case err == nil:
		return false, nil
	case apierrors.IsNotFound(err):
		return true, nil
	case apierrors.IsConflict(err):
		err = c.podConflict(ctx, pod.Namespace, pod.Name, pod.UID, what, err)
		if errors.Is(err, ErrPodNotFound) {
			return true, nil
		}
		return false, err
	default:
		return false, writeError(fmt.Sprintf("%s pod %s/%s", what, pod.Namespace, pod.Name), err)
	}
}

// MetadataRequest names the pod and the labels or annotations to set on it.
type MetadataRequest struct {
	Namespace string
	Pod       string
	// PodUID, when set, must be the live pod's UID (else ErrTargetChanged).
	PodUID string
	// Values are the keys and values to set. Keys under soar.dev/ are
	// refused with ErrReservedKey.
	Values map[string]string
	// DryRun sends the patch as a server-side dry run.
	DryRun bool
}

// MetadataResult says what LabelPod or AnnotatePod changed, in the form the
// matching Restore function takes back.
type MetadataResult struct {
	Namespace string `json:"namespace" doc:"namespace of the pod"`
	Pod       string `json:"pod" doc:"name of the pod"`
	PodUID    string `json:"podUID" doc:"UID of the pod acted on"`
	// Set is what the pod now carries for the requested keys.
	Set map[string]string `json:"set" doc:"the labels or annotations now set"`
	// Previous holds the keys that had another value before, with that
	// value; Added the keys that were absent.
	Previous map[string]string `json:"previous,omitempty" doc:"keys that had another value before, with that value"`
	Added    []string          `json:"added,omitempty" doc:"keys that were absent before"`
	// Changed is true when this call wrote anything.
	Changed bool `json:"changed" doc:"whether anything was written"`
	DryRun  bool `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// LabelPod sets labels on one pod with a JSON merge patch guarded by the pod's
// UID, and reports the values they replaced so RestorePodLabels can undo it.
// It is idempotent: labels already set are not written again. That also means
// a retry after a successful call whose answer was lost reports no change
// (empty Previous and Added), and the restore then has nothing to undo.
// Errors wrap ErrInvalidInput (ErrReservedKey for keys under soar.dev/, invalid
// keys or values), ErrPodNotFound or ErrTargetChanged, all permanent; any
// other error is transient.
func (c *Client) LabelPod(ctx context.Context, req MetadataRequest) (MetadataResult, error) {
	return c.setPodMetadata(ctx, req, podLabels)
}

// AnnotatePod sets annotations on one pod, like LabelPod sets labels; the
// inverse is RestorePodAnnotations. Its error contract is LabelPod's.
func (c *Client) AnnotatePod(ctx context.Context, req MetadataRequest) (MetadataResult, error) {
	return c.setPodMetadata(ctx, req, podAnnotations)
}

// metadataKind is what differs between labels and annotations.
type metadataKind struct {
	name  string // "labels" or "annotations", also the patch field
	get   func(*corev1.Pod) map[string]string
	value func(string) []string // validation errors of a value
}

var (
	podLabels = metadataKind{
		name:  "labels",
		get:   func(p *corev1.Pod) map[string]string { return p.Labels },
		value: validation.IsValidLabelValue,
	}
	// Annotation values may be any string; the API server limits their total
	// size, and a patch over it comes back invalid (ErrInvalidInput).
	podAnnotations = metadataKind{
		name:  "annotations",
		get:   func(p *corev1.Pod) map[string]string { return p.Annotations },
		value: func(string) []string { return nil },
	}
)

// validate checks keys (and, from values, their values) for kind. A key
// under ReservedPrefix is ErrReservedKey; anything else invalid is
// ErrInvalidInput.
func (k metadataKind) validate(keys []string, values map[string]string) error {
	return validateKeys("pod "+k.name, keys, values, k.value)
}

func (c *Client) setPodMetadata(ctx context.Context, req MetadataRequest, kind metadataKind) (MetadataResult, error) {
	res := MetadataResult{Namespace: req.Namespace, Pod: req.Pod, PodUID: req.PodUID, Set: maps.Clone(req.Values), DryRun: req.DryRun}
	if err := requireFields("set pod "+kind.name, "namespace", req.Namespace, "pod", req.Pod); err != nil {
		return res, err
	}
	if len(req.Values) == 0 {
		return res, invalidf("set pod %s: no %s given", kind.name, kind.name)
	}
	keys := slices.Sorted(maps.Keys(req.Values))
	if err := kind.validate(keys, req.Values); err != nil {
		return res, err
	}
	pod, err := c.getPod(ctx, req.Namespace, req.Pod, req.PodUID)
	if err != nil {
		return res, err
	}
	res.PodUID = string(pod.UID)

	var patch map[string]any
	patch, res.Previous, res.Added = setKeys(kind.get(pod), req.Values, keys)
	if len(patch) == 0 {
		return res, nil
	}
	if err := c.patchMetadataKind(ctx, pod, kind, patch, "set "+kind.name+" on", req.DryRun); err != nil {
		return res, err
	}
	res.Changed = true
	return res, nil
}

func (c *Client) patchMetadataKind(ctx context.Context, pod *corev1.Pod, kind metadataKind, patch map[string]any, what string, dryRun bool) error {
	var err error
	if kind.name == podLabels.name {
		_, err = c.patchPodMetadata(ctx, pod, patch, nil, what, dryRun)
	} else {
		_, err = c.patchPodMetadata(ctx, pod, nil, patch, what, dryRun)
	}
	return err
}

// RestoreMetadataRequest undoes a LabelPod or AnnotatePod: pass the fields of
// its MetadataResult.
type RestoreMetadataRequest struct {
	Namespace string
	Pod       string
	// PodUID is the UID of the pod the values were set on.
	PodUID   string
	Set      map[string]string
	Previous map[string]string
	Added    []string
	DryRun   bool
}

// RestoreMetadataResult says what a restore did.
type RestoreMetadataResult struct {
	Namespace string `json:"namespace" doc:"namespace of the pod"`
	Pod       string `json:"pod" doc:"name of the pod"`
	PodUID    string `json:"podUID,omitempty" doc:"UID of the pod acted on"`
	// Restored are the keys that now have their value from before soar set
	// them (or are absent again), whether this call or an earlier one put
	// them back.
	Restored []string `json:"restored,omitempty" doc:"keys put back or removed"`
	// Skipped are keys whose value is no longer the one soar set: someone
	// changed them since, and their change is left alone.
	Skipped []string `json:"skipped,omitempty" doc:"keys someone changed since: left alone"`
	// AlreadyGone is true when the pod no longer exists, or a namesake with
	// another UID replaced it: the values went with the pod.
	AlreadyGone bool `json:"alreadyGone,omitempty" doc:"the pod is gone"`
	DryRun      bool `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// RestorePodLabels undoes LabelPod: keys soar added are removed and keys it
// changed get their previous value back, but only where the pod still carries
// the value soar set. It is idempotent. A pod that is gone, or replaced by a
// namesake, is success with AlreadyGone. Errors wrap ErrInvalidInput
// (permanent); any other error is transient.
func (c *Client) RestorePodLabels(ctx context.Context, req RestoreMetadataRequest) (RestoreMetadataResult, error) {
	return c.restorePodMetadata(ctx, req, podLabels)
}

// RestorePodAnnotations undoes AnnotatePod, like RestorePodLabels undoes
// LabelPod, with the same contract.
func (c *Client) RestorePodAnnotations(ctx context.Context, req RestoreMetadataRequest) (RestoreMetadataResult, error) {
	return c.restorePodMetadata(ctx, req, podAnnotations)
}

func (c *Client) restorePodMetadata(ctx context.Context, req RestoreMetadataRequest, kind metadataKind) (RestoreMetadataResult, error) {
	res := RestoreMetadataResult{Namespace: req.Namespace, Pod: req.Pod, PodUID: req.PodUID, DryRun: req.DryRun}
	if err := requireFields("restore pod "+kind.name, "namespace", req.Namespace, "pod", req.Pod); err != nil {
		return res, err
	}
	keys := restoreKeys(req.Previous, req.Added)
	if err := kind.validate(keys, nil); err != nil {
		return res, err
	}
	for _, key := range keys {
		if _, ok := req.Set[key]; !ok {
			return res, invalidf("restore pod %s: %q is in previous or added but not in set", kind.name, key)
		}
	}

	pod, err := c.getPod(ctx, req.Namespace, req.Pod, req.PodUID)
	switch {
	case errors.Is(err, ErrPodNotFound), errors.Is(err, ErrTargetChanged):
		res.AlreadyGone = true
		return res, nil
	case err != nil:
		return res, err
	}
	res.PodUID = string(pod.UID)

	var patch map[string]any
	patch, res.Restored, res.Skipped = restorePatch(kind.get(pod), req.Set, req.Previous, keys)
	if len(patch) == 0 {
		return res, nil
	}
	err = c.patchMetadataKind(ctx, pod, kind, patch, "restore "+kind.name+" on", req.DryRun)
	if errors.Is(err, ErrPodNotFound) || errors.Is(err, ErrTargetChanged) {
		return RestoreMetadataResult{Namespace: req.Namespace, Pod: req.Pod, PodUID: req.PodUID, AlreadyGone: true, DryRun: req.DryRun}, nil
	}
	return res, err
}
