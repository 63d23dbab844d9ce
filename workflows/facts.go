package workflows

import (
	"time"

	"github.com/soar-dev/soar/playbooks"
)

// pinnedFactsVersion guards a change of behaviour: Respond used to read what
// it needs to know of an action (its inverse, timeouts, which parameters come
// from the alert, whether it is destructive, whether it goes through Slack or
// the ticket) from the worker's live action catalogue; now it reads the facts
// pinned into the step when the playbook loaded, so that an incident runs
// with the facts it started with.
const pinnedFactsVersion = "pinned-action-facts"

// facts returns what Respond knows of the action of the step with this ID and
// action, and whether it knows the action at all: the facts pinned into the
// step, or, for incidents that started before facts were pinned (and for the
// inverses release runs, which no step names), the frozen table below.
func (s *steps) facts(stepID, action string) (playbooks.ActionFacts, bool) {
	if changeVersion(s.ctx, pinnedFactsVersion) >= 1 {
		for _, p := range s.in.Playbook.Steps {
			if p.ID == stepID && p.Action == action && p.Facts != nil {
				return *p.Facts, true
			}
		}
	}
	f, ok := frozenFacts[action]
	return f, ok
}

// frozenFacts are the facts of every action as the catalogue stated them when
// facts began to be pinned into playbook steps. Histories of incidents that
// started before then replay against this table, so it must never change:
// a new action, or a changed one, reaches workflows only through the facts
// pinned into new playbook specs.
var frozenFacts = map[string]playbooks.ActionFacts{
	"kubernetes.annotate_pod":        {Inverse: "kubernetes.restore_annotations", FromAlert: podFromAlert},
	"kubernetes.cordon_node":         {Inverse: "kubernetes.uncordon_node", FromAlert: podFromAlert},
	"kubernetes.delete_pod":          {Destructive: true, FromAlert: podFromAlert},
	"kubernetes.evict_pod":           {Destructive: true, FromAlert: podFromAlert},
	"kubernetes.label_pod":           {Inverse: "kubernetes.restore_labels", FromAlert: podFromAlert},
	"kubernetes.quarantine":          {Inverse: "kubernetes.release", FromAlert: podFromAlert},
	"kubernetes.release":             {FromAlert: podFromAlert},
	"kubernetes.restore_annotations": {FromAlert: podFromAlert},
	"kubernetes.restore_labels":      {FromAlert: podFromAlert},
	"kubernetes.restore_scale":       {},
	"kubernetes.scale_to_zero":       {Destructive: true, Inverse: "kubernetes.restore_scale", FromAlert: podFromAlert},
	"kubernetes.snapshot":            {Attempt: 5 * time.Minute, FromAlert: podFromAlert},
	"kubernetes.uncordon_node":       {},
	"slack.notify":                   {Lane: playbooks.LaneSlack},
	"ticket.open":                    {Attempt: time.Minute, RetryFor: 30 * time.Minute, Lane: playbooks.LaneTicket},
	"ticket.comment":                 {RetryFor: 30 * time.Minute, Lane: playbooks.LaneTicket},
	"ticket.resolve":                 {RetryFor: 30 * time.Minute, Lane: playbooks.LaneTicket},
}

var podFromAlert = []playbooks.AlertParam{{Param: "namespace", Field: "namespace"}, {Param: "pod", Field: "pod"}, {Param: "podUID", Field: "podUID"}}
