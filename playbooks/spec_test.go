package playbooks

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestSpecRoundTripsThroughJSON(t *testing.T) {
	set := mustLoad(t, "library", LoadOptions{})
	p, _ := set.Get("terminal-shell-in-container")

	spec := p.Spec()
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var got Spec
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, spec) {
		t.Errorf("after a JSON round trip:\n%+v\nwant\n%+v", got, spec)
	}

	src, err := os.ReadFile(p.File)
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{
		Name:     "terminal-shell-in-container",
		Version:  p.Version,
		Workflow: "Respond",
		Window:   p.Window,
		Mode:     ModeEnforce,
		Steps: []StepSpec{{
			ID:     "contain",
			Kind:   KindAction,
			Action: "kubernetes.quarantine",
			With:   map[string]string{"namespace": "alert.k8s.namespace", "pod": "alert.k8s.pod"},
		}, {
			ID:      "evidence",
			Kind:    KindAction,
			Action:  "kubernetes.snapshot",
			OnError: OnErrorContinue,
		}, {
			ID:      "ticket",
			Kind:    KindAction,
			Action:  "ticket.open",
			OnError: OnErrorContinue,
		}},
		Source: string(src),
		// The library is in soar's own git checkout (git_test.go covers these).
		GitCommit:   p.GitCommit,
		GitModified: p.GitModified,
	}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("Spec() = %+v, want %+v", spec, want)
	}

	spec.Steps[0].With["pod"] = "changed"
	if p.Steps[0].With["pod"] != "alert.k8s.pod" {
		t.Error("modifying the Spec modified the Playbook")
	}
}

func TestEvalParams(t *testing.T) {
	inc := Incident{ID: "soar-p-0123", Key: "payments/checkout", AlertCount: 3}
	tests := []struct {
		name string
		with map[string]string
		want map[string]any
	}{
		{"no parameters", nil, map[string]any{}},
		{"library quarantine", map[string]string{"namespace": "alert.k8s.namespace", "pod": "alert.k8s.pod"},
			map[string]any{"namespace": "payments", "pod": "checkout-7d9f8b6c5-x2lqp"}},
		{"incident and constants", map[string]string{
			"id":     "incident.id",
			"count":  "incident.alertCount + 1",
			"urgent": "alert.severity >= Warning",
			"label":  `"soar/" + incident.key`,
		}, map[string]any{"id": "soar-p-0123", "count": 4, "urgent": false, "label": "soar/payments/checkout"}},
		{"fields keep their types", map[string]string{
			"tty":     `alert.fields["proc.tty"]`,
			"missing": `alert.fields["nope"]`,
			"tags":    `filter(alert.tags, # startsWith "T")`,
		}, map[string]any{"tty": int64(34816), "missing": nil, "tags": []any{"T1059"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EvalParams(StepSpec{ID: "s", Action: "a", With: tt.with}, NewEnv(terminalShellAlert(), inc))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("EvalParams = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestEvalParamsFromALoadedPlaybook(t *testing.T) {
	set := loadPlaybooks(t, map[string]string{"p.yaml": "name: p\n" +
		"match: true\n" +
		"incidentKey: alert.k8s.pod\n" +
		"steps:\n" +
		"  - id: tell\n" +
		"    action: slack.notify\n" +
		"    with:\n" +
		"      reason: '\"interactive shell in \" + alert.k8s.pod'\n" +
		"      count: 3\n" +
		"      loud: alert.severity >= Warning\n"})
	p, _ := set.Get("p")
	spec := p.Spec()

	got, err := EvalParams(spec.Steps[0], NewEnv(terminalShellAlert(), Incident{}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"reason": "interactive shell in checkout-7d9f8b6c5-x2lqp", "count": 3, "loud": false}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("EvalParams = %#v, want %#v", got, want)
	}
}

func TestEvalParamsErrorsAreDeterministic(t *testing.T) {
	step := StepSpec{ID: "contain", With: map[string]string{
		"z":    `alert.fields["proc.name"] > 1`,
		"ok":   "alert.k8s.pod",
		"a":    "now()",
		"m":    `alert.nope`,
		"late": `alert.fields["proc.tty"] + "x"`,
	}}
	env := NewEnv(terminalShellAlert(), Incident{})
	_, first := EvalParams(step, env)
	if first == nil {
		t.Fatal("EvalParams succeeded, want errors")
	}
	want := []string{
		`step "contain": with.a: now() is not available in playbooks`,
		`step "contain": with.late: invalid operation: int64 + string`,
		`step "contain": with.m: type alert.Alert has no field nope`,
		`step "contain": with.z: invalid operation: string > int`,
	}
	lines := strings.Split(first.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("EvalParams error:\n%v\nwant %d lines", first, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], want[i])
		}
	}
	for range 20 {
		if _, err := EvalParams(step, env); err.Error() != first.Error() {
			t.Fatalf("EvalParams error changed between calls:\n%v\nthen\n%v", first, err)
		}
	}
}

func TestEvalParamsConcurrently(t *testing.T) {
	step := StepSpec{ID: "s", With: map[string]string{
		"pod": "alert.k8s.pod",
		// Unique source text, so the goroutines race to compile it.
		"key": `alert.k8s.namespace + "/" + alert.k8s.pod + "` + t.Name() + `"`,
	}}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				got, err := EvalParams(step, NewEnv(terminalShellAlert(), Incident{}))
				if err == nil && got["pod"] != "checkout-7d9f8b6c5-x2lqp" {
					err = errors.New("wrong pod")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPrecompileFillsTheCacheAndReportsBadExpressions(t *testing.T) {
	src := `alert.k8s.namespace + "/precompiled"`
	spec := Spec{Steps: []StepSpec{{ID: "a", With: map[string]string{"pod": src}, If: `incident.alertCount > 41`}}}
	if err := Precompile(spec); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{src, spec.Steps[0].If} {
		if _, ok := paramPrograms.programs.Load(s); !ok {
			t.Errorf("%q is not in the cache", s)
		}
	}
	if err := Precompile(Spec{Steps: []StepSpec{{ID: "b", If: `alert.rule ==`}}}); err == nil {
		t.Error("a broken condition compiled")
	}
}
