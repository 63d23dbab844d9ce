package kube

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Errors callers branch on. Each is wrapped with the object it concerns; test
// with errors.Is. Errors that wrap none of them (API server unreachable,
// throttled, optimistic-lock conflicts, a verification that failed) are
// transient: retrying the same request may succeed. API status errors stay in
// the chain, so k8s.io/apimachinery/pkg/api/errors can inspect them too.
var (
	// ErrPodNotFound means the pod the alert named does not exist (any more).
	ErrPodNotFound = errors.New("kube: pod not found")
	// ErrTargetChanged means a pod of that name exists but is not the one the
	// alert named (its UID differs): it was replaced, and acting on it would hit
	// an innocent workload.
	ErrTargetChanged = errors.New("kube: target changed")
	// ErrInvalidInput means the request itself is wrong (a missing field, an
	// invalid label key or value); retrying it cannot succeed.
	ErrInvalidInput = errors.New("kube: invalid input")
	// ErrReservedKey means a label or annotation key lies under soar.dev/,
	// which only soar's own bookkeeping may write, so that a playbook cannot,
	// say, remove a quarantine label. It wraps ErrInvalidInput.
	ErrReservedKey = fmt.Errorf("%w: key reserved for soar", ErrInvalidInput)
	// ErrUnsupportedOwner means the pod's controller is of a kind the action
	// cannot work with (detach needs a ReplicaSet or ReplicationController;
	// scaling needs a Deployment, ReplicaSet or StatefulSet).
	ErrUnsupportedOwner = errors.New("kube: unsupported owner")
	// ErrOwnerNotFound means the pod's controller, named in its
	// ownerReferences, does not exist (any more): the garbage collector will
	// remove the pod, and nothing would replace or scale it.
	ErrOwnerNotFound = errors.New("kube: owner not found")
	// ErrNamespaceTerminating means the namespace is being deleted: the API
	// server refuses to create objects in it, so no NetworkPolicy can isolate
	// the pod there.
	ErrNamespaceTerminating = errors.New("kube: namespace terminating")
	// ErrDisruptionBudget means a PodDisruptionBudget does not allow the
	// eviction now. It is transient: retry with backoff, as kubectl drain does.
	ErrDisruptionBudget = errors.New("kube: disruption budget")
	// ErrNotScheduled means the pod is not bound to a node, so there is no node
	// to act on.
	ErrNotScheduled = errors.New("kube: pod not scheduled")
	// ErrNodeNotFound means the node does not exist.
	ErrNodeNotFound = errors.New("kube: node not found")
	// ErrNamespaceNotFound means the namespace does not exist.
	ErrNamespaceNotFound = errors.New("kube: namespace not found")
)

// invalidf returns an error wrapping ErrInvalidInput.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidInput}, args...)...)
}

// requireFields fails with ErrInvalidInput naming the fields whose value is
// empty; pairs are name, value.
func requireFields(action string, pairs ...string) error {
	var missing []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			missing = append(missing, pairs[i])
		}
	}
	if len(missing) > 0 {
		return invalidf("%s needs %s", action, strings.Join(missing, ", "))
	}
	return nil
}

// writeError wraps an API error from a write. A request the API server found
// invalid also wraps ErrInvalidInput, since sending it again cannot succeed.
func writeError(what string, err error) error {
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return fmt.Errorf("%w: %s: %w", ErrInvalidInput, what, err)
	}
	return fmt.Errorf("kube: %s: %w", what, err)
}
