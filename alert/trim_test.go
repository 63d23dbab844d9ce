package alert

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestTrimKeepsSmallAlertsWhole(t *testing.T) {
	a := Alert{ID: "1", Rule: "r", Summary: strings.Repeat("s", 3000), Fields: map[string]any{"proc.cmdline": strings.Repeat("c", 5000)}}
	got, cut := Trim(a)
	if cut || got.Summary != a.Summary || got.Fields["proc.cmdline"] != a.Fields["proc.cmdline"] {
		t.Errorf("a 8 KB alert was trimmed: cut %v", cut)
	}
}

func TestTrimBoundsWhatAHostileAlertCanPutInState(t *testing.T) {
	k8s := Kubernetes{Namespace: "shop", Pod: "web-0", PodUID: "uid-1"}
	for name, a := range map[string]Alert{
		"one huge summary": {ID: "1", Rule: "r", Kubernetes: k8s, Summary: strings.Repeat("<", 900_000)},
		"many fields": {ID: "2", Rule: "r", Kubernetes: k8s, Fields: func() map[string]any {
			m := map[string]any{}
			for i := range 20_000 {
				m[fmt.Sprintf("f.%05d", i)] = strings.Repeat("v", 40)
			}
			return m
		}()},
		"a huge array field": {ID: "3", Rule: "r", Kubernetes: k8s, Fields: map[string]any{"list": make([]any, 100_000), "keep": "me"}},
		"many long tags":     {ID: "4", Rule: "r", Kubernetes: k8s, Tags: strings.Split(strings.Repeat(strings.Repeat("t", 5000)+",", 100), ",")},
		"multibyte text":     {ID: "5", Rule: "r", Kubernetes: k8s, Summary: strings.Repeat("é", 200_000)},
	} {
		t.Run(name, func(t *testing.T) {
			got, cut := Trim(a)
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if !cut || len(b) > TrimBytes {
				t.Errorf("cut %v, %d bytes encoded; want cut and at most %d", cut, len(b), TrimBytes)
			}
			if got.ID != a.ID || got.Rule != a.Rule || got.Kubernetes != a.Kubernetes {
				t.Errorf("the identity changed: %+v", got)
			}
			if !json.Valid(b) || !strings.Contains(string(b), "") {
				t.Error("invalid JSON")
			}
			again, _ := Trim(a)
			if b2, _ := json.Marshal(again); string(b2) != string(b) {
				t.Error("Trim is not deterministic")
			}
		})
	}
	got, _ := Trim(Alert{Fields: map[string]any{"list": make([]any, 100_000), "keep": "me"}})
	if got.Fields["keep"] != "me" || !strings.HasPrefix(got.Fields["list"].(string), "[cut: ") {
		t.Errorf("fields %v", got.Fields)
	}
	got, _ = Trim(Alert{Summary: strings.Repeat("é", 200_000)})
	if !strings.HasSuffix(got.Summary, "bytes]") || !strings.HasPrefix(got.Summary, "éé") || strings.ContainsRune(got.Summary, '\uFFFD') {
		t.Errorf("summary cut badly: …%q", got.Summary[len(got.Summary)-40:])
	}
}

// FuzzTrim: whatever the decoder accepts, the trimmed copy fits the budget
// and keeps the alert's identity.
func FuzzTrim(f *testing.F) {
	f.Add([]byte(`{"rule":"r","summary":"` + strings.Repeat("<", 70_000) + `","kubernetes":{"pod":"p"}}`))
	f.Add([]byte(`{"rule":"r","fields":{"a":[` + strings.Repeat(`"x",`, 30_000) + `"y"],"b":"c"}}`))
	f.Add([]byte(`{"rule":"Terminal shell","priority":"Notice","output":"o","output_fields":{"k8s.pod.name":"p","proc.cmdline":"` + strings.Repeat("é", 40_000) + `"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(data, DefaultLimits)
		if err != nil {
			return
		}
		got, cut := Trim(a)
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > TrimBytes {
			t.Fatalf("trimmed to %d bytes (cut %v)", len(b), cut)
		}
		if got.ID != a.ID || got.Rule != a.Rule || got.Kubernetes != a.Kubernetes || got.Time != a.Time {
			t.Fatal("the identity changed")
		}
	})
}
