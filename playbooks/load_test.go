package playbooks

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadLibrary(t *testing.T) {
	set := mustLoad(t, "library", LoadOptions{Actions: actionInfos("kubernetes.quarantine", "kubernetes.snapshot", "kubernetes.delete_pod", "kubernetes.freeze_namespace", "slack.notify", "ticket.open")})

	p, ok := set.Get("terminal-shell-in-container")
	if !ok {
		t.Fatalf("library has no terminal-shell-in-container; it has %v", names(set))
	}
	if p.Window != time.Hour || p.Workflow != DefaultWorkflow {
		t.Errorf("window %s, workflow %q; want 1h, %q", p.Window, p.Workflow, DefaultWorkflow)
	}
	if len(p.Steps) != 3 || p.Steps[0].Action != "kubernetes.quarantine" || p.Steps[1].Action != "kubernetes.snapshot" || p.Steps[2].Action != "ticket.open" {
		t.Errorf("steps = %+v, want kubernetes.quarantine, kubernetes.snapshot, ticket.open", p.Steps)
	}
	if !strings.HasPrefix(p.Version, "sha256:") || len(p.Version) != len("sha256:")+64 {
		t.Errorf("version %q is not sha256:<64 hex digits>", p.Version)
	}
	if got := p.ShortVersion(); len(got) != 16 || !strings.HasPrefix(p.Version, "sha256:"+got) {
		t.Errorf("ShortVersion() = %q, want the first 16 digits of %q", got, p.Version)
	}
}

func TestLoadDefaultsAndOrder(t *testing.T) {
	set := loadPlaybooks(t, map[string]string{
		"b.yaml":          playbookYAML("zeta", "true"),
		"a.yml":           playbookYAML("alpha", "true") + "window: 15m\nworkflow: Contain\ndescription: d\n",
		"a_test.yaml":     "this is an author test and is not loaded: [",
		"c_test.yml":      "neither is this: [",
		".editor.yaml":    "nor a hidden file: [",
		"notes.txt":       "nor other files: [",
		"middle.yaml":     playbookYAML("middle", "false") + "window:\nworkflow:\n",
		"subdir.yaml.bak": "[",
	})
	got := names(set)
	if want := []string{"alpha", "middle", "zeta"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Playbooks() = %v, want %v", got, want)
	}
	alpha, _ := set.Get("alpha")
	if alpha.Window != 15*time.Minute || alpha.Workflow != "Contain" || alpha.Description != "d" {
		t.Errorf("alpha: window %s, workflow %q, description %q", alpha.Window, alpha.Workflow, alpha.Description)
	}
	for _, name := range []string{"middle", "zeta"} {
		p, _ := set.Get(name)
		if p.Window != DefaultWindow || p.Workflow != DefaultWorkflow {
			t.Errorf("%s: window %s, workflow %q; want the defaults", name, p.Window, p.Workflow)
		}
	}
	if _, ok := set.Get("nope"); ok {
		t.Error(`Get("nope") found a playbook`)
	}
}

func TestLoadDirectoryErrors(t *testing.T) {
	tests := []struct {
		name   string
		dir    func(t *testing.T) string
		wantIs error
	}{
		{"missing directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, fs.ErrNotExist},
		{"empty directory", func(t *testing.T) string { return t.TempDir() }, ErrNoPlaybooks},
		{"only author tests", func(t *testing.T) string {
			return writeFiles(t, map[string]string{"x_test.yaml": "cases: []\n"})
		}, ErrNoPlaybooks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := LoadDir(tt.dir(t), LoadOptions{})
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("Load: error %v, want %v", err, tt.wantIs)
			}
			if set != nil {
				t.Error("Load returned a Set along with an error")
			}
		})
	}
}

// wantError is one expected LoadError: its position as
// "file:line:col: field" and a part of its message.
type wantError struct {
	at, msg string
}

func TestLoadReportsEveryProblemWithItsPosition(t *testing.T) {
	const steps = "steps:\n  - id: contain\n    action: kubernetes.quarantine\n"
	tests := []struct {
		name  string
		files map[string]string
		opts  LoadOptions
		want  []wantError
	}{
		{
			name: "bad expression on line 3",
			files: map[string]string{"p.yaml": "name: p\n" +
				"incidentKey: alert.k8s.pod\n" +
				"match: alert.rule == \"r\" && alert.nope\n" + steps},
			want: []wantError{{"p.yaml:3:35: match", "type alert.Alert has no field nope"}},
		},
		{
			name: "bad expression in a double-quoted scalar",
			files: map[string]string{"p.yaml": "name: p\n" +
				"incidentKey: alert.k8s.pod\n" +
				"match: \"alert.nope == 1\"\n" + steps},
			want: []wantError{{"p.yaml:3:15: match", "has no field nope"}},
		},
		{
			name: "bad expression in a single-quoted scalar",
			files: map[string]string{"p.yaml": "name: p\n" +
				"incidentKey: alert.k8s.pod\n" +
				"match:   'alert.rule == \"r\" && alert.nope'\n" + steps},
			want: []wantError{{"p.yaml:3:38: match", "has no field nope"}},
		},
		{
			name: "bad expression in a literal block scalar",
			files: map[string]string{"p.yaml": "name: p\n" +
				"incidentKey: alert.k8s.pod\n" +
				"match: |\n" +
				"  alert.rule == \"r\" &&\n" +
				"    alert.nope\n" + steps},
			want: []wantError{{"p.yaml:5:11: match", "has no field nope"}},
		},
		{
			name: "bad expression in a folded block scalar",
			files: map[string]string{"p.yaml": "name: p\n" +
				"incidentKey: alert.k8s.pod\n" +
				"match: >-\n" +
				"  alert.rule == \"r\" &&\n" +
				"  alert.nope\n" + steps},
			want: []wantError{{"p.yaml:5:9: match", "has no field nope"}},
		},
		{
			name: "bad expression in a plain multi-line scalar",
			files: map[string]string{"p.yaml": "name: p\n" +
				"incidentKey: alert.k8s.pod\n" +
				"match: alert.rule == \"r\" &&\n" +
				"  alert.nope\n" + steps},
			want: []wantError{{"p.yaml:4:9: match", "has no field nope"}},
		},
		{
			name: "syntax error in an expression",
			files: map[string]string{"p.yaml": "name: p\n" +
				"match: alert.rule == \"r\" )\n" +
				"incidentKey: alert.k8s.pod\n" + steps},
			want: []wantError{{"p.yaml:2:26: match", "unexpected token Bracket(\")\")"}},
		},
		{
			name: "match that is not bool",
			files: map[string]string{"p.yaml": "name: p\n" +
				"match:    alert.rule\n" +
				"incidentKey: alert.k8s.pod\n" + steps},
			want: []wantError{{"p.yaml:2:11: match", "expected bool, but got string"}},
		},
		{
			name: "incident key that is not string",
			files: map[string]string{"p.yaml": "name: p\n" +
				"match: true\n" +
				"incidentKey: alert.severity\n" + steps},
			want: []wantError{{"p.yaml:3:14: incidentKey", "expected string, but got alert.Severity"}},
		},
		{
			name: "now() in a step parameter",
			files: map[string]string{"p.yaml": "name: p\n" +
				"match: true\n" +
				"incidentKey: alert.k8s.pod\n" +
				steps +
				"    with:\n" +
				"      at: string(now())\n"},
			want: []wantError{{"p.yaml:8:18: steps[0].with.at", "now() is not available in playbooks: it reads the clock"}},
		},
		{
			name: "expression over the node budget",
			files: map[string]string{"p.yaml": "name: p\n" +
				"match: " + strings.Repeat(`alert.rule == "x" || `, 700) + "true\n" +
				"incidentKey: alert.k8s.pod\n" + steps},
			want: []wantError{{"p.yaml:2:", "exceeds maximum allowed nodes"}},
		},
		{
			name: "unknown fields at every level",
			files: map[string]string{"p.yaml": "name: p\n" +
				"mtach: true\n" +
				"match: true\n" +
				"incidentKey: alert.k8s.pod\n" +
				steps +
				"    retries: 3\n"},
			want: []wantError{
				{"p.yaml:2:1: mtach", "unknown field"},
				{"p.yaml:8:5: steps[0].retries", "unknown field"},
			},
		},
		{
			name: "duplicate key",
			files: map[string]string{"p.yaml": "name: p\n" +
				"match: true\n" +
				"incidentKey: alert.k8s.pod\n" +
				"match: false\n" + steps},
			want: []wantError{{"p.yaml:4:1: match", "duplicate key (first at line 2)"}},
		},
		{
			name: "duplicate name across two files",
			files: map[string]string{
				"a.yaml": playbookYAML("same", "true"),
				"b.yaml": playbookYAML("same", "false"),
			},
			want: []wantError{{"b.yaml:1:7: name", `duplicate playbook name "same" (also in `}},
		},
		{
			name: "duplicate step id",
			files: map[string]string{"p.yaml": "name: p\n" +
				"match: true\n" +
				"incidentKey: alert.k8s.pod\n" +
				steps +
				"  - id: contain\n" +
				"    action: slack.notify\n"},
			want: []wantError{{"p.yaml:7:9: steps[1].id", `duplicate step id "contain" (first at line 5)`}},
		},
		{
			name: "unknown action when actions are known",
			files: map[string]string{"p.yaml": "name: p\n" +
				"match: true\n" +
				"incidentKey: alert.k8s.pod\n" +
				steps +
				"  - id: tell\n" +
				"    action: slack.notifyy\n"},
			opts: LoadOptions{Actions: actionInfos("kubernetes.quarantine", "slack.notify")},
			want: []wantError{{"p.yaml:8:13: steps[1].action", `unknown action "slack.notifyy"`}},
		},
		{
			name:  "any action when actions are not known",
			files: map[string]string{"p.yaml": playbookYAML("p", "true") + "  - id: tell\n    action: anything.goes\n"},
		},
		{
			name:  "missing required fields",
			files: map[string]string{"p.yaml": "description: nothing else\n"},
			want: []wantError{
				{"p.yaml:1:1: name", "required field is missing"},
				{"p.yaml:1:1: match", "required field is missing"},
				{"p.yaml:1:1: incidentKey", "required field is missing"},
				{"p.yaml:1:1: steps", "required field is missing"},
			},
		},
		{
			name: "missing and empty step fields",
			files: map[string]string{"p.yaml": "name: p\n" +
				"match: true\n" +
				"incidentKey: \"\"\n" +
				"steps:\n" +
				"  - action: kubernetes.quarantine\n" +
				"  - id: second\n" +
				"    action:\n"},
			want: []wantError{
				{"p.yaml:3:14: incidentKey", "must not be empty"},
				{"p.yaml:5:5: steps[0].id", "required field is missing"},
				{"p.yaml:7:12: steps[1].action", "must not be empty"},
			},
		},
		{
			name: "empty steps",
			files: map[string]string{"p.yaml": "name: p\n" +
				"match: true\n" +
				"incidentKey: alert.k8s.pod\n" +
				"steps: []\n"},
			want: []wantError{{"p.yaml:4:8: steps", "at least one step is required"}},
		},
		{
			name: "wrong node kinds",
			files: map[string]string{"p.yaml": "name: [p]\n" +
				"match: true\n" +
				"incidentKey: alert.k8s.pod\n" +
				"steps:\n" +
				"  - id: one\n" +
				"    action: kubernetes.quarantine\n" +
				"    with: [namespace]\n" +
				"  - just a string\n"},
			want: []wantError{
				{"p.yaml:1:7: name", "must be a string, not a list"},
				{"p.yaml:7:11: steps[0].with", "must be a mapping of parameter names to expressions, not a list"},
				{"p.yaml:8:5: steps[1]", "must be a mapping, not a scalar"},
			},
		},
		{
			name: "invalid names",
			files: map[string]string{"p.yaml": "name: Terminal_Shell\n" +
				"match: true\n" +
				"incidentKey: alert.k8s.pod\n" +
				"workflow: respond-now\n" +
				"steps:\n" +
				"  - id: Contain It\n" +
				"    action: kubernetes.quarantine\n" +
				"    with:\n" +
				"      pod-name: alert.k8s.pod\n"},
			want: []wantError{
				{"p.yaml:1:7: name", `"Terminal_Shell" is not a valid name`},
				{"p.yaml:4:11: workflow", `"respond-now" is not a valid workflow name`},
				{"p.yaml:6:9: steps[0].id", `"Contain It" is not a valid step id`},
				{"p.yaml:9:7: steps[0].with.pod-name", `"pod-name" is not a valid parameter name`},
			},
		},
		{
			name:  "window without a unit",
			files: map[string]string{"p.yaml": playbookYAML("p", "true") + "window: 3600\n"},
			want:  []wantError{{"p.yaml:10:9: window", `"3600" is not a duration`}},
		},
		{
			name:  "window below the minimum",
			files: map[string]string{"p.yaml": playbookYAML("p", "true") + "window: 500ms\n"},
			want:  []wantError{{"p.yaml:10:9: window", "500ms is shorter than the minimum of 1s"}},
		},
		{
			name:  "negative window",
			files: map[string]string{"p.yaml": playbookYAML("p", "true") + "window: -1h\n"},
			want:  []wantError{{"p.yaml:10:9: window", "-1h0m0s is shorter than the minimum of 1s"}},
		},
		{
			name:  "YAML syntax error",
			files: map[string]string{"p.yaml": "name: p\ndescription: d\nmatch: a: b\n"},
			want:  []wantError{{"p.yaml:3:0: ", "invalid YAML: mapping values are not allowed in this context"}},
		},
		{
			name:  "YAML syntax error on the first line",
			files: map[string]string{"p.yaml": "name: a: b\n"},
			want:  []wantError{{"p.yaml:1:0: ", "invalid YAML: mapping values are not allowed"}},
		},
		{
			name:  "empty file",
			files: map[string]string{"p.yaml": "# nothing here\n"},
			want:  []wantError{{"p.yaml:0:0: ", "file is empty"}},
		},
		{
			name:  "two documents in one file",
			files: map[string]string{"p.yaml": playbookYAML("p", "true") + "---\n" + playbookYAML("q", "true")},
			want:  []wantError{{"p.yaml:10:1: ", "one YAML document"}},
		},
		{
			name:  "not a mapping",
			files: map[string]string{"p.yaml": "- name: p\n"},
			want:  []wantError{{"p.yaml:1:1: ", "a playbook must be a YAML mapping, not a list"}},
		},
		{
			name: "several errors in several files",
			files: map[string]string{
				"a.yaml": "name: a\n" +
					"match: alert.rule\n" +
					"incidentKey: alert.k8s.pod\n" +
					"window: soon\n" + steps,
				"b.yaml":      "name: b\nmatch: [\n",
				"c.yaml":      playbookYAML("c", "true"),
				"d.yml":       playbookYAML("a", "true"),
				"e.yaml":      playbookYAML("e", "true") + "author: someone\n",
				"f.yaml":      playbookYAML("f", "alert.rule == 1"),
				"z.yaml":      playbookYAML("z", "true"),
				"y_test.yaml": "broken: [\n",
			},
			want: []wantError{
				{"a.yaml:2:8: match", "expected bool, but got string"},
				{"a.yaml:4:9: window", `"soon" is not a duration`},
				{"b.yaml:2:0: ", "invalid YAML"},
				{"d.yml:1:7: name", `duplicate playbook name "a" (also in `},
				{"e.yaml:10:1: author", "unknown field"},
				{"f.yaml:2:19: match", "mismatched types string and int"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := LoadDir(writeFiles(t, tt.files), tt.opts)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			var loadErrs *LoadErrors
			if !errors.As(err, &loadErrs) {
				t.Fatalf("Load: error %v (%T), want *LoadErrors", err, err)
			}
			if set != nil {
				t.Error("Load returned a Set along with errors")
			}
			if len(loadErrs.Errs) != len(tt.want) {
				t.Fatalf("Load reported %d problems, want %d:\n%v", len(loadErrs.Errs), len(tt.want), err)
			}
			for i, got := range loadErrs.Errs {
				at := fmt.Sprintf("%s:%d:%d: %s", filepath.Base(got.File), got.Line, got.Column, got.Field)
				if !strings.HasPrefix(at, tt.want[i].at) || !strings.Contains(got.Err.Error(), tt.want[i].msg) {
					t.Errorf("problem %d = %q (%v), want at %q containing %q", i, at, got.Err, tt.want[i].at, tt.want[i].msg)
				}
				if strings.Contains(got.Error(), "\n") {
					t.Errorf("problem %d spans several lines: %q", i, got.Error())
				}
			}
		})
	}
}

func TestLoadErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  *LoadError
		want string
	}{
		{"full position and field", &LoadError{File: "p.yaml", Line: 3, Column: 8, Field: "match", Err: errors.New("bad")}, "p.yaml:3:8: match: bad"},
		{"line only", &LoadError{File: "p.yaml", Line: 3, Err: errors.New("invalid YAML: x")}, "p.yaml:3: invalid YAML: x"},
		{"whole file", &LoadError{File: "p.yaml", Err: errors.New("file is empty")}, "p.yaml: file is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadErrorsPrintOnePerLine(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.yaml": "name: p\nmatch: alert.rule\nincidentKey: alert.k8s.pod\nsteps: []\n"})
	_, err := LoadDir(dir, LoadOptions{})
	path := filepath.Join(dir, "p.yaml")
	want := path + ":2:8: match: expected bool, but got string\n" +
		path + ":4:8: steps: at least one step is required"
	if err == nil || err.Error() != want {
		t.Errorf("Load error:\n%v\nwant:\n%s", err, want)
	}
}

func names(set *Set) []string {
	var names []string
	for _, p := range set.Playbooks() {
		names = append(names, p.Name)
	}
	return names
}

// actionInfos knows the named actions, with no parameter lists and no facts.
func actionInfos(names ...string) []ActionInfo {
	infos := make([]ActionInfo, len(names))
	for i, n := range names {
		infos[i] = ActionInfo{Name: n}
	}
	return infos
}
