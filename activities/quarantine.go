package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/soar-dev/soar/connectors/kube"
)

// QuarantineInput names the pod to isolate and the incident asking for it.
type QuarantineInput struct {
	IncidentID string `json:"incidentID"`
	Namespace  string `json:"namespace"`
	Pod        string `json:"pod"`
	// PodUID, when the alert knew it, guards against acting on a replacement.
	PodUID string `json:"podUID,omitempty"`
	// DryRun asks the API server to check every change without storing it
	// (plan mode).
	DryRun bool `json:"dryRun,omitempty"`
}

// QuarantineOutput is what was found and changed; it goes into the incident.
type QuarantineOutput = kube.QuarantineResult

// Quarantine labels the pod and ensures the namespace's deny-all NetworkPolicy
// selects it. It is idempotent, so Temporal may retry it freely. It fails
// without retry (ApplicationError types ErrTypeProtectedNamespace,
// ErrTypeTargetNotFound, ErrTypeTargetChanged, ErrTypeForbidden,
// ErrTypeInvalidRequest) when retrying cannot help; other errors (API server
// unreachable, throttled, conflicts) are retried by the workflow's policy.
func (a *Activities) Quarantine(ctx context.Context, in QuarantineInput) (QuarantineOutput, error) {
	if in.Namespace == "" || in.Pod == "" {
		return QuarantineOutput{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("quarantine needs a namespace and a pod, got namespace %q pod %q", in.Namespace, in.Pod),
			ErrTypeInvalidRequest, nil)
	}
	if a.protected(in.Namespace) {
		return QuarantineOutput{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("namespace %q is protected: soar never quarantines pods there", in.Namespace),
			ErrTypeProtectedNamespace, nil)
	}
	out, err := a.Kube.Quarantine(ctx, kube.QuarantineRequest{
		Namespace: in.Namespace,
		Pod:       in.Pod,
		PodUID:    in.PodUID,
		Incident:  in.IncidentID,
		DryRun:    in.DryRun,
	})
	return out, kubeError(err)
}

// kubeError maps a connector error to a Temporal error: permanent conditions
// become non-retryable with a type the workflow can branch on; everything else
// is returned as is and retried.
func kubeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kube.ErrPodNotFound):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeTargetNotFound, err)
	case errors.Is(err, kube.ErrTargetChanged):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeTargetChanged, err)
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return temporal.NewNonRetryableApplicationError(err.Error()+" (check soar's RBAC: see deploy/)", ErrTypeForbidden, err)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidRequest, err)
	default:
		return err
	}
}
