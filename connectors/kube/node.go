// RBAC for the node actions:
//   - Cordon: "" nodes: get, patch; "" pods: get (only when the request names
//     a pod instead of a node)
//   - Uncordon: "" nodes: get, patch

package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// CordonRequest names the node to cordon, directly or as the node a pod runs
// on.
type CordonRequest struct {
	// Node is the node to cordon. When empty, the node is the one the pod
	// Namespace/Pod is bound to.
	Node      string
	Namespace string
	Pod       string
	// PodUID, when set, must be the live pod's UID (else ErrTargetChanged).
	PodUID string
	// Incident is required: it is recorded on the node, and only Uncordon for
	// the same incident undoes the cordon.
	Incident string
	DryRun   bool
}

// CordonResult says what Cordon found and did.
type CordonResult struct {
	Node    string `json:"node" doc:"the node"`
	NodeUID string `json:"nodeUID,omitempty" doc:"UID of the node"`
	// Cordoned is true when the node is cordoned for this incident: this
	// call, or an earlier one for the same incident, set it unschedulable.
	Cordoned bool `json:"cordoned" doc:"whether this step cordoned it (false: it was unschedulable already, and uncordon leaves it so)"`
	// WasUnschedulable is true when the node was cordoned already, by someone
	// else or another incident; Cordon then changes nothing, and Uncordon for
	// this incident will leave it cordoned.
	WasUnschedulable bool `json:"wasUnschedulable,omitempty" doc:"whether the node was unschedulable before"`
	DryRun           bool `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// Cordon marks a node unschedulable so no new pod lands on it, and records the
// incident in CordonedByAnnotation. A node that is unschedulable already is
// left as is. It is idempotent: a retry reports the same result and writes
// nothing. Errors wrap ErrInvalidInput, ErrPodNotFound, ErrTargetChanged,
// ErrNotScheduled or ErrNodeNotFound (all permanent); any other error,
// including a conflict with a concurrent change to the node, is transient.
func (c *Client) Cordon(ctx context.Context, req CordonRequest) (CordonResult, error) {
	res := CordonResult{Node: req.Node, DryRun: req.DryRun}
	if err := requireFields("cordon", "incident", req.Incident); err != nil {
		return res, err
	}
	if req.Node == "" {
		if err := requireFields("cordon without a node", "namespace", req.Namespace, "pod", req.Pod); err != nil {
			return res, err
		}
		pod, err := c.getPod(ctx, req.Namespace, req.Pod, req.PodUID)
		if err != nil {
			return res, err
		}
		if pod.Spec.NodeName == "" {
			return res, fmt.Errorf("%w: pod %s/%s is not bound to a node", ErrNotScheduled, pod.Namespace, pod.Name)
		}
		res.Node = pod.Spec.NodeName
	}
	node, err := c.getNode(ctx, res.Node)
	if err != nil {
		return res, err
	}
	res.NodeUID = string(node.UID)
	if node.Spec.Unschedulable {
		// A retry of a cordon that succeeded finds its own annotation.
		res.Cordoned = node.Annotations[CordonedByAnnotation] == req.Incident
		res.WasUnschedulable = !res.Cordoned
		return res, nil
	}
	patch := map[string]any{
		"metadata": map[string]any{
			"annotations": map[string]any{CordonedByAnnotation: req.Incident},
		},
		"spec": map[string]any{"unschedulable": true},
	}
	if err := c.patchNode(ctx, node, patch, "cordon", req.DryRun); err != nil {
		return res, err
	}
	res.Cordoned = true
	return res, nil
}

// UncordonRequest names the node to uncordon and the incident that cordoned
// it.
type UncordonRequest struct {
	Node     string
	Incident string
	DryRun   bool
}

// UncordonResult says what Uncordon did.
type UncordonResult struct {
	Node string `json:"node" doc:"the node"`
	// Uncordoned is true when this call made the node schedulable again.
	Uncordoned bool `json:"uncordoned" doc:"whether this step uncordoned it"`
	// Skipped says why the node was left as it is, when it was.
	Skipped string `json:"skipped,omitempty" doc:"why it was left cordoned, if so"`
	DryRun  bool   `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// Uncordon is the inverse of Cordon: it makes the node schedulable again and
// removes CordonedByAnnotation, but only when the annotation names this
// incident. A node cordoned before soar, or by another incident, stays
// cordoned (Skipped says why), and so does a node that is gone. It is
// idempotent. Errors wrap ErrInvalidInput (permanent); any other error,
// including a conflict with a concurrent change, is transient.
func (c *Client) Uncordon(ctx context.Context, req UncordonRequest) (UncordonResult, error) {
	res := UncordonResult{Node: req.Node, DryRun: req.DryRun}
	if err := requireFields("uncordon", "node", req.Node, "incident", req.Incident); err != nil {
		return res, err
	}
	node, err := c.getNode(ctx, req.Node)
	if err != nil {
		if apierrors.IsNotFound(err) {
			res.Skipped = "node not found"
			return res, nil
		}
		return res, err
	}
	by, annotated := node.Annotations[CordonedByAnnotation]
	switch {
	case !annotated && node.Spec.Unschedulable:
		res.Skipped = "node was cordoned before soar, or by someone else"
		return res, nil
	case !annotated:
		res.Skipped = "node is not cordoned"
		return res, nil
	case by != req.Incident:
		res.Skipped = fmt.Sprintf("cordoned by another incident (%s)", by)
		return res, nil
	}
	patch := map[string]any{
		"metadata": map[string]any{
			"annotations": map[string]any{CordonedByAnnotation: nil},
		},
	}
	if node.Spec.Unschedulable {
		patch["spec"] = map[string]any{"unschedulable": nil}
	} else {
		res.Skipped = "node was uncordoned by someone else; only the annotation was removed"
	}
	if err := c.patchNode(ctx, node, patch, "uncordon", req.DryRun); err != nil {
		if errors.Is(err, ErrNodeNotFound) {
			return UncordonResult{Node: req.Node, Skipped: "node not found", DryRun: req.DryRun}, nil
		}
		return res, err
	}
	res.Uncordoned = node.Spec.Unschedulable
	return res, nil
}

// getNode gets a node; missing is ErrNodeNotFound, which also satisfies
// apierrors.IsNotFound through the wrapped status error.
func (c *Client) getNode(ctx context.Context, name string) (*corev1.Node, error) {
	node, err := c.cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s: %w", ErrNodeNotFound, name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("kube: get node %s: %w", name, err)
	}
	return node, nil
}

// patchNode applies a JSON merge patch to node carrying its UID and
// resourceVersion (the API server refuses a changed UID, and treats a
// resourceVersion in a patch as an optimistic lock): if anyone changed the node since it was read (say, cordoned
// it), the patch fails with a conflict and a retry decides afresh, so soar
// never claims, or undoes, someone else's cordon.
func (c *Client) patchNode(ctx context.Context, node *corev1.Node, patch map[string]any, what string, dryRun bool) error {
	meta := patch["metadata"].(map[string]any)
	meta["uid"] = node.UID
	meta["resourceVersion"] = node.ResourceVersion
	body, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("kube: encode patch to %s node %s: %w", what, node.Name, err)
	}
	_, err = c.cs.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: ManagedByValue, DryRun: dryRunOption(dryRun)})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %s disappeared while soar tried to %s it", ErrNodeNotFound, node.Name, what)
	case uidMismatch(err):
		// The node was deleted and registered again: a retry reads it afresh.
		return fmt.Errorf("kube: %s node %s: it was replaced while soar acted: %w", what, node.Name, err)
	case err != nil:
		return writeError(fmt.Sprintf("%s node %s", what, node.Name), err)
	}
	return nil
}
