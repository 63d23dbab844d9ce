package playbooktest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/soar-dev/soar/workflows"
)

// checkState compares the incident's final state, and its status after the
// steps, with what the case expects.
func checkState(e Expect, st *workflows.IncidentState, status, outcome string) []failure {
	var fails []failure
	failf := func(line int, format string, args ...any) {
		fails = append(fails, failure{line: line, msg: fmt.Sprintf(format, args...)})
	}
	if e.Has("steps") {
		got := make([]string, len(st.Steps))
		for i, s := range st.Steps {
			got[i] = s.ID
		}
		want := make([]string, len(e.Steps))
		for i, s := range e.Steps {
			want[i] = s.ID
		}
		if !slices.Equal(got, want) {
			failf(e.LineOf("steps"), "steps: got %s, want %s", flowList(got), flowList(want))
		} else {
			for i, w := range e.Steps {
				fails = append(fails, checkStep(i, w, st.Steps[i])...)
			}
		}
	}
	if e.Has("approvals") {
		got := make([]string, len(st.Approvals))
		for i, a := range st.Approvals {
			got[i] = a.Step
		}
		if !slices.Equal(got, e.Approvals) {
			failf(e.LineOf("approvals"), "approvals: got %s, want %s", flowList(got), flowList(e.Approvals))
		}
	}
	if e.Status != nil && *e.Status != status {
		failf(e.LineOf("status"), "status: got %s, want %s", status, *e.Status)
	}
	if e.Outcome != nil && *e.Outcome != outcome {
		failf(e.LineOf("outcome"), "outcome: got %s, want %s", cmp.Or(outcome, "none"), *e.Outcome)
	}
	return fails
}

func checkStep(i int, want ExpectedStep, got workflows.StepResult) []failure {
	var fails []failure
	failf := func(format string, args ...any) {
		prefix := fmt.Sprintf("steps[%d] %s: ", i, want.ID)
		fails = append(fails, failure{line: want.Line, msg: prefix + fmt.Sprintf(format, args...)})
	}
	if got.Status != want.Status {
		why := ""
		if got.Error != "" {
			why = " (" + strings.TrimPrefix(got.ErrorType+": ", ": ") + got.Error + ")"
		}
		failf("status: got %s%s, want %s", got.Status, why, want.Status)
	}
	if want.With != nil {
		g, w := normalise(got.Params), normalise(want.With)
		if !reflect.DeepEqual(g, w) {
			failf("with: got %s, want %s", flow(g), flow(w))
		}
	}
	if want.ErrorType != "" && got.ErrorType != want.ErrorType {
		failf("errorType: got %s, want %s", cmp.Or(got.ErrorType, "none"), want.ErrorType)
	}
	return fails
}

// normalise gives v the shape it has after a trip through JSON, as the
// workflow's result has: numbers float64, lists []any, maps map[string]any.
// An empty map and no map are the same set of parameters.
func normalise(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 0 {
		return map[string]any{}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return v
	}
	if out == nil {
		return map[string]any{}
	}
	return out
}

func sortFailures(fails []failure) []failure {
	slices.SortStableFunc(fails, func(a, b failure) int { return cmp.Compare(a.line, b.line) })
	return fails
}

// observed writes what a case observed in the format of the test file's
// expect, so that an author can read it against the file, or paste it.
func observed(o *outcome) string {
	got := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, value *yaml.Node) {
		got.Content = append(got.Content, str(key), value)
	}
	add("match", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(o.matched)})
	if o.matched {
		key := str(o.match.IncidentKey)
		key.LineComment = "incident " + o.match.IncidentID()
		add("incidentKey", key)
		add("severity", str(o.match.Severity.String()))
	}
	if inc := o.incident; inc != nil && inc.state != nil {
		st := inc.state
		steps := &yaml.Node{Kind: yaml.SequenceNode}
		for _, s := range st.Steps {
			steps.Content = append(steps.Content, stepNode(s))
		}
		add("steps", steps)
		approvals := make([]string, len(st.Approvals))
		for i, a := range st.Approvals {
			approvals[i] = a.Step
		}
		add("approvals", flowNode(approvals))
		status := str(inc.statusAfterSteps())
		status.LineComment = plural(st.AlertCount, "alert")
		add("status", status)
		if inc.outcome != "" {
			add("outcome", str(inc.outcome))
		}
	}
	root := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{str("got"), got}}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return fmt.Sprintf("got: (cannot print: %v)\n", err)
	}
	return b.String()
}

// stepNode is one step as a flow mapping: {id: contain, status: succeeded,
// with: {...}}, with the step's error, if any, as a comment.
func stepNode(s workflows.StepResult) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	n.Content = append(n.Content, str("id"), str(s.ID), str("status"), str(s.Status))
	if s.Params != nil {
		n.Content = append(n.Content, str("with"), flowNode(normalise(s.Params)))
	}
	if s.ErrorType != "" {
		n.Content = append(n.Content, str("errorType"), str(s.ErrorType))
	}
	if s.Error != "" {
		n.LineComment = strings.ReplaceAll(s.Error, "\n", " ")
	}
	return n
}

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// flowNode encodes v as a YAML node in flow style throughout.
func flowNode(v any) *yaml.Node {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return str(fmt.Sprint(v))
	}
	setFlow(&n)
	return &n
}

func setFlow(n *yaml.Node) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style = yaml.FlowStyle
	}
	for _, c := range n.Content {
		setFlow(c)
	}
}

// flow prints v as one line of flow-style YAML, as an author would write it
// in the test file.
func flow(v any) string {
	out, err := yaml.Marshal(flowNode(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(string(out))
}

func flowList(s []string) string {
	if s == nil {
		s = []string{}
	}
	return flow(s)
}
