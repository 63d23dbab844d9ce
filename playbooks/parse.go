package playbooks

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// parseFile decodes, validates and compiles the playbook in src. It returns
// the playbook even when there are problems, as far as it could be decoded,
// so that Load can check names across files; nameNode is the node of a valid
// name, or nil.
func parseFile(path string, src []byte, opts LoadOptions) (pb *Playbook, nameNode *yaml.Node, errs []*LoadError) {
	d := &decoder{file: path, lines: strings.Split(string(src), "\n"), opts: opts}
	sum := sha256.Sum256(src)
	pb = &Playbook{
		Window:   DefaultWindow,
		Workflow: DefaultWorkflow,
		Mode:     ModeEnforce,
		File:     path,
		Version:  "sha256:" + hex.EncodeToString(sum[:]),
		source:   src,
	}

	root, ok := d.document(src)
	if !ok {
		return pb, nil, d.errs
	}
	d.mapping(root, "", []field{
		{key: "name", required: true, decode: func(n *yaml.Node, path string) {
			name, ok := d.requiredString(n, path)
			if !ok {
				return
			}
			if !validName(name) {
				d.failf(n, path, "%q is not a valid name: use at most %d lowercase letters, digits and '-', starting and ending with a letter or digit", name, maxNameLen)
				return
			}
			pb.Name, nameNode = name, n
		}},
		{key: "description", decode: func(n *yaml.Node, path string) {
			pb.Description, _ = d.string(n, path)
		}},
		{key: "owner", decode: func(n *yaml.Node, path string) {
			pb.Owner, _ = d.string(n, path)
		}},
		{key: "labels", decode: func(n *yaml.Node, path string) {
			pb.Labels = d.labels(n, path)
		}},
		{key: "severity", decode: func(n *yaml.Node, path string) {
			if isNull(n) {
				return
			}
			pb.Severity, pb.severityProgram = d.expression(n, path, resultSeverity)
		}},
		{key: "mode", decode: func(n *yaml.Node, path string) {
			m, ok := d.requiredString(n, path)
			if ok && m != ModeEnforce && m != ModePlan {
				d.failf(n, path, "%q is not enforce or plan", m)
				return
			}
			if ok {
				pb.Mode = m
			}
		}},
		{key: "match", required: true, decode: func(n *yaml.Node, path string) {
			pb.Match, pb.matchProgram = d.expression(n, path, resultBool)
		}},
		{key: "incidentKey", required: true, decode: func(n *yaml.Node, path string) {
			pb.IncidentKey, pb.incidentKeyProgram = d.expression(n, path, resultString)
		}},
		{key: "window", decode: func(n *yaml.Node, path string) {
			if isNull(n) {
				return
			}
			if w, ok := d.window(n, path); ok {
				pb.Window = w
			}
		}},
		{key: "workflow", decode: func(n *yaml.Node, path string) {
			if isNull(n) {
				return
			}
			name, ok := d.requiredString(n, path)
			if !ok {
				return
			}
			if !validIdentifier(name) {
				d.failf(n, path, "%q is not a valid workflow name: use letters, digits and '_', starting with a letter", name)
				return
			}
			if d.opts.Workflows != nil && !slices.Contains(d.opts.Workflows, name) {
				d.failf(n, path, "unknown workflow %q: workers run %s", name, strings.Join(d.opts.Workflows, ", "))
				return
			}
			pb.Workflow = name
		}},
		{key: "steps", required: true, decode: func(n *yaml.Node, path string) {
			pb.Steps = d.steps(n, path)
		}},
	})
	return pb, nameNode, d.errs
}

// steps decodes the steps sequence.
func (d *decoder) steps(n *yaml.Node, path string) []Step {
	if isNull(n) || n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		d.failf(n, path, "at least one step is required")
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.failf(n, path, "must be a list of steps, not %s", kindName(n))
		return nil
	}
	steps := make([]Step, 0, len(n.Content))
	ids := make(map[string]*yaml.Node, len(n.Content))
	approvalBefore := false
	for i, item := range n.Content {
		var (
			step     Step
			withNode *yaml.Node
			nodes    = map[string]*yaml.Node{}
		)
		stepPath := fmt.Sprintf("%s[%d]", path, i)
		d.mapping(resolve(item), stepPath, append([]field{
			{key: "id", required: true, decode: func(n *yaml.Node, path string) {
				id, ok := d.requiredString(n, path)
				if !ok {
					return
				}
				if !validStepID(id) {
					d.failf(n, path, "%q is not a valid step id: use at most %d lowercase letters, digits, '-' and '_'", id, maxStepIDLen)
					return
				}
				if first, dup := ids[id]; dup {
					d.failf(n, path, "duplicate step id %q (first at line %d)", id, first.Line)
					return
				}
				ids[id] = n
				step.ID = id
			}},
			{key: "action", decode: func(n *yaml.Node, path string) {
				nodes["action"] = n
				action, ok := d.requiredString(n, path)
				if !ok {
					return
				}
				if d.opts.Actions != nil && !slices.Contains(d.opts.Actions, action) {
					d.failf(n, path, "unknown action %q", action)
					return
				}
				step.Action = action
			}},
			{key: "with", decode: func(n *yaml.Node, path string) {
				withNode, nodes["with"] = n, n
				step.With = d.params(n, path)
			}},
		}, d.stepFields(&step, nodes)...))
		d.checkStep(&step, resolve(item), nodes, stepPath, approvalBefore)
		if step.Kind == KindApproval {
			approvalBefore = true
		}
		d.checkParamNames(step.Action, withNode, stepPath+".with")
		for _, name := range d.opts.Required[step.Action] {
			if _, ok := step.With[name]; !ok && step.Kind == KindAction {
				d.failf(resolve(item), stepPath+".with."+name, "action %s needs the parameter %q", step.Action, name)
			}
		}
		steps = append(steps, step)
	}
	return steps
}

// labels decodes a mapping of string keys to string values.
func (d *decoder) labels(n *yaml.Node, path string) map[string]string {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.failf(n, path, "must be a mapping of names to values, not %s", kindName(n))
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			d.failf(k, path, "labels are name: value pairs of strings")
			continue
		}
		out[k.Value] = v.Value
	}
	return out
}

// checkParamNames reports every parameter in with that the step's action does
// not take, at the parameter's own line.
func (d *decoder) checkParamNames(action string, with *yaml.Node, path string) {
	allowed, known := d.opts.Params[action]
	if !known || with == nil || with.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(with.Content); i += 2 {
		key := with.Content[i]
		if !slices.Contains(allowed, key.Value) {
			d.failf(key, path+"."+key.Value, "action %s takes no parameter %q (it takes %s)", action, key.Value, strings.Join(allowed, ", "))
		}
	}
}

// params decodes a step's with: mapping of parameter names to expressions.
// The expressions are compiled only to check them; EvalParams compiles them
// again where they run, from the source text a workflow carries.
func (d *decoder) params(n *yaml.Node, path string) map[string]string {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.failf(n, path, "must be a mapping of parameter names to expressions, not %s", kindName(n))
		return nil
	}
	params := make(map[string]string, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		keyNode, value := resolve(n.Content[i]), resolve(n.Content[i+1])
		name := keyNode.Value
		keyPath := joinPath(path, name)
		switch {
		case keyNode.Kind != yaml.ScalarNode:
			d.failf(keyNode, path, "parameter names must be scalars, not %s", kindName(keyNode))
			continue
		case lines[name] != 0:
			d.failf(keyNode, keyPath, "duplicate parameter (first at line %d)", lines[name])
			continue
		case !validIdentifier(name):
			d.failf(keyNode, keyPath, "%q is not a valid parameter name: use letters, digits and '_', starting with a letter", name)
			continue
		}
		lines[name] = keyNode.Line
		if src, program := d.expression(value, keyPath, resultAny); program != nil {
			params[name] = src
		}
	}
	return params
}

// expression compiles the expression in scalar n and returns its source and
// program; the program is nil when there was a problem.
func (d *decoder) expression(n *yaml.Node, path string, kind resultKind) (string, *vm.Program) {
	src, ok := d.requiredString(n, path)
	if !ok {
		return "", nil
	}
	program, err := compile(src, kind)
	if err != nil {
		offset := 0
		var fe *file.Error
		if errors.As(err, &fe) {
			offset = fe.From
		}
		line, column := exprPosition(n, d.lines, offset)
		d.errs = append(d.errs, &LoadError{
			File: d.file, Line: line, Column: column, Field: path,
			Err: newExprError(err, false),
		})
		return src, nil
	}
	return src, program
}

// window decodes a Go duration of at least MinWindow.
func (d *decoder) window(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := d.requiredString(n, path)
	if !ok {
		return 0, false
	}
	w, err := time.ParseDuration(s)
	if err != nil {
		d.failf(n, path, "%q is not a duration such as 30m or 1h", s)
		return 0, false
	}
	if w < MinWindow {
		d.failf(n, path, "%s is shorter than the minimum of %s", w, MinWindow)
		return 0, false
	}
	return w, true
}
