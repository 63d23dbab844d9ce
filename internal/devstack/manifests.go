package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// ManifestOptions says which manifests InstallManifests applies, and how.
type ManifestOptions struct {
	// FS holds the files, Files names them.
	FS    fs.FS
	Files []string
	// Namespace is set on namespaced objects that name none, and Labels
	// added to every object: what a kustomization's namespace and labels
	// do.
	Namespace string
	Labels    map[string]string
	// FieldManager owns what InstallManifests applies.
	FieldManager string
}

// manifestKind is one kind of object InstallManifests knows: where it lives
// in the API, and when it is applied.
type manifestKind struct {
	resource   schema.GroupVersionResource
	namespaced bool
	// rank orders the objects: namespaces first; then what policies read
	// (a lock list missing when its policy binds would fail closed) and
	// RBAC; then policies; then the bindings that put them in force.
	rank int
	// keep means created when missing and never changed after: a list
	// that soar or an operator writes, which applying the manifest again
	// must not empty.
	keep bool
}

// manifestKinds are the kinds soar's manifests that soar dev installs
// hold. Any other kind is an error, so that a manifest gaining one fails a
// test rather than being skipped.
var manifestKinds = map[string]manifestKind{
	"Namespace":                        {resource: schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}},
	"ServiceAccount":                   {resource: schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, namespaced: true, rank: 1},
	"ConfigMap":                        {resource: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, namespaced: true, rank: 1, keep: true},
	"ClusterRole":                      {resource: rbac("clusterroles"), rank: 1},
	"ClusterRoleBinding":               {resource: rbac("clusterrolebindings"), rank: 1},
	"Role":                             {resource: rbac("roles"), namespaced: true, rank: 1},
	"RoleBinding":                      {resource: rbac("rolebindings"), namespaced: true, rank: 1},
	"ValidatingAdmissionPolicy":        {resource: admission("validatingadmissionpolicies"), rank: 2},
	"ValidatingAdmissionPolicyBinding": {resource: admission("validatingadmissionpolicybindings"), rank: 3},
}

func rbac(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: resource}
}

func admission(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: resource}
}

// manifestObject is one object of a manifest file.
type manifestObject struct {
	file string
	kind manifestKind
	obj  *unstructured.Unstructured
}

func (o manifestObject) String() string {
	name := o.obj.GetName()
	if ns := o.obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s %s (%s)", o.obj.GetKind(), name, o.file)
}

// InstallManifests applies the objects of opts.Files to the cluster of cfg,
// in the order of manifestKind.rank, with server-side apply: applying the
// same files again changes nothing, and a file's change is applied. A
// ConfigMap is created when missing and otherwise left as it is. It
// returns how many objects it applied.
func InstallManifests(ctx context.Context, cfg *rest.Config, opts ManifestOptions) (int, error) {
	var objs []manifestObject
	for _, file := range opts.Files {
		got, err := readManifest(opts, file)
		if err != nil {
			return 0, err
		}
		objs = append(objs, got...)
	}
	slices.SortStableFunc(objs, func(a, b manifestObject) int { return a.kind.rank - b.kind.rank })
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	for _, o := range objs {
		if err := applyObject(ctx, dc, o, opts.FieldManager); err != nil {
			return 0, fmt.Errorf("install %s: %w", o, err)
		}
	}
	return len(objs), nil
}

// readManifest decodes the objects of one file.
func readManifest(opts ManifestOptions, file string) ([]manifestObject, error) {
	raw, err := fs.ReadFile(opts.FS, file)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var objs []manifestObject
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(m) == 0 {
			continue // a document of comments only
		}
		obj := &unstructured.Unstructured{Object: m}
		kind, ok := manifestKinds[obj.GetKind()]
		if !ok {
			return nil, fmt.Errorf("%s: %s %s: not a kind soar dev installs", file, obj.GetKind(), obj.GetName())
		}
		if gv := kind.resource.GroupVersion().String(); obj.GetAPIVersion() != gv {
			return nil, fmt.Errorf("%s: %s %s: apiVersion %s, want %s", file, obj.GetKind(), obj.GetName(), obj.GetAPIVersion(), gv)
		}
		if kind.namespaced && obj.GetNamespace() == "" {
			obj.SetNamespace(opts.Namespace)
		}
		if len(opts.Labels) > 0 {
			labels := obj.GetLabels()
			if labels == nil {
				labels = map[string]string{}
			}
			for k, v := range opts.Labels {
				labels[k] = v
			}
			obj.SetLabels(labels)
		}
		objs = append(objs, manifestObject{file: file, kind: kind, obj: obj})
	}
}

// applyObject applies o, or creates it when o.kind.keep says so.
func applyObject(ctx context.Context, dc dynamic.Interface, o manifestObject, fieldManager string) error {
	var r dynamic.ResourceInterface = dc.Resource(o.kind.resource)
	if o.kind.namespaced {
		r = dc.Resource(o.kind.resource).Namespace(o.obj.GetNamespace())
	}
	if o.kind.keep {
		_, err := r.Create(ctx, o.obj, metav1.CreateOptions{FieldManager: fieldManager})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	_, err := r.Apply(ctx, o.obj.GetName(), o.obj, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
	return err
}
