// Package activities holds soar's Temporal activities: the only code in a
// response that touches the outside world. Each activity is a method on
// Activities, whose fields are the connectors it needs; workflows call them
// through a nil *Activities so that workflow code never holds a client.
//
// Activities translate connector errors into Temporal semantics: an error that
// retrying cannot fix is returned as a non-retryable ApplicationError whose
// type (the ErrType constants) workflows can branch on.
package activities

import (
	"context"
	"slices"

	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/connectors/tickets"
)

// Action names as playbooks write them in a step's "action".
const (
	ActionAnnotatePod        = "kubernetes.annotate_pod"
	ActionCordonNode         = "kubernetes.cordon_node"
	ActionDeletePod          = "kubernetes.delete_pod"
	ActionEvictPod           = "kubernetes.evict_pod"
	ActionLabelPod           = "kubernetes.label_pod"
	ActionQuarantine         = "kubernetes.quarantine"
	ActionRelease            = "kubernetes.release"
	ActionRestoreAnnotations = "kubernetes.restore_annotations"
	ActionRestoreLabels      = "kubernetes.restore_labels"
	ActionRestoreScale       = "kubernetes.restore_scale"
	ActionScaleToZero        = "kubernetes.scale_to_zero"
	ActionSnapshot           = "kubernetes.snapshot"
	ActionUncordonNode       = "kubernetes.uncordon_node"
)

// Error types of non-retryable ApplicationErrors returned by activities.
const (
	ErrTypeProtectedNamespace = "ProtectedNamespace"
	ErrTypeTargetNotFound     = "TargetNotFound"
	ErrTypeTargetChanged      = "TargetChanged"
	ErrTypeForbidden          = "Forbidden"
	ErrTypeInvalidRequest     = "InvalidRequest"
	// ErrTypeNamespaceTerminating: the namespace is being deleted, so
	// nothing new can be created in it.
	ErrTypeNamespaceTerminating = "NamespaceTerminating"
	// ErrTypeUnsupportedOwner: the action cannot handle the pod's owner
	// (detach or scale of a DaemonSet, a Job, a bare pod).
	ErrTypeUnsupportedOwner = "UnsupportedOwner"
	// ErrTypeNotScheduled: the pod has no node yet.
	ErrTypeNotScheduled = "NotScheduled"
	// ErrTypeCheckpointUnsupported: the node's kubelet or runtime cannot
	// checkpoint containers.
	ErrTypeCheckpointUnsupported = "CheckpointUnsupported"
	// ErrTypeKubernetesAPI marks a retryable failure of the Kubernetes API
	// (unreachable, timed out, throttled, conflict, internal error); it ends
	// a step only when the step's retries or timeout run out.
	ErrTypeKubernetesAPI = "KubernetesAPI"
	// ErrTypeDisruptionBudget: a PodDisruptionBudget forbids the eviction
	// for now; retried.
	ErrTypeDisruptionBudget = "DisruptionBudget"
	// ErrTypeEvidenceStore: the evidence store refused the bundle for a
	// reason retrying cannot fix (bucket missing, access denied).
	ErrTypeEvidenceStore = "EvidenceStore"
)

// DefaultProtectedNamespaces are never acted on, whatever a playbook says:
// disrupting them can take down the cluster or soar itself.
var DefaultProtectedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// Kube is what the actions need from the Kubernetes connector
// (*kube.Client).
type Kube interface {
	Quarantine(ctx context.Context, req kube.QuarantineRequest) (kube.QuarantineResult, error)
	Release(ctx context.Context, req kube.ReleaseRequest) (kube.ReleaseResult, error)
	DeletePod(ctx context.Context, req kube.DeletePodRequest) (kube.DeletePodResult, error)
	EvictPod(ctx context.Context, req kube.EvictPodRequest) (kube.EvictPodResult, error)
	LabelPod(ctx context.Context, req kube.MetadataRequest) (kube.MetadataResult, error)
	AnnotatePod(ctx context.Context, req kube.MetadataRequest) (kube.MetadataResult, error)
	RestorePodLabels(ctx context.Context, req kube.RestoreMetadataRequest) (kube.RestoreMetadataResult, error)
	RestorePodAnnotations(ctx context.Context, req kube.RestoreMetadataRequest) (kube.RestoreMetadataResult, error)
	Cordon(ctx context.Context, req kube.CordonRequest) (kube.CordonResult, error)
	Uncordon(ctx context.Context, req kube.UncordonRequest) (kube.UncordonResult, error)
	ScaleOwnerToZero(ctx context.Context, req kube.ScaleRequest) (kube.ScaleResult, error)
	RestoreScale(ctx context.Context, req kube.RestoreScaleRequest) (kube.RestoreScaleResult, error)
	CollectSnapshot(ctx context.Context, req kube.SnapshotRequest) (kube.Snapshot, error)
}

// Activities is registered once with the worker.
type Activities struct {
	Kube Kube
	// Evidence stores snapshot bundles.
	Evidence evidence.Store
	// Collector identifies who collected evidence, in every manifest: the
	// soar version and the worker's identity.
	Collector evidence.Collector
	// ProtectedNamespaces are refused by every Kubernetes action. The worker
	// fills it with DefaultProtectedNamespaces, soar's own namespace and the
	// operator's list.
	ProtectedNamespaces []string
	// Slack posts incident threads and approval requests; its zero value
	// means no Slack.
	Slack SlackConfig
	// Tickets opens and updates incident tickets; nil means none, and
	// ticket steps skip with a reason.
	Tickets tickets.Provider
	// IncidentURL, followed by an incident ID, is the incident's page in
	// the Temporal UI; tickets link to it. Empty means no link.
	IncidentURL string
}

func (a *Activities) protected(namespace string) bool {
	return slices.Contains(a.ProtectedNamespaces, namespace)
}
