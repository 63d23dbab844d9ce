package yamlfile

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestDecoderReportsEveryProblemWithItsPosition(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"empty", "", []string{"f.yaml: file is empty"}},
		{"two documents", "a: 1\n---\nb: 2\n", []string{"f.yaml:2:1: a thing holds one YAML document"}},
		{"not a mapping", "- a\n", []string{"f.yaml:1:1: a thing must be a YAML mapping, not a list"}},
		// yaml.v3 names the line where the unclosed flow sequence opened.
		{"syntax", "a: [\n", []string{"f.yaml:1: invalid YAML: did not find expected node content"}},
		{"unknown, duplicate and missing keys", "name: x\nname: y\nextra: 1\n", []string{
			"f.yaml:1:1: count: required field is missing",
			"f.yaml:2:1: name: duplicate key (first at line 1)",
			"f.yaml:3:1: extra: unknown field",
		}},
		{"wrong kinds", "name: [a]\nflag: maybe\ncount: 1\n", []string{
			"f.yaml:1:7: name: must be a string, not a list",
			"f.yaml:2:7: flag: must be true or false",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Decoder{File: "f.yaml"}
			if root, ok := d.Document([]byte(tc.src), "thing"); ok {
				d.Mapping(root, "", []Field{
					{Key: "name", Decode: func(n *yaml.Node, path string) { d.RequiredString(n, path) }},
					{Key: "flag", Decode: func(n *yaml.Node, path string) { d.Bool(n, path) }},
					{Key: "count", Required: true, Decode: func(*yaml.Node, string) {}},
				})
			}
			Sort(d.Errs)
			if len(d.Errs) != len(tc.want) {
				t.Fatalf("got %d problems %v, want %d", len(d.Errs), d.Errs, len(tc.want))
			}
			for i, e := range d.Errs {
				if !strings.HasPrefix(e.Error(), tc.want[i]) {
					t.Errorf("problem %d = %q, want prefix %q", i, e.Error(), tc.want[i])
				}
			}
		})
	}
}
