package activities

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/soar-dev/soar/connectors/kube"
)

// jsonFields lists the JSON names of a struct's fields, those of embedded
// structs included, as encoding/json sees them.
func jsonFields(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			names = append(names, jsonFields(f.Type)...)
			continue
		}
		names = append(names, name)
	}
	return names
}

// TestCatalogueDescribesWhatTheActivitiesTakeAndReturn keeps the catalogue,
// which lint and 'soar actions' show to authors, true to the code.
func TestCatalogueDescribesWhatTheActivitiesTakeAndReturn(t *testing.T) {
	io := map[string]struct{ in, out reflect.Type }{
		ActionAnnotatePod:        {reflect.TypeFor[AnnotateParams](), reflect.TypeFor[kube.MetadataResult]()},
		ActionCordonNode:         {reflect.TypeFor[CordonParams](), reflect.TypeFor[kube.CordonResult]()},
		ActionDeletePod:          {reflect.TypeFor[DeleteParams](), reflect.TypeFor[kube.DeletePodResult]()},
		ActionEvictPod:           {reflect.TypeFor[DeleteParams](), reflect.TypeFor[kube.EvictPodResult]()},
		ActionLabelPod:           {reflect.TypeFor[LabelParams](), reflect.TypeFor[kube.MetadataResult]()},
		ActionQuarantine:         {reflect.TypeFor[QuarantineParams](), reflect.TypeFor[QuarantineResult]()},
		ActionRelease:            {reflect.TypeFor[PodParams](), reflect.TypeFor[kube.ReleaseResult]()},
		ActionRestoreAnnotations: {reflect.TypeFor[RestoreMetadataParams](), reflect.TypeFor[kube.RestoreMetadataResult]()},
		ActionRestoreLabels:      {reflect.TypeFor[RestoreMetadataParams](), reflect.TypeFor[kube.RestoreMetadataResult]()},
		ActionRestoreScale:       {reflect.TypeFor[RestoreScaleParams](), reflect.TypeFor[kube.RestoreScaleResult]()},
		ActionScaleToZero:        {reflect.TypeFor[PodParams](), reflect.TypeFor[kube.ScaleResult]()},
		ActionSnapshot:           {reflect.TypeFor[SnapshotParams](), reflect.TypeFor[SnapshotOutput]()},
		ActionUncordonNode:       {reflect.TypeFor[UncordonParams](), reflect.TypeFor[kube.UncordonResult]()},
		ActionSlackNotify:        {reflect.TypeFor[NotifyParams](), reflect.TypeFor[NotifyResult]()},
		ActionTicketOpen:         {reflect.TypeFor[TicketOpenParams](), reflect.TypeFor[TicketResult]()},
		ActionTicketComment:      {reflect.TypeFor[TicketTextParams](), reflect.TypeFor[TicketResult]()},
		ActionTicketResolve:      {reflect.TypeFor[TicketTextParams](), reflect.TypeFor[TicketResult]()},
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
		want := jsonFields(types.out)
		slices.Sort(out)
		slices.Sort(want)
		if !slices.Equal(out, want) {
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
		if (len(a.Permissions) == 0) != (a.Role == RoleNone) {
			t.Errorf("%s: role %q with %d Kubernetes permissions; only role %q has none", a.Name, a.Role, len(a.Permissions), RoleNone)
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
	// The two roles split them: snapshot's nodes/proxy only in evidence.
	for _, p := range RolePermissions(RoleResponder) {
		if p.Resource == "nodes/proxy" || p.Resource == "pods/log" {
			t.Errorf("the responder role grants %s", p.Resource)
		}
	}
	if !slices.ContainsFunc(RolePermissions(RoleEvidence), func(p Permission) bool { return p.Resource == "nodes/proxy" }) {
		t.Error("the evidence role lacks nodes/proxy")
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
