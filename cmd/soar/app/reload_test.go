package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
)

// Loading, reloading and watching are playbooks.Source's, tested in
// playbooks/source_test.go. These tests check what this package adds: the
// readiness check and the metrics an operator reads.

// playbookYAML returns a valid playbook; rule makes its version distinct.
func playbookYAML(name, rule string) string {
	return "name: " + name + "\n" +
		"match: alert.rule == \"" + rule + "\"\n" +
		"incidentKey: alert.k8s.namespace + \"/\" + alert.k8s.pod\n" +
		"steps:\n" +
		"  - id: contain\n" +
		"    action: kubernetes.quarantine\n" +
		"    with:\n" +
		"      namespace: alert.k8s.namespace\n" +
		"      pod: alert.k8s.pod\n"
}

// brokenYAML is shell.yaml with a match expression that does not compile,
// on line 2.
const brokenYAML = "name: shell\n" +
	"match: alert.rule ==\n" +
	"incidentKey: alert.k8s.pod\n" +
	"steps:\n" +
	"  - id: contain\n" +
	"    action: kubernetes.quarantine\n"

// replaceFile writes content beside path and renames it over path, as
// editors and configuration tools save.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestWatchReportsReloadsInReadinessAndMetrics breaks a playbook and fixes
// it again under a running watch, checking /readyz and /metrics each time.
func TestWatchReportsReloadsInReadinessAndMetrics(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shell.yaml")
	if err := os.WriteFile(path, []byte(playbookYAML("shell", "Terminal shell in container")), 0o600); err != nil {
		t.Fatal(err)
	}
	pb, err := LoadPlaybooks(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	w, err := pb.Watch(t.Context(), zerolog.Nop(), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	hs := httpserver.New(m.Registry)
	hs.AddCheck("playbooks", pb.Check)
	srv := httptest.NewServer(hs.Handler())
	defer srv.Close()
	assertGauges(t, m, 1, 0)

	replaceFile(t, path, brokenYAML)
	testenv.Eventually(t, 10*time.Second, "reload failure counted", func() error {
		if got := testutil.ToFloat64(m.PlaybookReloads.WithLabelValues("failure")); got != 1 {
			return fmt.Errorf("failed reloads = %v", got)
		}
		return nil
	})
	assertGauges(t, m, 1, 1)
	where := path + ":2:"
	code, rep := readyz(t, srv.URL)
	detail := rep.Checks["playbooks"]
	if code != http.StatusOK || !rep.Ready || !strings.HasPrefix(detail, "degraded: reload failed at ") ||
		!strings.Contains(detail, "; the playbooks loaded at ") || !strings.Contains(detail, where) {
		t.Errorf("/readyz = %d %+v, want 200, ready, and the failure in checks.playbooks", code, rep)
	}
	if metrics := get(t, srv.URL+"/metrics"); !strings.Contains(metrics, "soar_playbook_reload_failing 1") ||
		!strings.Contains(metrics, `soar_playbook_reloads_total{result="failure"} 1`) {
		t.Errorf("/metrics lacks the failure:\n%s", metrics)
	}

	replaceFile(t, path, playbookYAML("shell", "Shell spawned"))
	testenv.Eventually(t, 10*time.Second, "reload success counted", func() error {
		if got := testutil.ToFloat64(m.PlaybookReloads.WithLabelValues("success")); got != 1 {
			return fmt.Errorf("successful reloads = %v", got)
		}
		return nil
	})
	assertGauges(t, m, 1, 0)
	if code, rep := readyz(t, srv.URL); code != http.StatusOK || rep.Checks["playbooks"] != "ok" {
		t.Errorf("/readyz after the fix = %d %+v", code, rep)
	}
}

// TestCheckIsDegradedWhileAReloadFails checks the readiness check after
// reloads without a watch, as a test or a caller of Reload sees it.
func TestCheckIsDegradedWhileAReloadFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shell.yaml")
	good := playbookYAML("shell", "Terminal shell in container")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	pb, err := LoadPlaybooks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := pb.Check(t.Context()); err != nil {
		t.Errorf("Check() after the load = %v", err)
	}

	replaceFile(t, path, brokenYAML)
	if err := pb.Reload(); err == nil {
		t.Fatal("Reload of a broken playbook succeeded")
	}
	var degraded *httpserver.Degraded
	if err := pb.Check(t.Context()); !errors.As(err, &degraded) || !strings.Contains(degraded.Detail, path+":2:") {
		t.Errorf("Check() = %v, want *httpserver.Degraded naming %s:2:", err, path)
	}

	replaceFile(t, path, good)
	if err := pb.Reload(); err != nil {
		t.Fatalf("Reload after the fix: %v", err)
	}
	if err := pb.Check(t.Context()); err != nil {
		t.Errorf("Check() after the fix = %v", err)
	}
}

func assertGauges(t *testing.T, m *metrics.Metrics, loaded, failing float64) {
	t.Helper()
	if got := testutil.ToFloat64(m.PlaybooksLoaded); got != loaded {
		t.Errorf("soar_playbooks_loaded = %v, want %v", got, loaded)
	}
	if got := testutil.ToFloat64(m.PlaybookReloadFailing); got != failing {
		t.Errorf("soar_playbook_reload_failing = %v, want %v", got, failing)
	}
	if got := testutil.ToFloat64(m.PlaybooksLastReload); got <= 0 {
		t.Errorf("soar_playbooks_last_reload_timestamp_seconds = %v", got)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readyz(t *testing.T, base string) (int, httpserver.ReadyReport) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep httpserver.ReadyReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, rep
}
