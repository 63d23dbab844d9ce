// Package activities holds soar's Temporal activities: the only code in a
// response that touches the outside world. Each activity is a method on
// Activities, whose fields are the connectors it needs; workflows call them
// through a nil *Activities so that workflow code never holds a client.
//
// Activities translate connector errors into Temporal semantics: an error that
// retrying cannot fix is returned as a non-retryable ApplicationError whose
// type (the ErrType constants) workflows can branch on.
package activities

import (
	"context"
	"slices"

	"github.com/soar-dev/soar/connectors/kube"
)

// Action names as playbooks write them in a step's "action".
const (
	ActionQuarantine = "kubernetes.quarantine"
)

// Error types of non-retryable ApplicationErrors returned by activities.
const (
	ErrTypeProtectedNamespace = "ProtectedNamespace"
	ErrTypeTargetNotFound     = "TargetNotFound"
	ErrTypeTargetChanged      = "TargetChanged"
	ErrTypeForbidden          = "Forbidden"
	ErrTypeInvalidRequest     = "InvalidRequest"
)

// DefaultProtectedNamespaces are never acted on, whatever a playbook says:
// disrupting them can take down the cluster or soar itself.
var DefaultProtectedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// Quarantiner is what Quarantine needs from the Kubernetes connector.
type Quarantiner interface {
	Quarantine(ctx context.Context, req kube.QuarantineRequest) (kube.QuarantineResult, error)
}

// Activities is registered once with the worker.
type Activities struct {
	Kube Quarantiner
	// ProtectedNamespaces are refused by every Kubernetes action. The worker
	// fills it with DefaultProtectedNamespaces, soar's own namespace and the
	// operator's list.
	ProtectedNamespaces []string
}

func (a *Activities) protected(namespace string) bool {
	return slices.Contains(a.ProtectedNamespaces, namespace)
}
