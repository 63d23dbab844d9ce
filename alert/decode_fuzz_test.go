package alert

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzDecode checks the promises Decode makes for any input: it does not panic,
// it fails only with a *DecodeError of a known reason, it succeeds only with a
// usable alert, and it gives the same answer every time.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{
		"falco-terminal-shell.json",
		"falco-crypto-miner.json",
		"falco-k8s-audit-exec.json",
		"generic-alert.json",
	} {
		f.Add(sample(f, name))
	}
	for _, s := range []string{
		// Each reason for failure.
		"{\"rule\":\"r\",\"summary\":\"caf\xc3\x28\"}",
		`{"rule":"r","summary":"cut`,
		`{"rule":"a"} {"rule":"b"}`,
		`[{"rule":"r"}]`, `"rule"`, `42`, `null`, ``,
		`{"priority":"Critical","output":"no rule"}`,
		// Edge cases of fields and times.
		`{"rule":"r","fields":{"a":{"b":1},"a.b":2,"n":1e400,"m":-0.0,"t":"0000-01-01T00:00:00+01:00"}}`,
		`{"rule":"r","time":"0000-01-01T00:00:00+01:00","output":null,"output_fields":{"evt.time":-9223372036854775808}}`,
		// Escapes the depth scan must get right.
		`{"a":"\\","b":"\"[[{{"}`,
	} {
		f.Add([]byte(s))
	}
	f.Add(nested(32))
	f.Add(nested(33))

	f.Fuzz(func(t *testing.T, data []byte) {
		// Tight limits as well as the defaults, so that the fuzzer reaches the
		// size and depth checks with small inputs.
		for _, lim := range []Limits{{}, {MaxBytes: 512, MaxDepth: 4}} {
			checkDecode(t, data, lim)
		}
	})
}

// checkDecode decodes data twice with lim and checks every invariant.
func checkDecode(t *testing.T, data []byte, lim Limits) {
	t.Helper()
	a, err := Decode(data, lim)
	if err != nil {
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("error %v is %T, want *DecodeError", err, err)
		}
		switch de.Reason {
		case ReasonOversize, ReasonInvalidUTF8, ReasonTooDeep, ReasonInvalidJSON, ReasonNotObject, ReasonUnrecognised:
		default:
			t.Fatalf("unknown reason %q: %v", de.Reason, err)
		}
		if !reflect.DeepEqual(a, Alert{}) {
			t.Fatalf("Decode returned %+v with its error", a)
		}
	} else {
		checkAlert(t, a)
	}

	again, err2 := Decode(data, lim)
	if !reflect.DeepEqual(a, again) || !reflect.DeepEqual(err, err2) {
		t.Fatalf("Decode is not deterministic:\n first: %+v, %v\nsecond: %+v, %v", a, err, again, err2)
	}
}

// checkAlert fails unless a is an alert the rest of soar can use: it has a
// rule and an ID, all its text is valid UTF-8, its fields hold only the types
// Decode documents, and it encodes as JSON (it travels to Temporal that way).
func checkAlert(t *testing.T, a Alert) {
	t.Helper()
	if a.Rule == "" || a.ID == "" {
		t.Fatalf("rule %q, id %q: want both non-empty", a.Rule, a.ID)
	}
	if a.Format != "falco" && a.Format != "generic" {
		t.Fatalf("format = %q", a.Format)
	}
	k := a.Kubernetes
	for _, s := range []string{a.ID, a.Source, a.Rule, a.Summary, a.Hostname, k.Namespace, k.Pod, k.Container, k.Node, k.PodUID} {
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 in %q", s)
		}
	}
	for _, s := range a.Tags {
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 in tag %q", s)
		}
	}
	checkValue(t, map[string]any(a.Fields))
	if _, err := json.Marshal(a); err != nil {
		t.Fatalf("decoded alert does not encode as JSON: %v", err)
	}
}

// checkValue walks one field value.
func checkValue(t *testing.T, v any) {
	t.Helper()
	switch v := v.(type) {
	case nil, bool, int64, float64:
	case string:
		if !utf8.ValidString(v) {
			t.Fatalf("invalid UTF-8 in field value %q", v)
		}
	case []any:
		for _, e := range v {
			checkValue(t, e)
		}
	case map[string]any:
		for k, e := range v {
			if !utf8.ValidString(k) {
				t.Fatalf("invalid UTF-8 in field key %q", k)
			}
			checkValue(t, e)
		}
	default:
		t.Fatalf("field value %#v has type %T", v, v)
	}
}
