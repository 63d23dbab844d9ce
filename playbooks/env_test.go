package playbooks

import (
	"strings"
	"testing"

	"github.com/expr-lang/expr/vm"

	"github.com/soar-dev/soar/alert"
)

// evalBool compiles src as a match expression and runs it against a.
func evalBool(t *testing.T, src string, a alert.Alert) (bool, error) {
	t.Helper()
	program, err := compile(src, resultBool)
	if err != nil {
		t.Fatalf("compile(%q): %v", src, err)
	}
	env := NewEnv(a, Incident{})
	var m vm.VM
	out, err := evaluate(&m, program, &env)
	if err != nil {
		return false, err
	}
	return out.(bool), nil
}

func TestExpressionsEvaluateAgainstTheAlert(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		alert alert.Alert
		want  bool
	}{
		{"severity at least a lower name", `alert.severity >= Informational`, terminalShellAlert(), true},
		{"severity at least its own name", `alert.severity >= Notice`, terminalShellAlert(), true},
		{"severity at least a higher name", `alert.severity >= Warning`, terminalShellAlert(), false},
		{"severity above a name", `alert.severity > Notice`, terminalShellAlert(withSeverity(alert.SeverityWarning)), true},
		{"severity below a name", `alert.severity < Warning`, terminalShellAlert(), true},
		{"severity at most a name", `alert.severity <= Debug`, terminalShellAlert(), false},
		{"severity equals a name", `alert.severity == Notice`, terminalShellAlert(), true},
		{"severity differs from a name", `alert.severity != Notice`, cryptoMinerAlert(), true},
		{"severity in a list of names", `alert.severity in [Critical, Alert, Emergency]`, cryptoMinerAlert(), true},
		{"names are ordered", `Emergency > Alert && Alert > Critical && Error > Warning && Informational > Debug`, terminalShellAlert(), true},
		{"unknown severity is below Debug", `alert.severity < Debug`, terminalShellAlert(withSeverity(alert.SeverityUnknown)), true},
		{"tag present", `"T1059" in alert.tags`, terminalShellAlert(), true},
		{"tag absent", `"T1059" in alert.tags`, cryptoMinerAlert(), false},
		{"string field equals", `alert.fields["proc.name"] == "sh"`, terminalShellAlert(), true},
		{"string field differs", `alert.fields["proc.name"] == "sh"`, cryptoMinerAlert(), false},
		{"int64 field equals an int literal", `alert.fields["fd.rport"] == 3333`, cryptoMinerAlert(), true},
		{"int64 field compares with an int literal", `alert.fields["fd.rport"] > 1024`, cryptoMinerAlert(), true},
		{"negative int64 field", `alert.fields["user.loginuid"] == -1`, terminalShellAlert(), true},
		{"missing field is nil", `alert.fields["fd.rport"] == nil`, terminalShellAlert(), true},
		{"missing field as the whole condition is false", `alert.fields["nope"]`, terminalShellAlert(), false},
		{"kubernetes fields", `alert.k8s.namespace == "payments" && alert.k8s.pod startsWith "checkout-"`, terminalShellAlert(), true},
		{"incident is empty while matching", `incident.id == "" && incident.alertCount == 0`, terminalShellAlert(), true},
		{"duration builtin is allowed", `duration("1h") > duration("30m")`, terminalShellAlert(), true},
		{"string builtins are allowed", `lower(alert.rule) contains "shell"`, terminalShellAlert(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := evalBool(t, tt.src, tt.alert)
			if err != nil {
				t.Fatalf("%s: %v", tt.src, err)
			}
			if got != tt.want {
				t.Errorf("%s = %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}

func TestExpressionsFailAtRunTime(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		alert   alert.Alert
		wantErr string
	}{
		{"string field compared with a number", `alert.fields["proc.name"] > 3`, terminalShellAlert(), "invalid operation: string > int (1:27)"},
		{"non-bool field as the condition", `alert.fields["proc.name"]`, terminalShellAlert(), "invalid operation: bool(string)"},
		{"memory budget", `len(1..(len(alert.rule) * 10000)) > 0`, terminalShellAlert(), "memory budget exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := evalBool(t, tt.src, tt.alert)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("%s: error %v, want one containing %q", tt.src, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines", err)
			}
		})
	}
}

func TestCompileRejectsUnsafeExpressions(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		kind    resultKind
		wantErr string
	}{
		{"now reads the clock", `now() > alert.time`, resultBool, "now() is not available in playbooks: it reads the clock"},
		{"now with a time zone", `now(timezone("UTC")).Year() > 2000`, resultBool, "not available in playbooks"},
		{"date depends on the local time zone", `date("2026-01-02") < alert.time`, resultBool, "date() is not available in playbooks"},
		{"timezone reads the zone database", `timezone("Europe/Berlin") != nil`, resultBool, "timezone() is not available in playbooks"},
		{"keys follow map order", `keys(alert.fields)[0] == "a"`, resultBool, "keys() is not available in playbooks"},
		{"values follow map order", `values(alert.fields)[0] == "a"`, resultBool, "values() is not available"},
		{"toPairs follows map order", `len(toPairs(alert.fields)) > 0`, resultBool, "toPairs() is not available"},
		{"node budget", strings.Repeat(`alert.rule == "x" || `, 700) + `true`, resultBool, "exceeds maximum allowed nodes"},
		{"match must be bool", `alert.rule`, resultBool, "expected bool, but got string"},
		{"incident key must be string", `alert.severity`, resultString, "expected string, but got alert.Severity"},
		{"severity is not a number", `alert.severity >= 4`, resultBool, "mismatched types"},
		{"unknown field", `alert.nope == ""`, resultBool, "has no field nope"},
		{"now in the machine's time zone", `now.Local().Hour() >= 9`, resultBool, "Local() is not available in playbooks: it depends on the time zone"},
		{"an alert's time in the machine's time zone", `alert.time.Add(duration("1h")).Local().Year() > 2000`, resultBool, "Local() is not available"},
		{"repeat allocates before the budget sees it", `len(repeat(repeat("x", 99999), 1000000)) > 0`, resultBool, "repeat() is not available in playbooks: it allocates"},
		// The security review's time bomb: five nested passes over 1..300.
		{"nested predicates multiply", `let a = 1..300; any(a, {any(a, {any(a, {any(a, {any(a, {# < 0})})})})})`, resultBool, "may not hold another one"},
		{"one predicate in another", `any(1..3, {len(filter(1..3, {# == 2})) > 0})`, resultBool, "may not hold another one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compile(tt.src, tt.kind)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("compile: error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestCompileAcceptsPredicatesOneAfterAnother(t *testing.T) {
	if _, err := compile(`any(1..3, {# > 2}) && all(1..3, {# > 0}) && len(filter(1..9, {# % 2 == 0})) == 4`, resultBool); err != nil {
		t.Errorf("predicates side by side refused: %v", err)
	}
}

func TestCompileAcceptsUTCTimes(t *testing.T) {
	if _, err := compile(`now.UTC().Hour() >= 9 && now.Sub(alert.time) < duration("1h")`, resultBool); err != nil {
		t.Errorf("UTC time arithmetic refused: %v", err)
	}
}

func TestEnvConstantsCannotBeOverridden(t *testing.T) {
	env := Env{Alert: terminalShellAlert()} // built by hand: Warning is 0
	params, err := EvalParams(StepSpec{ID: "s", With: map[string]string{"loud": "alert.severity >= Warning"}}, env)
	if err != nil {
		t.Fatal(err)
	}
	if params["loud"] != false {
		t.Errorf("loud = %v, want false: EvalParams must set the severity names", params["loud"])
	}
}
