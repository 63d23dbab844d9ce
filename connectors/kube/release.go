// RBAC for Release:
//   - "" pods: get, list, patch
//   - networking.k8s.io networkpolicies: delete

package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReleaseRequest names the pod and the incident whose quarantine to lift.
type ReleaseRequest struct {
	Namespace string
	Pod       string
	// PodUID, when set, is the UID of the pod Quarantine acted on. A pod of
	// that name with another UID is a replacement and is left alone.
	PodUID string
	// Incident is required: only this incident's quarantine is lifted.
	Incident string
	// DryRun sends every write as a server-side dry run.
	DryRun bool
}

// ReleaseResult says what Release found and changed.
type ReleaseResult struct {
	Namespace string `json:"namespace" doc:"namespace of the pod"`
	Pod       string `json:"pod" doc:"name of the pod"`
	PodUID    string `json:"podUID,omitempty" doc:"UID of the pod acted on"`
	// Unlabeled is true when this call removed the incident's label from the
	// pod.
	Unlabeled bool `json:"unlabeled" doc:"whether this step removed the incident's label"`
	// LabelsRestored are the detached labels this call put back.
	LabelsRestored map[string]string `json:"labelsRestored,omitempty" doc:"detached labels put back"`
	// MarkerRemoved is true when this call removed QuarantineLabel because no
	// other incident quarantines the pod.
	MarkerRemoved bool `json:"markerRemoved,omitempty" doc:"whether soar.dev/quarantine was removed (no other incident holds the pod)"`
	// StillQuarantinedBy are the other incidents (their IDs, or their hashes
	// when the ID annotation is missing) that still hold the pod: the pod then
	// keeps QuarantineLabel, its other policies and its detached state.
	StillQuarantinedBy []string `json:"stillQuarantinedBy,omitempty" doc:"other incidents that still hold the pod"`
	// PolicyDeleted is true when this call deleted the incident's policy,
	// which happens once no pod in the namespace carries the incident's label.
	PolicyDeleted bool `json:"policyDeleted" doc:"whether the incident's policy was deleted"`
	// PodGone is true when the pod no longer exists; PodReplaced when a pod of
	// that name exists with another UID. Either way the pod was not touched
	// and only the policy was cleaned up.
	PodGone     bool `json:"podGone,omitempty" doc:"the pod no longer exists (the policy is still cleaned up)"`
	PodReplaced bool `json:"podReplaced,omitempty" doc:"the pod was replaced by a namesake, which was left alone"`
	// DryRun is true when nothing was stored.
	DryRun bool `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// Release is the inverse of Quarantine for one incident. It removes the
// incident's label and annotation from the pod; when no other incident still
// quarantines the pod, it also removes QuarantineLabel and puts back the labels
// Detach removed. It then deletes the incident's NetworkPolicy if no pod in the
// namespace still carries the incident's label.
//
// Restoring the detached labels makes the pod match its ReplicaSet's selector
// again: the ReplicaSet adopts it back and, having one pod too many (the
// replacement it started meanwhile), scales down one pod, which may be this
// one.
//
// Release works after the pod died or was replaced, since cleanup must not be
// blocked by the pod: a missing pod or a namesake with another UID is left
// alone (PodGone, PodReplaced) and the policy is still cleaned up. It is
// idempotent: a second call finds nothing to do and writes nothing. Errors
// wrap ErrInvalidInput (no incident, unreadable bookkeeping); any other error
// is transient and the call may be retried.
func (c *Client) Release(ctx context.Context, req ReleaseRequest) (ReleaseResult, error) {
	res := ReleaseResult{Namespace: req.Namespace, Pod: req.Pod, PodUID: req.PodUID, DryRun: req.DryRun}
	if err := requireFields("release", "namespace", req.Namespace, "pod", req.Pod, "incident", req.Incident); err != nil {
		return res, err
	}
	// Off the lock list first: until then the API server refuses the
	// changes below, to soar as to anyone. A dry run leaves the list alone
	// and forgives the lock's refusals instead.
	if !req.DryRun {
		if err := c.lockPod(ctx, req.Namespace, req.Pod, req.Incident, false); err != nil {
			return res, fmt.Errorf("kube: release %s/%s: take it off the lock list: %w", req.Namespace, req.Pod, err)
		}
	}

	pod, err := c.getPod(ctx, req.Namespace, req.Pod, req.PodUID)
	switch {
	case errors.Is(err, ErrPodNotFound):
		res.PodGone = true
	case errors.Is(err, ErrTargetChanged):
		res.PodReplaced = true
	case err != nil:
		return res, err
	default:
		res.PodUID = string(pod.UID)
		if err := c.releasePod(ctx, pod, req.Incident, req.DryRun, &res); err != nil {
			return res, err
		}
	}

	// The policy goes once no pod needs it. In a dry run the pod just
	// unlabeled still carries the label in the API server, so it is not
	// counted.
	var exclude string
	if req.DryRun && res.Unlabeled {
		exclude = res.PodUID
	}
	held, err := c.podsWithLabel(ctx, req.Namespace, IncidentLabel(req.Incident), exclude)
	if err != nil {
		return res, err
	}
	if held {
		return res, nil
	}
	name := PolicyName(req.Incident)
	err = c.afterUnlock(ctx, req.Incident, req.DryRun, func() error {
		return c.cs.NetworkingV1().NetworkPolicies(req.Namespace).Delete(ctx, name, metav1.DeleteOptions{DryRun: dryRunOption(req.DryRun)})
	})
	if req.DryRun && lockRefused(err) {
		err = nil
	}
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return res, fmt.Errorf("kube: delete network policy %s/%s: %w", req.Namespace, name, err)
	default:
		res.PolicyDeleted = true
	}
	return res, nil
}

// releasePod lifts incident's quarantine from pod and records what it did in
// res. A pod that disappears or is replaced meanwhile is reported, not an
// error.
func (c *Client) releasePod(ctx context.Context, pod *corev1.Pod, incident string, dryRun bool, res *ReleaseResult) error {
	key, annotation := IncidentLabel(incident), PodIncidentAnnotation(incident)
	labelPatch, annotationPatch := map[string]any{}, map[string]any{}
	var (
		unlabeled, markerRemoved bool
		restored                 map[string]string
		still                    []string
	)
	if _, ok := pod.Labels[key]; ok {
		labelPatch[key] = nil
		unlabeled = true
	}
	if _, ok := pod.Annotations[annotation]; ok {
		annotationPatch[annotation] = nil
	}
	if others := otherIncidents(pod, key); len(others) > 0 {
		for _, other := range others {
			hash := strings.TrimPrefix(other, incidentLabelPrefix)
			id := pod.Annotations[podIncidentAnnotationPrefix+hash]
			if id == "" {
				id = hash
			}
			still = append(still, id)
		}
	} else {
		if _, ok := pod.Labels[QuarantineLabel]; ok {
			labelPatch[QuarantineLabel] = nil
			markerRemoved = true
		}
		if _, ok := pod.Labels[LockedLabel]; ok {
			labelPatch[LockedLabel] = nil
		}
		if raw, ok := pod.Annotations[DetachedLabelsAnnotation]; ok {
			var recorded map[string]string
			if err := json.Unmarshal([]byte(raw), &recorded); err != nil {
				return fmt.Errorf("%w: annotation %s on pod %s/%s is not a JSON object of labels: %w", ErrInvalidInput, DetachedLabelsAnnotation, pod.Namespace, pod.Name, err)
			}
			// A label someone set again meanwhile keeps its current value.
			for _, k := range slices.Sorted(maps.Keys(recorded)) {
				if _, present := pod.Labels[k]; !present {
					if restored == nil {
						restored = map[string]string{}
					}
					restored[k] = recorded[k]
					labelPatch[k] = recorded[k]
				}
			}
			annotationPatch[DetachedLabelsAnnotation] = nil
		}
	}
	if len(labelPatch) > 0 || len(annotationPatch) > 0 {
		err := c.afterUnlock(ctx, incident, dryRun, func() error {
			_, err := c.patchPodMetadata(ctx, pod, labelPatch, annotationPatch, "release", dryRun)
			return err
		})
		if dryRun && lockRefused(err) {
			err = nil // the release takes the pod off the list before this
		}
		switch {
		case errors.Is(err, ErrPodNotFound):
			res.PodGone = true
			return nil
		case errors.Is(err, ErrTargetChanged):
			res.PodReplaced = true
			return nil
		case err != nil:
			return err
		}
	}
	res.Unlabeled, res.MarkerRemoved, res.LabelsRestored, res.StillQuarantinedBy = unlabeled, markerRemoved, restored, still
	return nil
}

// afterUnlock runs do, a change Release makes just after it took the
// incident off the lock list, and asks again while the API server refuses
// it in that incident's name: the lock's policies read the list through an
// informer that may lag the write by a moment (as proveHeld waits for the
// other way). It asks for about six seconds at most; a refusal in another
// incident's name, a dry run, a client without a lock list or any other
// error returns at once.
func (c *Client) afterUnlock(ctx context.Context, incident string, dryRun bool, do func() error) error {
	err := do()
	if dryRun || c.locks == nil {
		return err
	}
	for wait := 50 * time.Millisecond; wait <= 3200*time.Millisecond && lockRefusedFor(err, incident); wait *= 2 {
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		err = do()
	}
	return err
}

// lockRefusedFor reports whether err is the quarantine lock's refusal in
// the incident's name (its messages end "(soar incident show ID; …").
func lockRefusedFor(err error, incident string) bool {
	return lockRefused(err) && strings.Contains(err.Error(), "(soar incident show "+incident+";")
}

// podsWithLabel reports whether a pod in namespace other than the one with UID
// exclude carries label key=QuarantineValue. Terminating pods count: they may
// still run.
func (c *Client) podsWithLabel(ctx context.Context, namespace, key, exclude string) (bool, error) {
	list, err := c.cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: key + "=" + QuarantineValue})
	if err != nil {
		return false, fmt.Errorf("kube: list pods in %s with label %s: %w", namespace, key, err)
	}
	for _, p := range list.Items {
		if string(p.UID) != exclude {
			return true, nil
		}
	}
	return false, nil
}
