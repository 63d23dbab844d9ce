package activities

import (
	"context"

	"github.com/soar-dev/soar/connectors/kube"
)

// Deployment control tied to incidents: block a pod's images, freeze a
// namespace, and their inverses. They write the quarantine lock list, which
// deploy/incident-deployment-control.yaml's admission policies read; the
// worker's right to write it is the Role in deploy/quarantine-lock.yaml, not
// a ClusterRole: RoleLocks.
const (
	ActionBlockImage        = "kubernetes.block_image"
	ActionUnblockImage      = "kubernetes.unblock_image"
	ActionFreezeNamespace   = "kubernetes.freeze_namespace"
	ActionUnfreezeNamespace = "kubernetes.unfreeze_namespace"
)

var blockImage = Define(Action{
	Name:        ActionBlockImage,
	Summary:     "Block the pod's images: while the incident is open, the API server refuses any Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or CronJob that uses one of them.",
	Inverse:     ActionUnblockImage,
	Role:        RoleResponder,
	Permissions: []Permission{{Group: "", Resource: "pods", Verbs: []string{"get"}}, lockListPermission},
}, (*Activities).blockImage)

var unblockImage = Define(Action{
	Name:        ActionUnblockImage,
	Summary:     "Undo block_image: take every image the incident blocked off the list; other incidents' blocks stay.",
	InverseOf:   ActionBlockImage,
	Role:        RoleLocks,
	Permissions: []Permission{lockListPermission},
}, (*Activities).unblockImage)

var freezeNamespace = Define(Action{
	Name:        ActionFreezeNamespace,
	Summary:     "Freeze a namespace: while the incident is open, the API server refuses new and changed workloads and pods there, but for soar, Kubernetes' controllers and the break-glass group.",
	Inverse:     ActionUnfreezeNamespace,
	Role:        RoleResponder,
	Permissions: []Permission{{Group: "", Resource: "namespaces", Verbs: []string{"get"}}, lockListPermission},
}, (*Activities).freezeNamespace)

var unfreezeNamespace = Define(Action{
	Name:        ActionUnfreezeNamespace,
	Summary:     "Undo freeze_namespace: take the incident's freeze off the list; another incident's freeze stays.",
	InverseOf:   ActionFreezeNamespace,
	Role:        RoleLocks,
	Permissions: []Permission{lockListPermission},
}, (*Activities).unfreezeNamespace)

// lockListPermission is the right to write the lock list.
var lockListPermission = Permission{Group: "", Resource: "configmaps", Verbs: []string{"get", "update"}, Role: RoleLocks}

// UnblockImageResult is kubernetes.unblock_image's output.
type UnblockImageResult struct {
	Unblocked bool `json:"unblocked" doc:"the incident's images are off the list"`
	DryRun    bool `json:"dryRun,omitempty" doc:"true in plan mode: the list was only written as a server-side dry run"`
}

type deployController interface {
	BlockImages(ctx context.Context, req kube.BlockImageRequest) (kube.BlockImageResult, error)
	UnblockImages(ctx context.Context, incident string, dryRun bool) error
	FreezeNamespace(ctx context.Context, namespace, incident string, dryRun bool) (kube.FreezeResult, error)
	UnfreezeNamespace(ctx context.Context, namespace, incident string, dryRun bool) (kube.FreezeResult, error)
}

var _ deployController = (*kube.Client)(nil)

func (a *Activities) blockImage(ctx context.Context, in PodParams, req ActionRequest) (kube.BlockImageResult, error) {
	if err := a.needPod(ctx, req.Action, in); err != nil {
		return kube.BlockImageResult{}, err
	}
	k, err := kubeFor[deployController](a, req.Action)
	if err != nil {
		return kube.BlockImageResult{}, err
	}
	out, err := k.BlockImages(ctx, kube.BlockImageRequest{Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, Incident: req.IncidentID, DryRun: req.DryRun})
	return out, kubeError(err)
}

// NoParams is the input of an action that takes none.
type NoParams struct{}

func (a *Activities) unblockImage(ctx context.Context, _ NoParams, req ActionRequest) (UnblockImageResult, error) {
	k, err := kubeFor[deployController](a, req.Action)
	if err != nil {
		return UnblockImageResult{}, err
	}
	if err := k.UnblockImages(ctx, req.IncidentID, req.DryRun); err != nil {
		return UnblockImageResult{}, kubeError(err)
	}
	return UnblockImageResult{Unblocked: true, DryRun: req.DryRun}, nil
}

func (a *Activities) freezeNamespace(ctx context.Context, in NamespaceParams, req ActionRequest) (kube.FreezeResult, error) {
	if err := a.needNamespace(ctx, req.Action, in); err != nil {
		return kube.FreezeResult{}, err
	}
	k, err := kubeFor[deployController](a, req.Action)
	if err != nil {
		return kube.FreezeResult{}, err
	}
	out, err := k.FreezeNamespace(ctx, in.Namespace, req.IncidentID, req.DryRun)
	return out, kubeError(err)
}

func (a *Activities) unfreezeNamespace(ctx context.Context, in NamespaceParams, req ActionRequest) (kube.FreezeResult, error) {
	if err := a.needNamespace(ctx, req.Action, in); err != nil {
		return kube.FreezeResult{}, err
	}
	k, err := kubeFor[deployController](a, req.Action)
	if err != nil {
		return kube.FreezeResult{}, err
	}
	out, err := k.UnfreezeNamespace(ctx, in.Namespace, req.IncidentID, req.DryRun)
	return out, kubeError(err)
}
