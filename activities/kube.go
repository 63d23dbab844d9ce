package activities

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/soar-dev/soar/connectors/kube"
)

// PodParams names the pod of a pod action. The workflow fills the fields the
// step leaves out from the alert.
type PodParams struct {
	Namespace string `json:"namespace" fromAlert:"namespace" default:"the alert's namespace" doc:"namespace of the pod"`
	Pod       string `json:"pod" fromAlert:"pod" default:"the alert's pod" doc:"name of the pod"`
	PodUID    string `json:"podUID,omitempty" fromAlert:"podUID" default:"the alert's pod UID, else the one the incident's first action on that pod found" doc:"when set, the live pod must have this UID, or the step fails with TargetChanged"`
}

// kubeFor returns the worker's Kubernetes connector as the interface an
// action needs (each action file declares its own, and checks at compile time
// that *kube.Client has it). A connector without the method is a worker
// built wrongly: the step fails at once, saying so.
func kubeFor[T any](a *Activities, action string) (T, error) {
	k, ok := a.Kube.(T)
	if !ok {
		var zero T
		return zero, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s: this worker's Kubernetes connector (%T) cannot run it", action, a.Kube), ErrTypeInvalidRequest, nil)
	}
	return k, nil
}

// needPod checks the target names of a pod action and the protected
// namespaces, before any API call.
func (a *Activities) needPod(action string, p PodParams) error {
	if p.Namespace == "" || p.Pod == "" {
		return invalid("%s needs a namespace and a pod, got namespace %q pod %q", action, p.Namespace, p.Pod)
	}
	return a.allowedNamespace(action, p.Namespace)
}

func (a *Activities) allowedNamespace(action, namespace string) error {
	if a.protected(namespace) {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("namespace %q is protected: soar never runs %s there", namespace, action),
			ErrTypeProtectedNamespace, nil)
	}
	return nil
}

// kubeError maps a connector error to a Temporal error: permanent conditions
// become non-retryable with a type the workflow can branch on; everything else
// (API server unreachable, throttled, conflicts, a disruption budget that
// forbids an eviction for now) is returned as is and retried.
func kubeError(err error) error {
	nonRetryable := func(errType string) error {
		return temporal.NewNonRetryableApplicationError(err.Error(), errType, err)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kube.ErrPodNotFound), errors.Is(err, kube.ErrNodeNotFound), errors.Is(err, kube.ErrOwnerNotFound),
		errors.Is(err, kube.ErrNamespaceNotFound):
		return nonRetryable(ErrTypeTargetNotFound)
	case errors.Is(err, kube.ErrTargetChanged):
		return nonRetryable(ErrTypeTargetChanged)
	case errors.Is(err, kube.ErrNamespaceTerminating), apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nonRetryable(ErrTypeNamespaceTerminating)
	case errors.Is(err, kube.ErrUnsupportedOwner):
		return nonRetryable(ErrTypeUnsupportedOwner)
	case errors.Is(err, kube.ErrNotScheduled):
		return nonRetryable(ErrTypeNotScheduled)
	case errors.Is(err, kube.ErrCheckpointUnsupported):
		return nonRetryable(ErrTypeCheckpointUnsupported)
	case errors.Is(err, kube.ErrReservedKey), errors.Is(err, kube.ErrInvalidInput):
		return nonRetryable(ErrTypeInvalidRequest)
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return temporal.NewNonRetryableApplicationError(err.Error()+" (check soar's RBAC: see deploy/)", ErrTypeForbidden, err)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return nonRetryable(ErrTypeInvalidRequest)
	case errors.Is(err, kube.ErrDisruptionBudget):
		return temporal.NewApplicationErrorWithCause(err.Error(), ErrTypeDisruptionBudget, err)
	default:
		// Retried; the type tells the incident's reader it was the API.
		return temporal.NewApplicationErrorWithCause(err.Error(), ErrTypeKubernetesAPI, err)
	}
}
