package activities

import (
	"context"

	"github.com/soar-dev/soar/connectors/kube"
)

// ActionUncordonNode undoes cordon_node.
const ActionUncordonNode = "kubernetes.uncordon_node"

var uncordonNode = Define(Action{
	Name:        ActionUncordonNode,
	Summary:     "Undo cordon_node: make the node schedulable again, only if this incident cordoned it.",
	InverseOf:   ActionCordonNode,
	Role:        RoleResponder,
	Permissions: []Permission{{Group: "", Resource: "nodes", Verbs: []string{"get", "patch"}}},
}, (*Activities).uncordonNode)

// UncordonParams are kubernetes.uncordon_node's parameters.
type UncordonParams struct {
	Node string `json:"node" required:"true" doc:"name of the node"`
}

type nodeUncordoner interface {
	Uncordon(ctx context.Context, req kube.UncordonRequest) (kube.UncordonResult, error)
}

var _ nodeUncordoner = (*kube.Client)(nil)

func (a *Activities) uncordonNode(ctx context.Context, in UncordonParams, req ActionRequest) (kube.UncordonResult, error) {
	if in.Node == "" {
		return kube.UncordonResult{}, invalid("%s needs a node", req.Action)
	}
	k, err := kubeFor[nodeUncordoner](a, req.Action)
	if err != nil {
		return kube.UncordonResult{}, err
	}
	out, err := k.Uncordon(ctx, kube.UncordonRequest{Node: in.Node, Incident: req.IncidentID, DryRun: req.DryRun})
	return out, kubeError(err)
}
