// Package kube is soar's connector to the Kubernetes API: the response actions
// it takes on pods, nodes and workloads, and the inverse of each. It knows
// client-go and nothing of Temporal; activities translate its errors (see
// errors.go) into retry decisions.
//
// Every action re-reads its target right before writing and guards the write
// with the target's UID (and, where a concurrent change would make the write
// wrong, its resourceVersion), so a retry never lands on a namesake. Every
// action is idempotent: a second call with the same request finds the work
// done and writes nothing. Every request has DryRun, which sends each write as
// a server-side dry run (metav1.DryRunAll): the API server validates and
// admits it and stores nothing, and the result says what would have changed.
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Labels, annotations and names soar puts on the objects it creates or
// changes. Keys under ReservedPrefix are soar's bookkeeping: LabelPod and
// AnnotatePod refuse them.
const (
	// ReservedPrefix is the key prefix only soar itself writes.
	ReservedPrefix = "soar.dev/"
	// QuarantineLabel marks a pod quarantined by at least one incident; it is
	// a summary for people and tools (kubectl get pods -l soar.dev/quarantine).
	// The per-incident label (IncidentLabel) is what the policies select.
	QuarantineLabel = "soar.dev/quarantine"
	// QuarantineValue is the value of QuarantineLabel and of the per-incident
	// labels.
	QuarantineValue = "true"
	// LockedLabel marks a pod on the quarantine lock list (LockList): the
	// admission policy that locks pods selects it.
	LockedLabel = "soar.dev/locked"
	// IncidentAnnotation records, on a NetworkPolicy soar created, the
	// incident it belongs to. On pods the key is per incident
	// (PodIncidentAnnotation), since several incidents may hold one pod.
	IncidentAnnotation = "soar.dev/incident"
	// DetachedLabelsAnnotation records on a detached pod, as a JSON object,
	// the labels Quarantine removed to take it out of its ReplicaSet; Release
	// puts them back.
	DetachedLabelsAnnotation = "soar.dev/detached-labels"
	// CordonedByAnnotation names, on a node, the incident that cordoned it.
	CordonedByAnnotation = "soar.dev/cordoned-by"
	// PreviousReplicasAnnotation and ScaledByAnnotation record, on a workload
	// ScaleOwnerToZero scaled down, its replica count before and the incident.
	PreviousReplicasAnnotation = "soar.dev/previous-replicas"
	ScaledByAnnotation         = "soar.dev/scaled-by"
	// ManagedByLabel and ManagedByValue mark objects soar owns. ManagedByValue
	// is also soar's field manager.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "soar"
)

// Client performs soar's actions through one clientset.
type Client struct {
	cs kubernetes.Interface
	// locks, when set, is the quarantine lock list (WithLocks), and
	// controls the deployment-control list next to it.
	locks, controls *locker
	// limit is the client-side rate limit of cs, when NewForConfig made it.
	limit *limiter
	// probe asks the API server its version past limit (Reachable); nil:
	// cs's discovery client.
	probe rest.Interface
}

// New returns a Client using cs.
func New(cs kubernetes.Interface) *Client { return &Client{cs: cs} }

// Default client-side rate limits. client-go's own (5 QPS, burst 10) would turn
// a storm of 100 quarantines into a 40-second queue; the API server's priority
// and fairness protects it better than a client-side throttle does.
const (
	DefaultQPS   = 100
	DefaultBurst = 200
)

// RESTConfig loads the API server configuration: the kubeconfig file when one
// is named, otherwise the in-cluster service account, otherwise the default
// kubeconfig loading rules ($KUBECONFIG, ~/.kube/config). QPS and Burst are set
// to DefaultQPS and DefaultBurst.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	switch {
	case kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	default:
		cfg, err = rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("kube: load configuration: %w", err)
	}
	cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	cfg.UserAgent = "soar"
	return cfg, nil
}

// NewForConfig returns a Client for cfg. Its requests are limited to
// cfg.QPS and cfg.Burst as client-go would, by a limiter that also tells
// Quarantine when the budget runs short.
func NewForConfig(cfg *rest.Config) (*Client, error) {
	probe, err := discovery.NewDiscoveryClientForConfig(rest.CopyConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("kube: create discovery client: %w", err)
	}
	cfg, limit := withLimiter(cfg)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: create clientset: %w", err)
	}
	c := New(cs)
	c.limit, c.probe = limit, probe.RESTClient()
	return c, nil
}

// Reachable asks the API server its version with the client's credentials
// (and impersonation): it fails when the server cannot be reached, or
// refuses them (an expired or revoked token, impersonation no longer
// allowed). It goes past the client-side limit, so that a readiness probe
// does not queue behind a storm's quarantines, nor take their requests.
func (c *Client) Reachable(ctx context.Context) error {
	probe := c.probe
	if probe == nil {
		probe = c.cs.Discovery().RESTClient()
	}
	if probe == nil {
		return errors.New("kube: no client to ask the API server with") // a fake clientset's
	}
	if err := probe.Get().AbsPath("/version").Do(ctx).Error(); err != nil {
		return fmt.Errorf("the Kubernetes API server does not answer: %w", err)
	}
	return nil
}

// dryRunOption is the DryRun field of write options.
func dryRunOption(dryRun bool) []string {
	if dryRun {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// getPod re-reads a pod right before acting on it, so the action lands on the
// pod the alert named and not on a namesake. It fails with ErrPodNotFound, or
// with ErrTargetChanged when uid is set and differs from the live pod's.
func (c *Client) getPod(ctx context.Context, namespace, name, uid string) (*corev1.Pod, error) {
	pod, err := c.cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s/%s", ErrPodNotFound, namespace, name)
	}
	if err != nil {
		return nil, fmt.Errorf("kube: get pod %s/%s: %w", namespace, name, err)
	}
	if uid != "" && string(pod.UID) != uid {
		return nil, fmt.Errorf("%w: pod %s/%s has UID %s, the alert named %s", ErrTargetChanged, namespace, name, pod.UID, uid)
	}
	return pod, nil
}

// podConflict explains a 409 from a write guarded by the pod's UID. A failed
// UID precondition and an optimistic-lock conflict both come back as 409, so
// the pod is read again: gone is ErrPodNotFound, another UID is
// ErrTargetChanged, and the same pod means a concurrent writer, which a retry
// resolves (a plain error).
func (c *Client) podConflict(ctx context.Context, namespace, name string, uid types.UID, what string, conflict error) error {
	pod, err := c.cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %s/%s disappeared while soar tried to %s it", ErrPodNotFound, namespace, name, what)
	case err != nil:
		return fmt.Errorf("kube: %s pod %s/%s: %w", what, namespace, name, conflict)
	case pod.UID != uid:
		return fmt.Errorf("%w: pod %s/%s was replaced (UID %s, was %s) while soar tried to %s it", ErrTargetChanged, namespace, name, pod.UID, uid, what)
	default:
		return fmt.Errorf("kube: %s pod %s/%s: %w", what, namespace, name, conflict)
	}
}

// patchPodMetadata applies a JSON merge patch to the pod's labels and
// annotations (a nil value removes the key). The patch carries the pod's UID,
// so it cannot land on a replacement: the API server refuses to change a UID
// (see uidMismatch). It returns the pod as stored (or, in a dry run, as it would be
// stored). Errors wrap ErrPodNotFound or ErrTargetChanged where podConflict
// says so.
func (c *Client) patchPodMetadata(ctx context.Context, pod *corev1.Pod, labels, annotations map[string]any, what string, dryRun bool) (*corev1.Pod, error) {
	meta := map[string]any{"uid": pod.UID}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	if len(annotations) > 0 {
		meta["annotations"] = annotations
	}
	body, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return nil, fmt.Errorf("kube: encode patch to %s: %w", what, err)
	}
	got, err := c.cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, body,
		metav1.PatchOptions{FieldManager: ManagedByValue, DryRun: dryRunOption(dryRun)})
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%w: %s/%s disappeared while soar tried to %s it", ErrPodNotFound, pod.Namespace, pod.Name, what)
	case apierrors.IsConflict(err), uidMismatch(err):
		return nil, c.podConflict(ctx, pod.Namespace, pod.Name, pod.UID, what, err)
	case err != nil:
		return nil, writeError(fmt.Sprintf("%s pod %s/%s", what, pod.Namespace, pod.Name), err)
	}
	return got, nil
}

// uidMismatch reports whether err is the API server refusing a patch whose
// metadata.uid differs from the stored object's. Unlike a delete's
// Preconditions, a UID in a patch is not checked as a precondition (409): the
// patched object fails validation because the UID is immutable (422), naming
// the field metadata.uid. Either way the object was replaced since it was read.
func uidMismatch(err error) bool {
	if !apierrors.IsInvalid(err) {
		return false
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	for _, cause := range status.Status().Details.Causes {
		if cause.Field == "metadata.uid" {
			return true
		}
	}
	return false
}
