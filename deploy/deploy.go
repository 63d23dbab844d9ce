// Package deploy embeds soar's Kubernetes manifests, so that
// soar dev --local-kube installs the very files an operator applies with
// kustomize (see kustomization.yaml and README.md in this directory).
package deploy

import "embed"

// Manifests holds every YAML file of this directory.
//
//go:embed *.yaml
var Manifests embed.FS

// Namespace is the namespace kustomization.yaml puts soar's namespaced
// objects in, and PartOf the label it adds to every object.
const (
	Namespace = "soar"
	PartOf    = "app.kubernetes.io/part-of"
)
