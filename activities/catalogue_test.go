package activities

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// jsonFields lists the JSON names of a struct's fields.
func jsonFields(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}

// TestCatalogueDescribesWhatTheActivitiesTakeAndReturn keeps the catalogue,
// which lint and 'soar actions' show to authors, true to the code.
func TestCatalogueDescribesWhatTheActivitiesTakeAndReturn(t *testing.T) {
	io := map[string]struct{ in, out reflect.Type }{
		ActionQuarantine: {reflect.TypeFor[QuarantineInput](), reflect.TypeFor[QuarantineOutput]()},
	}
	for _, a := range Catalogue() {
		types, ok := io[a.Name]
		if !ok {
			t.Errorf("action %s has no activity in this test's table", a.Name)
			continue
		}
		var out []string
		for _, f := range a.Output {
			out = append(out, f.Name)
		}
		if want := jsonFields(types.out); !slices.Equal(out, want) {
			t.Errorf("%s: catalogue output %v, activity returns %v", a.Name, out, want)
		}
		inputs := jsonFields(types.in)
		for _, p := range a.Params {
			if !slices.Contains(inputs, p.Name) {
				t.Errorf("%s: parameter %s is not a field of the activity's input %v", a.Name, p.Name, inputs)
			}
			if p.Doc == "" || p.Type == "" {
				t.Errorf("%s: parameter %s lacks a type or doc", a.Name, p.Name)
			}
		}
		if len(a.Permissions) == 0 {
			t.Errorf("%s declares no Kubernetes permissions", a.Name)
		}
		if a.Inverse != "" {
			if _, ok := Lookup(a.Inverse); !ok {
				t.Errorf("%s: inverse %s is not in the catalogue", a.Name, a.Inverse)
			}
		}
	}
}

func TestRequiredPermissionsMergesAndSorts(t *testing.T) {
	got := RequiredPermissions()
	want := []Permission{
		{Group: "", Resource: "pods", Verbs: []string{"get", "patch"}},
		{Group: "networking.k8s.io", Resource: "networkpolicies", Verbs: []string{"create", "get", "update"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RequiredPermissions() = %+v, want %+v", got, want)
	}
}
