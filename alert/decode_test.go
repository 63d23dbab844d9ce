package alert

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sample returns one of the shared sample alerts in testdata/alerts.
func sample(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "alerts", name))
	if err != nil {
		t.Fatalf("read sample: %v", err)
	}
	return data
}

// mustDecode decodes data with the default limits and fails the test on error.
func mustDecode(t *testing.T, data []byte) Alert {
	t.Helper()
	a, err := Decode(data, Limits{})
	if err != nil {
		t.Fatalf("Decode failed: %v\ninput: %s", err, data)
	}
	return a
}

// assertAlert compares got with want field by field. Fields are compared only
// for the keys in want.Fields, value and Go type both, plus their count when
// wantFieldCount is not negative.
func assertAlert(t *testing.T, got, want Alert, wantFieldCount int) {
	t.Helper()
	gotFields, wantFields := got.Fields, want.Fields
	got.Fields, want.Fields = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alert mismatch\n got: %+v\nwant: %+v", got, want)
	}
	for k, w := range wantFields {
		g, ok := gotFields[k]
		if !ok {
			t.Errorf("fields[%q] missing", k)
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("fields[%q] = %#v (%T), want %#v (%T)", k, g, g, w, w)
		}
	}
	if wantFieldCount >= 0 && len(gotFields) != wantFieldCount {
		t.Errorf("got %d fields, want %d: %v", len(gotFields), wantFieldCount, gotFields)
	}
}

// assertReason fails unless err is a *DecodeError with the given reason.
func assertReason(t *testing.T, err error, want Reason) *DecodeError {
	t.Helper()
	if err == nil {
		t.Fatalf("Decode succeeded, want reason %q", want)
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("Decode error %v is %T, want *DecodeError", err, err)
	}
	if de.Reason != want {
		t.Fatalf("reason = %q (%v), want %q", de.Reason, err, want)
	}
	return de
}

func TestDecodeTurnsEachSampleIntoItsAlert(t *testing.T) {
	tests := []struct {
		file       string
		want       Alert
		fieldCount int
	}{
		{
			file: "falco-terminal-shell.json",
			want: Alert{
				ID:       "5d1f3c0e-8a57-4b43-9a8e-1f2b7f0c4a11",
				Source:   "syscall",
				Rule:     "Terminal shell in container",
				Severity: SeverityNotice,
				Time:     time.Date(2026, 11, 20, 13, 44, 5, 478445995, time.UTC),
				Summary:  "13:44:05.478445995: Notice A shell was spawned in a container with an attached terminal (evt_type=execve user=root user_uid=0 user_loginuid=-1 process=sh proc_exepath=/bin/busybox parent=runc command=sh -c clear; (bash || ash || sh) terminal=34816 exe_flags=EXE_WRITABLE container_id=ee97d9c4186f container_image=docker.io/library/alpine container_image_tag=3.20 container_name=shell k8s_ns=payments k8s_pod_name=checkout-7d9f8b6c5-x2lqp)",
				Hostname: "worker-2",
				Tags:     []string{"T1059", "container", "maturity_stable", "mitre_execution", "shell"},
				Kubernetes: Kubernetes{
					Namespace: "payments",
					Pod:       "checkout-7d9f8b6c5-x2lqp",
					Container: "shell",
					Node:      "worker-2",
				},
				Fields: map[string]any{
					"proc.tty":      int64(34816),
					"user.loginuid": int64(-1),
					"evt.time":      int64(1795181045478445995),
					"proc.cmdline":  "sh -c clear; (bash || ash || sh)",
				},
				Format: "falco",
			},
			fieldCount: 16,
		},
		{
			file: "falco-crypto-miner.json",
			want: Alert{
				ID:       "0b6a7e52-2f4e-4f0e-a3cb-6d1d7c59e8f2",
				Source:   "syscall",
				Rule:     "Detect outbound connections to common miner pool ports",
				Severity: SeverityCritical,
				Time:     time.Date(2026, 11, 21, 9, 12, 44, 101223344, time.UTC),
				Summary:  "09:12:44.101223344: Critical Outbound connection to IP/Port flagged by https://cryptoioc.ch (connection=10.244.1.17:43122->45.9.148.108:3333 lport=43122 rport=3333 fd_type=ipv4 fd_proto=tcp evt_type=connect user=app user_uid=1000 process=xmrig command=xmrig -o pool.supportxmr.com:3333 container_id=3c1e9a2b7d40 container_image=ghcr.io/acme/web container_name=web k8s_ns=shop k8s_pod_name=web-5c7d9f6b8-qz8kd)",
				Hostname: "worker-1",
				Tags:     []string{"T1496", "maturity_sandbox", "mitre_impact", "network"},
				Kubernetes: Kubernetes{
					Namespace: "shop",
					Pod:       "web-5c7d9f6b8-qz8kd",
					Container: "web",
					Node:      "worker-1",
				},
				Fields: map[string]any{
					"fd.rport":  int64(3333),
					"user.uid":  int64(1000),
					"proc.name": "xmrig",
					"fd.name":   "10.244.1.17:43122->45.9.148.108:3333",
				},
				Format: "falco",
			},
			fieldCount: 13,
		},
		{
			file: "falco-k8s-audit-exec.json",
			want: Alert{
				ID:       "9c2b4f61-7e0a-4d8b-b5a3-2f6e1c9d0a47",
				Source:   "k8s_audit",
				Rule:     "Attach/Exec Pod",
				Severity: SeverityNotice,
				Time:     time.Date(2026, 11, 22, 17, 3, 9, 512840000, time.UTC),
				Summary:  "17:03:09.512840000: Notice Attach/Exec to pod (user=mallory@acme.example pod=api-6f5d8c7b9-4hkq2 resource=pods ns=prod action=exec command=/bin/bash)",
				Hostname: "worker-1",
				Tags:     []string{"k8s"},
				// The node stays empty although Falco reported a hostname: an
				// audit event is about the API request, not the node Falco runs on.
				Kubernetes: Kubernetes{
					Namespace: "prod",
					Pod:       "api-6f5d8c7b9-4hkq2",
					Container: "api",
				},
				Fields: map[string]any{
					"ka.user.name":          "mallory@acme.example",
					"ka.verb":               "create",
					"ka.target.subresource": "exec",
					"ka.uri.param[command]": "/bin/bash",
					"evt.time":              int64(1795366989512840000),
				},
				Format: "falco",
			},
			fieldCount: 9,
		},
		{
			file: "generic-alert.json",
			want: Alert{
				ID:       "det-2026-11-22-000417",
				Source:   "custom-detector",
				Rule:     "Unexpected kubectl exec into production pod",
				Severity: SeverityError,
				Time:     time.Date(2026, 11, 22, 17, 3, 9, 0, time.UTC),
				Summary:  "kubectl exec by user mallory into prod/api-6f5d8c7b9-4hkq2",
				Tags:     []string{"exec", "production"},
				Kubernetes: Kubernetes{
					Namespace: "prod",
					Pod:       "api-6f5d8c7b9-4hkq2",
					Container: "api",
					Node:      "worker-3",
				},
				Fields: map[string]any{
					"user":    "mallory",
					"command": "/bin/bash",
				},
				Format: "generic",
			},
			fieldCount: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := mustDecode(t, sample(t, tt.file))
			assertAlert(t, got, tt.want, tt.fieldCount)
		})
	}
}

// falcoEvent builds a Falco syscall event, changed by mods, in the shape
// Falcosidekick publishes.
func falcoEvent(t *testing.T, mods ...func(ev map[string]any)) []byte {
	t.Helper()
	ev := map[string]any{
		"uuid":     "11111111-2222-3333-4444-555555555555",
		"output":   "10:00:00.000000001: Warning something happened",
		"priority": "Warning",
		"rule":     "Test rule",
		"source":   "syscall",
		"tags":     []any{"test"},
		"time":     "2026-01-02T10:00:00.000000001Z",
		"hostname": "node-a",
		"output_fields": map[string]any{
			"evt.time":       1767348000000000001,
			"container.name": "app",
			"k8s.ns.name":    "default",
			"k8s.pod.name":   "app-0",
			"k8s.pod.uid":    "6f1c8e0e-3b7a-4e8e-9a51-0c6a1f3d2b9e",
		},
	}
	for _, mod := range mods {
		mod(ev)
	}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal falco event: %v", err)
	}
	return data
}

// auditEvent builds a Falco k8s_audit event with the given output fields.
func auditEvent(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	return falcoEvent(t, func(ev map[string]any) {
		ev["source"] = "k8s_audit"
		ev["output_fields"] = fields
	})
}

func outputFields(ev map[string]any) map[string]any { return ev["output_fields"].(map[string]any) }

func TestDecodeFalco(t *testing.T) {
	tests := []struct {
		name  string
		input func(t *testing.T) []byte
		check func(t *testing.T, a Alert)
	}{
		{
			name:  "a syscall event locates pod, container, pod UID and node",
			input: func(t *testing.T) []byte { return falcoEvent(t) },
			check: func(t *testing.T, a Alert) {
				want := Kubernetes{Namespace: "default", Pod: "app-0", Container: "app", Node: "node-a", PodUID: "6f1c8e0e-3b7a-4e8e-9a51-0c6a1f3d2b9e"}
				if a.Kubernetes != want {
					t.Errorf("kubernetes = %+v, want %+v", a.Kubernetes, want)
				}
				if a.Format != "falco" || a.Severity != SeverityWarning {
					t.Errorf("format, severity = %q, %v; want falco, warning", a.Format, a.Severity)
				}
			},
		},
		{
			name: "<NA> and empty values mean not known",
			input: func(t *testing.T) []byte {
				return falcoEvent(t, func(ev map[string]any) {
					ev["hostname"] = "<NA>"
					f := outputFields(ev)
					f["k8s.ns.name"] = "<NA>"
					f["k8s.pod.name"] = "<NA>"
					f["container.name"] = ""
					f["k8s.pod.uid"] = nil
				})
			},
			check: func(t *testing.T, a Alert) {
				if a.Kubernetes != (Kubernetes{}) {
					t.Errorf("kubernetes = %+v, want all empty", a.Kubernetes)
				}
				// The detector's own fields keep what it sent.
				if got := a.Fields["k8s.ns.name"]; got != "<NA>" {
					t.Errorf(`fields["k8s.ns.name"] = %#v, want "<NA>"`, got)
				}
			},
		},
		{
			name: "without time, evt.time gives the time",
			input: func(t *testing.T) []byte {
				return falcoEvent(t, func(ev map[string]any) { delete(ev, "time") })
			},
			check: func(t *testing.T, a Alert) {
				want := time.Date(2026, 1, 2, 10, 0, 0, 1, time.UTC)
				if !a.Time.Equal(want) || a.Time.Location() != time.UTC {
					t.Errorf("time = %v, want %v", a.Time, want)
				}
			},
		},
		{
			name: "an unparsable time falls back to evt.time",
			input: func(t *testing.T) []byte {
				return falcoEvent(t, func(ev map[string]any) { ev["time"] = "yesterday" })
			},
			check: func(t *testing.T, a Alert) {
				if want := time.Date(2026, 1, 2, 10, 0, 0, 1, time.UTC); !a.Time.Equal(want) {
					t.Errorf("time = %v, want %v", a.Time, want)
				}
			},
		},
		{
			name: "without any time the time stays zero",
			input: func(t *testing.T) []byte {
				return falcoEvent(t, func(ev map[string]any) {
					delete(ev, "time")
					delete(outputFields(ev), "evt.time")
				})
			},
			check: func(t *testing.T, a Alert) {
				if !a.Time.IsZero() {
					t.Errorf("time = %v, want the zero time", a.Time)
				}
			},
		},
		{
			name: "a time with an offset is converted to UTC",
			input: func(t *testing.T) []byte {
				return falcoEvent(t, func(ev map[string]any) { ev["time"] = "2026-01-02T12:00:00+02:00" })
			},
			check: func(t *testing.T, a Alert) {
				if want := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC); a.Time != want {
					t.Errorf("time = %#v, want %#v", a.Time, want)
				}
			},
		},
		{
			name: "without source the event is a syscall event",
			input: func(t *testing.T) []byte {
				return falcoEvent(t, func(ev map[string]any) { delete(ev, "source") })
			},
			check: func(t *testing.T, a Alert) {
				if a.Source != "syscall" || a.Kubernetes.Pod != "app-0" {
					t.Errorf("source, pod = %q, %q; want syscall, app-0", a.Source, a.Kubernetes.Pod)
				}
			},
		},
		{
			name: "an unknown priority is an unknown severity, not an error",
			input: func(t *testing.T) []byte {
				return falcoEvent(t, func(ev map[string]any) { ev["priority"] = "Bizarre" })
			},
			check: func(t *testing.T, a Alert) {
				if a.Severity != SeverityUnknown {
					t.Errorf("severity = %v, want unknown", a.Severity)
				}
			},
		},
		{
			name: "an event with output but no priority is still Falco's",
			input: func(t *testing.T) []byte {
				return falcoEvent(t, func(ev map[string]any) { delete(ev, "priority") })
			},
			check: func(t *testing.T, a Alert) {
				if a.Format != "falco" || a.Severity != SeverityUnknown {
					t.Errorf("format, severity = %q, %v; want falco, unknown", a.Format, a.Severity)
				}
			},
		},
		{
			name: "Falco's own JSON, without Falcosidekick's uuid, gets a derived ID",
			input: func(t *testing.T) []byte {
				return falcoEvent(t, func(ev map[string]any) { delete(ev, "uuid") })
			},
			check: func(t *testing.T, a Alert) {
				if !strings.HasPrefix(a.ID, "sha256:") || len(a.ID) != len("sha256:")+32 {
					t.Errorf("id = %q, want sha256: and 32 hex digits", a.ID)
				}
			},
		},
		{
			name: "an event from another source locates nothing",
			input: func(t *testing.T) []byte {
				return falcoEvent(t, func(ev map[string]any) { ev["source"] = "aws_cloudtrail" })
			},
			check: func(t *testing.T, a Alert) {
				if a.Kubernetes != (Kubernetes{}) {
					t.Errorf("kubernetes = %+v, want all empty", a.Kubernetes)
				}
			},
		},
		{
			name: "null output_fields, as some k8s_audit events had, give no fields",
			input: func(t *testing.T) []byte {
				return falcoEvent(t, func(ev map[string]any) { ev["output_fields"] = nil })
			},
			check: func(t *testing.T, a Alert) {
				if a.Fields != nil {
					t.Errorf("fields = %v, want nil", a.Fields)
				}
			},
		},
		{
			name: "an audit event on a secret names no pod",
			input: func(t *testing.T) []byte {
				return auditEvent(t, map[string]any{
					"ka.target.namespace": "prod",
					"ka.target.name":      "db-password",
					"ka.target.resource":  "secrets",
				})
			},
			check: func(t *testing.T, a Alert) {
				if want := (Kubernetes{Namespace: "prod"}); a.Kubernetes != want {
					t.Errorf("kubernetes = %+v, want %+v", a.Kubernetes, want)
				}
			},
		},
		{
			name: "an audit event on a pod without subresource names no container",
			input: func(t *testing.T) []byte {
				return auditEvent(t, map[string]any{
					"ka.target.namespace":     "prod",
					"ka.target.name":          "api-0",
					"ka.target.resource":      "pods",
					"ka.target.subresource":   "<NA>",
					"ka.uri.param[container]": "api",
				})
			},
			check: func(t *testing.T, a Alert) {
				if want := (Kubernetes{Namespace: "prod", Pod: "api-0"}); a.Kubernetes != want {
					t.Errorf("kubernetes = %+v, want %+v", a.Kubernetes, want)
				}
			},
		},
		{
			name: "an audit exec through Falcosidekick's bracketreplacer still names the container",
			input: func(t *testing.T) []byte {
				return auditEvent(t, map[string]any{
					"ka.target.namespace":     "prod",
					"ka.target.name":          "api-0",
					"ka.target.resource":      "pods",
					"ka.target.subresource":   "exec",
					"ka.uri.param_container_": "api",
					"ka.uri.param_command_":   "sh",
				})
			},
			check: func(t *testing.T, a Alert) {
				if want := (Kubernetes{Namespace: "prod", Pod: "api-0", Container: "api"}); a.Kubernetes != want {
					t.Errorf("kubernetes = %+v, want %+v", a.Kubernetes, want)
				}
			},
		},
		{
			name: "an audit exec whose brackets became one separator names the container",
			input: func(t *testing.T) []byte {
				return auditEvent(t, map[string]any{
					"ka.target.namespace":    "prod",
					"ka.target.name":         "api-0",
					"ka.target.resource":     "pods",
					"ka.target.subresource":  "attach",
					"ka.uri.param_container": "sidecar",
				})
			},
			check: func(t *testing.T, a Alert) {
				if want := (Kubernetes{Namespace: "prod", Pod: "api-0", Container: "sidecar"}); a.Kubernetes != want {
					t.Errorf("kubernetes = %+v, want %+v", a.Kubernetes, want)
				}
			},
		},
		{
			name: "an audit exec without the container field names pod only",
			input: func(t *testing.T) []byte {
				return auditEvent(t, map[string]any{
					"ka.target.namespace":   "prod",
					"ka.target.name":        "api-0",
					"ka.target.resource":    "pods",
					"ka.target.subresource": "exec",
				})
			},
			check: func(t *testing.T, a Alert) {
				if want := (Kubernetes{Namespace: "prod", Pod: "api-0"}); a.Kubernetes != want {
					t.Errorf("kubernetes = %+v, want %+v", a.Kubernetes, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustDecode(t, tt.input(t)))
		})
	}
}

func TestDecodeGeneric(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(t *testing.T, a Alert)
	}{
		{
			name:  "only a rule is required",
			input: `{"rule":"r"}`,
			check: func(t *testing.T, a Alert) {
				want := Alert{ID: derivedID([]byte(`{"rule":"r"}`)), Rule: "r", Format: "generic"}
				if !reflect.DeepEqual(a, want) {
					t.Errorf("alert = %+v, want %+v", a, want)
				}
			},
		},
		{
			name:  "nested fields are flattened to dotted keys",
			input: `{"rule":"r","fields":{"a":{"b":1,"c":{"d":"x"}},"e":true,"empty":{},"list":[{"k":2},null]}}`,
			check: func(t *testing.T, a Alert) {
				want := map[string]any{
					"a.b":   int64(1),
					"a.c.d": "x",
					"e":     true,
					"empty": map[string]any{},
					"list":  []any{map[string]any{"k": int64(2)}, nil},
				}
				if !reflect.DeepEqual(a.Fields, want) {
					t.Errorf("fields = %#v, want %#v", a.Fields, want)
				}
			},
		},
		{
			name:  "a literal dotted key beats a nested one",
			input: `{"rule":"r","fields":{"a":{"b":"nested"},"a.b":"literal"}}`,
			check: func(t *testing.T, a Alert) {
				if got := a.Fields["a.b"]; got != "literal" || len(a.Fields) != 1 {
					t.Errorf("fields = %v, want only a.b=literal", a.Fields)
				}
			},
		},
		{
			name:  "numbers become int64 when integral and float64 otherwise",
			input: `{"rule":"r","fields":{"port":3333,"neg":-1,"exp":1e3,"whole":2.0,"frac":0.5,"big":9223372036854775807,"bigger":9223372036854775808,"huge":1e400}}`,
			check: func(t *testing.T, a Alert) {
				want := map[string]any{
					"port":   int64(3333),
					"neg":    int64(-1),
					"exp":    int64(1000),
					"whole":  int64(2),
					"frac":   0.5,
					"big":    int64(9223372036854775807),
					"bigger": 9223372036854775808.0,
					// Beyond float64 the literal is kept, so the alert still encodes.
					"huge": "1e400",
				}
				if !reflect.DeepEqual(a.Fields, want) {
					t.Errorf("fields = %#v, want %#v", a.Fields, want)
				}
				if a.Fields["port"] != any(int64(3333)) {
					t.Error(`fields["port"] == int64(3333) is false`)
				}
			},
		},
		{
			name:  "members of the wrong type read as absent",
			input: `{"rule":"r","id":7,"severity":5,"time":1700000000,"tags":"x","kubernetes":[],"fields":[1]}`,
			check: func(t *testing.T, a Alert) {
				if a.Severity != SeverityUnknown || !a.Time.IsZero() || a.Tags != nil || a.Kubernetes != (Kubernetes{}) || a.Fields != nil {
					t.Errorf("alert = %+v, want only rule and a derived ID", a)
				}
				if !strings.HasPrefix(a.ID, "sha256:") {
					t.Errorf("id = %q, want a derived ID", a.ID)
				}
			},
		},
		{
			name:  "tags keep their string elements",
			input: `{"rule":"r","tags":["a",1,"b",null]}`,
			check: func(t *testing.T, a Alert) {
				if want := []string{"a", "b"}; !reflect.DeepEqual(a.Tags, want) {
					t.Errorf("tags = %q, want %q", a.Tags, want)
				}
			},
		},
		{
			name:  "kubernetes carries the pod UID and ignores <NA>",
			input: `{"rule":"r","kubernetes":{"namespace":"ns","pod":"<NA>","podUID":"uid-1"}}`,
			check: func(t *testing.T, a Alert) {
				if want := (Kubernetes{Namespace: "ns", PodUID: "uid-1"}); a.Kubernetes != want {
					t.Errorf("kubernetes = %+v, want %+v", a.Kubernetes, want)
				}
			},
		},
		{
			name:  "a time with fractional seconds and an offset parses to UTC",
			input: `{"rule":"r","time":"2026-11-22T18:03:09.25+01:00"}`,
			check: func(t *testing.T, a Alert) {
				if want := time.Date(2026, 11, 22, 17, 3, 9, 250000000, time.UTC); a.Time != want {
					t.Errorf("time = %v, want %v", a.Time, want)
				}
			},
		},
		{
			name:  "a time JSON cannot encode again reads as absent",
			input: `{"rule":"r","time":"0000-01-01T00:00:00+01:00"}`,
			check: func(t *testing.T, a Alert) {
				if !a.Time.IsZero() {
					t.Errorf("time = %v, want the zero time", a.Time)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustDecode(t, []byte(tt.input)))
		})
	}
}

func TestDecodeDerivesStableID(t *testing.T) {
	data := []byte(`{"rule":"r","summary":"no id here"}`)
	sum := sha256.Sum256(data)
	want := "sha256:" + hex.EncodeToString(sum[:])[:32]

	first, second := mustDecode(t, data), mustDecode(t, data)
	if first.ID != want || second.ID != want {
		t.Errorf("ids = %q, %q; want %q both times", first.ID, second.ID, want)
	}
	if other := mustDecode(t, []byte(`{"rule":"r","summary":"another"}`)); other.ID == want {
		t.Errorf("different alerts share the ID %q", want)
	}
}

// nested returns a generic alert whose objects and arrays nest depth levels
// deep, counting the top-level object, with brackets and escaped quotes in a
// string that must not count.
func nested(depth int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"rule":"r","noise":"[[[{{\"[[{{\\\"[[[","fields":{"x":`)
	inner := depth - 2 // the top-level object and "fields"
	b.WriteString(strings.Repeat("[", inner))
	b.WriteString(`"]]}}\"[["`)
	b.WriteString(strings.Repeat("]", inner))
	b.WriteString(`}}`)
	return b.Bytes()
}

func TestDecodeErrors(t *testing.T) {
	oneMiB := 1 << 20
	tests := []struct {
		name    string
		input   []byte
		limits  Limits
		want    Reason
		message string // a substring of the error message, if not empty
	}{
		{
			name:    "a message over a custom size limit",
			input:   []byte(`{"rule":"too long for ten bytes"}`),
			limits:  Limits{MaxBytes: 10},
			want:    ReasonOversize,
			message: "alert: oversize: 33 bytes exceeds the 10-byte limit",
		},
		{
			name:    "a mebibyte and one byte under the default limit",
			input:   genericOfSize(oneMiB + 1),
			want:    ReasonOversize,
			message: "alert: oversize: 1048577 bytes exceeds the 1048576-byte limit",
		},
		{
			name:    "invalid UTF-8 inside a string",
			input:   []byte("{\"rule\":\"r\",\"summary\":\"caf\xc3\x28\"}"),
			want:    ReasonInvalidUTF8,
			message: "at byte 26",
		},
		{
			name:    "a lone continuation byte",
			input:   []byte("{\"rule\":\"\x80\"}"),
			want:    ReasonInvalidUTF8,
			message: "at byte 9",
		},
		{
			name:    "depth 33 with the default limit of 32",
			input:   nested(33),
			want:    ReasonTooDeep,
			message: "nesting deeper than 32 levels",
		},
		{
			name:    "depth 3 with a custom limit of 2",
			input:   []byte(`{"rule":"r","fields":{"a":{}}}`),
			limits:  Limits{MaxDepth: 2},
			want:    ReasonTooDeep,
			message: "at byte 26",
		},
		{
			name:    "a mebibyte of opening brackets stops at the limit",
			input:   bytes.Repeat([]byte("["), oneMiB),
			want:    ReasonTooDeep,
			message: "at byte 32",
		},
		{
			name:    "truncated JSON",
			input:   []byte(`{"rule":"r","summary":"cut`),
			want:    ReasonInvalidJSON,
			message: "unexpected EOF",
		},
		{
			name:    "a syntax error",
			input:   []byte(`{"rule":"r",}`),
			want:    ReasonInvalidJSON,
			message: "at byte 13",
		},
		{
			name:    "an empty message",
			input:   []byte(" \n"),
			want:    ReasonInvalidJSON,
			message: "empty message",
		},
		{
			name:    "two objects",
			input:   []byte(`{"rule":"a"} {"rule":"b"}`),
			want:    ReasonInvalidJSON,
			message: "after the top-level value",
		},
		{
			name:    "a top-level array",
			input:   []byte(`[{"rule":"r"}]`),
			want:    ReasonNotObject,
			message: "top-level value is an array",
		},
		{
			name:    "a top-level string",
			input:   []byte(`"rule"`),
			want:    ReasonNotObject,
			message: "a string",
		},
		{
			name:    "a top-level number",
			input:   []byte(`42`),
			want:    ReasonNotObject,
			message: "a number",
		},
		{
			name:    "a top-level null",
			input:   []byte(`null`),
			want:    ReasonNotObject,
			message: "null",
		},
		{
			name:    "an object without rule",
			input:   []byte(`{"priority":"Critical","output":"no rule"}`),
			want:    ReasonUnrecognised,
			message: `no "rule"`,
		},
		{
			name:    "an empty rule",
			input:   []byte(`{"rule":""}`),
			want:    ReasonUnrecognised,
			message: `"rule" is empty`,
		},
		{
			name:    "a rule that is not a string",
			input:   []byte(`{"rule":["r"]}`),
			want:    ReasonUnrecognised,
			message: `"rule" is an array`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Decode(tt.input, tt.limits)
			de := assertReason(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not contain %q", err, tt.message)
			}
			if !strings.HasPrefix(err.Error(), "alert: "+string(tt.want)+": ") {
				t.Errorf("error %q does not start with the package prefix and reason", err)
			}
			if de.Unwrap() == nil {
				t.Error("Unwrap() = nil, want the underlying error")
			}
			if !reflect.DeepEqual(a, Alert{}) {
				t.Errorf("Decode returned %+v with its error, want the zero Alert", a)
			}
		})
	}
}

func TestDecodeAtTheLimits(t *testing.T) {
	tests := []struct {
		name   string
		input  []byte
		limits Limits
	}{
		{name: "exactly the default size limit", input: genericOfSize(1 << 20)},
		{name: "exactly a custom size limit", input: []byte(`{"rule":"r"}`), limits: Limits{MaxBytes: 12}},
		{name: "depth 32 with the default limit, brackets in strings not counted", input: nested(32)},
		{name: "depth 2 with a custom limit of 2", input: []byte(`{"rule":"r","fields":{}}`), limits: Limits{MaxDepth: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.input, tt.limits); err != nil {
				t.Fatalf("Decode failed: %v", err)
			}
		})
	}
}

// genericOfSize returns a valid generic alert of exactly n bytes (n >= 26).
func genericOfSize(n int) []byte {
	const head, tail = `{"rule":"r","summary":"`, `"}`
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

func TestCheckDepthSkipsStrings(t *testing.T) {
	tests := []struct {
		name  string
		input string
		ok    bool
	}{
		{"brackets inside a string", `{"a":"[[[[{{{{"}`, true},
		{"an escaped quote does not end the string", `{"a":"\"[[[["}`, true},
		{"an escaped backslash before the closing quote", `{"a":"\\"}`, true},
		{"an escaped backslash, then real nesting", `{"a":"\\","b":[[[[]]]]}`, false},
		{"nesting at the limit", `[[[{}]]]`, true},
		{"nesting past the limit", `[[[[{}]]]]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, err := checkShape([]byte(tt.input), Limits{MaxDepth: 4, MaxValues: 100})
			if ok := err == nil; ok != tt.ok || !ok && reason != ReasonTooDeep {
				t.Errorf("checkShape(%s, depth 4) = %s %v, want ok=%v", tt.input, reason, err, tt.ok)
			}
		})
	}
}

func TestDecodedAlertEncodesAsJSON(t *testing.T) {
	a := mustDecode(t, sample(t, "falco-crypto-miner.json"))
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatalf("json.Marshal failed: %v", err)
	}
	var got struct {
		Severity string         `json:"severity"`
		Fields   map[string]any `json:"fields"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("json.Unmarshal failed: %v", err)
	}
	if got.Severity != "critical" {
		t.Errorf(`severity = %q in JSON, want "critical"`, got.Severity)
	}
	if got.Fields["fd.rport"] != 3333.0 {
		t.Errorf(`fields["fd.rport"] = %v in JSON, want 3333`, got.Fields["fd.rport"])
	}
}

func BenchmarkDecode(b *testing.B) {
	data := sample(b, "falco-crypto-miner.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode(data, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestReplacedBrackets(t *testing.T) {
	for field, want := range map[string]bool{
		"ka.uri.param_container_":     true,
		"ka.uri.param_container":      true,
		"ka.uri.param__container__":   true,
		"ka.uri.param.container.":     true,
		"ka.uri.param-container":      true,
		"ka.uri.param[container]":     false, // the exact name, looked up first
		"ka.uri.paramcontainer":       false,
		"ka.uri.param_container-":     false, // two different replacements
		"ka.uri.param_container_x":    false,
		"ka.uri.paramXcontainerX":     false, // a letter is no replacement
		"ka.uri.param_____container":  false, // longer than any replacer
		"ka.uri.param_command_":       false,
		"ka.uri.param_containers_":    false,
		"other.param_container_":      false,
		"ka.uri.param_container__":    false,
		"ka.uri.param1container1":     false,
		"ka.uri.param_container_ ":    false,
		"ka.uri.param_container_ _":   false,
		"ka.uri.param_container_\x00": false,
	} {
		if got := replacedBrackets(field, "ka.uri.param", "container"); got != want {
			t.Errorf("replacedBrackets(%q) = %v, want %v", field, got, want)
		}
	}
}
