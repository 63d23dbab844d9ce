package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/proof"
	"github.com/soar-dev/soar/internal/testenv"
)

// TestDispatchWaitsForTemporalAndNATSAtStartUp: a dispatcher started before
// Temporal and NATS (a cluster coming up, a NATS leader election) keeps
// trying for --startup-wait instead of exiting into the supervisor's
// restart back-off, and is ready once both answer.
func TestDispatchWaitsForTemporalAndNATSAtStartUp(t *testing.T) {
	ports := freePorts(t)
	storeDir := t.TempDir()
	temporalAddr := fmt.Sprintf("127.0.0.1:%d", ports.temporal)
	// Temporal comes up a second after the dispatcher starts, NATS (with
	// JetStream) two seconds after that: the dispatcher dials them in that
	// order, so it waits for each in turn. The cleanup, registered before
	// the dispatcher's, runs after it stopped: it waits for the servers and
	// stops them.
	var (
		ts      *devstack.Temporal
		ns      *server.Server
		started = make(chan error, 1)
	)
	t.Cleanup(func() {
		if err := <-started; err != nil {
			t.Error(err)
		}
		if ns != nil {
			ns.Shutdown()
		}
		if ts != nil {
			_ = ts.Stop()
		}
	})
	go func() {
		time.Sleep(time.Second)
		var err error
		if ts, err = devstack.StartTemporal(devstack.TemporalOptions{Port: ports.temporal, Namespaces: []string{"default"}}); err != nil {
			started <- fmt.Errorf("start Temporal: %w", err)
			return
		}
		time.Sleep(2 * time.Second)
		ns, err = devstack.StartNATS(devstack.NATSOptions{Port: ports.nats, StoreDir: storeDir})
		started <- err
	}()
	report, addr := partReady(t, "dispatch",
		"--temporal-address", temporalAddr,
		"--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", ports.nats),
		"--playbooks", filepath.Join("..", "..", "playbooks", "library"),
		"--startup-wait", "1m")
	// Ready comes first; the backlog check turns ok once the dispatcher has
	// read the streams, a moment later (degraded does not make it unready).
	want := map[string]string{"temporal": "ok", "nats": "ok", "playbooks": "ok", "backlog": "ok"}
	testenv.Eventually(t, 10*time.Second, "every check ok", func() error {
		if !report.Ready || !maps.Equal(report.Checks, want) {
			var err error
			if report, err = readyz(addr); err == nil {
				err = fmt.Errorf("/readyz = %+v, want ready with checks %v", report, want)
			}
			return err
		}
		return nil
	})
}

// readyz reads the /readyz report of the process listening on addr.
func readyz(addr string) (httpserver.ReadyReport, error) {
	var report httpserver.ReadyReport
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return report, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&report)
	return report, err
}

// TestServeWaitsForItsOIDCProvider: serve with an OpenID Connect sign-in
// reads the provider's discovery document at start; a provider that is down
// then (restarting, or not yet up in a fresh install) is waited for, so that
// votes are not held up by serve's restart back-off. The provider is
// zitadel/oidc's, started 1.5 s after serve.
func TestServeWaitsForItsOIDCProvider(t *testing.T) {
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{Namespaces: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Stop() })
	issuer := fmt.Sprintf("http://127.0.0.1:%d", freePorts(t).ui)
	t.Setenv("SOAR_CONSOLE_OIDC_CLIENT_SECRET", "console-client-secret")
	t.Setenv("SOAR_CONSOLE_SESSION_KEY", strings.Repeat("k", 32))
	t.Setenv("SOAR_SIGNING_KEYS", proof.Generate())

	slog.SetDefault(slog.New(slog.DiscardHandler)) // the example provider logs every request
	srv := &http.Server{
		Handler:           exampleop.SetupServer(issuer, storage.NewStorage(storage.NewUserStore(issuer)), nil, false, op.WithAllowInsecure()),
		ReadHeaderTimeout: 5 * time.Second,
	}
	served := make(chan error, 1)
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("OIDC provider: %v", err)
		}
	})
	go func() {
		time.Sleep(1500 * time.Millisecond)
		l, err := net.Listen("tcp", strings.TrimPrefix(issuer, "http://"))
		if err != nil {
			served <- err
			return
		}
		served <- srv.Serve(l)
	}()

	// A configuration that cannot work is not waited for: a redirect URL
	// off the console's callback path fails in one attempt.
	root := newRootCmd()
	root.SetArgs([]string{"serve", "--http-addr", "127.0.0.1:0", "--log-level", "error", "--temporal-address", ts.Address(),
		"--console-auth", "oidc", "--console-oidc-issuer", issuer, "--console-oidc-client-id", "soar-console",
		"--console-oidc-redirect-url", "http://127.0.0.1:1/elsewhere", "--startup-wait", "1m"})
	start := time.Now()
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "must end in /console/auth/callback") || strings.Contains(err.Error(), "gave up") {
		t.Errorf("serve with a wrong redirect URL: %v, want the configuration error at once", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("serve with a wrong redirect URL exited after %s, want at once", took)
	}

	report, _ := serveReady(t, "--temporal-address", ts.Address(),
		"--console-auth", "oidc", "--console-oidc-issuer", issuer, "--console-oidc-client-id", "soar-console",
		"--console-oidc-redirect-url", "http://127.0.0.1:1/console/auth/callback", "--startup-wait", "1m")
	if !report.Ready {
		t.Errorf("/readyz = %+v, want ready", report)
	}
}

// TestWorkerGivesUpWaitingWithTheReason: past --startup-wait the part exits
// with the last error, how often it tried and the flag to change; --startup-wait
// 0 tries once.
func TestWorkerGivesUpWaitingWithTheReason(t *testing.T) {
	t.Setenv("SOAR_SIGNING_KEYS", proof.Generate())
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t).temporal)
	for _, tc := range []struct {
		wait string
		want []string
	}{
		{"1500ms", []string{"connect to Temporal at " + addr, "connection refused", "gave up after ", "attempts in 2s; --startup-wait"}},
		{"0", []string{"connect to Temporal at " + addr, "connection refused"}},
	} {
		root := newRootCmd()
		root.SetArgs([]string{"worker", "--temporal-address", addr, "--http-addr", "", "--log-level", "error", "--startup-wait", tc.wait})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		err := root.ExecuteContext(ctx)
		took := time.Since(start)
		cancel()
		if err == nil {
			t.Fatalf("--startup-wait %s: soar worker started without Temporal", tc.wait)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("--startup-wait %s: error %q lacks %q", tc.wait, err, w)
			}
		}
		if tc.wait == "0" && strings.Contains(err.Error(), "gave up") {
			t.Errorf("--startup-wait 0: error %q, want one attempt", err)
		}
		if took > 10*time.Second {
			t.Errorf("--startup-wait %s: gave up after %s", tc.wait, took)
		}
	}
}
