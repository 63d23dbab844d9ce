package activities

import (
	"context"

	"github.com/soar-dev/soar/connectors/kube"
)

// ActionRestoreScale undoes scale_to_zero.
const ActionRestoreScale = "kubernetes.restore_scale"

var restoreScale = Define(Action{
	Name:        ActionRestoreScale,
	Summary:     "Undo scale_to_zero: scale the workload back to its recorded replicas, unless someone scaled it since.",
	InverseOf:   ActionScaleToZero,
	Role:        RoleResponder,
	Permissions: scalePermissions,
}, (*Activities).restoreScale)

// RestoreScaleParams are kubernetes.restore_scale's parameters.
type RestoreScaleParams struct {
	Namespace string `json:"namespace" required:"true" doc:"namespace of the workload"`
	Kind      string `json:"kind" required:"true" doc:"Deployment, StatefulSet or ReplicaSet"`
	Name      string `json:"name" required:"true" doc:"name of the workload"`
}

type scaleRestorer interface {
	RestoreScale(ctx context.Context, req kube.RestoreScaleRequest) (kube.RestoreScaleResult, error)
}

var _ scaleRestorer = (*kube.Client)(nil)

func (a *Activities) restoreScale(ctx context.Context, in RestoreScaleParams, req ActionRequest) (kube.RestoreScaleResult, error) {
	if in.Namespace == "" || in.Kind == "" || in.Name == "" {
		return kube.RestoreScaleResult{}, invalid("%s needs the workload's namespace, kind and name, got %q %q %q", req.Action, in.Namespace, in.Kind, in.Name)
	}
	if err := a.allowedNamespace(ctx, req.Action, in.Namespace); err != nil {
		return kube.RestoreScaleResult{}, err
	}
	k, err := kubeFor[scaleRestorer](a, req.Action)
	if err != nil {
		return kube.RestoreScaleResult{}, err
	}
	out, err := k.RestoreScale(ctx, kube.RestoreScaleRequest{Namespace: in.Namespace, Kind: in.Kind, Name: in.Name, Incident: req.IncidentID, DryRun: req.DryRun})
	return out, kubeError(err)
}
