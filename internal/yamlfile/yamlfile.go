// Package yamlfile decodes hand-written YAML files strictly, reporting every
// problem with its file, line and column. It walks yaml.v3's node tree instead
// of unmarshalling into structs, because only the node tree knows where each
// key and value is, and because one pass can report every problem rather than
// the first. Playbooks and their author tests are both read with it.
package yamlfile

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem in one file. It prints as
// "file:line:col: field: message", the form editors and CI annotations
// understand; Line and Column are 1-based and 0 when unknown, and Field is the
// path of the offending key, such as "steps[1].with.pod", or empty.
type Error struct {
	File   string
	Line   int
	Column int
	Field  string
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Sort orders errors by file, line and column. The sort is stable so that two
// problems at one position keep the order in which they were found.
func Sort(errs []*Error) {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}

// Decoder collects the problems of one file.
type Decoder struct {
	File string
	Errs []*Error
}

// Field describes one key of a YAML mapping. Adding a key to a format is
// adding one entry to its mapping's table.
type Field struct {
	Key      string
	Required bool
	// Decode is called with the value node (aliases resolved) and the key's
	// path, such as "steps[0].action".
	Decode func(value *yaml.Node, path string)
}

// Document parses src, which must hold exactly one YAML document whose root is
// a mapping, and returns that mapping. what names the file's kind in messages
// ("playbook", "test file"): a second document is an error rather than being
// silently ignored.
func (d *Decoder) Document(src []byte, what string) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.Errs = append(d.Errs, &Error{File: d.File, Err: errors.New("file is empty")})
		} else {
			d.Errs = append(d.Errs, d.SyntaxError(err))
		}
		return nil, false
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.Errs = append(d.Errs, d.SyntaxError(err))
		return nil, false
	default:
		d.Failf(&extra, "", "a %s holds one YAML document; split the others into their own files", what)
		return nil, false
	}
	if len(doc.Content) == 0 {
		d.Errs = append(d.Errs, &Error{File: d.File, Err: errors.New("file is empty")})
		return nil, false
	}
	root := Resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		d.Failf(root, "", "a %s must be a YAML mapping, not %s", what, KindName(root))
		return nil, false
	}
	return root, true
}

// SyntaxError converts a yaml.v3 syntax error, which exists only as text
// ("yaml: line 3: did not find expected key"), into an Error at the line it
// names. yaml.v3 leaves the line out when the problem is on the first line, so
// that is the default; for some errors the line is where the enclosing block
// starts rather than the offending character.
func (d *Decoder) SyntaxError(err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, after
			}
		}
	}
	return &Error{File: d.File, Line: line, Err: fmt.Errorf("invalid YAML: %s", msg)}
}

// Mapping decodes mapping node n with fields: unknown and duplicate keys are
// errors (strict decoding), and so are missing required keys, reported at the
// mapping itself. It returns the key nodes it saw, by key.
func (d *Decoder) Mapping(n *yaml.Node, path string, fields []Field) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		d.Failf(n, path, "must be a mapping, not %s", KindName(n))
		return nil
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		keyNode, value := Resolve(n.Content[i]), Resolve(n.Content[i+1])
		key := keyNode.Value
		keyPath := JoinPath(path, key)
		if keyNode.Kind != yaml.ScalarNode {
			d.Failf(keyNode, path, "keys must be scalars, not %s", KindName(keyNode))
			continue
		}
		if first, dup := seen[key]; dup {
			d.Failf(keyNode, keyPath, "duplicate key (first at line %d)", first.Line)
			continue
		}
		seen[key] = keyNode
		i := slices.IndexFunc(fields, func(f Field) bool { return f.Key == key })
		if i < 0 {
			d.Failf(keyNode, keyPath, "unknown field")
			continue
		}
		fields[i].Decode(value, keyPath)
	}
	for _, f := range fields {
		if _, ok := seen[f.Key]; f.Required && !ok {
			d.Failf(n, JoinPath(path, f.Key), "required field is missing")
		}
	}
	return seen
}

// String decodes any scalar as its text; null is the empty string.
func (d *Decoder) String(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.Failf(n, path, "must be a string, not %s", KindName(n))
		return "", false
	}
	if IsNull(n) {
		return "", true
	}
	return n.Value, true
}

// RequiredString decodes a scalar that must not be empty or blank.
func (d *Decoder) RequiredString(n *yaml.Node, path string) (string, bool) {
	s, ok := d.String(n, path)
	if !ok {
		return "", false
	}
	if strings.TrimSpace(s) == "" {
		d.Failf(n, path, "must not be empty")
		return "", false
	}
	return s, true
}

// Bool decodes a YAML boolean: true or false (yaml.v3 does not take YAML 1.1's
// yes and no as booleans).
func (d *Decoder) Bool(n *yaml.Node, path string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.Failf(n, path, "must be true or false")
		return false, false
	}
	b, err := strconv.ParseBool(strings.ToLower(n.Value))
	if err != nil {
		d.Failf(n, path, "must be true or false")
		return false, false
	}
	return b, true
}

// Failf records a problem at node n.
func (d *Decoder) Failf(n *yaml.Node, path, format string, args ...any) {
	d.Errs = append(d.Errs, &Error{
		File: d.File, Line: n.Line, Column: n.Column, Field: path,
		Err: fmt.Errorf(format, args...),
	})
}

// Resolve follows an alias to the node it names.
func Resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is YAML's null, such as the value of "window:" with
// nothing after it. Optional fields treat null like an absent key, as YAML
// itself does.
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// JoinPath appends key to the path of its mapping, for Error.Field.
func JoinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// KindName names a node's kind for error messages.
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if IsNull(n) {
			return "null"
		}
		return "a scalar"
	}
	return "an unsupported node"
}
