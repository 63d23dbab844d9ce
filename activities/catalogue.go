package activities

import (
	"cmp"
	"slices"
	"sort"

	"github.com/soar-dev/soar/playbooks"
)

// catalogue is every action the worker runs, one line each, sorted by name.
// An action is defined in its own file; listing it here is what makes it
// exist for playbooks, the worker, the RBAC and the docs.
var catalogue = []Action{
	annotateNamespace,
	annotatePod,
	blockImage,
	cordonNode,
	deletePod,
	evictPod,
	freezeNamespace,
	labelPod,
	quarantine,
	release,
	restoreAnnotations,
	restoreLabels,
	restoreNamespaceAnnotations,
	restoreScale,
	scaleToZero,
	snapshot,
	unblockImage,
	uncordonNode,
	unfreezeNamespace,
	slackNotify,
	ticketComment,
	ticketOpen,
	ticketResolve,
}

// Catalogue returns every action the worker runs. The slice is a copy.
func Catalogue() []Action { return slices.Clone(catalogue) }

// Lookup returns the action named name.
func Lookup(name string) (Action, bool) {
	for _, a := range catalogue {
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
// (RoleResponder, RoleEvidence, RoleCheckpoint; "" for all) like
// RequiredPermissions. A permission with its own Role counts for that role.
func RolePermissions(role string) []Permission {
	type key struct{ group, resource string }
	verbs := map[key][]string{}
	for _, a := range Catalogue() {
		for _, p := range a.Permissions {
			if role != "" && cmp.Or(p.Role, a.Role) != role {
				continue
			}
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

// PlaybookActions describes, for loading playbooks, the actions steps may
// use: their parameters and the facts Respond needs of each, which loading
// pins into every step that runs it.
func PlaybookActions() []playbooks.ActionInfo {
	var infos []playbooks.ActionInfo
	for _, a := range catalogue {
		if a.InverseOf != "" {
			continue // runs on release only, never written in a step
		}
		info := playbooks.ActionInfo{Name: a.Name, Facts: a.Facts()}
		for _, p := range a.Params {
			info.Params = append(info.Params, p.Name)
			if p.Required {
				info.Required = append(info.Required, p.Name)
			}
		}
		infos = append(infos, info)
	}
	return infos
}

// Facts are what Respond needs to know of the action.
func (a Action) Facts() playbooks.ActionFacts {
	f := playbooks.ActionFacts{
		Destructive: a.Destructive, Inverse: a.Inverse, Attempt: a.Attempt, RetryFor: a.RetryFor, Lane: a.Lane,
	}
	for _, p := range a.Params {
		if p.FromAlert != "" {
			f.FromAlert = append(f.FromAlert, playbooks.AlertParam{Param: p.Name, Field: p.FromAlert})
		}
	}
	return f
}
