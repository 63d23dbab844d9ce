package workflows

import (
	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/playbooks"
)

// PlaybookOptions validates playbooks against what this soar's workers can
// run (its actions, their parameters and its workflows) and pins into every
// step what Respond needs to know of its action, from the catalogue as it is
// when the playbook loads.
func PlaybookOptions() playbooks.LoadOptions {
	var infos []playbooks.ActionInfo
	for _, a := range activities.Catalogue() {
		if a.InverseOf != "" {
			continue // runs on release only, never written in a step
		}
		info := playbooks.ActionInfo{Name: a.Name, Facts: factsOf(a)}
		for _, p := range a.Params {
			info.Params = append(info.Params, p.Name)
			if p.Required {
				info.Required = append(info.Required, p.Name)
			}
		}
		infos = append(infos, info)
	}
	return playbooks.LoadOptions{Actions: infos, Workflows: []string{RespondName}}
}

// factsOf is what Respond needs to know of an action.
func factsOf(a activities.Action) playbooks.ActionFacts {
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
