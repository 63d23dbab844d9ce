package kube

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// PodIndex knows which pods exist in one cluster: the names of all its pods,
// from a watch of their metadata, kept in memory (about 200 bytes a pod:
// the name, namespace and UID, nothing else). The dispatcher asks it, under
// a flood of alerts for pods that do not exist, which alerts are for real
// pods (dispatch.Config.Pods). It needs list and watch on pods
// (deploy/dispatch-rbac.yaml).
type PodIndex struct {
	informer cache.SharedIndexInformer
}

var podsResource = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// NewPodIndex returns an index of the pods cfg's cluster holds; Run fills it.
func NewPodIndex(cfg *rest.Config) (*PodIndex, error) {
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: pod index: %w", err)
	}
	// No resync: the watch keeps it current, and a resync would only
	// replay the cache to handlers it does not have.
	inf := metadatainformer.NewFilteredMetadataInformer(mc, podsResource, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	// Keep what a name lookup needs: labels, annotations, owners and
	// managed fields would multiply the memory by ten on a busy cluster.
	if err := inf.SetTransform(func(obj any) (any, error) {
		m, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			return obj, nil // a tombstone: the informer handles it
		}
		return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
			Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		}}, nil
	}); err != nil {
		return nil, fmt.Errorf("kube: pod index: %w", err)
	}
	return &PodIndex{informer: inf}, nil
}

// Run lists and watches the pods until ctx ends. It returns at once; the
// index answers Exists only once the first list arrived.
func (p *PodIndex) Run(ctx context.Context) {
	go p.informer.RunWithContext(ctx)
}

// WaitSynced waits until the index holds the first list, or timeout.
func (p *PodIndex) WaitSynced(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), p.informer.HasSynced) {
		return fmt.Errorf("kube: pod index: no list of the cluster's pods within %s", timeout)
	}
	return nil
}

// Exists reports whether the pod namespace/name exists, as far as the
// watch has told; known is false until the first list arrived, when the
// index cannot tell.
func (p *PodIndex) Exists(namespace, name string) (exists, known bool) {
	if !p.informer.HasSynced() {
		return false, false
	}
	_, exists, err := p.informer.GetIndexer().GetByKey(namespace + "/" + name)
	return exists && err == nil, err == nil
}
