package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/soar-dev/soar/connectors/kube"
)

// PodParams names the pod of a pod action. The workflow fills the fields the
// step leaves out from the alert.
type PodParams struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	PodUID    string `json:"podUID,omitempty"`
}

// QuarantineParams are kubernetes.quarantine's parameters.
type QuarantineParams struct {
	PodParams
	Detach bool `json:"detach,omitempty"`
}

// QuarantineResult is kubernetes.quarantine's output.
type QuarantineResult struct {
	kube.QuarantineResult
	// DetachSkipped says why a pod asked to be detached was quarantined
	// without it.
	DetachSkipped string `json:"detachSkipped,omitempty"`
}

// DeleteParams are the parameters of kubernetes.delete_pod and evict_pod.
type DeleteParams struct {
	PodParams
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty"`
}

// LabelParams are kubernetes.label_pod's parameters.
type LabelParams struct {
	PodParams
	Labels map[string]string `json:"labels"`
}

// AnnotateParams are kubernetes.annotate_pod's parameters.
type AnnotateParams struct {
	PodParams
	Annotations map[string]string `json:"annotations"`
}

// RestoreMetadataParams are what restore_labels and restore_annotations take:
// the pod, and what label_pod or annotate_pod reported.
type RestoreMetadataParams struct {
	PodParams
	Set      map[string]string `json:"set"`
	Previous map[string]string `json:"previous,omitempty"`
	Added    []string          `json:"added,omitempty"`
}

// CordonParams are kubernetes.cordon_node's parameters.
type CordonParams struct {
	PodParams
	Node string `json:"node,omitempty"`
}

// UncordonParams are kubernetes.uncordon_node's parameters.
type UncordonParams struct {
	Node string `json:"node"`
}

// RestoreScaleParams are kubernetes.restore_scale's parameters.
type RestoreScaleParams struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
}

// handlers maps each catalogue action to the code that runs it.
var handlers = map[string]handler{
	ActionSlackNotify:   slackNotify,
	ActionTicketOpen:    ticketOpen,
	ActionTicketComment: ticketComment,
	ActionTicketResolve: ticketResolve,
	ActionQuarantine: func(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
		var in QuarantineParams
		if err := a.podRequest(req, &in, &in.PodParams); err != nil {
			return nil, err
		}
		qr := kube.QuarantineRequest{
			Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID,
			Incident: req.IncidentID, Detach: in.Detach, DryRun: req.DryRun,
		}
		res, err := a.Kube.Quarantine(ctx, qr)
		out := QuarantineResult{QuarantineResult: res}
		if in.Detach && (errors.Is(err, kube.ErrUnsupportedOwner) || errors.Is(err, kube.ErrOwnerNotFound)) {
			// Containment comes first: a pod that cannot be detached (a
			// bare pod, a StatefulSet's) is still quarantined, and the
			// result says why it stays attached.
			out.DetachSkipped = err.Error()
			qr.Detach = false
			out.QuarantineResult, err = a.Kube.Quarantine(ctx, qr)
		}
		return out, kubeError(err)
	},
	ActionRelease: func(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
		var in PodParams
		if err := a.podRequest(req, &in, &in); err != nil {
			return nil, err
		}
		out, err := a.Kube.Release(ctx, kube.ReleaseRequest{
			Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, Incident: req.IncidentID, DryRun: req.DryRun,
		})
		return out, kubeError(err)
	},
	ActionDeletePod: func(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
		var in DeleteParams
		if err := a.podRequest(req, &in, &in.PodParams); err != nil {
			return nil, err
		}
		out, err := a.Kube.DeletePod(ctx, kube.DeletePodRequest{
			Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, GracePeriodSeconds: in.GracePeriodSeconds, DryRun: req.DryRun,
		})
		return out, kubeError(err)
	},
	ActionEvictPod: func(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
		var in DeleteParams
		if err := a.podRequest(req, &in, &in.PodParams); err != nil {
			return nil, err
		}
		out, err := a.Kube.EvictPod(ctx, kube.EvictPodRequest{
			Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, GracePeriodSeconds: in.GracePeriodSeconds, DryRun: req.DryRun,
		})
		return out, kubeError(err)
	},
	ActionLabelPod: func(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
		var in LabelParams
		if err := a.podRequest(req, &in, &in.PodParams); err != nil {
			return nil, err
		}
		if len(in.Labels) == 0 {
			return nil, invalid("%s needs labels to set", req.Action)
		}
		out, err := a.Kube.LabelPod(ctx, kube.MetadataRequest{Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, Values: in.Labels, DryRun: req.DryRun})
		return out, kubeError(err)
	},
	ActionAnnotatePod: func(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
		var in AnnotateParams
		if err := a.podRequest(req, &in, &in.PodParams); err != nil {
			return nil, err
		}
		if len(in.Annotations) == 0 {
			return nil, invalid("%s needs annotations to set", req.Action)
		}
		out, err := a.Kube.AnnotatePod(ctx, kube.MetadataRequest{Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, Values: in.Annotations, DryRun: req.DryRun})
		return out, kubeError(err)
	},
	ActionRestoreLabels: func(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
		var in RestoreMetadataParams
		if err := a.podRequest(req, &in, &in.PodParams); err != nil {
			return nil, err
		}
		out, err := a.Kube.RestorePodLabels(ctx, restoreMetadata(in, req.DryRun))
		return out, kubeError(err)
	},
	ActionRestoreAnnotations: func(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
		var in RestoreMetadataParams
		if err := a.podRequest(req, &in, &in.PodParams); err != nil {
			return nil, err
		}
		out, err := a.Kube.RestorePodAnnotations(ctx, restoreMetadata(in, req.DryRun))
		return out, kubeError(err)
	},
	ActionCordonNode: func(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
		var in CordonParams
		if err := decodeParams(req, &in); err != nil {
			return nil, err
		}
		if in.Node == "" {
			// The node comes from the pod: the pod's namespace must be
			// one soar may act on.
			if err := a.needPod(req.Action, in.Namespace, in.Pod); err != nil {
				return nil, err
			}
		}
		out, err := a.Kube.Cordon(ctx, kube.CordonRequest{
			Node: in.Node, Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, Incident: req.IncidentID, DryRun: req.DryRun,
		})
		return out, kubeError(err)
	},
	ActionUncordonNode: func(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
		var in UncordonParams
		if err := decodeParams(req, &in); err != nil {
			return nil, err
		}
		if in.Node == "" {
			return nil, invalid("%s needs a node", req.Action)
		}
		out, err := a.Kube.Uncordon(ctx, kube.UncordonRequest{Node: in.Node, Incident: req.IncidentID, DryRun: req.DryRun})
		return out, kubeError(err)
	},
	ActionScaleToZero: func(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
		var in PodParams
		if err := a.podRequest(req, &in, &in); err != nil {
			return nil, err
		}
		out, err := a.Kube.ScaleOwnerToZero(ctx, kube.ScaleRequest{Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, Incident: req.IncidentID, DryRun: req.DryRun})
		return out, kubeError(err)
	},
	ActionRestoreScale: func(a *Activities, ctx context.Context, req ActionRequest) (any, error) {
		var in RestoreScaleParams
		if err := decodeParams(req, &in); err != nil {
			return nil, err
		}
		if in.Namespace == "" || in.Kind == "" || in.Name == "" {
			return nil, invalid("%s needs the workload's namespace, kind and name, got %q %q %q", req.Action, in.Namespace, in.Kind, in.Name)
		}
		if err := a.allowedNamespace(req.Action, in.Namespace); err != nil {
			return nil, err
		}
		out, err := a.Kube.RestoreScale(ctx, kube.RestoreScaleRequest{Namespace: in.Namespace, Kind: in.Kind, Name: in.Name, Incident: req.IncidentID, DryRun: req.DryRun})
		return out, kubeError(err)
	},
	ActionSnapshot: (*Activities).snapshot,
}

// podRequest decodes a pod action's parameters into in, whose PodParams is
// pod, and checks the target.
func (a *Activities) podRequest(req ActionRequest, in any, pod *PodParams) error {
	if err := decodeParams(req, in); err != nil {
		return err
	}
	return a.needPod(req.Action, pod.Namespace, pod.Pod)
}

func restoreMetadata(in RestoreMetadataParams, dryRun bool) kube.RestoreMetadataRequest {
	return kube.RestoreMetadataRequest{
		Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID,
		Set: in.Set, Previous: in.Previous, Added: in.Added, DryRun: dryRun,
	}
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
	case errors.Is(err, kube.ErrPodNotFound), errors.Is(err, kube.ErrNodeNotFound), errors.Is(err, kube.ErrOwnerNotFound):
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
