package playbooktest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/soar-dev/soar/internal/yamlfile"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// How simulated approvers answer an approval step (a case's decisions).
const (
	// DecisionApprove: distinct approvers from the step's list vote yes
	// until the quorum is reached.
	DecisionApprove = "approve"
	// DecisionDeny: the step's first approver votes no.
	DecisionDeny = "deny"
	// DecisionExpire: nobody votes, so the approval runs into its timeout.
	// It is what happens to an approval step the case names no decision for.
	DecisionExpire = "expire"
)

// Step statuses an expectation may name, as the Respond workflow records them.
const (
	stepSucceeded = "succeeded"
	stepFailed    = "failed"
	stepSkipped   = "skipped"
)

// MaxRepeat bounds a case's repeat. A test is about a playbook's logic, not
// about storms; the bound also keeps every case far below the number of
// alerts after which Respond continues as new.
const MaxRepeat = 100

// File is one author test file: the cases for the playbook in the file of
// the same name without _test, in the same directory.
type File struct {
	// Path is the test file's path as it was read.
	Path  string
	Cases []Case
}

// Case is one test case: an alert, how many times it arrives, how the
// approvers answer, and what must come of it.
type Case struct {
	Name string
	// Line is the line of the case's first key.
	Line int
	// AlertFile is the alert's file as written, relative to the test file;
	// AlertJSON is the inline alert. Exactly one is set.
	AlertFile string
	AlertJSON string
	AlertLine int
	// Repeat is how many times the alert arrives, at least 1.
	Repeat int
	// Decisions maps approval step IDs to DecisionApprove, DecisionDeny or
	// DecisionExpire.
	Decisions map[string]string
	// DecisionLines holds the line of each decision, by step ID.
	DecisionLines map[string]int
	Expect        Expect
}

// Expect is what a case must observe. Optional fields that the file leaves
// out are not checked; lines says which fields the file set and where.
type Expect struct {
	Match bool
	// IncidentKey, Severity and Status are nil when not set.
	IncidentKey *string
	Severity    *alert.Severity
	// Steps and Approvals are checked when Has("steps") and
	// Has("approvals"), which tells an absent list from an empty one.
	Steps     []ExpectedStep
	Approvals []string
	Status    *string
	// Outcome is nil when not set.
	Outcome *string
	// Line is the line of the expect key.
	Line  int
	lines map[string]int
}

// Has reports whether the file set the expectation field key, such as
// "steps".
func (e Expect) Has(key string) bool {
	_, ok := e.lines[key]
	return ok
}

// LineOf returns the line of the expectation field key, or of expect itself
// when the file did not set it.
func (e Expect) LineOf(key string) int {
	if l, ok := e.lines[key]; ok {
		return l
	}
	return e.Line
}

// ExpectedStep is the expected final result of one step.
type ExpectedStep struct {
	ID     string
	Status string
	// With holds the expected resolved parameters, nil when not checked.
	With      map[string]any
	ErrorType string
	Line      int
}

// ParseFile decodes the test file at path, whose content is src. It decodes
// strictly, like the playbook loader: an unknown field, a duplicate key, a
// missing required field, a value of the wrong kind, two cases with one name
// or a case with both or neither of alert and alertJSON is an error. It
// reports every problem it finds, as a *playbooks.LoadErrors whose entries
// print as FILE:LINE:COLUMN: FIELD: MESSAGE, and returns no File then.
func ParseFile(path string, src []byte) (*File, error) {
	d := &decoder{Decoder: yamlfile.Decoder{File: path}}
	f := &File{Path: path}
	root, ok := d.Document(src, "test file")
	if ok {
		d.Mapping(root, "", []yamlfile.Field{
			{Key: "cases", Required: true, Decode: func(n *yaml.Node, path string) {
				f.Cases = d.cases(n, path)
			}},
		})
	}
	if len(d.Errs) > 0 {
		return nil, &playbooks.LoadErrors{Errs: d.Errs}
	}
	return f, nil
}

// decoder reads a test file with yamlfile's strict decoding.
type decoder struct {
	yamlfile.Decoder
}

func (d *decoder) cases(n *yaml.Node, path string) []Case {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		d.Failf(n, path, "must be a non-empty list of cases")
		return nil
	}
	names := map[string]int{}
	cases := make([]Case, 0, len(n.Content))
	for i, item := range n.Content {
		item = yamlfile.Resolve(item)
		c := Case{Line: item.Line, Repeat: 1}
		casePath := fmt.Sprintf("%s[%d]", path, i)
		alertSet := false
		alertOnce := func(n *yaml.Node, path string) bool {
			if alertSet {
				d.Failf(n, path, "a case takes one of alert and alertJSON, not both")
				return false
			}
			alertSet = true
			return true
		}
		seen := d.Mapping(item, casePath, []yamlfile.Field{
			{Key: "name", Required: true, Decode: func(n *yaml.Node, path string) {
				name, ok := d.RequiredString(n, path)
				if !ok {
					return
				}
				if first, dup := names[name]; dup {
					d.Failf(n, path, "duplicate case name %q (first at line %d)", name, first)
					return
				}
				names[name] = n.Line
				c.Name = name
			}},
			{Key: "alert", Decode: func(n *yaml.Node, path string) {
				if !alertOnce(n, path) {
					return
				}
				c.AlertFile, _ = d.RequiredString(n, path)
				c.AlertLine = n.Line
			}},
			{Key: "alertJSON", Decode: func(n *yaml.Node, path string) {
				if !alertOnce(n, path) {
					return
				}
				if n.Kind != yaml.ScalarNode {
					d.Failf(n, path, "must be the alert's JSON as a string, not %s: quote it, as in alertJSON: '{\"rule\": \"...\"}'", yamlfile.KindName(n))
					return
				}
				c.AlertJSON, _ = d.RequiredString(n, path)
				c.AlertLine = n.Line
			}},
			{Key: "repeat", Decode: func(n *yaml.Node, path string) {
				v, err := strconv.Atoi(n.Value)
				if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil || v < 1 || v > MaxRepeat {
					d.Failf(n, path, "must be a whole number from 1 to %d", MaxRepeat)
					return
				}
				c.Repeat = v
			}},
			{Key: "decisions", Decode: func(n *yaml.Node, path string) {
				c.Decisions, c.DecisionLines = d.decisions(n, path)
			}},
			{Key: "expect", Required: true, Decode: func(n *yaml.Node, path string) {
				c.Expect = d.expect(n, path)
			}},
		})
		if k := seen["expect"]; k != nil {
			c.Expect.Line = k.Line
		}
		if seen != nil && seen["alert"] == nil && seen["alertJSON"] == nil {
			d.Failf(item, casePath, "a case needs an alert: alert (a file, relative to this test file) or alertJSON (the JSON inline)")
		}
		cases = append(cases, c)
	}
	return cases
}

func (d *decoder) decisions(n *yaml.Node, path string) (map[string]string, map[string]int) {
	if n.Kind != yaml.MappingNode {
		d.Failf(n, path, "must be a mapping of approval step ids to approve, deny or expire, not %s", yamlfile.KindName(n))
		return nil, nil
	}
	out := map[string]string{}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := yamlfile.Resolve(n.Content[i]), yamlfile.Resolve(n.Content[i+1])
		keyPath := yamlfile.JoinPath(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			d.Failf(k, path, "keys must be step ids, not %s", yamlfile.KindName(k))
			continue
		}
		if first, dup := lines[k.Value]; dup {
			d.Failf(k, keyPath, "duplicate key (first at line %d)", first)
			continue
		}
		lines[k.Value] = k.Line
		s, ok := d.RequiredString(v, keyPath)
		if !ok {
			continue
		}
		if s != DecisionApprove && s != DecisionDeny && s != DecisionExpire {
			d.Failf(v, keyPath, "%q is not approve, deny or expire", s)
			continue
		}
		out[k.Value] = s
	}
	return out, lines
}

// afterSteps are the incident statuses a case can observe once the steps
// have run; every incident in a test ends closed, so closed is not one.
var afterSteps = []string{"contained", "failed", "planned", "released"}

func (d *decoder) expect(n *yaml.Node, path string) Expect {
	e := Expect{Line: n.Line, lines: map[string]int{}}
	var matchSet bool
	seen := d.Mapping(n, path, []yamlfile.Field{
		{Key: "match", Required: true, Decode: func(n *yaml.Node, path string) {
			e.Match, matchSet = d.Bool(n, path)
		}},
		{Key: "incidentKey", Decode: func(n *yaml.Node, path string) {
			if s, ok := d.RequiredString(n, path); ok {
				e.IncidentKey = &s
			}
		}},
		{Key: "severity", Decode: func(n *yaml.Node, path string) {
			s, ok := d.RequiredString(n, path)
			if !ok {
				return
			}
			sev, err := alert.ParseSeverity(s)
			if err != nil {
				d.Failf(n, path, "%q is not a severity such as notice, warning or critical", s)
				return
			}
			e.Severity = &sev
		}},
		{Key: "steps", Decode: func(n *yaml.Node, path string) {
			e.Steps = d.steps(n, path)
		}},
		{Key: "approvals", Decode: func(n *yaml.Node, path string) {
			e.Approvals = d.stringList(n, path)
		}},
		{Key: "status", Decode: func(n *yaml.Node, path string) {
			s, ok := d.RequiredString(n, path)
			if !ok {
				return
			}
			if !slices.Contains(afterSteps, s) {
				d.Failf(n, path, "%q is not a status after the steps: use %s", s, strings.Join(afterSteps, ", "))
				return
			}
			e.Status = &s
		}},
		{Key: "outcome", Decode: func(n *yaml.Node, path string) {
			s, ok := d.RequiredString(n, path)
			if !ok {
				return
			}
			if !slices.Contains(workflows.Outcomes, s) {
				d.Failf(n, path, "%q is not an outcome: use %s", s, strings.Join(workflows.Outcomes, ", "))
				return
			}
			e.Outcome = &s
		}},
	})
	for key, k := range seen {
		e.lines[key] = k.Line
	}
	if matchSet && !e.Match {
		for _, key := range []string{"incidentKey", "severity", "steps", "approvals", "status", "outcome"} {
			if k := seen[key]; k != nil {
				d.Failf(k, yamlfile.JoinPath(path, key), "only with match: true: an alert that does not match opens no incident")
			}
		}
	}
	return e
}

func (d *decoder) steps(n *yaml.Node, path string) []ExpectedStep {
	if n.Kind != yaml.SequenceNode {
		d.Failf(n, path, "must be a list of steps, not %s", yamlfile.KindName(n))
		return nil
	}
	steps := make([]ExpectedStep, 0, len(n.Content))
	ids := map[string]int{}
	for i, item := range n.Content {
		item = yamlfile.Resolve(item)
		s := ExpectedStep{Line: item.Line}
		stepPath := fmt.Sprintf("%s[%d]", path, i)
		var errorTypeNode *yaml.Node
		d.Mapping(item, stepPath, []yamlfile.Field{
			{Key: "id", Required: true, Decode: func(n *yaml.Node, path string) {
				id, ok := d.RequiredString(n, path)
				if !ok {
					return
				}
				if first, dup := ids[id]; dup {
					d.Failf(n, path, "duplicate step id %q (first at line %d)", id, first)
					return
				}
				ids[id] = n.Line
				s.ID = id
			}},
			{Key: "status", Required: true, Decode: func(n *yaml.Node, path string) {
				st, ok := d.RequiredString(n, path)
				if ok && st != stepSucceeded && st != stepFailed && st != stepSkipped {
					d.Failf(n, path, "%q is not succeeded, failed or skipped", st)
					return
				}
				s.Status = st
			}},
			{Key: "with", Decode: func(n *yaml.Node, path string) {
				if n.Kind != yaml.MappingNode {
					d.Failf(n, path, "must be a mapping of parameter names to values, not %s", yamlfile.KindName(n))
					return
				}
				v, err := nodeValue(n)
				if err != nil {
					d.Failf(n, path, "%v", err)
					return
				}
				s.With = v.(map[string]any)
			}},
			{Key: "errorType", Decode: func(n *yaml.Node, path string) {
				errorTypeNode = n
				s.ErrorType, _ = d.RequiredString(n, path)
			}},
		})
		if errorTypeNode != nil && s.Status != "" && s.Status != stepFailed {
			d.Failf(errorTypeNode, stepPath+".errorType", "only a failed step has an error type")
		}
		steps = append(steps, s)
	}
	return steps
}

func (d *decoder) stringList(n *yaml.Node, path string) []string {
	if n.Kind != yaml.SequenceNode {
		d.Failf(n, path, "must be a list of step ids, not %s", yamlfile.KindName(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		if s, ok := d.RequiredString(yamlfile.Resolve(item), fmt.Sprintf("%s[%d]", path, i)); ok {
			out = append(out, s)
		}
	}
	return out
}

// nodeValue converts a YAML value to the Go value a parameter expression
// would give: strings, float64 numbers (as they come back from the
// workflow), bools, nil, lists and maps. Timestamps stay the strings they
// were written as, because no expression result is a YAML timestamp.
func nodeValue(n *yaml.Node) (any, error) {
	n = yamlfile.Resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			return strconv.ParseBool(strings.ToLower(n.Value))
		case "!!int", "!!float":
			var v float64
			if err := n.Decode(&v); err != nil {
				return nil, fmt.Errorf("line %d: %q is not a number", n.Line, n.Value)
			}
			return v, nil
		default:
			return n.Value, nil
		}
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, item := range n.Content {
			v, err := nodeValue(item)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := yamlfile.Resolve(n.Content[i])
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: keys must be scalars", k.Line)
			}
			if _, dup := out[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			v, err := nodeValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			out[k.Value] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}
