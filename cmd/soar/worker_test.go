package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
)

// TestWorkerRefusesANonPositiveKubeAPIRate: client-go reads a QPS of 0 as
// its own default (5) and a negative one as no limit at all; neither is
// what an operator who typed it meant, so the worker refuses both.
func TestWorkerRefusesANonPositiveKubeAPIRate(t *testing.T) {
	kubeconfig := unreachableKubeconfig(t)
	for _, f := range []workerFlags{{kubeQPS: 0, kubeBurst: 200}, {kubeQPS: -1, kubeBurst: 200}, {kubeQPS: 100, kubeBurst: 0}} {
		_, _, err := f.start(nil, nil, kubeconfig, t.TempDir(), "default", metrics.New(), zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), "--kube-api-qps") {
			t.Errorf("qps %v burst %d: %v", f.kubeQPS, f.kubeBurst, err)
		}
	}
}

// TestWorkerRefusesAnInvalidCluster: a cluster name becomes a task queue
// name; one that no alert could carry is a typo, refused at start.
func TestWorkerRefusesAnInvalidCluster(t *testing.T) {
	f := workerFlags{cluster: "prod eu", kubeQPS: 100, kubeBurst: 200}
	_, _, err := f.start(nil, nil, "", t.TempDir(), "default", metrics.New(), zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "--cluster: cluster name \"prod eu\"") {
		t.Errorf("--cluster %q: %v", f.cluster, err)
	}
}

// unreachableKubeconfig writes a kubeconfig for an API server nobody runs,
// for tests of a worker that never reaches its cluster.
func unreachableKubeconfig(t *testing.T) string {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

// TestWorkerReadinessAsksTheAPIServer: a worker whose cluster does not
// answer (here: nobody listens where its kubeconfig points) contains
// nothing, and its /readyz says so while Temporal's check passes.
func TestWorkerReadinessAsksTheAPIServer(t *testing.T) {
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{Namespaces: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Stop() })
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t).http)
	runBackground(t, nil, "worker", "--cluster", "c1", "--kubeconfig", unreachableKubeconfig(t), "--http-addr", addr,
		"--log-level", "error", "--temporal-address", ts.Address())
	testenv.Eventually(t, time.Minute, "/readyz names the API server", func() error {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var rep httpserver.ReadyReport
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusServiceUnavailable || rep.Checks["temporal"] != "ok" ||
			!strings.Contains(rep.Checks["kubernetes"], "the Kubernetes API server does not answer") {
			return fmt.Errorf("GET /readyz = %d %+v", resp.StatusCode, rep)
		}
		return nil
	})
}
