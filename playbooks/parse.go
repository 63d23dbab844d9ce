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

	"github.com/soar-dev/soar/internal/yamlfile"
)

// parseFile decodes, validates and compiles the playbook in src. It returns
// the playbook even when there are problems, as far as it could be decoded,
// so that Load can check names across files; nameNode is the node of a valid
// name, or nil.
func parseFile(path string, src []byte, opts LoadOptions) (pb *Playbook, nameNode *yaml.Node, errs []*LoadError) {
	d := &decoder{Decoder: yamlfile.Decoder{File: path}, lines: strings.Split(string(src), "\n"), opts: opts}
	sum := sha256.Sum256(src)
	pb = &Playbook{
		Window:   DefaultWindow,
		Workflow: DefaultWorkflow,
		Mode:     ModeEnforce,
		File:     path,
		Version:  "sha256:" + hex.EncodeToString(sum[:]),
		source:   src,
	}

	root, ok := d.Document(src, "playbook")
	if !ok {
		return pb, nil, d.Errs
	}
	d.Mapping(root, "", []yamlfile.Field{
		{Key: "name", Required: true, Decode: func(n *yaml.Node, path string) {
			name, ok := d.RequiredString(n, path)
			if !ok {
				return
			}
			if !validName(name) {
				d.Failf(n, path, "%q is not a valid name: use at most %d lowercase letters, digits and '-', starting and ending with a letter or digit", name, maxNameLen)
				return
			}
			pb.Name, nameNode = name, n
		}},
		{Key: "description", Decode: func(n *yaml.Node, path string) {
			pb.Description, _ = d.String(n, path)
		}},
		{Key: "owner", Decode: func(n *yaml.Node, path string) {
			pb.Owner, _ = d.String(n, path)
		}},
		{Key: "labels", Decode: func(n *yaml.Node, path string) {
			pb.Labels = d.labels(n, path)
		}},
		{Key: "severity", Decode: func(n *yaml.Node, path string) {
			if yamlfile.IsNull(n) {
				return
			}
			pb.Severity, pb.severityProgram = d.expression(n, path, resultSeverity)
		}},
		{Key: "mode", Decode: func(n *yaml.Node, path string) {
			m, ok := d.RequiredString(n, path)
			if ok && m != ModeEnforce && m != ModePlan {
				d.Failf(n, path, "%q is not enforce or plan", m)
				return
			}
			if ok {
				pb.Mode = m
			}
		}},
		{Key: "match", Required: true, Decode: func(n *yaml.Node, path string) {
			pb.Match, pb.matchProgram = d.expression(n, path, resultBool)
		}},
		{Key: "incidentKey", Required: true, Decode: func(n *yaml.Node, path string) {
			pb.IncidentKey, pb.incidentKeyProgram = d.expression(n, path, resultString)
		}},
		{Key: "window", Decode: func(n *yaml.Node, path string) {
			if yamlfile.IsNull(n) {
				return
			}
			if w, ok := d.window(n, path); ok {
				pb.Window = w
			}
		}},
		{Key: "workflow", Decode: func(n *yaml.Node, path string) {
			if yamlfile.IsNull(n) {
				return
			}
			name, ok := d.RequiredString(n, path)
			if !ok {
				return
			}
			if !validIdentifier(name) {
				d.Failf(n, path, "%q is not a valid workflow name: use letters, digits and '_', starting with a letter", name)
				return
			}
			if d.opts.Workflows != nil && !slices.Contains(d.opts.Workflows, name) {
				d.Failf(n, path, "unknown workflow %q: workers run %s", name, strings.Join(d.opts.Workflows, ", "))
				return
			}
			pb.Workflow = name
		}},
		{Key: "slack", Decode: func(n *yaml.Node, path string) {
			d.Mapping(n, path, []yamlfile.Field{
				{Key: "channel", Required: true, Decode: func(n *yaml.Node, path string) {
					pb.SlackChannel, _ = d.RequiredString(n, path)
				}},
			})
		}},
		{Key: "tickets", Decode: func(n *yaml.Node, path string) {
			d.Mapping(n, path, []yamlfile.Field{
				{Key: "commentEvery", Required: true, Decode: func(n *yaml.Node, path string) {
					pb.TicketCommentEvery, _ = d.duration(n, path, 10*time.Second, 24*time.Hour)
				}},
			})
		}},
		{Key: "steps", Required: true, Decode: func(n *yaml.Node, path string) {
			pb.Steps = d.steps(n, path)
		}},
	})
	return pb, nameNode, d.Errs
}

// steps decodes the steps sequence.
func (d *decoder) steps(n *yaml.Node, path string) []Step {
	if yamlfile.IsNull(n) || n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		d.Failf(n, path, "at least one step is required")
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.Failf(n, path, "must be a list of steps, not %s", yamlfile.KindName(n))
		return nil
	}
	steps := make([]Step, 0, len(n.Content))
	items := make([]*yaml.Node, 0, len(n.Content))
	ids := make(map[string]*yaml.Node, len(n.Content))
	var guard approvalGuard
	for i, item := range n.Content {
		var (
			step     Step
			withNode *yaml.Node
			nodes    = map[string]*yaml.Node{}
		)
		stepPath := fmt.Sprintf("%s[%d]", path, i)
		d.Mapping(yamlfile.Resolve(item), stepPath, append([]yamlfile.Field{
			{Key: "id", Required: true, Decode: func(n *yaml.Node, path string) {
				id, ok := d.RequiredString(n, path)
				if !ok {
					return
				}
				if !validStepID(id) {
					d.Failf(n, path, "%q is not a valid step id: use at most %d lowercase letters, digits, '-' and '_'", id, maxStepIDLen)
					return
				}
				if first, dup := ids[id]; dup {
					d.Failf(n, path, "duplicate step id %q (first at line %d)", id, first.Line)
					return
				}
				ids[id] = n
				step.ID = id
			}},
			{Key: "action", Decode: func(n *yaml.Node, path string) {
				nodes["action"] = n
				action, ok := d.RequiredString(n, path)
				if !ok {
					return
				}
				info, known := d.opts.action(action)
				if d.opts.Actions != nil && !known {
					d.Failf(n, path, "unknown action %q", action)
					return
				}
				step.Action = action
				if known {
					facts := info.Facts
					facts.FromAlert = slices.Clone(facts.FromAlert)
					step.Facts = &facts
				}
			}},
			{Key: "with", Decode: func(n *yaml.Node, path string) {
				withNode, nodes["with"] = n, n
				step.With = d.params(n, path)
			}},
		}, d.stepFields(&step, nodes)...))
		d.checkStep(&step, yamlfile.Resolve(item), nodes, stepPath, &guard)
		guard.after(&step)
		d.checkParamNames(step.Action, withNode, stepPath+".with")
		info, _ := d.opts.action(step.Action)
		for _, name := range info.Required {
			if _, ok := step.With[name]; !ok && step.Kind == KindAction {
				d.Failf(yamlfile.Resolve(item), stepPath+".with."+name, "action %s needs the parameter %q", step.Action, name)
			}
		}
		steps = append(steps, step)
		items = append(items, yamlfile.Resolve(item))
	}
	d.checkQuorums(steps, items, path)
	return steps
}

// labels decodes a mapping of string keys to string values.
func (d *decoder) labels(n *yaml.Node, path string) map[string]string {
	if yamlfile.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.Failf(n, path, "must be a mapping of names to values, not %s", yamlfile.KindName(n))
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := yamlfile.Resolve(n.Content[i]), yamlfile.Resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			d.Failf(k, path, "labels are name: value pairs of strings")
			continue
		}
		out[k.Value] = v.Value
	}
	return out
}

// checkParamNames reports every parameter in with that the step's action does
// not take, at the parameter's own line.
func (d *decoder) checkParamNames(action string, with *yaml.Node, path string) {
	info, known := d.opts.action(action)
	allowed := info.Params
	if !known || allowed == nil || with == nil || with.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(with.Content); i += 2 {
		key := with.Content[i]
		if !slices.Contains(allowed, key.Value) {
			d.Failf(key, path+"."+key.Value, "action %s takes no parameter %q (it takes %s)", action, key.Value, strings.Join(allowed, ", "))
		}
	}
}

// params decodes a step's with: mapping of parameter names to expressions.
// The expressions are compiled only to check them; EvalParams compiles them
// again where they run, from the source text a workflow carries.
func (d *decoder) params(n *yaml.Node, path string) map[string]string {
	if yamlfile.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.Failf(n, path, "must be a mapping of parameter names to expressions, not %s", yamlfile.KindName(n))
		return nil
	}
	params := make(map[string]string, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		keyNode, value := yamlfile.Resolve(n.Content[i]), yamlfile.Resolve(n.Content[i+1])
		name := keyNode.Value
		keyPath := yamlfile.JoinPath(path, name)
		switch {
		case keyNode.Kind != yaml.ScalarNode:
			d.Failf(keyNode, path, "parameter names must be scalars, not %s", yamlfile.KindName(keyNode))
			continue
		case lines[name] != 0:
			d.Failf(keyNode, keyPath, "duplicate parameter (first at line %d)", lines[name])
			continue
		case !validIdentifier(name):
			d.Failf(keyNode, keyPath, "%q is not a valid parameter name: use letters, digits and '_', starting with a letter", name)
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
	src, ok := d.RequiredString(n, path)
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
		d.Errs = append(d.Errs, &LoadError{
			File: d.File, Line: line, Column: column, Field: path,
			Err: newExprError(err, false),
		})
		return src, nil
	}
	return src, program
}

// window decodes a Go duration of at least MinWindow.
func (d *decoder) window(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := d.RequiredString(n, path)
	if !ok {
		return 0, false
	}
	w, err := time.ParseDuration(s)
	if err != nil {
		d.Failf(n, path, "%q is not a duration such as 30m or 1h", s)
		return 0, false
	}
	if w < MinWindow {
		d.Failf(n, path, "%s is shorter than the minimum of %s", w, MinWindow)
		return 0, false
	}
	return w, true
}
