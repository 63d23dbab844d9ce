package activities

import (
	"context"
	"errors"

	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/connectors/kube"
)

// ActionQuarantine isolates one pod.
const ActionQuarantine = contract.ActionQuarantine

var quarantine = Define(Action{
	Name:    ActionQuarantine,
	Summary: "Isolate one pod: label it and ensure a deny-all ingress and egress NetworkPolicy of the incident selects it; optionally detach it from its ReplicaSet.",
	Inverse: ActionRelease,
	Lane:    LaneLocal,
	Role:    RoleResponder,
	Permissions: []Permission{
		{Group: "", Resource: "pods", Verbs: []string{"get", "patch"}},
		{Group: "", Resource: "replicationcontrollers", Verbs: []string{"get"}},
		{Group: "apps", Resource: "replicasets", Verbs: []string{"get"}},
		{Group: "networking.k8s.io", Resource: "networkpolicies", Verbs: []string{"create", "delete", "get", "list", "update"}},
		lockListPermission,
		// Reads the quarantine lock's own policies and bindings, to say
		// whether the containment is tamper-proof.
		{Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicies", Verbs: []string{"get"}},
		{Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicybindings", Verbs: []string{"get"}},
	},
}, (*Activities).quarantine)

// QuarantineParams are kubernetes.quarantine's parameters.
type QuarantineParams struct {
	PodParams
	Detach bool `json:"detach,omitempty" default:"false" doc:"also remove the labels its ReplicaSet selects it by, so the controller starts a clean replacement while the suspect pod is kept for forensics"`
}

// QuarantineResult is kubernetes.quarantine's output.
type QuarantineResult struct {
	kube.QuarantineResult
	// DetachSkipped says why a pod asked to be detached was quarantined
	// without it.
	DetachSkipped string `json:"detachSkipped,omitempty" doc:"why a pod asked to be detached was quarantined without it (a bare pod, a StatefulSet's pod)"`
}

type quarantiner interface {
	Quarantine(ctx context.Context, req kube.QuarantineRequest) (kube.QuarantineResult, error)
}

var _ quarantiner = (*kube.Client)(nil)

func (a *Activities) quarantine(ctx context.Context, in QuarantineParams, req ActionRequest) (QuarantineResult, error) {
	if err := a.needPod(ctx, req.Action, in.PodParams); err != nil {
		return QuarantineResult{}, err
	}
	k, err := kubeFor[quarantiner](a, req.Action)
	if err != nil {
		return QuarantineResult{}, err
	}
	qr := kube.QuarantineRequest{
		Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID,
		Incident: req.IncidentID, Detach: in.Detach, DryRun: req.DryRun,
	}
	res, err := k.Quarantine(ctx, qr)
	out := QuarantineResult{QuarantineResult: res}
	if in.Detach && (errors.Is(err, kube.ErrUnsupportedOwner) || errors.Is(err, kube.ErrOwnerNotFound)) {
		// Containment comes first: a pod that cannot be detached (a bare
		// pod, a StatefulSet's) is still quarantined, and the result says
		// why it stays attached.
		out.DetachSkipped = err.Error()
		qr.Detach = false
		out.QuarantineResult, err = k.Quarantine(ctx, qr)
	}
	return out, kubeError(err)
}
