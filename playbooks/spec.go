package playbooks

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Spec is a JSON-serialisable snapshot of a playbook. It travels in the
// input of the workflow that answers an incident, so the workflow keeps
// running the playbook it started with even after the file changes in git,
// and replays see the same steps.
type Spec struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Workflow string `json:"workflow"`
	// Window is in nanoseconds on the wire, as encoding/json writes a
	// time.Duration.
	Window time.Duration `json:"window"`
	// Mode is ModeEnforce or ModePlan; empty means enforce.
	Mode  string     `json:"mode,omitempty"`
	Steps []StepSpec `json:"steps"`
	// SlackChannel is the playbook's slack.channel.
	SlackChannel string `json:"slackChannel,omitempty"`
	// TicketCommentEvery is the playbook's tickets.commentEvery.
	TicketCommentEvery time.Duration `json:"ticketCommentEvery,omitempty"`
	// GitCommit and GitModified locate the content in git (see Playbook).
	GitCommit   string `json:"gitCommit,omitempty"`
	GitModified bool   `json:"gitModified,omitempty"`
	// Source is the playbook file as it was loaded, for audit and display;
	// its SHA-256 is Version.
	Source string `json:"source"`
}

// StepSpec is the snapshot of one step. It is a type of its own, apart from
// Step, so that the workflow's input format changes only on purpose.
type StepSpec struct {
	ID     string `json:"id"`
	Kind   string `json:"kind,omitempty"`
	Action string `json:"action,omitempty"`
	// With maps parameter names to expression sources, for EvalParams.
	With            map[string]string `json:"with,omitempty"`
	If              string            `json:"if,omitempty"`
	Wait            time.Duration     `json:"wait,omitempty"`
	Approval        *Approval         `json:"approval,omitempty"`
	Timeout         time.Duration     `json:"timeout,omitempty"`
	Retry           *Retry            `json:"retry,omitempty"`
	OnError         string            `json:"onError,omitempty"`
	WithoutApproval bool              `json:"withoutApproval,omitempty"`
	// Facts are what the workflow needs to know of the step's action,
	// pinned when the playbook loaded, so that an incident runs with the
	// facts it started with whatever the worker's catalogue says later.
	// Specs recorded before facts were pinned have none.
	Facts *ActionFacts `json:"facts,omitempty"`
}

// ActionFacts are what a workflow needs to know of an action to schedule it
// and undo it. The worker's action catalogue fills them when a playbook
// loads.
type ActionFacts struct {
	// Destructive actions need an approval before them; an approval's plan
	// marks them.
	Destructive bool `json:"destructive,omitempty"`
	// Inverse is the action that undoes this one on release; empty means
	// nothing to undo.
	Inverse string `json:"inverse,omitempty"`
	// Attempt bounds one attempt and RetryFor all of them when the step
	// sets no timeout; zero means the workflow's defaults.
	Attempt  time.Duration `json:"attempt,omitempty"`
	RetryFor time.Duration `json:"retryFor,omitempty"`
	// FromAlert are the parameters the workflow fills from the incident's
	// first alert when the step leaves them out.
	FromAlert []AlertParam `json:"fromAlert,omitempty"`
	// Lane is how the workflow schedules the action: "" as an activity of
	// its own, "slack" in the incident's Slack outbox, "ticket" with the
	// incident's ticket, "local" as a local activity when it is the
	// incident's first action and as an activity of its own otherwise.
	Lane string `json:"lane,omitempty"`
}

// Lanes of ActionFacts.Lane.
const (
	LaneDirect = ""
	LaneSlack  = "slack"
	LaneTicket = "ticket"
	// LaneLocal is for quick, idempotent containment: as the incident's
	// first action it runs in the workflow task that starts the incident,
	// before Temporal records anything more, which saves the round trips of
	// scheduling an activity. Workers that predate it run it as LaneDirect.
	LaneLocal = "local"
)

// AlertParam fills parameter Param from the field Field of the alert's
// kubernetes section (namespace, pod, podUID).
type AlertParam struct {
	Param string `json:"param"`
	Field string `json:"field"`
}

// StepKind returns the step's kind; a Spec recorded before steps had kinds
// holds actions only.
func (s StepSpec) StepKind() string {
	if s.Kind == "" {
		return KindAction
	}
	return s.Kind
}

// Spec returns the snapshot of p. It shares nothing with p, so the caller
// may modify it.
func (p *Playbook) Spec() Spec {
	steps := make([]StepSpec, len(p.Steps))
	for i, s := range p.Steps {
		steps[i] = StepSpec{
			ID: s.ID, Kind: s.Kind, Action: s.Action, With: maps.Clone(s.With),
			If: s.If, Wait: s.Wait, Timeout: s.Timeout, OnError: s.OnError, WithoutApproval: s.WithoutApproval,
		}
		if s.Facts != nil {
			f := *s.Facts
			f.FromAlert = slices.Clone(f.FromAlert)
			steps[i].Facts = &f
		}
		if s.Approval != nil {
			a := *s.Approval
			a.Approvers = slices.Clone(a.Approvers)
			a.quorumSet = false // how the quorum came about is not part of the spec
			if a.Escalate != nil {
				e := *a.Escalate
				e.Approvers = slices.Clone(e.Approvers)
				a.Escalate = &e
			}
			steps[i].Approval = &a
		}
		if s.Retry != nil {
			r := *s.Retry
			steps[i].Retry = &r
		}
	}
	return Spec{
		Name:               p.Name,
		Version:            p.Version,
		Workflow:           p.Workflow,
		Window:             p.Window,
		Mode:               p.Mode,
		Steps:              steps,
		SlackChannel:       p.SlackChannel,
		TicketCommentEvery: p.TicketCommentEvery,
		GitCommit:          p.GitCommit,
		GitModified:        p.GitModified,
		Source:             string(p.source),
	}
}

// EvalParams evaluates the parameters of step against env and returns them
// by name; a step without parameters gives an empty map.
//
// It runs inside Temporal workflow code, so it is deterministic: the
// expressions cannot read the clock, the time zone or random map order (see
// compile), parameters are evaluated in name order, and the same step and
// environment always give the same result or the same error. Expressions are
// compiled on first use and cached by source text; compiling is
// deterministic, so the cache only saves time. EvalParams is safe for
// concurrent use.
//
// The error joins one error per failing parameter, in name order, each
// naming the step and parameter; an expression that no longer compiles (a
// Spec recorded by an older soar) is reported the same way.
func EvalParams(step StepSpec, env Env) (map[string]any, error) {
	env.setSeverities()
	names := slices.Sorted(maps.Keys(step.With))
	params := make(map[string]any, len(names))
	var (
		m    vm.VM
		errs []error
	)
	for _, name := range names {
		program, err := paramPrograms.get(step.With[name])
		if err == nil {
			params[name], err = evaluate(&m, program, &env)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("step %q: with.%s: %w", step.ID, name, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return params, nil
}

// paramPrograms caches compiled parameter expressions by source text for
// EvalParams. It is the package's one variable: EvalParams is a plain
// function so that workflow code can call it without a handle to carry
// around, and a process-wide cache is harmless because compiling is
// deterministic. It grows with the number of distinct parameter
// expressions the process has seen, which reviewed playbooks bound.
var paramPrograms programCache

// programCache maps expression sources to compiled programs. Its zero value
// is ready to use, and it is safe for concurrent use.
type programCache struct {
	programs sync.Map // string → *vm.Program
}

func (c *programCache) get(src string) (*vm.Program, error) {
	if p, ok := c.programs.Load(src); ok {
		return p.(*vm.Program), nil
	}
	// Two goroutines may compile the same source at once; both results are
	// equivalent, so whichever is stored first wins.
	p, err := compile(src, resultAny)
	if err != nil {
		return nil, newExprError(err, true)
	}
	actual, _ := c.programs.LoadOrStore(src, p)
	return actual.(*vm.Program), nil
}

// EvalCondition evaluates a step's "if" condition against env. Like
// EvalParams it is deterministic and safe for workflow code; a result that is
// not a bool is an error.
func EvalCondition(src string, env Env) (bool, error) {
	env.setSeverities()
	program, err := paramPrograms.get(src)
	if err != nil {
		return false, err
	}
	var m vm.VM
	out, err := evaluate(&m, program, &env)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("condition gave %T, not bool", out)
	}
	return b, nil
}

// EvalString evaluates an expression that must give a string, such as an
// approval's requester, against env; nil (a field the alert lacks) gives "".
// Like EvalParams it is deterministic.
func EvalString(src string, env Env) (string, error) {
	env.setSeverities()
	program, err := paramPrograms.get(src)
	if err != nil {
		return "", err
	}
	var m vm.VM
	out, err := evaluate(&m, program, &env)
	if err != nil {
		return "", err
	}
	if out == nil {
		return "", nil // a field the alert does not have: no value
	}
	s, ok := out.(string)
	if !ok {
		return "", fmt.Errorf("gave %T, not a string", out)
	}
	return s, nil
}

// Precompile compiles every step expression of spec (parameters and
// conditions) into the cache EvalParams and EvalCondition use, and returns
// the first error. Workflow code then only evaluates: the first compile of a
// process is slow enough, on a loaded machine, to trip Temporal's one-second
// deadlock detector.
func Precompile(spec Spec) error {
	for _, step := range spec.Steps {
		for _, src := range step.With {
			if _, err := paramPrograms.get(src); err != nil {
				return err
			}
		}
		if step.If != "" {
			if _, err := paramPrograms.get(step.If); err != nil {
				return err
			}
		}
		if a := step.Approval; a != nil && a.Requester != "" {
			if _, err := paramPrograms.get(a.Requester); err != nil {
				return err
			}
		}
	}
	return nil
}
