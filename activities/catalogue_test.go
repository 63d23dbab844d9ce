package activities

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestDefineDescribesAnActionFromItsTypes checks what Define derives from the
// input and output structs: names from the JSON tags, embedded structs
// flattened, types as authors write them, and the tags' docs, defaults,
// required flags and alert fields.
func TestDefineDescribesAnActionFromItsTypes(t *testing.T) {
	type in struct {
		PodParams
		Labels map[string]string `json:"labels" required:"true" doc:"labels to set"`
		Grace  *int64            `json:"grace,omitempty" default:"30" doc:"seconds"`
	}
	type out struct {
		Names []string `json:"names" doc:"what was touched"`
		Done  bool     `json:"done,omitempty" doc:"whether it ran"`
	}
	a := Define(Action{Name: "test.action"}, func(_ *Activities, _ context.Context, in in, _ ActionRequest) (out, error) {
		return out{Names: []string{in.Pod}, Done: true}, nil
	})
	var params []string
	for _, p := range a.Params {
		params = append(params, p.Name+":"+p.Type)
	}
	if want := []string{"namespace:string", "pod:string", "podUID:string", "labels:map", "grace:int"}; !slices.Equal(params, want) {
		t.Errorf("params = %v, want %v", params, want)
	}
	if p := a.Params[0]; p.FromAlert != "namespace" || p.Default != "the alert's namespace" || p.Required {
		t.Errorf("namespace param = %+v, want filled from the alert's namespace, not required", p)
	}
	if p := a.Params[3]; !p.Required || p.Doc != "labels to set" {
		t.Errorf("labels param = %+v, want required with its doc", p)
	}
	if p := a.Params[4]; p.Default != "30" {
		t.Errorf("grace param default = %q, want 30", p.Default)
	}
	if len(a.Output) != 2 || a.Output[0] != (Field{Name: "names", Type: "list", Doc: "what was touched"}) {
		t.Errorf("output = %+v", a.Output)
	}
	got, err := a.run(nil, t.Context(), ActionRequest{Action: a.Name, Params: map[string]any{"pod": "web", "labels": map[string]any{"a": "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got["done"] != true || len(got["names"].([]any)) != 1 {
		t.Errorf("run = %v, want the output struct as a map", got)
	}
}

func TestDefineRefusesAFieldWithoutADoc(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "test.nodoc: parameter x has no doc tag") {
			t.Errorf("recover() = %v, want a panic naming the action and the field", r)
		}
	}()
	type in struct {
		X string `json:"x"`
	}
	Define(Action{Name: "test.nodoc"}, func(*Activities, context.Context, in, ActionRequest) (struct{}, error) { return struct{}{}, nil })
}

// TestCatalogueIsConsistent checks what no type can: every action is listed
// once, in order, its role matches its permissions, and inverses point at
// each other.
func TestCatalogueIsConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range Catalogue() {
		if seen[a.Name] {
			t.Errorf("%s is listed twice", a.Name)
		}
		seen[a.Name] = true
		if a.Summary == "" || a.run == nil {
			t.Errorf("%s has no summary or no run", a.Name)
		}
		if (len(a.Permissions) == 0) != (a.Role == RoleNone) {
			t.Errorf("%s: role %q with %d Kubernetes permissions; only role %q has none", a.Name, a.Role, len(a.Permissions), RoleNone)
		}
		if a.Inverse != "" {
			inv, ok := Lookup(a.Inverse)
			if !ok || inv.InverseOf != a.Name {
				t.Errorf("%s: inverse %s is not in the catalogue or does not say it undoes %s", a.Name, a.Inverse, a.Name)
			}
		}
		if a.InverseOf != "" {
			fwd, ok := Lookup(a.InverseOf)
			if !ok || fwd.Inverse != a.Name {
				t.Errorf("%s undoes %s, which does not name it as its inverse", a.Name, a.InverseOf)
			}
		}
	}
}

func TestRequiredPermissionsMergesAndSorts(t *testing.T) {
	got := RequiredPermissions()
	type key struct{ group, resource string }
	seen := map[key]Permission{}
	for i, p := range got {
		k := key{p.Group, p.Resource}
		if _, dup := seen[k]; dup {
			t.Errorf("%s/%s appears twice", p.Group, p.Resource)
		}
		seen[k] = p
		if !slices.IsSorted(p.Verbs) || len(slices.Compact(slices.Clone(p.Verbs))) != len(p.Verbs) {
			t.Errorf("%s/%s verbs %v are not sorted and unique", p.Group, p.Resource, p.Verbs)
		}
		if i > 0 && (got[i-1].Group > p.Group || got[i-1].Group == p.Group && got[i-1].Resource >= p.Resource) {
			t.Errorf("not sorted at %d: %v after %v", i, p, got[i-1])
		}
	}
	// Every verb of every action is granted, and nothing else.
	granted := 0
	for _, p := range got {
		granted += len(p.Verbs)
	}
	need := map[key]map[string]bool{}
	for _, a := range Catalogue() {
		for _, p := range a.Permissions {
			k := key{p.Group, p.Resource}
			if need[k] == nil {
				need[k] = map[string]bool{}
			}
			for _, v := range p.Verbs {
				need[k][v] = true
				if !slices.Contains(seen[k].Verbs, v) {
					t.Errorf("%s needs %s %s/%s, not granted", a.Name, v, p.Group, p.Resource)
				}
			}
		}
	}
	n := 0
	for _, verbs := range need {
		n += len(verbs)
	}
	if granted != n {
		t.Errorf("RequiredPermissions grants %d verbs, the actions need %d", granted, n)
	}
	// The roles split them: pods/log only in evidence, nodes/proxy only in
	// the opt-in checkpoint role, which holds nothing else.
	for _, p := range append(RolePermissions(RoleResponder), RolePermissions(RoleEvidence)...) {
		if p.Resource == "nodes/proxy" {
			t.Errorf("a default role grants %s", p.Resource)
		}
	}
	for _, p := range RolePermissions(RoleResponder) {
		if p.Resource == "pods/log" {
			t.Errorf("the responder role grants %s", p.Resource)
		}
	}
	if got := RolePermissions(RoleCheckpoint); len(got) != 1 || got[0].Resource != "nodes/proxy" || !slices.Equal(got[0].Verbs, []string{"create"}) {
		t.Errorf("the checkpoint role grants %+v, want nodes/proxy create only", got)
	}
}

// TestActionsDocDescribesTheCatalogue keeps docs/actions.md true: every
// action has a section that names its parameters, output fields and
// permissions.
func TestActionsDocDescribesTheCatalogue(t *testing.T) {
	b, err := os.ReadFile("../docs/actions.md")
	if err != nil {
		t.Fatal(err)
	}
	// Sections by the action names in their heading.
	sections := map[string]string{}
	for _, sec := range strings.Split(string(b), "\n## ")[1:] {
		heading, _, _ := strings.Cut(sec, "\n")
		for _, word := range strings.Fields(heading) {
			sections[word] += sec
		}
	}
	for _, a := range Catalogue() {
		section, ok := sections[a.Name]
		if !ok && a.InverseOf != "" {
			// An inverse-only action is described with what it undoes.
			section, ok = sections[a.InverseOf]
		}
		if !ok {
			t.Errorf("docs/actions.md has no section for %s", a.Name)
			continue
		}
		for _, p := range a.Params {
			if !strings.Contains(section, "`"+p.Name+"`") {
				t.Errorf("docs/actions.md, %s: parameter %s is not described", a.Name, p.Name)
			}
		}
		for _, f := range a.Output {
			if !strings.Contains(section, "`"+f.Name+"`") {
				t.Errorf("docs/actions.md, %s: output %s is not described", a.Name, f.Name)
			}
		}
		for _, p := range a.Permissions {
			if !strings.Contains(section, p.Resource) {
				t.Errorf("docs/actions.md, %s: permission on %s is not described", a.Name, p.Resource)
			}
		}
	}
}
