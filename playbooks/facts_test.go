package playbooks

import (
	"reflect"
	"testing"

	"github.com/expr-lang/expr/vm"

	"github.com/soar-dev/soar/alert"
)

func TestNewFact(t *testing.T) {
	tests := []struct {
		match string
		fact  bool
	}{
		{`true`, true},
		{`false`, true},
		{`alert.source == "x"`, true},
		{`"x" == alert.source`, true},
		{`alert["source"] != "x"`, true},
		{`alert.k8s.namespace != ""`, true},
		{`alert.rule == alert.source`, true},
		{`alert.k8s.namespace startsWith "prod-"`, true},
		{`alert.hostname endsWith ".internal"`, true},
		{`alert.summary contains "shell"`, true},
		{`"prod-payments" startsWith alert.k8s.namespace`, true},
		{`alert.k8s.namespace in ["a", "b"]`, true},
		{`alert.k8s.namespace in []`, true},
		{`alert.k8s.namespace not in ["a", ""]`, true},
		{`alert.severity >= Warning`, true},
		{`Warning < alert.severity`, true},
		{`alert.severity == Notice`, true},
		{`Critical != alert.severity`, true},
		{`alert.severity <= alert.severity`, true},
		{`Alert > Emergency`, true},
		{`not (alert.source == "x")`, true},
		{`!(alert.severity > Error)`, true},
		{`alert.source == "x" || alert.k8s.pod != "" && alert.severity < Critical`, true},
		{`alert.source == "x" and alert.hostname != "y"`, true},

		{`alert.fields["s"] == "x"`, false},
		{`alert.fields["n"] > 3`, false},
		{`alert?.source == "x"`, false},
		{`latest.source == "x"`, false},
		{`incident.key == ""`, false},
		{`lower(alert.source) == "x"`, false},
		{`alert.source matches "^x"`, false},
		{`alert.source == "x" + alert.rule`, false},
		{`alert.source in ["x", 1]`, false},
		{`alert.source in alert.tags`, false},
		{`"T1" in alert.tags`, false},
		{`alert.severity in [Critical, Alert]`, false},
		{`alert.severity == alert.fields["sev"]`, false},
		{`alert.time > alert.time`, false},
		{`alert.source == "x" ? true : false`, false},
		{`let s = alert.source; s == "x"`, false},
		{`any(alert.tags, # == "x")`, false},
		{`alert.source == "x" && alert.fields["b"]`, false},
		{`alert.fields["b"] || alert.source == "x"`, false},
		{`not alert.fields["b"]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.match, func(t *testing.T) {
			program, err := compile(tt.match, resultBool)
			if err != nil {
				t.Fatal(err)
			}
			_, got := newFact(program.Node())
			if got != tt.fact {
				t.Errorf("newFact = %v, want %v", got, tt.fact)
			}
		})
	}
}

func TestLeadingFacts(t *testing.T) {
	tests := []struct {
		match string
		// leading is the conjunction leadingFacts must find, or "" for none.
		leading string
	}{
		{`alert.source == "x"`, `alert.source == "x"`},
		{`alert.rule == "X" && alert.severity >= Warning && alert.fields["n"] > 3`, `alert.rule == "X" && alert.severity >= Warning`},
		{`alert.rule == "X" && (alert.severity >= Warning && alert.fields["n"] > 3)`, `alert.rule == "X" && alert.severity >= Warning`},
		{`alert.rule == "X" && alert.fields["n"] > 3 && alert.severity >= Warning`, `alert.rule == "X"`},
		{`(alert.source == "x" || alert.k8s.pod != "") && "T1" in alert.tags`, `alert.source == "x" || alert.k8s.pod != ""`},
		{`alert.fields["n"] > 3 && alert.rule == "X"`, ``},
		{`alert.rule == "X" || alert.fields["n"] > 3`, ``},
		{`not (alert.rule == "X" && alert.fields["b"])`, ``},
	}
	alerts := factAlerts()
	for _, tt := range tests {
		t.Run(tt.match, func(t *testing.T) {
			program, err := compile(tt.match, resultBool)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := leadingFacts(program.Node())
			if tt.leading == "" {
				if ok {
					t.Error("leadingFacts found facts, want none")
				}
				return
			}
			if !ok {
				t.Fatalf("leadingFacts found none, want %s", tt.leading)
			}
			for _, a := range alerts {
				want, err := evalBool(t, tt.leading, a)
				if err != nil {
					t.Fatal(err)
				}
				if got(&a) != want {
					t.Errorf("leading facts give %v for %+v, %s gives %v", got(&a), a, tt.leading, want)
				}
			}
		})
	}
}

// factAlerts returns alerts with every severity, and with the string fields
// empty or not.
func factAlerts() []alert.Alert {
	var out []alert.Alert
	for s := alert.SeverityUnknown; s <= alert.SeverityEmergency+1; s++ {
		for _, x := range []string{"", "x", "X"} {
			a := terminalShellAlert(withSeverity(s))
			a.Rule, a.Source, a.Hostname, a.Kubernetes.Pod = x, x, x, x
			out = append(out, a)
		}
	}
	return out
}

// TestAlertStrings checks that alertStrings reads each field as expr does,
// and that it knows every string field of an alert, so that none is left
// out of facts by mistake.
func TestAlertStrings(t *testing.T) {
	// Every string field gets a value of its own.
	var a alert.Alert
	want := map[string]string{}
	var fill func(v reflect.Value, prefix string)
	fill = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			path := prefix + f.Tag.Get("expr")
			switch f.Type.Kind() {
			case reflect.String:
				v.Field(i).SetString("value of " + path)
				want[path] = "value of " + path
			case reflect.Struct:
				if f.Type.PkgPath() == v.Type().PkgPath() {
					fill(v.Field(i), path+".")
				}
			}
		}
	}
	fill(reflect.ValueOf(&a).Elem(), "")

	for path := range want {
		if _, ok := alertStrings[path]; !ok {
			t.Errorf("alertStrings has no alert.%s", path)
		}
	}
	for path, read := range alertStrings {
		program, err := compile("alert."+path, resultString)
		if err != nil {
			t.Fatalf("alert.%s: %v", path, err)
		}
		env := NewEnv(a, Incident{})
		var m vm.VM
		out, err := evaluate(&m, program, &env)
		if err != nil {
			t.Fatalf("alert.%s: %v", path, err)
		}
		if got := read(&a); got != out || got != want[path] {
			t.Errorf("alertStrings reads alert.%s as %q, expr as %q", path, got, out)
		}
	}
}

// TestSeverityNames checks that severityNames has every severity name of Env
// with the value expressions see.
func TestSeverityNames(t *testing.T) {
	env := reflect.TypeFor[Env]()
	names := 0
	for i := range env.NumField() {
		f := env.Field(i)
		if f.Type != reflect.TypeFor[alert.Severity]() {
			continue
		}
		names++
		name := f.Tag.Get("expr")
		want, ok := severityNames[name]
		if !ok {
			t.Errorf("severityNames has no %s", name)
			continue
		}
		program, err := compile(name, resultSeverity)
		if err != nil {
			t.Fatal(err)
		}
		e := NewEnv(alert.Alert{}, Incident{})
		var m vm.VM
		out, err := evaluate(&m, program, &e)
		if err != nil || out != want {
			t.Errorf("%s is %v, %v in expressions, %v in severityNames", name, out, err, want)
		}
	}
	if names != len(severityNames) {
		t.Errorf("Env has %d severity names, severityNames %d", names, len(severityNames))
	}
}

func TestNewNativeKey(t *testing.T) {
	a := terminalShellAlert()
	tests := []struct {
		key string
		// want is the key for a, or "-" when the key is not computed in Go.
		want string
	}{
		{`alert.k8s.pod`, a.Kubernetes.Pod},
		{`alert["hostname"]`, a.Hostname},
		{`"fixed"`, "fixed"},
		{`alert.k8s.namespace + "/" + alert.k8s.pod`, a.Kubernetes.Namespace + "/" + a.Kubernetes.Pod},
		{`alert.rule + ("/" + alert.source) + "/" + alert.id`, a.Rule + "/" + a.Source + "/" + a.ID},
		{`"a" + "b" + alert.k8s.node`, "ab"},

		{`alert.fields["user.name"]`, "-"},
		{`alert.k8s.namespace + "/" + alert.fields["user.name"]`, "-"},
		{`lower(alert.k8s.pod)`, "-"},
		{`alert.k8s.pod ?? "x"`, "-"},
		{`string(alert.severity)`, "-"},
		{`latest.k8s.pod`, "-"},
		{`incident.key`, "-"},
		{`alert.k8s.pod != "" ? alert.k8s.pod : alert.hostname`, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			program, err := compile(tt.key, resultString)
			if err != nil {
				t.Fatal(err)
			}
			key, ok := newNativeKey(program.Node())
			switch {
			case tt.want == "-" && ok:
				t.Errorf("computed in Go, want it left to expr")
			case tt.want != "-" && !ok:
				t.Errorf("left to expr, want it computed in Go")
			case ok && key(&a) != tt.want:
				t.Errorf("Go gives %q, want %q", key(&a), tt.want)
			}
		})
	}
}
