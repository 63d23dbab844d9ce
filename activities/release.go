package activities

import (
	"context"

	"github.com/soar-dev/soar/connectors/kube"
)

// ActionRelease undoes a quarantine.
const ActionRelease = "kubernetes.release"

var release = Define(Action{
	Name:      ActionRelease,
	Summary:   "Undo a quarantine: remove the incident's label, restore detached labels once no other incident holds the pod, and delete the incident's policy once no pod needs it.",
	InverseOf: ActionQuarantine,
	Role:      RoleResponder,
	Permissions: []Permission{
		{Group: "", Resource: "pods", Verbs: []string{"get", "list", "patch"}},
		{Group: "networking.k8s.io", Resource: "networkpolicies", Verbs: []string{"delete"}},
		lockListPermission,
	},
}, (*Activities).release)

type releaser interface {
	Release(ctx context.Context, req kube.ReleaseRequest) (kube.ReleaseResult, error)
}

var _ releaser = (*kube.Client)(nil)

func (a *Activities) release(ctx context.Context, in PodParams, req ActionRequest) (kube.ReleaseResult, error) {
	if err := a.needPod(ctx, req.Action, in); err != nil {
		return kube.ReleaseResult{}, err
	}
	k, err := kubeFor[releaser](a, req.Action)
	if err != nil {
		return kube.ReleaseResult{}, err
	}
	out, err := k.Release(ctx, kube.ReleaseRequest{
		Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, Incident: req.IncidentID, DryRun: req.DryRun,
	})
	return out, kubeError(err)
}
