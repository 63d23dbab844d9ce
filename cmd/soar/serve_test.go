package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/proof"
	"github.com/soar-dev/soar/internal/testenv"
)

// TestServeIsReadyWithTemporalAloneAndNoNATS: serve takes votes through
// Temporal only, so neither a NATS outage nor the playbook directory may take
// the vote endpoint out of its Service.
func TestServeIsReadyWithTemporalAloneAndNoNATS(t *testing.T) {
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{Namespaces: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Stop() })
	// The environment a shared ConfigMap gives every soar process: a NATS
	// server that does not answer and playbooks that are not there.
	t.Setenv("SOAR_NATS_URL", "nats://127.0.0.1:1")
	t.Setenv("SOAR_PLAYBOOKS", "/nonexistent/playbooks")
	report, _ := serveReady(t, "--temporal-address", ts.Address())
	if want := map[string]string{"temporal": "ok"}; !report.Ready || !maps.Equal(report.Checks, want) {
		t.Errorf("/readyz = %+v, want ready with checks %v", report, want)
	}
}

// serveReady runs soar serve with args, with signing keys and no Slack or
// API secrets, until the test ends, and returns its first ready /readyz
// report and its address.
func serveReady(t *testing.T, args ...string) (httpserver.ReadyReport, string) {
	t.Helper()
	return partReady(t, "serve", args...)
}

// partEnv gives a part started in the test no Slack and no API tokens from
// the environment, and signing keys of its own.
func partEnv(t *testing.T) {
	t.Helper()
	for _, name := range []string{app.EnvSlackBotToken, app.EnvSlackSigningSecret, app.EnvSlackAppToken, app.EnvSlackButtonKey, app.EnvAPITokens} {
		t.Setenv(name, "")
		t.Setenv(name+"_FILE", "")
	}
	t.Setenv(app.EnvSigningKeys, proof.Generate())
}

// partReady runs soar part (serve, dispatch, worker) with args, with signing
// keys and no Slack or API secrets, until the test ends, and returns its
// first ready /readyz report and its address.
func partReady(t *testing.T, part string, args ...string) (httpserver.ReadyReport, string) {
	t.Helper()
	_, report, addr := partRun(t, part, args...)
	return report, addr
}

// partRun is partReady, which also returns the running part.
func partRun(t *testing.T, part string, args ...string) (*bgRun, httpserver.ReadyReport, string) {
	t.Helper()
	partEnv(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t).http)
	run := runBackground(t, nil, append([]string{part, "--http-addr", addr, "--log-level", "warn"}, args...)...)

	var report httpserver.ReadyReport
	testenv.Eventually(t, time.Minute, part+" ready", func() error {
		if err, ended := run.ended(); ended {
			t.Fatalf("soar %s exited: %v", part, err)
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /readyz = %d %s", resp.StatusCode, body)
		}
		return json.Unmarshal(body, &report)
	})
	return run, report, addr
}

// TestServeConsoleBehindAProxy: serve's console answers only people its
// identity proxy names, and reads evidence where --evidence-dir says.
func TestServeConsoleBehindAProxy(t *testing.T) {
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{Namespaces: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Stop() })
	_, addr := serveReady(t, "--temporal-address", ts.Address(), "--console-auth", "proxy", "--console-proxy-from", "127.0.0.1",
		"--console-group-map", "secops=S0SECOPS", "--evidence-dir", t.TempDir())
	get := func(user string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/console/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.Header.Set("X-Forwarded-User", user)
			req.Header.Set("X-Forwarded-Groups", "secops")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(""); code != http.StatusUnauthorized || !strings.Contains(body, "you are not signed in") {
		t.Errorf("no user: %d\n%s", code, body)
	}
	if code, body := get("alice"); code != http.StatusOK || !strings.Contains(body, `title="signed in: proxy">user:alice</span>`) || !strings.Contains(body, "No incidents") {
		t.Errorf("alice: %d\n%s", code, body)
	}
}
