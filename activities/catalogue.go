package activities

import (
	"slices"
	"sort"
	"time"
)

// Action describes one action a playbook step can run: what it takes, what it
// returns, what it needs from Kubernetes, and how to undo it. Playbooks are
// checked against it at load, 'soar actions list' prints it, and the RBAC in
// deploy/ is tested against its permissions.
type Action struct {
	Name    string  `json:"name"`
	Summary string  `json:"summary"`
	Params  []Param `json:"params"`
	Output  []Field `json:"output"`
	// Destructive actions stop a workload or destroy what evidence it holds,
	// even when an inverse can start it again. A playbook step running one
	// needs an approval step before it (or withoutApproval: true).
	Destructive bool `json:"destructive"`
	// Inverse names the action that undoes this one, when there is one.
	Inverse string `json:"inverse,omitempty"`
	// InverseOf names the action this one undoes, when it only exists to
	// undo it: such actions run on release and are not written in steps.
	InverseOf string `json:"inverseOf,omitempty"`
	// Attempt bounds one attempt of the action when the step sets no
	// timeout; zero means the workflow's default (30s).
	Attempt time.Duration `json:"attempt,omitempty"`
	// RetryFor bounds all attempts when the step sets no timeout; zero
	// means the workflow's default (five minutes). Ticket actions wait
	// longer for an outage to end.
	RetryFor time.Duration `json:"retryFor,omitempty"`
	// Role is the deploy/ ClusterRole that grants its permissions.
	Role string `json:"role"`
	// Permissions are the Kubernetes RBAC rules the worker needs for it.
	Permissions []Permission `json:"permissions"`
}

// Param is one parameter of an action, set in a step's "with".
type Param struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Required bool   `json:"required"`
	// Default says what an unset parameter means.
	Default string `json:"default,omitempty"`
	// FromAlert names the field of the alert's kubernetes section that fills
	// the parameter when the step leaves it out (namespace, pod, podUID).
	FromAlert string `json:"fromAlert,omitempty"`
	Doc       string `json:"doc"`
}

// Field is one field of an action's output, as later steps and the incident
// see it.
type Field struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Doc  string `json:"doc"`
}

// Permission is one RBAC rule: verbs on a resource of an API group ("" is the
// core group).
type Permission struct {
	Group    string   `json:"group"`
	Resource string   `json:"resource"`
	Verbs    []string `json:"verbs"`
}

// Roles a permission is granted through, as ClusterRoles in deploy/rbac.yaml.
const (
	// RoleResponder holds what containment needs: pods, policies, nodes,
	// workloads.
	RoleResponder = "responder"
	// RoleEvidence holds what the snapshot needs, notably nodes/proxy for
	// logs and checkpoints, which reaches every kubelet's API: operators may
	// grant it separately, or not at all.
	RoleEvidence = "evidence"
	// RoleNone: the action needs nothing from Kubernetes (Slack).
	RoleNone = "none"
)

// pod parameters shared by every pod action, defaulted from the alert.
var podParams = []Param{
	{Name: "namespace", Type: "string", Default: "the alert's namespace", FromAlert: "namespace", Doc: "namespace of the pod"},
	{Name: "pod", Type: "string", Default: "the alert's pod", FromAlert: "pod", Doc: "name of the pod"},
	{Name: "podUID", Type: "string", Default: "the alert's pod UID, if any", FromAlert: "podUID", Doc: "when set, the live pod must have this UID, or the step fails with TargetChanged"},
}

func withPod(extra ...Param) []Param { return append(slices.Clone(podParams), extra...) }

var podOutput = []Field{
	{Name: "namespace", Type: "string", Doc: "namespace of the pod"},
	{Name: "pod", Type: "string", Doc: "name of the pod"},
	{Name: "podUID", Type: "string", Doc: "UID of the pod acted on"},
}

func outputs(extra ...Field) []Field { return append(slices.Clone(podOutput), extra...) }

var dryRunField = Field{Name: "dryRun", Type: "bool", Doc: "true in plan mode: nothing was stored; the other fields say what would have changed"}

var gracePeriod = Param{Name: "gracePeriodSeconds", Type: "int", Default: "the pod's terminationGracePeriodSeconds", Doc: "seconds the containers get to stop; 0 kills at once"}

// Catalogue returns every action the worker runs, sorted by name.
func Catalogue() []Action {
	return []Action{
		{
			Name:    ActionAnnotatePod,
			Summary: "Set annotations on one pod, recording the values they replace.",
			Params:  withPod(Param{Name: "annotations", Type: "map", Required: true, Doc: "annotation names and values to set; names under soar.dev/ are reserved"}),
			Output: outputs(
				Field{Name: "set", Type: "map", Doc: "the annotations now set"},
				Field{Name: "previous", Type: "map", Doc: "annotations that had another value before, with that value"},
				Field{Name: "added", Type: "list", Doc: "annotations that were absent before"},
				Field{Name: "changed", Type: "bool", Doc: "whether anything was written"},
				dryRunField),
			Inverse: ActionRestoreAnnotations,
			Role:    RoleResponder,
			Permissions: []Permission{
				{Group: "", Resource: "pods", Verbs: []string{"get", "patch"}},
			},
		},
		{
			Name:    ActionCordonNode,
			Summary: "Mark a node unschedulable, so no new pod lands next to a compromised one.",
			Params: withPod(
				Param{Name: "node", Type: "string", Default: "the node the pod runs on, read from the pod (not from the alert)", Doc: "name of the node to cordon instead"}),
			Output: []Field{
				{Name: "node", Type: "string", Doc: "the node"},
				{Name: "nodeUID", Type: "string", Doc: "UID of the node"},
				{Name: "cordoned", Type: "bool", Doc: "whether this step cordoned it (false: it was unschedulable already, and uncordon leaves it so)"},
				{Name: "wasUnschedulable", Type: "bool", Doc: "whether the node was unschedulable before"},
				dryRunField,
			},
			Inverse: ActionUncordonNode,
			Role:    RoleResponder,
			Permissions: []Permission{
				{Group: "", Resource: "pods", Verbs: []string{"get"}},
				{Group: "", Resource: "nodes", Verbs: []string{"get", "patch"}},
			},
		},
		{
			Name:        ActionDeletePod,
			Summary:     "Delete one pod, with a grace period. Its controller, if any, starts a replacement.",
			Params:      withPod(gracePeriod),
			Output:      outputs(Field{Name: "deleted", Type: "bool", Doc: "whether this step deleted it"}, Field{Name: "alreadyGone", Type: "bool", Doc: "the pod was already gone or terminating"}, Field{Name: "gracePeriodSeconds", Type: "int", Doc: "the grace period asked for, if any"}, dryRunField),
			Destructive: true,
			Role:        RoleResponder,
			Permissions: []Permission{
				{Group: "", Resource: "pods", Verbs: []string{"delete", "get"}},
			},
		},
		{
			Name:        ActionEvictPod,
			Summary:     "Evict one pod through the Eviction API, which respects PodDisruptionBudgets; a budget that forbids it is retried with backoff.",
			Params:      withPod(gracePeriod),
			Output:      outputs(Field{Name: "evicted", Type: "bool", Doc: "whether this step evicted it"}, Field{Name: "alreadyGone", Type: "bool", Doc: "the pod was already gone or terminating"}, dryRunField),
			Destructive: true,
			Role:        RoleResponder,
			Permissions: []Permission{
				{Group: "", Resource: "pods", Verbs: []string{"get"}},
				{Group: "", Resource: "pods/eviction", Verbs: []string{"create"}},
			},
		},
		{
			Name:    ActionLabelPod,
			Summary: "Set labels on one pod, recording the values they replace.",
			Params:  withPod(Param{Name: "labels", Type: "map", Required: true, Doc: "label names and values to set; names under soar.dev/ are reserved"}),
			Output: outputs(
				Field{Name: "set", Type: "map", Doc: "the labels now set"},
				Field{Name: "previous", Type: "map", Doc: "labels that had another value before, with that value"},
				Field{Name: "added", Type: "list", Doc: "labels that were absent before"},
				Field{Name: "changed", Type: "bool", Doc: "whether anything was written"},
				dryRunField),
			Inverse: ActionRestoreLabels,
			Role:    RoleResponder,
			Permissions: []Permission{
				{Group: "", Resource: "pods", Verbs: []string{"get", "patch"}},
			},
		},
		{
			Name:    ActionQuarantine,
			Summary: "Isolate one pod: label it and ensure a deny-all ingress and egress NetworkPolicy of the incident selects it; optionally detach it from its ReplicaSet.",
			Params: withPod(Param{Name: "detach", Type: "bool", Default: "false",
				Doc: "also remove the labels its ReplicaSet selects it by, so the controller starts a clean replacement while the suspect pod is kept for forensics"}),
			Output: outputs(
				Field{Name: "label", Type: "string", Doc: "the label now on the pod (soar.dev/quarantine=true)"},
				Field{Name: "labeled", Type: "bool", Doc: "whether this step added the label (false: it was already there)"},
				Field{Name: "policy", Type: "string", Doc: "name of the incident's deny-all NetworkPolicy"},
				Field{Name: "policyCreated", Type: "bool", Doc: "whether this step created the policy"},
				Field{Name: "policyRepaired", Type: "bool", Doc: "whether this step restored a policy whose spec had been changed"},
				Field{Name: "detached", Type: "bool", Doc: "whether this step detached the pod from its owner (false on a repeat: detachedLabels says it is)"},
				Field{Name: "detachedLabels", Type: "map", Doc: "the labels removed to detach it, restored on release"},
				Field{Name: "owner", Type: "string", Doc: "the owner it was detached from (ReplicaSet/name)"},
				Field{Name: "detachSkipped", Type: "string", Doc: "why a pod asked to be detached was quarantined without it (a bare pod, a StatefulSet's pod)"},
				Field{Name: "otherPolicies", Type: "list", Doc: "other NetworkPolicies that select the pod: they may still allow it traffic, since policies only add allows"},
				dryRunField),
			Inverse: ActionRelease,
			Role:    RoleResponder,
			Permissions: []Permission{
				{Group: "", Resource: "pods", Verbs: []string{"get", "patch"}},
				{Group: "", Resource: "replicationcontrollers", Verbs: []string{"get"}},
				{Group: "apps", Resource: "replicasets", Verbs: []string{"get"}},
				{Group: "networking.k8s.io", Resource: "networkpolicies", Verbs: []string{"create", "get", "list", "update"}},
			},
		},
		{
			Name:    ActionRelease,
			Summary: "Undo a quarantine: remove the incident's label, restore detached labels once no other incident holds the pod, and delete the incident's policy once no pod needs it.",
			Params:  podParams,
			Output: outputs(
				Field{Name: "unlabeled", Type: "bool", Doc: "whether this step removed the incident's label"},
				Field{Name: "labelsRestored", Type: "map", Doc: "detached labels put back"},
				Field{Name: "markerRemoved", Type: "bool", Doc: "whether soar.dev/quarantine was removed (no other incident holds the pod)"},
				Field{Name: "stillQuarantinedBy", Type: "list", Doc: "other incidents that still hold the pod"},
				Field{Name: "policyDeleted", Type: "bool", Doc: "whether the incident's policy was deleted"},
				Field{Name: "podGone", Type: "bool", Doc: "the pod no longer exists (the policy is still cleaned up)"},
				Field{Name: "podReplaced", Type: "bool", Doc: "the pod was replaced by a namesake, which was left alone"},
				dryRunField),
			Role: RoleResponder,
			Permissions: []Permission{
				{Group: "", Resource: "pods", Verbs: []string{"get", "list", "patch"}},
				{Group: "networking.k8s.io", Resource: "networkpolicies", Verbs: []string{"delete"}},
			},
		},
		{
			Name:        ActionRestoreAnnotations,
			Summary:     "Undo annotate_pod: put back the values it replaced and remove the ones it added, unless someone changed them since.",
			Params:      podParams,
			Output:      restoreOutput,
			InverseOf:   ActionAnnotatePod,
			Role:        RoleResponder,
			Permissions: []Permission{{Group: "", Resource: "pods", Verbs: []string{"get", "patch"}}},
		},
		{
			Name:        ActionRestoreLabels,
			Summary:     "Undo label_pod: put back the values it replaced and remove the ones it added, unless someone changed them since.",
			Params:      podParams,
			Output:      restoreOutput,
			InverseOf:   ActionLabelPod,
			Role:        RoleResponder,
			Permissions: []Permission{{Group: "", Resource: "pods", Verbs: []string{"get", "patch"}}},
		},
		{
			Name:    ActionRestoreScale,
			Summary: "Undo scale_to_zero: scale the workload back to its recorded replicas, unless someone scaled it since.",
			Params: []Param{
				{Name: "namespace", Type: "string", Required: true, Doc: "namespace of the workload"},
				{Name: "kind", Type: "string", Required: true, Doc: "Deployment, StatefulSet or ReplicaSet"},
				{Name: "name", Type: "string", Required: true, Doc: "name of the workload"},
			},
			Output: []Field{
				{Name: "namespace", Type: "string", Doc: "namespace of the workload"},
				{Name: "kind", Type: "string", Doc: "its kind"},
				{Name: "name", Type: "string", Doc: "its name"},
				{Name: "replicas", Type: "int", Doc: "the replicas restored"},
				{Name: "restored", Type: "bool", Doc: "whether this step scaled it back"},
				{Name: "skipped", Type: "string", Doc: "why nothing was restored, if so"},
				dryRunField,
			},
			Role:        RoleResponder,
			Permissions: scalePermissions,
		},
		{
			Name:    ActionScaleToZero,
			Summary: "Scale the pod's workload (Deployment, StatefulSet or ReplicaSet) to zero replicas, recording the previous count on it.",
			Params:  podParams,
			Output: []Field{
				{Name: "namespace", Type: "string", Doc: "namespace of the workload"},
				{Name: "kind", Type: "string", Doc: "Deployment, StatefulSet or ReplicaSet"},
				{Name: "name", Type: "string", Doc: "name of the workload"},
				{Name: "previousReplicas", Type: "int", Doc: "replicas before, restored by restore_scale"},
				{Name: "scaled", Type: "bool", Doc: "whether this step scaled it (false: it was at zero already)"},
				dryRunField,
			},
			Destructive: true,
			Inverse:     ActionRestoreScale,
			Role:        RoleResponder,
			Permissions: append([]Permission{{Group: "", Resource: "pods", Verbs: []string{"get"}}}, scalePermissions...),
		},
		{
			Name: ActionSnapshot,
			Summary: "Collect forensic evidence of one pod — manifest, owner chain, node, events, image digests, current and previous logs, optionally a kubelet checkpoint — " +
				"hash every artifact (SHA-256) into a manifest and store the bundle.",
			Params: withPod(
				Param{Name: "checkpoint", Type: "bool", Default: "false", Doc: "also ask the kubelet to checkpoint each container (Kubernetes ≥ 1.30 with the ContainerCheckpoint feature and a runtime that supports it)"},
				Param{Name: "logLimitBytes", Type: "int", Default: "10485760", Doc: "bytes kept of each container log"}),
			Output: outputs(
				Field{Name: "node", Type: "string", Doc: "the node the pod runs on"},
				Field{Name: "location", Type: "string", Doc: "where the bundle's manifest is stored (file:// or s3://)"},
				Field{Name: "sha256", Type: "string", Doc: "SHA-256 of the manifest, which holds every artifact's SHA-256"},
				Field{Name: "artifacts", Type: "int", Doc: "artifacts stored"},
				Field{Name: "failed", Type: "int", Doc: "artifacts that could not be collected (the manifest says why)"},
				Field{Name: "planned", Type: "list", Doc: "in plan mode, the artifacts it would collect"},
				dryRunField),
			// Logs and checkpoints of every container take longer than
			// an API write.
			Attempt: 5 * time.Minute,
			Role:    RoleEvidence,
			Permissions: []Permission{
				{Group: "", Resource: "events", Verbs: []string{"list"}},
				{Group: "", Resource: "nodes", Verbs: []string{"get"}},
				{Group: "", Resource: "nodes/proxy", Verbs: []string{"create"}},
				{Group: "", Resource: "pods", Verbs: []string{"get"}},
				{Group: "", Resource: "pods/log", Verbs: []string{"get"}},
				{Group: "", Resource: "replicationcontrollers", Verbs: []string{"get"}},
				{Group: "apps", Resource: "daemonsets", Verbs: []string{"get"}},
				{Group: "apps", Resource: "deployments", Verbs: []string{"get"}},
				{Group: "apps", Resource: "replicasets", Verbs: []string{"get"}},
				{Group: "apps", Resource: "statefulsets", Verbs: []string{"get"}},
				{Group: "batch", Resource: "cronjobs", Verbs: []string{"get"}},
				{Group: "batch", Resource: "jobs", Verbs: []string{"get"}},
			},
		},
		{
			Name:    ActionUncordonNode,
			Summary: "Undo cordon_node: make the node schedulable again, only if this incident cordoned it.",
			Params:  []Param{{Name: "node", Type: "string", Required: true, Doc: "name of the node"}},
			Output: []Field{
				{Name: "node", Type: "string", Doc: "the node"},
				{Name: "uncordoned", Type: "bool", Doc: "whether this step uncordoned it"},
				{Name: "skipped", Type: "string", Doc: "why it was left cordoned, if so"},
				dryRunField,
			},
			Role:        RoleResponder,
			Permissions: []Permission{{Group: "", Resource: "nodes", Verbs: []string{"get", "patch"}}},
		},
		{
			Name:    ActionSlackNotify,
			Summary: "Post a note in the incident's Slack thread (or in another channel). Alert text in it is escaped.",
			Params: []Param{
				{Name: "text", Type: "string", Required: true, Doc: "the note; it may quote the alert, whose text is escaped so it cannot mention, link or format"},
				{Name: "channel", Type: "string", Default: "the incident's thread", Doc: "post to this channel (ID or #name) instead, as a message of its own"},
				{Name: "broadcast", Type: "bool", Default: "false", Doc: "also show the thread reply in the channel"},
			},
			Output: []Field{
				{Name: "posted", Type: "bool", Doc: "whether the note was posted"},
				{Name: "channel", Type: "string", Doc: "the channel it went to"},
				{Name: "ts", Type: "string", Doc: "the message's Slack timestamp"},
				{Name: "skipped", Type: "string", Doc: "why nothing was posted: no Slack on the worker, or no channel"},
				dryRunField,
			},
			Role: RoleNone,
		},
		{
			Name:    ActionTicketOpen,
			Summary: "Open the incident's ticket (Jira, GitHub or a webhook), exactly once: a ticket carrying the incident is looked up first.",
			Params: []Param{
				{Name: "title", Type: "string", Default: "the alert's rule", Doc: "the ticket's title; alert text in it is escaped for the ticket system"},
				{Name: "text", Type: "string", Doc: "a paragraph before the incident's facts (what happened, target, actions, evidence, approvals)"},
				{Name: "labels", Type: "list", Doc: "labels to add (Jira, GitHub, webhook)"},
				{Name: "components", Type: "list", Doc: "Jira components"},
				{Name: "assignees", Type: "list", Doc: "GitHub logins to assign"},
				{Name: "fields", Type: "map", Doc: "Jira custom fields by ID (customfield_10010: value)"},
			},
			Output:   ticketOutput,
			Attempt:  time.Minute,
			RetryFor: 30 * time.Minute,
			Role:     RoleNone,
		},
		{
			Name:     ActionTicketComment,
			Summary:  "Add a comment to the incident's ticket. soar also comments on its own, batched, as alerts join and steps run.",
			Params:   []Param{{Name: "text", Type: "string", Required: true, Doc: "the comment; alert text in it is escaped"}},
			Output:   ticketOutput,
			RetryFor: 30 * time.Minute,
			Role:     RoleNone,
		},
		{
			Name:     ActionTicketResolve,
			Summary:  "Resolve the incident's ticket now, with a comment. soar resolves it anyway when the incident is released or closed.",
			Params:   []Param{{Name: "text", Type: "string", Required: true, Doc: "the closing comment"}},
			Output:   ticketOutput,
			RetryFor: 30 * time.Minute,
			Role:     RoleNone,
		},
	}
}

var ticketOutput = []Field{
	{Name: "ticket", Type: "map", Doc: "the ticket: provider, id, key (SEC-123, owner/repo#45) and url"},
	{Name: "created", Type: "bool", Doc: "whether this step created it (false: it existed, found by the incident's label)"},
	{Name: "skipped", Type: "string", Doc: "why nothing was done: no provider on the worker, or no ticket yet"},
	{Name: "pending", Type: "string", Doc: "ticket.open only: the ticket system did not answer within a minute; the step went on and the ticket opens when it answers"},
	dryRunField,
}

var restoreOutput = outputs(
	Field{Name: "restored", Type: "list", Doc: "keys put back or removed"},
	Field{Name: "skipped", Type: "list", Doc: "keys someone changed since: left alone"},
	Field{Name: "alreadyGone", Type: "bool", Doc: "the pod is gone"},
	dryRunField)

var scalePermissions = []Permission{
	{Group: "apps", Resource: "deployments", Verbs: []string{"get", "patch"}},
	{Group: "apps", Resource: "replicasets", Verbs: []string{"get", "patch"}},
	{Group: "apps", Resource: "statefulsets", Verbs: []string{"get", "patch"}},
}

// Lookup returns the action named name.
func Lookup(name string) (Action, bool) {
	for _, a := range Catalogue() {
		if a.Name == name {
			return a, true
		}
	}
	return Action{}, false
}

// ActionNames lists the actions playbook steps may use: every action but
// those that only undo another (InverseOf).
func ActionNames() []string {
	var names []string
	for _, a := range Catalogue() {
		if a.InverseOf != "" {
			continue
		}
		names = append(names, a.Name)
	}
	return names
}

// DestructiveActions lists the actions that cannot be undone.
func DestructiveActions() []string {
	var names []string
	for _, a := range Catalogue() {
		if a.Destructive {
			names = append(names, a.Name)
		}
	}
	return names
}

// RequiredParams lists, per action, the parameters a step must set.
func RequiredParams() map[string][]string {
	m := map[string][]string{}
	for _, a := range Catalogue() {
		for _, p := range a.Params {
			if p.Required {
				m[a.Name] = append(m[a.Name], p.Name)
			}
		}
	}
	return m
}

// ActionParams lists the parameters each action takes in a step's "with".
func ActionParams() map[string][]string {
	m := map[string][]string{}
	for _, a := range Catalogue() {
		for _, p := range a.Params {
			m[a.Name] = append(m[a.Name], p.Name)
		}
	}
	return m
}

// RequiredPermissions merges the permissions of every action into one rule
// per group and resource, with sorted, unique verbs: what the worker's roles
// must grant together, and no more.
func RequiredPermissions() []Permission { return RolePermissions("") }

// RolePermissions merges the permissions of the actions of one role
// (RoleResponder, RoleEvidence; "" for all) like RequiredPermissions.
func RolePermissions(role string) []Permission {
	type key struct{ group, resource string }
	verbs := map[key][]string{}
	for _, a := range Catalogue() {
		if role != "" && a.Role != role {
			continue
		}
		for _, p := range a.Permissions {
			k := key{p.Group, p.Resource}
			verbs[k] = append(verbs[k], p.Verbs...)
		}
	}
	out := make([]Permission, 0, len(verbs))
	for k, v := range verbs {
		slices.Sort(v)
		out = append(out, Permission{Group: k.group, Resource: k.resource, Verbs: slices.Compact(v)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return out[i].Resource < out[j].Resource
	})
	return out
}
