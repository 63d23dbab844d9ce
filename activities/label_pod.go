package activities

import (
	"context"

	"github.com/soar-dev/soar/connectors/kube"
)

// ActionLabelPod sets labels on one pod.
const ActionLabelPod = "kubernetes.label_pod"

var labelPod = Define(Action{
	Name:        ActionLabelPod,
	Summary:     "Set labels on one pod, recording the values they replace.",
	Inverse:     ActionRestoreLabels,
	Role:        RoleResponder,
	Permissions: []Permission{{Group: "", Resource: "pods", Verbs: []string{"get", "patch"}}},
}, (*Activities).labelPod)

// LabelParams are kubernetes.label_pod's parameters.
type LabelParams struct {
	PodParams
	Labels map[string]string `json:"labels" required:"true" doc:"label names and values to set; names under soar.dev/ are reserved"`
}

type podLabeler interface {
	LabelPod(ctx context.Context, req kube.MetadataRequest) (kube.MetadataResult, error)
}

var _ podLabeler = (*kube.Client)(nil)

func (a *Activities) labelPod(ctx context.Context, in LabelParams, req ActionRequest) (kube.MetadataResult, error) {
	if err := a.needPod(ctx, req.Action, in.PodParams); err != nil {
		return kube.MetadataResult{}, err
	}
	if len(in.Labels) == 0 {
		return kube.MetadataResult{}, invalid("%s needs labels to set", req.Action)
	}
	k, err := kubeFor[podLabeler](a, req.Action)
	if err != nil {
		return kube.MetadataResult{}, err
	}
	out, err := k.LabelPod(ctx, kube.MetadataRequest{Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, Values: in.Labels, DryRun: req.DryRun})
	return out, kubeError(err)
}
