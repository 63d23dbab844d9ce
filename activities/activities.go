// Package activities holds soar's Temporal activities: the only code in a
// response that touches the outside world. Each activity is a method on
// Activities, whose fields are the connectors it needs; workflows call them
// through a nil *Activities, or by an action's name, so that workflow code
// never holds a client.
//
// Every action a playbook step can run lives in one file,
// activities/<action>.go: its name, its typed input and output (whose tags
// document them), its destructiveness, inverse, RBAC and the method that runs
// it, bound together by Define. catalogue.go lists them; nothing else
// registers an action.
//
// Activities translate connector errors into Temporal semantics: an error that
// retrying cannot fix is returned as a non-retryable ApplicationError whose
// type (the ErrType constants) workflows can branch on.
package activities

import (
	"slices"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/tickets"
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
// disrupting them can take down the cluster, or turn soar against what it
// stands on. Besides Kubernetes' own, they are the namespaces the Helm
// charts of soar, Temporal, NATS, Falco and ingress-nginx install into by
// convention; soar's actual namespace (POD_NAMESPACE) and
// --protected-namespaces are added at start. An alert is written by whoever
// controls a pod, so a name like "coredns" in kube-system is exactly what an
// attacker would try.
var DefaultProtectedNamespaces = []string{
	"kube-system", "kube-public", "kube-node-lease",
	"soar", "soar-system",
	"temporal", "temporal-system",
	"nats", "nats-system",
	"falco", "falco-system",
	"ingress-nginx",
}

// Activities is registered once with the worker.
type Activities struct {
	// Kube is the Kubernetes connector, *kube.Client. Each action asserts
	// the small interface it needs of it (declared in the action's file and
	// checked against *kube.Client when soar compiles); a connector that
	// lacks one fails that action's steps, saying so.
	Kube any
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
	// Cluster is the cluster Kube reaches, for a worker of one cluster
	// (soar worker --cluster): evidence manifests name it.
	Cluster string
	// TaskQueues answers ClusterCheck: Temporal's client, which can describe
	// a task queue. Nil fails every check, retryably.
	TaskQueues TaskQueueDescriber
	// clusterChecks remembers ClusterCheck's recent answers.
	clusterChecks clusterChecks

	// nsLabels remembers which namespaces carry ProtectedLabel; nsReads
	// makes concurrent misses share one read.
	nsLabels sync.Map
	nsReads  singleflight.Group
}

func (a *Activities) protected(namespace string) bool {
	return slices.Contains(a.ProtectedNamespaces, namespace)
}
