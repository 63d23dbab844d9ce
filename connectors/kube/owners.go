package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// maxOwnerDepth bounds the walk up the ownerReferences, so that a cycle
// (which the garbage collector tolerates) cannot loop forever. Real chains
// are at most two deep (Pod → ReplicaSet → Deployment, Pod → Job → CronJob).
const maxOwnerDepth = 8

// Owner is one link of a pod's chain of controllers, nearest first.
type Owner struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	// Object is the owner as the API server stored it, as JSON; empty when it
	// could not be read (see Error).
	Object json.RawMessage `json:"object,omitempty"`
	// Error says why the chain ends at this reference without the object: a
	// kind OwnerChain does not read, an owner that no longer exists, or one
	// that was replaced by a namesake (another UID).
	Error string `json:"error,omitempty"`
}

// OwnerChain walks the controller ownerReferences up from pod (ReplicaSet,
// Deployment, StatefulSet, DaemonSet, Job, CronJob, ReplicationController)
// and returns the owners, nearest first; a pod without a controller has an
// empty chain. A reference of another kind, to an owner that does not exist
// or to one with another UID ends the chain: that last Owner names the
// reference and says why in Error. Other API errors (forbidden, unreachable)
// are returned with the owners read so far. It only reads.
func (c *Client) OwnerChain(ctx context.Context, pod *corev1.Pod) ([]Owner, error) {
	var chain []Owner
	ref := metav1.GetControllerOf(pod)
	for depth := 0; ref != nil; depth++ {
		o := Owner{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: string(ref.UID)}
		if depth == maxOwnerDepth {
			o.Error = fmt.Sprintf("chain longer than %d owners: not followed", maxOwnerDepth)
			return append(chain, o), nil
		}
		obj, err := c.getOwner(ctx, pod.Namespace, ref)
		switch {
		case errors.Is(err, errUnknownOwnerKind):
			o.Error = fmt.Sprintf("%s %s is not a kind soar reads", ref.APIVersion, ref.Kind)
			return append(chain, o), nil
		case apierrors.IsNotFound(err):
			o.Error = fmt.Sprintf("%s %s/%s does not exist", ref.Kind, pod.Namespace, ref.Name)
			return append(chain, o), nil
		case err != nil:
			return chain, fmt.Errorf("kube: get owner %s %s/%s: %w", ref.Kind, pod.Namespace, ref.Name, err)
		}
		meta, err := metaOf(obj)
		if err != nil {
			return chain, err
		}
		if meta.GetUID() != ref.UID {
			o.Error = fmt.Sprintf("%s %s/%s has UID %s, the reference names %s: the owner was replaced", ref.Kind, pod.Namespace, ref.Name, meta.GetUID(), ref.UID)
			return append(chain, o), nil
		}
		if o.Object, err = json.Marshal(obj); err != nil {
			return chain, fmt.Errorf("kube: encode owner %s %s/%s: %w", ref.Kind, pod.Namespace, ref.Name, err)
		}
		chain = append(chain, o)
		ref = metav1.GetControllerOfNoCopy(meta)
	}
	return chain, nil
}

// errUnknownOwnerKind is getOwner's answer for a kind it has no client for.
var errUnknownOwnerKind = errors.New("kube: unknown owner kind")

// getOwner reads the object ref names with the typed client of its kind (in
// the group's stable version, whatever version the reference names) and
// returns it with its TypeMeta set, so that its JSON names its kind.
func (c *Client) getOwner(ctx context.Context, namespace string, ref *metav1.OwnerReference) (runtime.Object, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, errUnknownOwnerKind
	}
	get := metav1.GetOptions{}
	var (
		obj     runtime.Object
		version schema.GroupVersion
	)
	switch (schema.GroupKind{Group: gv.Group, Kind: ref.Kind}) {
	case appsv1.SchemeGroupVersion.WithKind("ReplicaSet").GroupKind():
		obj, err = c.cs.AppsV1().ReplicaSets(namespace).Get(ctx, ref.Name, get)
		version = appsv1.SchemeGroupVersion
	case appsv1.SchemeGroupVersion.WithKind("Deployment").GroupKind():
		obj, err = c.cs.AppsV1().Deployments(namespace).Get(ctx, ref.Name, get)
		version = appsv1.SchemeGroupVersion
	case appsv1.SchemeGroupVersion.WithKind("StatefulSet").GroupKind():
		obj, err = c.cs.AppsV1().StatefulSets(namespace).Get(ctx, ref.Name, get)
		version = appsv1.SchemeGroupVersion
	case appsv1.SchemeGroupVersion.WithKind("DaemonSet").GroupKind():
		obj, err = c.cs.AppsV1().DaemonSets(namespace).Get(ctx, ref.Name, get)
		version = appsv1.SchemeGroupVersion
	case batchv1.SchemeGroupVersion.WithKind("Job").GroupKind():
		obj, err = c.cs.BatchV1().Jobs(namespace).Get(ctx, ref.Name, get)
		version = batchv1.SchemeGroupVersion
	case batchv1.SchemeGroupVersion.WithKind("CronJob").GroupKind():
		obj, err = c.cs.BatchV1().CronJobs(namespace).Get(ctx, ref.Name, get)
		version = batchv1.SchemeGroupVersion
	case corev1.SchemeGroupVersion.WithKind("ReplicationController").GroupKind():
		obj, err = c.cs.CoreV1().ReplicationControllers(namespace).Get(ctx, ref.Name, get)
		version = corev1.SchemeGroupVersion
	default:
		return nil, errUnknownOwnerKind
	}
	if err != nil {
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(version.WithKind(ref.Kind))
	return obj, nil
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("kube: %T has no object metadata", obj)
	}
	return m, nil
}
