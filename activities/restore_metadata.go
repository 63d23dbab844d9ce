package activities

import (
	"context"

	"github.com/soar-dev/soar/connectors/kube"
)

// Inverses of label_pod and annotate_pod.
const (
	ActionRestoreLabels      = "kubernetes.restore_labels"
	ActionRestoreAnnotations = "kubernetes.restore_annotations"
)

var restoreLabels = Define(Action{
	Name:        ActionRestoreLabels,
	Summary:     "Undo label_pod: put back the values it replaced and remove the ones it added, unless someone changed them since.",
	InverseOf:   ActionLabelPod,
	Role:        RoleResponder,
	Permissions: []Permission{{Group: "", Resource: "pods", Verbs: []string{"get", "patch"}}},
}, (*Activities).restoreLabels)

var restoreAnnotations = Define(Action{
	Name:        ActionRestoreAnnotations,
	Summary:     "Undo annotate_pod: put back the values it replaced and remove the ones it added, unless someone changed them since.",
	InverseOf:   ActionAnnotatePod,
	Role:        RoleResponder,
	Permissions: []Permission{{Group: "", Resource: "pods", Verbs: []string{"get", "patch"}}},
}, (*Activities).restoreAnnotations)

// RestoreMetadataParams are what restore_labels and restore_annotations take:
// the pod, and what label_pod or annotate_pod reported.
type RestoreMetadataParams struct {
	PodParams
	Set      map[string]string `json:"set" doc:"what the undone step set (its output)"`
	Previous map[string]string `json:"previous,omitempty" doc:"the values it replaced (its output)"`
	Added    []string          `json:"added,omitempty" doc:"the keys it added (its output)"`
}

type podMetadataRestorer interface {
	RestorePodLabels(ctx context.Context, req kube.RestoreMetadataRequest) (kube.RestoreMetadataResult, error)
	RestorePodAnnotations(ctx context.Context, req kube.RestoreMetadataRequest) (kube.RestoreMetadataResult, error)
}

var _ podMetadataRestorer = (*kube.Client)(nil)

func (a *Activities) restoreLabels(ctx context.Context, in RestoreMetadataParams, req ActionRequest) (kube.RestoreMetadataResult, error) {
	return a.restoreMetadata(ctx, in, req, podMetadataRestorer.RestorePodLabels)
}

func (a *Activities) restoreAnnotations(ctx context.Context, in RestoreMetadataParams, req ActionRequest) (kube.RestoreMetadataResult, error) {
	return a.restoreMetadata(ctx, in, req, podMetadataRestorer.RestorePodAnnotations)
}

func (a *Activities) restoreMetadata(ctx context.Context, in RestoreMetadataParams, req ActionRequest,
	restore func(podMetadataRestorer, context.Context, kube.RestoreMetadataRequest) (kube.RestoreMetadataResult, error),
) (kube.RestoreMetadataResult, error) {
	if err := a.needPod(ctx, req.Action, in.PodParams); err != nil {
		return kube.RestoreMetadataResult{}, err
	}
	k, err := kubeFor[podMetadataRestorer](a, req.Action)
	if err != nil {
		return kube.RestoreMetadataResult{}, err
	}
	out, err := restore(k, ctx, kube.RestoreMetadataRequest{
		Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID,
		Set: in.Set, Previous: in.Previous, Added: in.Added, DryRun: req.DryRun,
	})
	return out, kubeError(err)
}
