package activities

import (
	"context"

	"github.com/soar-dev/soar/connectors/kube"
)

// ActionAnnotatePod sets annotations on one pod.
const ActionAnnotatePod = "kubernetes.annotate_pod"

var annotatePod = Define(Action{
	Name:        ActionAnnotatePod,
	Summary:     "Set annotations on one pod, recording the values they replace.",
	Inverse:     ActionRestoreAnnotations,
	Role:        RoleResponder,
	Permissions: []Permission{{Group: "", Resource: "pods", Verbs: []string{"get", "patch"}}},
}, (*Activities).annotatePod)

// AnnotateParams are kubernetes.annotate_pod's parameters.
type AnnotateParams struct {
	PodParams
	Annotations map[string]string `json:"annotations" required:"true" doc:"annotation names and values to set; names under soar.dev/ are reserved"`
}

type podAnnotator interface {
	AnnotatePod(ctx context.Context, req kube.MetadataRequest) (kube.MetadataResult, error)
}

var _ podAnnotator = (*kube.Client)(nil)

func (a *Activities) annotatePod(ctx context.Context, in AnnotateParams, req ActionRequest) (kube.MetadataResult, error) {
	if err := a.needPod(ctx, req.Action, in.PodParams); err != nil {
		return kube.MetadataResult{}, err
	}
	if len(in.Annotations) == 0 {
		return kube.MetadataResult{}, invalid("%s needs annotations to set", req.Action)
	}
	k, err := kubeFor[podAnnotator](a, req.Action)
	if err != nil {
		return kube.MetadataResult{}, err
	}
	out, err := k.AnnotatePod(ctx, kube.MetadataRequest{Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, Values: in.Annotations, DryRun: req.DryRun})
	return out, kubeError(err)
}
