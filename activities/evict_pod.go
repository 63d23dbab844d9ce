package activities

import (
	"context"

	"github.com/soar-dev/soar/connectors/kube"
)

// ActionEvictPod evicts one pod through the Eviction API.
const ActionEvictPod = "kubernetes.evict_pod"

var evictPod = Define(Action{
	Name:        ActionEvictPod,
	Summary:     "Evict one pod through the Eviction API, which respects PodDisruptionBudgets; a budget that forbids it is retried with backoff.",
	Destructive: true,
	Role:        RoleResponder,
	Permissions: []Permission{
		{Group: "", Resource: "pods", Verbs: []string{"get"}},
		{Group: "", Resource: "pods/eviction", Verbs: []string{"create"}},
	},
}, (*Activities).evictPod)

type podEvicter interface {
	EvictPod(ctx context.Context, req kube.EvictPodRequest) (kube.EvictPodResult, error)
}

var _ podEvicter = (*kube.Client)(nil)

func (a *Activities) evictPod(ctx context.Context, in DeleteParams, req ActionRequest) (kube.EvictPodResult, error) {
	if err := a.needPod(ctx, req.Action, in.PodParams); err != nil {
		return kube.EvictPodResult{}, err
	}
	k, err := kubeFor[podEvicter](a, req.Action)
	if err != nil {
		return kube.EvictPodResult{}, err
	}
	out, err := k.EvictPod(ctx, kube.EvictPodRequest{
		Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, GracePeriodSeconds: in.GracePeriodSeconds, DryRun: req.DryRun,
	})
	return out, kubeError(err)
}
