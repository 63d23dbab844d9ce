package activities

import (
	"context"

	"github.com/soar-dev/soar/connectors/kube"
)

// ActionAnnotateNamespace sets annotations on a namespace, and
// ActionRestoreNamespaceAnnotations, its inverse, puts them back.
const (
	ActionAnnotateNamespace           = "kubernetes.annotate_namespace"
	ActionRestoreNamespaceAnnotations = "kubernetes.restore_namespace_annotations"
)

var annotateNamespace = Define(Action{
	Name:        ActionAnnotateNamespace,
	Summary:     "Set annotations on a namespace, recording the values they replace.",
	Inverse:     ActionRestoreNamespaceAnnotations,
	Role:        RoleResponder,
	Permissions: []Permission{{Group: "", Resource: "namespaces", Verbs: []string{"get", "patch"}}},
}, (*Activities).annotateNamespace)

var restoreNamespaceAnnotations = Define(Action{
	Name:        ActionRestoreNamespaceAnnotations,
	Summary:     "Undo annotate_namespace: put back the values it replaced and remove the ones it added, unless someone changed them since.",
	InverseOf:   ActionAnnotateNamespace,
	Role:        RoleResponder,
	Permissions: []Permission{{Group: "", Resource: "namespaces", Verbs: []string{"get", "patch"}}},
}, (*Activities).restoreNamespaceAnnotations)

// NamespaceParams names the namespace of a namespace action. The workflow
// fills it from the alert when the step leaves it out.
type NamespaceParams struct {
	Namespace string `json:"namespace" fromAlert:"namespace" default:"the alert's namespace" doc:"the namespace"`
}

// AnnotateNamespaceParams are kubernetes.annotate_namespace's parameters.
type AnnotateNamespaceParams struct {
	NamespaceParams
	Annotations map[string]string `json:"annotations" required:"true" doc:"annotation names and values to set; names under soar.dev/ are reserved"`
}

// RestoreNamespaceAnnotationsParams are what
// kubernetes.restore_namespace_annotations takes: the namespace, and what
// annotate_namespace reported.
type RestoreNamespaceAnnotationsParams struct {
	NamespaceParams
	Set      map[string]string `json:"set" doc:"what the undone step set (its output)"`
	Previous map[string]string `json:"previous,omitempty" doc:"the values it replaced (its output)"`
	Added    []string          `json:"added,omitempty" doc:"the keys it added (its output)"`
}

type namespaceAnnotator interface {
	AnnotateNamespace(ctx context.Context, req kube.NamespaceMetadataRequest) (kube.NamespaceMetadataResult, error)
	RestoreNamespaceAnnotations(ctx context.Context, req kube.RestoreNamespaceMetadataRequest) (kube.RestoreNamespaceMetadataResult, error)
}

var _ namespaceAnnotator = (*kube.Client)(nil)

// needNamespace checks the target namespace of a namespace action, and that
// it is not protected, before any API call.
func (a *Activities) needNamespace(ctx context.Context, action string, p NamespaceParams) error {
	if p.Namespace == "" {
		return invalid("%s needs a namespace", action)
	}
	return a.allowedNamespace(ctx, action, p.Namespace)
}

func (a *Activities) annotateNamespace(ctx context.Context, in AnnotateNamespaceParams, req ActionRequest) (kube.NamespaceMetadataResult, error) {
	if err := a.needNamespace(ctx, req.Action, in.NamespaceParams); err != nil {
		return kube.NamespaceMetadataResult{}, err
	}
	if len(in.Annotations) == 0 {
		return kube.NamespaceMetadataResult{}, invalid("%s needs annotations to set", req.Action)
	}
	k, err := kubeFor[namespaceAnnotator](a, req.Action)
	if err != nil {
		return kube.NamespaceMetadataResult{}, err
	}
	out, err := k.AnnotateNamespace(ctx, kube.NamespaceMetadataRequest{Namespace: in.Namespace, Values: in.Annotations, DryRun: req.DryRun})
	return out, kubeError(err)
}

func (a *Activities) restoreNamespaceAnnotations(ctx context.Context, in RestoreNamespaceAnnotationsParams, req ActionRequest) (kube.RestoreNamespaceMetadataResult, error) {
	if err := a.needNamespace(ctx, req.Action, in.NamespaceParams); err != nil {
		return kube.RestoreNamespaceMetadataResult{}, err
	}
	k, err := kubeFor[namespaceAnnotator](a, req.Action)
	if err != nil {
		return kube.RestoreNamespaceMetadataResult{}, err
	}
	out, err := k.RestoreNamespaceAnnotations(ctx, kube.RestoreNamespaceMetadataRequest{
		Namespace: in.Namespace, Set: in.Set, Previous: in.Previous, Added: in.Added, DryRun: req.DryRun,
	})
	return out, kubeError(err)
}
