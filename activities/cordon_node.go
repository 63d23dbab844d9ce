package activities

import (
	"context"

	"github.com/soar-dev/soar/connectors/kube"
)

// ActionCordonNode marks the pod's node unschedulable.
const ActionCordonNode = "kubernetes.cordon_node"

var cordonNode = Define(Action{
	Name:    ActionCordonNode,
	Summary: "Mark a node unschedulable, so no new pod lands next to a compromised one.",
	Inverse: ActionUncordonNode,
	Role:    RoleResponder,
	Permissions: []Permission{
		{Group: "", Resource: "pods", Verbs: []string{"get"}},
		{Group: "", Resource: "nodes", Verbs: []string{"get", "patch"}},
	},
}, (*Activities).cordonNode)

// CordonParams are kubernetes.cordon_node's parameters.
type CordonParams struct {
	PodParams
	Node string `json:"node,omitempty" default:"the node the pod runs on, read from the pod (not from the alert)" doc:"name of the node to cordon instead"`
}

type nodeCordoner interface {
	Cordon(ctx context.Context, req kube.CordonRequest) (kube.CordonResult, error)
}

var _ nodeCordoner = (*kube.Client)(nil)

func (a *Activities) cordonNode(ctx context.Context, in CordonParams, req ActionRequest) (kube.CordonResult, error) {
	if in.Node == "" {
		// The node comes from the pod: the pod's namespace must be one
		// soar may act on.
		if err := a.needPod(ctx, req.Action, in.PodParams); err != nil {
			return kube.CordonResult{}, err
		}
	}
	k, err := kubeFor[nodeCordoner](a, req.Action)
	if err != nil {
		return kube.CordonResult{}, err
	}
	out, err := k.Cordon(ctx, kube.CordonRequest{
		Node: in.Node, Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, Incident: req.IncidentID, DryRun: req.DryRun,
	})
	return out, kubeError(err)
}
