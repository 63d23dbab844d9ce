package playbooktest

import (
	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// testActions are the worker's actions, as cmd/soar/app.SimulatedActions
// gives them to the runner.
func testActions() []Action {
	var out []Action
	for _, a := range activities.Catalogue() {
		sa := Action{Name: a.Name}
		for _, f := range a.Output {
			sa.Output = append(sa.Output, Field{Name: f.Name, Type: f.Type})
		}
		out = append(out, sa)
	}
	return out
}

// testLoadOptions are the options the dispatcher loads playbooks with
// (cmd/soar/app.PlaybookOptions).
func testLoadOptions() playbooks.LoadOptions {
	return playbooks.LoadOptions{Actions: activities.PlaybookActions(), Workflows: []string{workflows.RespondName}}
}

// withCatalogue fills the options the runner needs from the worker's
// catalogue, as soar playbook test does.
func withCatalogue(opts Options) Options {
	opts.Playbooks, opts.Actions = testLoadOptions(), testActions()
	return opts
}

// actionNamed returns the named action of testActions.
func actionNamed(name string) Action {
	for _, a := range testActions() {
		if a.Name == name {
			return a
		}
	}
	panic("no action " + name)
}
