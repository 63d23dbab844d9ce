// RBAC for the namespace actions:
//   - AnnotateNamespace, RestoreNamespaceAnnotations: "" namespaces: get, patch

package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// NamespaceMetadataRequest names the namespace and the annotations to set on
// it.
type NamespaceMetadataRequest struct {
	Namespace string
	// Values are the annotations to set. Keys under soar.dev/ are refused
	// with ErrReservedKey.
	Values map[string]string
	// DryRun sends the patch as a server-side dry run.
	DryRun bool
}

// NamespaceMetadataResult says what AnnotateNamespace changed, in the form
// RestoreNamespaceAnnotations takes back.
type NamespaceMetadataResult struct {
	Namespace string `json:"namespace" doc:"the namespace"`
	// Set is what the namespace now carries for the requested keys.
	Set map[string]string `json:"set" doc:"the annotations now set"`
	// Previous holds the keys that had another value before, with that
	// value; Added the keys that were absent.
	Previous map[string]string `json:"previous,omitempty" doc:"keys that had another value before, with that value"`
	Added    []string          `json:"added,omitempty" doc:"keys that were absent before"`
	// Changed is true when this call wrote anything.
	Changed bool `json:"changed" doc:"whether anything was written"`
	DryRun  bool `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// AnnotateNamespace sets annotations on one namespace with a JSON merge patch
// carrying the namespace's UID and resourceVersion, and reports the values
// they replaced so RestoreNamespaceAnnotations can undo it. A namespace
// changed by someone else between the read and the patch fails the patch with
// a conflict, and a retry decides afresh. It is idempotent: annotations
// already set are not written again, so a retry after a successful call whose
// answer was lost reports no change (empty Previous and Added), and the
// restore then has nothing to undo. Errors wrap ErrInvalidInput
// (ErrReservedKey for keys under soar.dev/, invalid keys) or
// ErrNamespaceNotFound, both permanent; any other error, including a
// conflict, is transient.
func (c *Client) AnnotateNamespace(ctx context.Context, req NamespaceMetadataRequest) (NamespaceMetadataResult, error) {
	res := NamespaceMetadataResult{Namespace: req.Namespace, Set: maps.Clone(req.Values), DryRun: req.DryRun}
	if err := requireFields("annotate namespace", "namespace", req.Namespace); err != nil {
		return res, err
	}
	if len(req.Values) == 0 {
		return res, invalidf("annotate namespace %s: no annotations given", req.Namespace)
	}
	keys := slices.Sorted(maps.Keys(req.Values))
	if err := validateNamespaceAnnotations(req.Namespace, keys); err != nil {
		return res, err
	}
	ns, err := c.getNamespace(ctx, req.Namespace)
	if err != nil {
		return res, err
	}

	var patch map[string]any
	patch, res.Previous, res.Added = setKeys(ns.Annotations, req.Values, keys)
	if len(patch) == 0 {
		return res, nil
	}
	if err := c.patchNamespaceAnnotations(ctx, ns, patch, "annotate", req.DryRun); err != nil {
		return res, err
	}
	res.Changed = true
	return res, nil
}

// RestoreNamespaceMetadataRequest undoes an AnnotateNamespace: pass the
// fields of its NamespaceMetadataResult.
type RestoreNamespaceMetadataRequest struct {
	Namespace string
	Set       map[string]string
	Previous  map[string]string
	Added     []string
	DryRun    bool
}

// RestoreNamespaceMetadataResult says what RestoreNamespaceAnnotations did.
type RestoreNamespaceMetadataResult struct {
	Namespace string `json:"namespace" doc:"the namespace"`
	// Restored are the keys that now have their value from before soar set
	// them (or are absent again), whether this call or an earlier one put
	// them back.
	Restored []string `json:"restored,omitempty" doc:"keys put back or removed"`
	// Skipped are keys whose value is no longer the one soar set: someone
	// changed them since, and their change is left alone.
	Skipped []string `json:"skipped,omitempty" doc:"keys someone changed since: left alone"`
	// AlreadyGone is true when the namespace no longer exists: the
	// annotations went with it.
	AlreadyGone bool `json:"alreadyGone,omitempty" doc:"the namespace is gone"`
	DryRun      bool `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// RestoreNamespaceAnnotations undoes AnnotateNamespace: keys soar added are
// removed and keys it changed get their previous value back, but only where
// the namespace still carries the value soar set. The patch carries the
// namespace's resourceVersion, like AnnotateNamespace's. It is idempotent. A
// namespace that is gone is success with AlreadyGone. Errors wrap
// ErrInvalidInput (permanent); any other error, including a conflict, is
// transient.
func (c *Client) RestoreNamespaceAnnotations(ctx context.Context, req RestoreNamespaceMetadataRequest) (RestoreNamespaceMetadataResult, error) {
	res := RestoreNamespaceMetadataResult{Namespace: req.Namespace, DryRun: req.DryRun}
	if err := requireFields("restore namespace annotations", "namespace", req.Namespace); err != nil {
		return res, err
	}
	keys := restoreKeys(req.Previous, req.Added)
	if err := validateNamespaceAnnotations(req.Namespace, keys); err != nil {
		return res, err
	}
	for _, key := range keys {
		if _, ok := req.Set[key]; !ok {
			return res, invalidf("restore namespace %s annotations: %q is in previous or added but not in set", req.Namespace, key)
		}
	}

	ns, err := c.getNamespace(ctx, req.Namespace)
	switch {
	case errors.Is(err, ErrNamespaceNotFound):
		res.AlreadyGone = true
		return res, nil
	case err != nil:
		return res, err
	}

	var patch map[string]any
	patch, res.Restored, res.Skipped = restorePatch(ns.Annotations, req.Set, req.Previous, keys)
	if len(patch) == 0 {
		return res, nil
	}
	err = c.patchNamespaceAnnotations(ctx, ns, patch, "restore annotations of", req.DryRun)
	if errors.Is(err, ErrNamespaceNotFound) {
		return RestoreNamespaceMetadataResult{Namespace: req.Namespace, AlreadyGone: true, DryRun: req.DryRun}, nil
	}
	return res, err
}

// validateNamespaceAnnotations checks annotation keys: a key under
// ReservedPrefix is ErrReservedKey, an invalid one ErrInvalidInput.
// Annotation values may be any string; the API server limits their total
// size, and a patch over it comes back invalid (ErrInvalidInput).
func validateNamespaceAnnotations(namespace string, keys []string) error {
	return validateKeys("namespace "+namespace+" annotations", keys, nil, nil)
}

// NamespaceLabels returns a namespace's labels; a missing namespace is
// ErrNamespaceNotFound.
func (c *Client) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	ns, err := c.getNamespace(ctx, name)
	if err != nil {
		return nil, err
	}
	return ns.Labels, nil
}

// getNamespace gets a namespace; missing is ErrNamespaceNotFound, which also
// satisfies apierrors.IsNotFound through the wrapped status error.
func (c *Client) getNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns, err := c.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s: %w", ErrNamespaceNotFound, name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("kube: get namespace %s: %w", name, err)
	}
	return ns, nil
}

// patchNamespaceAnnotations applies a JSON merge patch to the namespace's
// annotations (a nil value removes the key), carrying its UID and
// resourceVersion: the API server refuses a changed UID, and treats a
// resourceVersion in a patch as an optimistic lock, so if anyone changed the
// namespace since it was read the patch fails with a conflict (transient) and
// a retry decides afresh on what is there then.
func (c *Client) patchNamespaceAnnotations(ctx context.Context, ns *corev1.Namespace, annotations map[string]any, what string, dryRun bool) error {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":             ns.UID,
		"resourceVersion": ns.ResourceVersion,
		"annotations":     annotations,
	}})
	if err != nil {
		return fmt.Errorf("kube: encode patch to %s namespace %s: %w", what, ns.Name, err)
	}
	_, err = c.cs.CoreV1().Namespaces().Patch(ctx, ns.Name, types.MergePatchType, body,
		metav1.PatchOptions{FieldManager: ManagedByValue, DryRun: dryRunOption(dryRun)})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %s disappeared while soar tried to %s it", ErrNamespaceNotFound, ns.Name, what)
	case uidMismatch(err):
		// The namespace was deleted and created again: a retry reads it
		// afresh.
		return fmt.Errorf("kube: %s namespace %s: it was replaced while soar acted: %w", what, ns.Name, err)
	case err != nil:
		return writeError(fmt.Sprintf("%s namespace %s", what, ns.Name), err)
	}
	return nil
}
