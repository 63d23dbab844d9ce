package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
// namespaces, before any change.
func (a *Activities) needPod(ctx context.Context, action string, p PodParams) error {
	if p.Namespace == "" || p.Pod == "" {
		return invalid("%s needs a namespace and a pod, got namespace %q pod %q", action, p.Namespace, p.Pod)
	}
	return a.allowedNamespace(ctx, action, p.Namespace)
}

// ProtectedLabel, set to "true" on a namespace, protects it as the names in
// ProtectedNamespaces are: label the namespaces of your security stack,
// ingress controller and monitoring. deploy/admission.yaml makes the API
// server refuse the worker there too.
const ProtectedLabel = "soar.dev/protected"

// protectedLabelTTL is how long a namespace's label is remembered.
const protectedLabelTTL = 30 * time.Second

// namespaceLabeler reads a namespace's labels (*kube.Client).
type namespaceLabeler interface {
	NamespaceLabels(ctx context.Context, name string) (map[string]string, error)
}

var _ namespaceLabeler = (*kube.Client)(nil)

func (a *Activities) allowedNamespace(ctx context.Context, action, namespace string) error {
	if a.protected(namespace) {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("namespace %q is protected: soar never runs %s there", namespace, action),
			ErrTypeProtectedNamespace, nil)
	}
	labeled, err := a.protectedByLabel(ctx, namespace)
	if err != nil {
		return kubeError(err)
	}
	if labeled {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("namespace %q is labelled %s=true: soar never runs %s there", namespace, ProtectedLabel, action),
			ErrTypeProtectedNamespace, nil)
	}
	return nil
}

// protectedByLabel reports whether namespace carries ProtectedLabel=true,
// as the API server said at most protectedLabelTTL ago. A namespace that
// does not exist is not protected: the action then finds no target.
func (a *Activities) protectedByLabel(ctx context.Context, namespace string) (bool, error) {
	nl, ok := a.Kube.(namespaceLabeler)
	if !ok {
		return false, nil
	}
	if v, ok := a.nsLabels.Load(namespace); ok {
		if c := v.(labelCheck); time.Since(c.at) < protectedLabelTTL {
			return c.protected, nil
		}
	}
	// A storm of new incidents in one namespace asks once, not once each:
	// a hundred reads at once would queue behind client-go's rate limit.
	v, err, _ := a.nsReads.Do(namespace, func() (any, error) {
		labels, err := nl.NamespaceLabels(ctx, namespace)
		if errors.Is(err, kube.ErrNamespaceNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		c := labelCheck{protected: labels[ProtectedLabel] == "true", at: time.Now()}
		a.nsLabels.Store(namespace, c)
		return c.protected, nil
	})
	if err != nil {
		return false, err
	}
	return v.(bool), nil
}

// labelCheck is a remembered answer of protectedByLabel.
type labelCheck struct {
	protected bool
	at        time.Time
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
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy"):
		// An admission policy (deploy/admission.yaml bounds the worker) said
		// no: its message says why, and RBAC is not the cause.
		return temporal.NewNonRetryableApplicationError(err.Error()+" (an admission policy refused it: see deploy/admission.yaml)", ErrTypeForbidden, err)
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
