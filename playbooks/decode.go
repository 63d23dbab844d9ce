package playbooks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder turns one playbook file into a Playbook. It walks yaml.v3's node
// tree itself instead of unmarshalling into a struct, because only the node
// tree has the line and column of every key and value, and because it lets
// one pass report every problem, not just the first.
type decoder struct {
	file  string
	lines []string
	opts  LoadOptions
	errs  []*LoadError
}

// field describes one key of a YAML mapping. Adding a key to the format is
// adding a struct field and one entry to its mapping's table.
type field struct {
	key      string
	required bool
	// decode is called with the value node (aliases resolved) and the key's
	// path, such as "steps[0].action".
	decode func(value *yaml.Node, path string)
}

// document parses src and returns its root mapping. A file holds exactly
// one playbook, so a second YAML document is an error rather than being
// silently ignored.
func (d *decoder) document(src []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errs = append(d.errs, &LoadError{File: d.file, Err: errors.New("file is empty")})
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
		d.failf(&extra, "", "a playbook file holds one YAML document; split the others into their own files")
		return nil, false
	}
	if len(doc.Content) == 0 {
		d.errs = append(d.errs, &LoadError{File: d.file, Err: errors.New("file is empty")})
		return nil, false
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		d.failf(root, "", "a playbook must be a YAML mapping, not %s", kindName(root))
		return nil, false
	}
	return root, true
}

// syntaxError converts a yaml.v3 syntax error, which exists only as text
// ("yaml: line 3: did not find expected key"), into a LoadError at the line
// it names. yaml.v3 leaves the line out when the problem is on the first
// line, so that is the default.
func (d *decoder) syntaxError(err error) *LoadError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, after
			}
		}
	}
	return &LoadError{File: d.file, Line: line, Err: fmt.Errorf("invalid YAML: %s", msg)}
}

// mapping decodes mapping node n with the given fields: unknown and
// duplicate keys are errors (strict decoding), and so are missing required
// keys, reported at the mapping itself.
func (d *decoder) mapping(n *yaml.Node, path string, fields []field) {
	if n.Kind != yaml.MappingNode {
		d.failf(n, path, "must be a mapping, not %s", kindName(n))
		return
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		keyNode, value := resolve(n.Content[i]), resolve(n.Content[i+1])
		key := keyNode.Value
		keyPath := joinPath(path, key)
		if keyNode.Kind != yaml.ScalarNode {
			d.failf(keyNode, path, "keys must be scalars, not %s", kindName(keyNode))
			continue
		}
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
}

// string decodes any scalar as its text; null is the empty string.
func (d *decoder) string(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.failf(n, path, "must be a string, not %s", kindName(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

// requiredString decodes a scalar that must not be empty.
func (d *decoder) requiredString(n *yaml.Node, path string) (string, bool) {
	s, ok := d.string(n, path)
	if !ok {
		return "", false
	}
	if strings.TrimSpace(s) == "" {
		d.failf(n, path, "must not be empty")
		return "", false
	}
	return s, true
}

// failf records a problem at node n.
func (d *decoder) failf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &LoadError{
		File: d.file, Line: n.Line, Column: n.Column, Field: path,
		Err: fmt.Errorf(format, args...),
	})
}

// resolve follows an alias to the node it names. The format is only three
// levels deep, so following aliases cannot blow up.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is YAML's null, such as the value of "window:"
// with nothing after it. Optional fields treat null like an absent key, as
// YAML itself does.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// joinPath appends key to the path of its mapping, for LoadError.Field.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// kindName names a node's kind for error messages.
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
