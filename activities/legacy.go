package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/connectors/kube"
)

// QuarantineOutput is what was found and changed; it goes into the incident.
type QuarantineOutput = kube.QuarantineResult

// Quarantine is the activity incidents started before actions became generic
// (ActionRequest, one activity per catalogue action) still call; it stays
// registered until no such incident runs (recorded histories in
// workflows/testdata still call it). It labels the pod and ensures the
// incident's deny-all NetworkPolicy selects it. It is idempotent, so Temporal
// may retry it freely. It fails
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
	if err := a.allowedNamespace(ctx, "quarantine", in.Namespace); err != nil {
		return QuarantineOutput{}, err
	}
	k, err := kubeFor[quarantiner](a, "quarantine")
	if err != nil {
		return QuarantineOutput{}, err
	}
	out, err := k.Quarantine(ctx, kube.QuarantineRequest{
		Namespace: in.Namespace,
		Pod:       in.Pod,
		PodUID:    in.PodUID,
		Incident:  in.IncidentID,
		DryRun:    in.DryRun,
	})
	return out, kubeError(err)
}
