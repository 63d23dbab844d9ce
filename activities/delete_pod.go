package activities

import (
	"context"

	"github.com/soar-dev/soar/connectors/kube"
)

// ActionDeletePod deletes one pod.
const ActionDeletePod = "kubernetes.delete_pod"

var deletePod = Define(Action{
	Name:        ActionDeletePod,
	Summary:     "Delete one pod, with a grace period. Its controller, if any, starts a replacement.",
	Destructive: true,
	Role:        RoleResponder,
	Permissions: []Permission{
		{Group: "", Resource: "pods", Verbs: []string{"delete", "get"}},
	},
}, (*Activities).deletePod)

// DeleteParams are the parameters of kubernetes.delete_pod and evict_pod.
type DeleteParams struct {
	PodParams
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty" default:"the pod's terminationGracePeriodSeconds" doc:"seconds the containers get to stop; 0 kills at once"`
}

type podDeleter interface {
	DeletePod(ctx context.Context, req kube.DeletePodRequest) (kube.DeletePodResult, error)
}

var _ podDeleter = (*kube.Client)(nil)

func (a *Activities) deletePod(ctx context.Context, in DeleteParams, req ActionRequest) (kube.DeletePodResult, error) {
	if err := a.needPod(ctx, req.Action, in.PodParams); err != nil {
		return kube.DeletePodResult{}, err
	}
	k, err := kubeFor[podDeleter](a, req.Action)
	if err != nil {
		return kube.DeletePodResult{}, err
	}
	out, err := k.DeletePod(ctx, kube.DeletePodRequest{
		Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, GracePeriodSeconds: in.GracePeriodSeconds, DryRun: req.DryRun,
	})
	return out, kubeError(err)
}
