package activities

import (
	"context"

	"github.com/soar-dev/soar/connectors/kube"
)

// ActionScaleToZero scales the pod's workload to zero replicas.
const ActionScaleToZero = "kubernetes.scale_to_zero"

var scaleToZero = Define(Action{
	Name:        ActionScaleToZero,
	Summary:     "Scale the pod's workload (Deployment, StatefulSet or ReplicaSet) to zero replicas, recording the previous count on it.",
	Destructive: true,
	Inverse:     ActionRestoreScale,
	Role:        RoleResponder,
	Permissions: append([]Permission{{Group: "", Resource: "pods", Verbs: []string{"get"}}}, scalePermissions...),
}, (*Activities).scaleToZero)

// scalePermissions are what scale_to_zero and restore_scale need of the
// workloads.
var scalePermissions = []Permission{
	{Group: "apps", Resource: "deployments", Verbs: []string{"get", "patch"}},
	{Group: "apps", Resource: "replicasets", Verbs: []string{"get", "patch"}},
	{Group: "apps", Resource: "statefulsets", Verbs: []string{"get", "patch"}},
}

type scaler interface {
	ScaleOwnerToZero(ctx context.Context, req kube.ScaleRequest) (kube.ScaleResult, error)
}

var _ scaler = (*kube.Client)(nil)

func (a *Activities) scaleToZero(ctx context.Context, in PodParams, req ActionRequest) (kube.ScaleResult, error) {
	if err := a.needPod(ctx, req.Action, in); err != nil {
		return kube.ScaleResult{}, err
	}
	k, err := kubeFor[scaler](a, req.Action)
	if err != nil {
		return kube.ScaleResult{}, err
	}
	out, err := k.ScaleOwnerToZero(ctx, kube.ScaleRequest{Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, Incident: req.IncidentID, DryRun: req.DryRun})
	return out, kubeError(err)
}
