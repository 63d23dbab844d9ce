package playbooktest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/soar-dev/soar/internal/alert"
	"github.com/soar-dev/soar/playbooks"
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
	d := &decoder{file: path}
	f := &File{Path: path}
	root, ok := d.document(src)
	if ok {
		d.mapping(root, "", []field{
			{key: "cases", required: true, decode: func(n *yaml.Node, path string) {
				f.Cases = d.cases(n, path)
			}},
		})
	}
	if len(d.errs) > 0 {
		return nil, &playbooks.LoadErrors{Errs: d.errs}
	}
	return f, nil
}

// decoder walks yaml.v3's node tree, which alone knows the line of every
// key, and collects every problem rather than stopping at the first.
type decoder struct {
	file string
	errs []*playbooks.LoadError
}

// field describes one key of a mapping.
type field struct {
	key      string
	required bool
	decode   func(value *yaml.Node, path string)
}

func (d *decoder) document(src []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errs = append(d.errs, &playbooks.LoadError{File: d.file, Err: errors.New("file is empty")})
		} else {
			d.errs = append(d.errs, d.syntaxError(err))
		}
		return nil, false
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.errs = append(d.errs, d.syntaxError(err))
		return nil, false
	default:
		d.failf(&extra, "", "a test file holds one YAML document")
		return nil, false
	}
	if len(doc.Content) == 0 {
		d.errs = append(d.errs, &playbooks.LoadError{File: d.file, Err: errors.New("file is empty")})
		return nil, false
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		d.failf(root, "", "a test file must be a YAML mapping with a cases list, not %s", kindName(root))
		return nil, false
	}
	return root, true
}

// syntaxError turns yaml.v3's "yaml: line 3: ..." into an error at line 3.
func (d *decoder) syntaxError(err error) *playbooks.LoadError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, after
			}
		}
	}
	return &playbooks.LoadError{File: d.file, Line: line, Err: fmt.Errorf("invalid YAML: %s", msg)}
}

// mapping decodes mapping n with fields; unknown and duplicate keys are
// errors, and so are missing required ones. It returns the keys it saw.
func (d *decoder) mapping(n *yaml.Node, path string, fields []field) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		d.failf(n, path, "must be a mapping, not %s", kindName(n))
		return nil
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		keyNode, value := resolve(n.Content[i]), resolve(n.Content[i+1])
		if keyNode.Kind != yaml.ScalarNode {
			d.failf(keyNode, path, "keys must be scalars, not %s", kindName(keyNode))
			continue
		}
		key := keyNode.Value
		keyPath := joinPath(path, key)
		if first, dup := seen[key]; dup {
			d.failf(keyNode, keyPath, "duplicate key (first at line %d)", first.Line)
			continue
		}
		seen[key] = keyNode
		i := slices.IndexFunc(fields, func(f field) bool { return f.key == key })
		if i < 0 {
			d.failf(keyNode, keyPath, "unknown field")
			continue
		}
		fields[i].decode(value, keyPath)
	}
	for _, f := range fields {
		if _, ok := seen[f.key]; f.required && !ok {
			d.failf(n, joinPath(path, f.key), "required field is missing")
		}
	}
	return seen
}

func (d *decoder) cases(n *yaml.Node, path string) []Case {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		d.failf(n, path, "must be a non-empty list of cases")
		return nil
	}
	names := map[string]int{}
	cases := make([]Case, 0, len(n.Content))
	for i, item := range n.Content {
		item = resolve(item)
		c := Case{Line: item.Line, Repeat: 1}
		casePath := fmt.Sprintf("%s[%d]", path, i)
		alertSet := false
		alertOnce := func(n *yaml.Node, path string) bool {
			if alertSet {
				d.failf(n, path, "a case takes one of alert and alertJSON, not both")
				return false
			}
			alertSet = true
			return true
		}
		seen := d.mapping(item, casePath, []field{
			{key: "name", required: true, decode: func(n *yaml.Node, path string) {
				name, ok := d.requiredString(n, path)
				if !ok {
					return
				}
				if first, dup := names[name]; dup {
					d.failf(n, path, "duplicate case name %q (first at line %d)", name, first)
					return
				}
				names[name] = n.Line
				c.Name = name
			}},
			{key: "alert", decode: func(n *yaml.Node, path string) {
				if !alertOnce(n, path) {
					return
				}
				c.AlertFile, _ = d.requiredString(n, path)
				c.AlertLine = n.Line
			}},
			{key: "alertJSON", decode: func(n *yaml.Node, path string) {
				if !alertOnce(n, path) {
					return
				}
				if n.Kind != yaml.ScalarNode {
					d.failf(n, path, "must be the alert's JSON as a string, not %s: quote it, as in alertJSON: '{\"rule\": \"...\"}'", kindName(n))
					return
				}
				c.AlertJSON, _ = d.requiredString(n, path)
				c.AlertLine = n.Line
			}},
			{key: "repeat", decode: func(n *yaml.Node, path string) {
				v, err := strconv.Atoi(n.Value)
				if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil || v < 1 || v > MaxRepeat {
					d.failf(n, path, "must be a whole number from 1 to %d", MaxRepeat)
					return
				}
				c.Repeat = v
			}},
			{key: "decisions", decode: func(n *yaml.Node, path string) {
				c.Decisions, c.DecisionLines = d.decisions(n, path)
			}},
			{key: "expect", required: true, decode: func(n *yaml.Node, path string) {
				c.Expect = d.expect(n, path)
			}},
		})
		if k := seen["expect"]; k != nil {
			c.Expect.Line = k.Line
		}
		if seen != nil && seen["alert"] == nil && seen["alertJSON"] == nil {
			d.failf(item, casePath, "a case needs an alert: alert (a file, relative to this test file) or alertJSON (the JSON inline)")
		}
		cases = append(cases, c)
	}
	return cases
}

func (d *decoder) decisions(n *yaml.Node, path string) (map[string]string, map[string]int) {
	if n.Kind != yaml.MappingNode {
		d.failf(n, path, "must be a mapping of approval step ids to approve, deny or expire, not %s", kindName(n))
		return nil, nil
	}
	out := map[string]string{}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		keyPath := joinPath(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			d.failf(k, path, "keys must be step ids, not %s", kindName(k))
			continue
		}
		if first, dup := lines[k.Value]; dup {
			d.failf(k, keyPath, "duplicate key (first at line %d)", first)
			continue
		}
		lines[k.Value] = k.Line
		s, ok := d.requiredString(v, keyPath)
		if !ok {
			continue
		}
		if s != DecisionApprove && s != DecisionDeny && s != DecisionExpire {
			d.failf(v, keyPath, "%q is not approve, deny or expire", s)
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
	seen := d.mapping(n, path, []field{
		{key: "match", required: true, decode: func(n *yaml.Node, path string) {
			e.Match, matchSet = d.bool(n, path)
		}},
		{key: "incidentKey", decode: func(n *yaml.Node, path string) {
			if s, ok := d.requiredString(n, path); ok {
				e.IncidentKey = &s
			}
		}},
		{key: "severity", decode: func(n *yaml.Node, path string) {
			s, ok := d.requiredString(n, path)
			if !ok {
				return
			}
			sev, err := alert.ParseSeverity(s)
			if err != nil {
				d.failf(n, path, "%q is not a severity such as notice, warning or critical", s)
				return
			}
			e.Severity = &sev
		}},
		{key: "steps", decode: func(n *yaml.Node, path string) {
			e.Steps = d.steps(n, path)
		}},
		{key: "approvals", decode: func(n *yaml.Node, path string) {
			e.Approvals = d.stringList(n, path)
		}},
		{key: "status", decode: func(n *yaml.Node, path string) {
			s, ok := d.requiredString(n, path)
			if !ok {
				return
			}
			if !slices.Contains(afterSteps, s) {
				d.failf(n, path, "%q is not a status after the steps: use %s", s, strings.Join(afterSteps, ", "))
				return
			}
			e.Status = &s
		}},
	})
	for key, k := range seen {
		e.lines[key] = k.Line
	}
	if matchSet && !e.Match {
		for _, key := range []string{"incidentKey", "severity", "steps", "approvals", "status"} {
			if k := seen[key]; k != nil {
				d.failf(k, joinPath(path, key), "only with match: true: an alert that does not match opens no incident")
			}
		}
	}
	return e
}

func (d *decoder) steps(n *yaml.Node, path string) []ExpectedStep {
	if n.Kind != yaml.SequenceNode {
		d.failf(n, path, "must be a list of steps, not %s", kindName(n))
		return nil
	}
	steps := make([]ExpectedStep, 0, len(n.Content))
	ids := map[string]int{}
	for i, item := range n.Content {
		item = resolve(item)
		s := ExpectedStep{Line: item.Line}
		stepPath := fmt.Sprintf("%s[%d]", path, i)
		var errorTypeNode *yaml.Node
		d.mapping(item, stepPath, []field{
			{key: "id", required: true, decode: func(n *yaml.Node, path string) {
				id, ok := d.requiredString(n, path)
				if !ok {
					return
				}
				if first, dup := ids[id]; dup {
					d.failf(n, path, "duplicate step id %q (first at line %d)", id, first)
					return
				}
				ids[id] = n.Line
				s.ID = id
			}},
			{key: "status", required: true, decode: func(n *yaml.Node, path string) {
				st, ok := d.requiredString(n, path)
				if ok && st != stepSucceeded && st != stepFailed && st != stepSkipped {
					d.failf(n, path, "%q is not succeeded, failed or skipped", st)
					return
				}
				s.Status = st
			}},
			{key: "with", decode: func(n *yaml.Node, path string) {
				if n.Kind != yaml.MappingNode {
					d.failf(n, path, "must be a mapping of parameter names to values, not %s", kindName(n))
					return
				}
				v, err := nodeValue(n)
				if err != nil {
					d.failf(n, path, "%v", err)
					return
				}
				s.With = v.(map[string]any)
			}},
			{key: "errorType", decode: func(n *yaml.Node, path string) {
				errorTypeNode = n
				s.ErrorType, _ = d.requiredString(n, path)
			}},
		})
		if errorTypeNode != nil && s.Status != "" && s.Status != stepFailed {
			d.failf(errorTypeNode, stepPath+".errorType", "only a failed step has an error type")
		}
		steps = append(steps, s)
	}
	return steps
}

func (d *decoder) stringList(n *yaml.Node, path string) []string {
	if n.Kind != yaml.SequenceNode {
		d.failf(n, path, "must be a list of step ids, not %s", kindName(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		if s, ok := d.requiredString(resolve(item), fmt.Sprintf("%s[%d]", path, i)); ok {
			out = append(out, s)
		}
	}
	return out
}

func (d *decoder) requiredString(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.failf(n, path, "must be a string, not %s", kindName(n))
		return "", false
	}
	if isNull(n) || strings.TrimSpace(n.Value) == "" {
		d.failf(n, path, "must not be empty")
		return "", false
	}
	return n.Value, true
}

func (d *decoder) bool(n *yaml.Node, path string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.failf(n, path, "must be true or false")
		return false, false
	}
	b, err := strconv.ParseBool(strings.ToLower(n.Value))
	if err != nil {
		// YAML 1.1 spellings such as "yes" are not booleans in yaml.v3, so
		// only true and false in their cases get here.
		d.failf(n, path, "must be true or false")
		return false, false
	}
	return b, true
}

func (d *decoder) failf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &playbooks.LoadError{
		File: d.file, Line: n.Line, Column: n.Column, Field: path,
		Err: fmt.Errorf(format, args...),
	})
}

// nodeValue converts a YAML value to the Go value a parameter expression
// would give: strings, float64 numbers (as they come back from the
// workflow), bools, nil, lists and maps. Timestamps stay the strings they
// were written as, because no expression result is a YAML timestamp.
func nodeValue(n *yaml.Node) (any, error) {
	n = resolve(n)
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
			k := resolve(n.Content[i])
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

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return "a scalar"
	}
	return "an unsupported node"
}
