package evidence_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/soar-dev/soar/connectors/evidence"
)

// s3Server starts an in-process S3-compatible server with one bucket and
// returns its host:port.
func s3Server(t *testing.T, bucket string) string {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func newS3(t *testing.T, endpoint, bucket, prefix string) *evidence.S3 {
	t.Helper()
	st, err := evidence.NewS3(evidence.S3Config{
		Endpoint: endpoint, Region: "us-east-1", Bucket: bucket, Prefix: prefix,
		AccessKeyID: "test", SecretAccessKey: "test-secret", Insecure: true, PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// stores returns one store of each kind, each empty.
func stores(t *testing.T) map[string]evidence.Store {
	t.Helper()
	host := s3Server(t, "evidence")
	s3 := newS3(t, host, "evidence", "soar/")
	s3Hosts.Store(s3, host)
	return map[string]evidence.Store{
		"local": evidence.NewLocal(t.TempDir()),
		"s3":    s3,
	}
}

var s3Hosts sync.Map // *evidence.S3 → its server's host:port

// overwrite replaces what st holds under key behind the store's back, as
// someone with write access to the disk or the bucket could: the tampering
// that Verify must catch, since the store itself writes only once.
func overwrite(t *testing.T, st evidence.Store, key string, data []byte) {
	t.Helper()
	u, err := url.Parse(st.Location(key))
	if err != nil {
		t.Fatal(err)
	}
	switch s := st.(type) {
	case *evidence.Local:
		err = os.WriteFile(u.Path, data, 0o600)
	case *evidence.S3:
		host, _ := s3Hosts.Load(s)
		var req *http.Request
		req, err = http.NewRequest(http.MethodPut, "http://"+host.(string)+"/"+u.Host+u.Path, bytes.NewReader(data))
		if err != nil {
			break
		}
		var resp *http.Response
		if resp, err = http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("PUT %s: %s", req.URL, resp.Status)
			}
		}
	default:
		t.Fatalf("no back door into %T", st)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func sha(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func manifest() evidence.Manifest {
	return evidence.Manifest{
		Incident:    "soar-incident-1",
		Step:        "collect",
		Action:      "kubernetes.snapshot",
		Collector:   evidence.Collector{Tool: "soar", Version: "v0.0.0-test", Identity: "soar-worker@test"},
		CollectedAt: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
		Target:      evidence.Target{Namespace: "shop", Pod: "web-1", PodUID: "uid-1", Node: "node-a"},
	}
}

func artifacts() []evidence.Artifact {
	return []evidence.Artifact{
		{Name: "pod.json", ContentType: "application/json", Data: []byte(`{"kind":"Pod"}`)},
		{Name: "logs/app.log", ContentType: "text/plain; charset=utf-8", Data: []byte("2026-01-02T15:04:05Z started\n")},
		{Name: "logs/app.previous.log", ContentType: "text/plain; charset=utf-8", Error: "previous terminated container \"app\" not found"},
		{Name: "logs/empty.log", ContentType: "text/plain; charset=utf-8", Data: nil},
	}
}

func TestLocal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := evidence.NewLocal(dir)

	t.Run("stores and reads a key as a private file", func(t *testing.T) {
		if err := st.Put(ctx, "inc/step/logs/app.log", []byte("hello"), "text/plain"); err != nil {
			t.Fatal(err)
		}
		got, err := st.Get(ctx, "inc/step/logs/app.log")
		if err != nil || string(got) != "hello" {
			t.Fatalf("Get = %q, %v", got, err)
		}
		fi, err := os.Stat(filepath.Join(dir, "inc", "step", "logs", "app.log"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
		}
		for _, d := range []string{"inc", "inc/step", "inc/step/logs"} {
			fi, err := os.Stat(filepath.Join(dir, d))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o700 {
				t.Errorf("directory %s mode %v, want 0700", d, fi.Mode().Perm())
			}
		}
		if want := "file://" + filepath.ToSlash(dir) + "/inc/step/logs/app.log"; st.Location("inc/step/logs/app.log") != want {
			t.Errorf("Location = %s, want %s", st.Location("inc/step/logs/app.log"), want)
		}
	})

	t.Run("never replaces a key and leaves no temporary file", func(t *testing.T) {
		err := st.Put(ctx, "inc/step/logs/app.log", []byte("second"), "text/plain")
		if !errors.Is(err, evidence.ErrExists) {
			t.Errorf("second Put = %v, want ErrExists", err)
		}
		got, _ := st.Get(ctx, "inc/step/logs/app.log")
		if string(got) != "hello" {
			t.Errorf("Get = %q after a second Put, want the first data", got)
		}
		entries, _ := os.ReadDir(filepath.Join(dir, "inc", "step", "logs"))
		if len(entries) != 1 {
			t.Errorf("directory holds %d entries, want only app.log", len(entries))
		}
	})

	t.Run("a missing key is ErrNotFound", func(t *testing.T) {
		if _, err := st.Get(ctx, "inc/nothing"); !errors.Is(err, evidence.ErrNotFound) {
			t.Errorf("Get = %v, want ErrNotFound", err)
		}
	})

	for _, key := range []string{"", "/etc/passwd", "../outside", "a/../../b", "a//b", "./a", "a/.", `a\b`, "a\x00b"} {
		t.Run("refuses key "+strings.ReplaceAll(key, "\x00", `\0`), func(t *testing.T) {
			if err := st.Put(ctx, key, []byte("x"), ""); !errors.Is(err, evidence.ErrInvalidKey) || !errors.Is(err, evidence.ErrPermanent) {
				t.Errorf("Put = %v, want ErrInvalidKey (permanent)", err)
			}
			if _, err := st.Get(ctx, key); !errors.Is(err, evidence.ErrInvalidKey) {
				t.Errorf("Get = %v, want ErrInvalidKey", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "outside")); err == nil {
		t.Error("a key escaped the store's directory")
	}
}

func TestS3(t *testing.T) {
	ctx := context.Background()
	endpoint := s3Server(t, "evidence")
	st := newS3(t, endpoint, "evidence", "/soar/")

	t.Run("round trip", func(t *testing.T) {
		if err := st.Put(ctx, "inc/step/pod.json", []byte(`{"kind":"Pod"}`), "application/json"); err != nil {
			t.Fatal(err)
		}
		got, err := st.Get(ctx, "inc/step/pod.json")
		if err != nil || string(got) != `{"kind":"Pod"}` {
			t.Fatalf("Get = %q, %v", got, err)
		}
	})

	t.Run("keys live under the prefix", func(t *testing.T) {
		bare := newS3(t, endpoint, "evidence", "")
		got, err := bare.Get(ctx, "soar/inc/step/pod.json")
		if err != nil || string(got) != `{"kind":"Pod"}` {
			t.Fatalf("Get without prefix = %q, %v", got, err)
		}
	})

	t.Run("location", func(t *testing.T) {
		if got, want := st.Location("inc/step/manifest.json"), "s3://evidence/soar/inc/step/manifest.json"; got != want {
			t.Errorf("Location = %s, want %s", got, want)
		}
		if got, want := st.Location(""), "s3://evidence/soar/"; got != want {
			t.Errorf("Location(\"\") = %s, want %s", got, want)
		}
	})

	t.Run("a missing key is ErrNotFound", func(t *testing.T) {
		if _, err := st.Get(ctx, "inc/nothing"); !errors.Is(err, evidence.ErrNotFound) {
			t.Errorf("Get = %v, want ErrNotFound", err)
		}
	})

	t.Run("a missing bucket is permanent", func(t *testing.T) {
		other := newS3(t, endpoint, "no-such-bucket", "")
		err := other.Put(ctx, "k", []byte("x"), "text/plain")
		if !errors.Is(err, evidence.ErrPermanent) {
			t.Errorf("Put = %v, want ErrPermanent", err)
		}
	})

	t.Run("refuses invalid keys", func(t *testing.T) {
		if err := st.Put(ctx, "../x", []byte("x"), ""); !errors.Is(err, evidence.ErrInvalidKey) {
			t.Errorf("Put = %v, want ErrInvalidKey", err)
		}
	})

	t.Run("refuses an invalid configuration", func(t *testing.T) {
		for name, cfg := range map[string]evidence.S3Config{
			"no bucket":          {Endpoint: endpoint},
			"invalid bucket":     {Endpoint: endpoint, Bucket: "b"},
			"endpoint with path": {Endpoint: "http://" + endpoint + "/bucket", Bucket: "b"},
			"prefix with ..":     {Endpoint: endpoint, Bucket: "b", Prefix: "a/../b"},
		} {
			if _, err := evidence.NewS3(cfg); !errors.Is(err, evidence.ErrPermanent) {
				t.Errorf("%s: NewS3 = %v, want ErrPermanent", name, err)
			}
		}
	})
}

func TestBundle(t *testing.T) {
	ctx := context.Background()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			testBundle(ctx, t, st)
		})
	}
}

func testBundle(ctx context.Context, t *testing.T, st evidence.Store) {
	const prefix = "soar-incident-1/collect"

	t.Run("no bundle exists before one is written", func(t *testing.T) {
		_, ok, err := evidence.Existing(ctx, st, prefix)
		if err != nil || ok {
			t.Fatalf("Existing = %v, %v; want absent", ok, err)
		}
	})

	arts := artifacts()
	ref, err := evidence.WriteBundle(ctx, st, prefix, manifest(), arts)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the ref points at the manifest and counts the artifacts", func(t *testing.T) {
		if ref.Key != prefix+"/manifest.json" || ref.Location != st.Location(prefix+"/manifest.json") {
			t.Errorf("ref = %+v", ref)
		}
		if ref.Artifacts != 3 || ref.Failed != 1 {
			t.Errorf("ref counts %d stored, %d failed; want 3 and 1", ref.Artifacts, ref.Failed)
		}
		raw, err := st.Get(ctx, ref.Key)
		if err != nil {
			t.Fatal(err)
		}
		if sha(raw) != ref.SHA256 {
			t.Errorf("ref SHA-256 %s, manifest bytes hash to %s", ref.SHA256, sha(raw))
		}
	})

	t.Run("the manifest records who, what, when and each artifact's hash", func(t *testing.T) {
		raw, _ := st.Get(ctx, ref.Key)
		var m evidence.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		want := manifest()
		if m.SchemaVersion != evidence.SchemaVersion || m.Incident != want.Incident || m.Step != want.Step || m.Action != want.Action ||
			m.Collector != want.Collector || !m.CollectedAt.Equal(want.CollectedAt) || m.Target != want.Target {
			t.Errorf("manifest header = %+v", m)
		}
		if len(m.Artifacts) != len(arts) {
			t.Fatalf("manifest lists %d artifacts, want %d", len(m.Artifacts), len(arts))
		}
		for i, a := range arts {
			e := m.Artifacts[i]
			if e.Name != a.Name || e.ContentType != a.ContentType || e.Error != a.Error {
				t.Errorf("entry %d = %+v, artifact %s", i, e, a.Name)
			}
			if a.Error != "" {
				if e.Key != "" || e.SHA256 != "" {
					t.Errorf("failed artifact %s has key %q and hash %q", a.Name, e.Key, e.SHA256)
				}
				continue
			}
			if !strings.HasSuffix(e.Key, "/"+a.Name) {
				t.Errorf("artifact %s stored at %s", a.Name, e.Key)
			}
			stored, err := st.Get(ctx, prefix+"/"+e.Key)
			if err != nil {
				t.Fatal(err)
			}
			if string(stored) != string(a.Data) || e.SHA256 != sha(a.Data) || e.Size != int64(len(a.Data)) {
				t.Errorf("artifact %s: stored %q, entry hash %s size %d; want %s and %d", a.Name, stored, e.SHA256, e.Size, sha(a.Data), len(a.Data))
			}
		}
	})

	t.Run("verifies", func(t *testing.T) {
		m, err := evidence.Verify(ctx, st, ref.Key, ref.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if m.Incident != "soar-incident-1" {
			t.Errorf("Verify returned manifest of %q", m.Incident)
		}
	})

	t.Run("a second write returns the first bundle and writes nothing", func(t *testing.T) {
		before, _ := st.Get(ctx, ref.Key)
		changed := manifest()
		changed.Collector.Identity = "another-worker"
		again, err := evidence.WriteBundle(ctx, st, prefix, changed, []evidence.Artifact{{Name: "pod.json", Data: []byte("other")}})
		if err != nil {
			t.Fatal(err)
		}
		if again != ref {
			t.Errorf("second WriteBundle = %+v, want %+v", again, ref)
		}
		after, _ := st.Get(ctx, ref.Key)
		if string(before) != string(after) {
			t.Error("the manifest changed")
		}
		got, ok, err := evidence.Existing(ctx, st, prefix+"/")
		if err != nil || !ok || got != ref {
			t.Errorf("Existing = %+v, %v, %v; want %+v", got, ok, err, ref)
		}
	})

	t.Run("refuses bad artifact names before writing", func(t *testing.T) {
		for _, arts := range [][]evidence.Artifact{
			{{Name: "../pod.json"}},
			{{Name: "a.log"}, {Name: "a.log"}},
		} {
			_, err := evidence.WriteBundle(ctx, st, "other/step", manifest(), arts)
			if !errors.Is(err, evidence.ErrInvalidKey) {
				t.Errorf("WriteBundle(%v) = %v, want ErrInvalidKey", arts[0].Name, err)
			}
			if _, ok, _ := evidence.Existing(ctx, st, "other/step"); ok {
				t.Error("a refused bundle was written")
			}
		}
	})

	t.Run("the store refuses to replace a manifest", func(t *testing.T) {
		raw, _ := st.Get(ctx, ref.Key)
		if err := st.Put(ctx, ref.Key, []byte(`{"forged":true}`), "application/json"); !errors.Is(err, evidence.ErrExists) {
			t.Errorf("Put over the manifest = %v, want ErrExists", err)
		}
		if now, _ := st.Get(ctx, ref.Key); !bytes.Equal(now, raw) {
			t.Error("the manifest changed")
		}
	})

	t.Run("Verify catches a modified artifact", func(t *testing.T) {
		m, _ := evidence.Verify(ctx, st, ref.Key, ref.SHA256)
		key := prefix + "/" + m.Artifacts[1].Key // logs/app.log
		original, _ := st.Get(ctx, key)
		overwrite(t, st, key, []byte("2026-01-02T15:04:05Z nothing happened\n"))
		// Later subtests verify the same bundle.
		defer overwrite(t, st, key, original)
		_, err := evidence.Verify(ctx, st, ref.Key, ref.SHA256)
		if !errors.Is(err, evidence.ErrTampered) || !strings.Contains(err.Error(), "logs/app.log") {
			t.Errorf("Verify = %v, want ErrTampered naming logs/app.log", err)
		}
	})

	t.Run("Verify catches a missing artifact", func(t *testing.T) {
		raw, _ := st.Get(ctx, ref.Key)
		var m evidence.Manifest
		_ = json.Unmarshal(raw, &m)
		m.Artifacts = append(m.Artifacts, evidence.Entry{Name: "ghost.json", Key: "run/ghost.json", SHA256: sha(nil)})
		forged, _ := json.Marshal(m)
		if err := st.Put(ctx, "forged/step/manifest.json", forged, "application/json"); err != nil {
			t.Fatal(err)
		}
		_, err := evidence.Verify(ctx, st, "forged/step/manifest.json", "")
		if !errors.Is(err, evidence.ErrTampered) || !strings.Contains(err.Error(), "ghost.json: missing") {
			t.Errorf("Verify = %v, want ErrTampered for the missing artifact", err)
		}
	})

	t.Run("Verify catches a modified manifest", func(t *testing.T) {
		raw, _ := st.Get(ctx, ref.Key)
		var m evidence.Manifest
		_ = json.Unmarshal(raw, &m)
		m.Target.Pod = "someone-else"
		forged, _ := json.MarshalIndent(m, "", "  ")
		overwrite(t, st, ref.Key, forged)
		defer overwrite(t, st, ref.Key, raw)
		_, err := evidence.Verify(ctx, st, ref.Key, ref.SHA256)
		if !errors.Is(err, evidence.ErrTampered) || !strings.Contains(err.Error(), "manifest") {
			t.Errorf("Verify = %v, want ErrTampered for the manifest", err)
		}
	})

	t.Run("Verify of a missing bundle is ErrNotFound", func(t *testing.T) {
		if _, err := evidence.Verify(ctx, st, "nothing/here/manifest.json", ""); !errors.Is(err, evidence.ErrNotFound) {
			t.Errorf("Verify = %v, want ErrNotFound", err)
		}
	})
}

// TestS3ObjectLockRetention: with a retention, every upload asks S3 to lock
// the object (mode and retain-until date, with the Content-MD5 Object Lock
// requires); without one, nothing is locked. The fake S3 does not enforce
// locks, so the test reads what reached it.
func TestS3ObjectLockRetention(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("locked"); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(backend).Server()
	var mu sync.Mutex
	var puts []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			mu.Lock()
			puts = append(puts, r.Header.Clone())
			mu.Unlock()
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		retention time.Duration
		mode      string
		wantMode  string
	}{
		{"no retention", 0, "", ""},
		{"compliance by default", 90 * 24 * time.Hour, "", "COMPLIANCE"},
		{"governance", time.Hour, "governance", "GOVERNANCE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := evidence.NewS3(evidence.S3Config{
				Endpoint: host, Region: "us-east-1", Bucket: "locked", AccessKeyID: "test", SecretAccessKey: "test-secret",
				Insecure: true, PathStyle: true, Retention: tc.retention, RetentionMode: tc.mode,
			})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			puts = nil
			mu.Unlock()
			before := time.Now()
			if err := st.Put(ctx, "inc/"+strings.ReplaceAll(tc.name, " ", "-")+"/pod.json", []byte(`{}`), "application/json"); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(puts) != 1 {
				t.Fatalf("%d PUTs", len(puts))
			}
			h := puts[0]
			if got := h.Get("X-Amz-Object-Lock-Mode"); got != tc.wantMode {
				t.Errorf("lock mode %q, want %q", got, tc.wantMode)
			}
			until := h.Get("X-Amz-Object-Lock-Retain-Until-Date")
			if tc.retention == 0 {
				if until != "" {
					t.Errorf("retain-until %q without a retention", until)
				}
				return
			}
			u, err := time.Parse(time.RFC3339, until)
			if err != nil || u.Before(before.Add(tc.retention).Add(-time.Second)) || u.After(time.Now().Add(tc.retention).Add(time.Second)) {
				t.Errorf("retain-until %q (%v), want about now + %s", until, err, tc.retention)
			}
			if h.Get("Content-Md5") == "" {
				t.Error("no Content-MD5: S3 refuses Object Lock uploads without it")
			}
		})
	}
	if _, err := evidence.NewS3(evidence.S3Config{Endpoint: host, Bucket: "locked", Retention: time.Hour, RetentionMode: "forever"}); !errors.Is(err, evidence.ErrPermanent) {
		t.Errorf("an unknown retention mode: %v", err)
	}
}
