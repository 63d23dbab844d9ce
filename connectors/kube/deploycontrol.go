// RBAC for BlockImages, UnblockImages, FreezeNamespace, UnfreezeNamespace:
//   - "" pods: get (BlockImages)
//   - "" namespaces: get (FreezeNamespace)
//   - the lock list (lock.go)

package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImageKey is the internal key of a blocked image reference: "image_" and
// the reference with "_" written "_u", "/" "_s", ":" "_c" and "@" "_a", so
// no two references share a key. (The ConfigMap holds compactControls'
// form.)
func ImageKey(ref string) string {
	r := strings.NewReplacer("_", "_u", "/", "_s", ":", "_c", "@", "_a")
	return "image_" + r.Replace(ref)
}

func decodeImageKey(key string) string {
	r := strings.NewReplacer("_u", "_", "_s", "/", "_c", ":", "_a", "@")
	return r.Replace(strings.TrimPrefix(key, "image_"))
}

// tableSeparators are what compactControls' lines are split by; no
// reference, namespace or incident ID in them may hold one.
const tableSeparators = " \n\t,"

// tableSafeID refuses an incident ID compactControls could not store.
func tableSafeID(incident string) error {
	if strings.ContainsAny(incident, tableSeparators) {
		return fmt.Errorf("%w: incident ID %q holds a space, comma or newline", ErrInvalidInput, incident)
	}
	return nil
}

// maxImageRef bounds a blocked reference.
const maxImageRef = 1024

// FreezeKey is the internal key of a frozen namespace.
func FreezeKey(namespace string) string { return "freeze_" + namespace }

// BlockImageRequest names the pod whose images an incident blocks.
type BlockImageRequest struct {
	Namespace, Pod, PodUID, Incident string
	DryRun                           bool
}

// BlockImageResult says which image references are blocked.
type BlockImageResult struct {
	Namespace string   `json:"namespace" doc:"namespace of the pod"`
	Pod       string   `json:"pod" doc:"name of the pod"`
	PodUID    string   `json:"podUID" doc:"UID of the pod whose images were blocked"`
	Images    []string `json:"images" doc:"the image references blocked: each container's image as its spec writes it, and its digest form (repository@sha256:…) from the pod's status"`
	Skipped   []string `json:"skipped,omitempty" doc:"references not blocked: longer than 1,024 characters, or holding a space or comma"`
	DryRun    bool     `json:"dryRun,omitempty" doc:"true in plan mode: the list was only written as a server-side dry run"`
}

// BlockImages puts the pod's images on the lock list for the incident: the
// admission policy then refuses any Pod, or any workload whose pod template,
// that uses one of them, until UnblockImages. It blocks each container's
// (and init container's) image as written, and the digest form the kubelet
// reported in the pod's status.
func (c *Client) BlockImages(ctx context.Context, req BlockImageRequest) (BlockImageResult, error) {
	res := BlockImageResult{Namespace: req.Namespace, Pod: req.Pod, DryRun: req.DryRun}
	if err := requireFields("block images", "namespace", req.Namespace, "pod", req.Pod, "incident", req.Incident); err != nil {
		return res, err
	}
	pod, err := c.getPod(ctx, req.Namespace, req.Pod, req.PodUID)
	if err != nil {
		return res, err
	}
	res.PodUID = string(pod.UID)
	if err := tableSafeID(req.Incident); err != nil {
		return res, err
	}
	var ops []*lockOp
	for _, ref := range podImages(pod) {
		if strings.ContainsAny(ref, tableSeparators) || len(ref) > maxImageRef {
			res.Skipped = append(res.Skipped, ref)
			continue
		}
		res.Images = append(res.Images, ref)
		ops = append(ops, &lockOp{key: ImageKey(ref), incident: req.Incident, lock: true})
	}
	if len(ops) == 0 {
		return res, fmt.Errorf("%w: pod %s/%s has no image reference soar can block", ErrInvalidInput, req.Namespace, req.Pod)
	}
	return res, c.changeList(ctx, ops, req.DryRun)
}

// podImages returns the pod's image references, as its spec writes them
// and in digest form from its status, without repeats.
func podImages(pod *corev1.Pod) []string {
	var refs []string
	add := func(ref string) {
		if ref != "" && !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		add(c.Image)
	}
	for _, s := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
		// Runtimes report "repo@sha256:…", some with a scheme in front
		// (docker-pullable://); a bare "sha256:…" is an image ID, not a
		// reference a pod spec could use.
		id := s.ImageID
		if i := strings.Index(id, "://"); i >= 0 {
			id = id[i+3:]
		}
		if strings.Contains(id, "@sha256:") {
			add(id)
		}
	}
	return refs
}

// UnblockImages takes every image the incident blocked off the list. Other
// incidents' blocks of the same images stay.
func (c *Client) UnblockImages(ctx context.Context, incident string, dryRun bool) error {
	if err := requireFields("unblock images", "incident", incident); err != nil {
		return err
	}
	return c.changeList(ctx, []*lockOp{{prefix: "image_", incident: incident}}, dryRun)
}

// FreezeResult says which namespace is frozen.
type FreezeResult struct {
	Namespace string `json:"namespace" doc:"the namespace"`
	DryRun    bool   `json:"dryRun,omitempty" doc:"true in plan mode: the list was only written as a server-side dry run"`
}

// FreezeNamespace puts the namespace on the lock list for the incident: the
// admission policy then refuses new and changed workloads and bare pods
// there, but for soar's worker, Kubernetes' own controllers and the
// break-glass group, until UnfreezeNamespace.
func (c *Client) FreezeNamespace(ctx context.Context, namespace, incident string, dryRun bool) (FreezeResult, error) {
	res := FreezeResult{Namespace: namespace, DryRun: dryRun}
	if err := requireFields("freeze namespace", "namespace", namespace, "incident", incident); err != nil {
		return res, err
	}
	if err := tableSafeID(incident); err != nil {
		return res, err
	}
	if _, err := c.cs.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return res, fmt.Errorf("%w: %s", ErrNamespaceNotFound, namespace)
	} else if err != nil {
		return res, fmt.Errorf("kube: get namespace %s: %w", namespace, err)
	}
	return res, c.changeList(ctx, []*lockOp{{key: FreezeKey(namespace), incident: incident, lock: true}}, dryRun)
}

// UnfreezeNamespace takes the incident's freeze of the namespace off the
// list; another incident's freeze stays.
func (c *Client) UnfreezeNamespace(ctx context.Context, namespace, incident string, dryRun bool) (FreezeResult, error) {
	res := FreezeResult{Namespace: namespace, DryRun: dryRun}
	if err := requireFields("unfreeze namespace", "namespace", namespace, "incident", incident); err != nil {
		return res, err
	}
	return res, c.changeList(ctx, []*lockOp{{key: FreezeKey(namespace), incident: incident, lock: false}}, dryRun)
}

// changeList writes ops through the coalescing writer, or, in a dry run,
// sends the list's update as a server-side dry run.
func (c *Client) changeList(ctx context.Context, ops []*lockOp, dryRun bool) error {
	l := c.controls
	if l == nil {
		return fmt.Errorf("%w: no lock list is configured (the worker's --lock-list)", ErrInvalidInput)
	}
	if dryRun {
		return c.updateLocks(ctx, l, ops, true)
	}
	return c.writeLock(ctx, l, ops...)
}
