package activities

import (
	"slices"
	"sort"
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
	// Destructive actions cannot be undone. Playbooks will have to put an
	// approval before them (the approval step comes with the step language).
	Destructive bool `json:"destructive"`
	// Inverse names the action that undoes this one, when there is one.
	Inverse string `json:"inverse,omitempty"`
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
	Doc     string `json:"doc"`
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

// Catalogue returns every action the worker runs, sorted by name.
func Catalogue() []Action {
	return []Action{
		{
			Name:    ActionQuarantine,
			Summary: "Isolate one pod: label it and ensure a deny-all ingress and egress NetworkPolicy in its namespace selects it.",
			Params: []Param{
				{Name: "namespace", Type: "string", Default: "the alert's namespace", Doc: "namespace of the pod"},
				{Name: "pod", Type: "string", Default: "the alert's pod", Doc: "name of the pod"},
				{Name: "podUID", Type: "string", Default: "the alert's pod UID, if any", Doc: "when set, the live pod must have this UID, or the step fails with TargetChanged"},
			},
			Output: []Field{
				{Name: "namespace", Type: "string", Doc: "namespace of the pod"},
				{Name: "pod", Type: "string", Doc: "name of the pod"},
				{Name: "podUID", Type: "string", Doc: "UID of the pod that was quarantined"},
				{Name: "label", Type: "string", Doc: "the label now on the pod (soar.dev/quarantine=true)"},
				{Name: "labeled", Type: "bool", Doc: "whether this step added the label (false: it was already there)"},
				{Name: "policy", Type: "string", Doc: "name of the deny-all NetworkPolicy (soar-quarantine)"},
				{Name: "policyCreated", Type: "bool", Doc: "whether this step created the policy"},
				{Name: "policyRepaired", Type: "bool", Doc: "whether this step restored a policy whose spec had been changed"},
				{Name: "dryRun", Type: "bool", Doc: "true in plan mode: nothing was stored, the fields above say what would have changed"},
			},
			// Reversible: removing the label and the policy restores traffic.
			// The inverse action, kubernetes.release, is not built yet.
			Destructive: false,
			Permissions: []Permission{
				{Group: "", Resource: "pods", Verbs: []string{"get", "patch"}},
				{Group: "networking.k8s.io", Resource: "networkpolicies", Verbs: []string{"create", "get", "update"}},
			},
		},
	}
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

// ActionNames lists every action the worker can run, for playbook validation.
func ActionNames() []string {
	var names []string
	for _, a := range Catalogue() {
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
// per group and resource, with sorted, unique verbs: what the worker's role
// must grant, and no more.
func RequiredPermissions() []Permission {
	type key struct{ group, resource string }
	verbs := map[key][]string{}
	for _, a := range Catalogue() {
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
