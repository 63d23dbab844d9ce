package evidence_test

import (
	"context"
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/soar-dev/soar/connectors/evidence"
)

func TestAccessRecordsAreListedFromTheirKeys(t *testing.T) {
	ctx := context.Background()
	for kind, st := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			manifest := "inc-1/evidence/manifest.json"
			if err := st.Put(ctx, manifest, []byte(`{}`), "application/json"); err != nil {
				t.Fatal(err)
			}
			if got, more, err := evidence.Accesses(ctx, st, manifest, 10); err != nil || len(got) != 0 || more {
				t.Fatalf("before any download: %v, more %v, %v", got, more, err)
			}
			t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
			// Names an attacker could choose: slashes, dots, separators,
			// markup, and more than a key could hold.
			hostile := []evidence.Access{
				{At: t0, User: "user:alice", Name: "logs/app.log", SHA256: "ab", Size: 5, Via: "console"},
				{At: t0.Add(time.Second), User: "user:b-o.b/../x", Name: "../../etc/passwd", Via: "console"},
				{At: t0.Add(2 * time.Second), User: "user:<script>", Name: strings.Repeat("é", 300) + ".json", Via: "console"},
			}
			for _, a := range hostile {
				if err := evidence.RecordAccess(ctx, st, manifest, a); err != nil {
					t.Fatal(err)
				}
			}
			got, more, err := evidence.Accesses(ctx, st, manifest, 10)
			if err != nil || more || len(got) != 3 {
				t.Fatalf("Accesses = %+v, more %v, %v", got, more, err)
			}
			for i, a := range got {
				want := hostile[i]
				if i == 2 {
					want.Name = strings.Repeat("é", 40) + "…" // a key holds 80 bytes of it; the record all
				}
				if !a.At.Equal(want.At) || a.User != want.User || a.Name != want.Name {
					t.Errorf("access %d = %+v, want %+v", i, a, want)
				}
			}
			// The record holds what the key could not.
			keys, _, err := st.List(ctx, "inc-1/evidence/access", 10)
			if err != nil || len(keys) != 3 {
				t.Fatalf("access keys %v, %v", keys, err)
			}
			data, err := st.Get(ctx, keys[2])
			if err != nil || !strings.Contains(string(data), strings.Repeat("é", 300)) {
				t.Errorf("record %s = %.80s…, %v", keys[2], data, err)
			}
			// The bundle itself is untouched, and the manifest reads back.
			if data, err := st.Get(ctx, manifest); err != nil || string(data) != `{}` {
				t.Errorf("manifest = %q, %v", data, err)
			}
			if got, more, err := evidence.Accesses(ctx, st, manifest, 2); err != nil || !more || len(got) != 2 {
				t.Errorf("at most 2: %d records, more %v, %v", len(got), more, err)
			}
		})
	}
}

func TestListIsBoundedAndSorted(t *testing.T) {
	ctx := context.Background()
	for kind, st := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			for _, k := range []string{"a/3", "a/1", "a/sub/2", "b/4"} {
				if err := st.Put(ctx, k, []byte("x"), "text/plain"); err != nil {
					t.Fatal(err)
				}
			}
			keys, more, err := st.List(ctx, "a", 10)
			if err != nil || more || strings.Join(keys, ",") != "a/1,a/3,a/sub/2" {
				t.Errorf("List(a) = %v, more %v, %v", keys, more, err)
			}
			keys, more, err = st.List(ctx, "a", 1)
			if err != nil || !more || strings.Join(keys, ",") != "a/1" {
				t.Errorf("List(a, 1) = %v, more %v, %v", keys, more, err)
			}
			if keys, _, err := st.List(ctx, "none", 10); err != nil || len(keys) != 0 {
				t.Errorf("List(none) = %v, %v", keys, err)
			}
			if _, _, err := st.List(ctx, "../a", 10); err == nil {
				t.Error("List(../a) succeeded")
			}
		})
	}
}

// ReadVerified proves what it serves with two reads: the manifest against
// the digest the incident recorded, the artifact against the manifest.
func TestReadVerifiedServesOnlyWhatTheManifestVouchesFor(t *testing.T) {
	ctx := context.Background()
	for kind, st := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			ref, err := evidence.WriteBundle(ctx, st, "inc-1/evidence", manifest(), artifacts())
			if err != nil {
				t.Fatal(err)
			}
			if data, err := evidence.ReadVerified(ctx, st, ref.Key, ref.SHA256, "pod.json"); err != nil || string(data) != `{"kind":"Pod"}` {
				t.Errorf("pod.json = %q, %v", data, err)
			}
			if data, err := evidence.ReadVerified(ctx, st, ref.Key, ref.SHA256, evidence.ManifestName); err != nil || !strings.Contains(string(data), `"pod.json"`) {
				t.Errorf("the manifest = %.60q, %v", data, err)
			}
			for _, name := range []string{"nope.json", "../manifest.json", "logs/app.previous.log"} { // unlisted, escaping, not collected
				if _, err := evidence.ReadVerified(ctx, st, ref.Key, ref.SHA256, name); !errors.Is(err, evidence.ErrNotFound) {
					t.Errorf("%s: %v, want ErrNotFound", name, err)
				}
			}
			if _, err := evidence.ReadVerified(ctx, st, ref.Key, strings.Repeat("0", 64), "pod.json"); !errors.Is(err, evidence.ErrTampered) {
				t.Errorf("a manifest with another digest: %v, want ErrTampered", err)
			}
			m, err := evidence.Verify(ctx, st, ref.Key, ref.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range m.Artifacts {
				if e.Name == "logs/app.log" {
					overwrite(t, st, path.Join(path.Dir(ref.Key), e.Key), []byte("2026-01-02T15:04:05Z started, then edited\n"))
				}
			}
			if _, err := evidence.ReadVerified(ctx, st, ref.Key, ref.SHA256, "logs/app.log"); !errors.Is(err, evidence.ErrTampered) || !strings.Contains(err.Error(), "logs/app.log") {
				t.Errorf("a changed artifact: %v, want ErrTampered naming it", err)
			}
			if _, err := evidence.ReadVerified(ctx, st, ref.Key, ref.SHA256, "pod.json"); err != nil {
				t.Errorf("an unchanged artifact beside a changed one: %v", err)
			}
		})
	}
}
