package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/testenv"
)

// TestTemporalOverMTLS: the deploy manifests tell operators to put Temporal's
// frontend behind mTLS (deploy/README.md, "Trust"). Against a real Temporal
// frontend that requires a client certificate from soar's CA, serve and the
// CLI connect with the --temporal-tls-* flags, and every client without such a
// certificate is turned away: plaintext, TLS without a certificate, a
// certificate from another CA, and a server certificate that is not the
// frontend's name.
func TestTemporalOverMTLS(t *testing.T) {
	ca := testenv.NewCA(t, "soar-test")
	const serverName = "temporal-frontend.temporal.svc"
	serverCert, serverKey := ca.Issue(t, "temporal-frontend", serverName, "127.0.0.1")
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{
		Namespaces: []string{"default"},
		TLS:        &devstack.TemporalTLS{CertFile: serverCert, KeyFile: serverKey, CAFile: ca.File, ServerName: serverName},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Stop() })

	clientCert, clientKey := ca.Issue(t, "soar-serve")
	rogue := testenv.NewCA(t, "rogue")
	rogueCert, rogueKey := rogue.Issue(t, "soar-serve")
	good := []string{"--temporal-address", ts.Address(),
		"--temporal-tls-cert", clientCert, "--temporal-tls-key", clientKey,
		"--temporal-tls-ca", ca.File, "--temporal-tls-server-name", serverName}

	t.Run("the CLI connects with soar's certificate", func(t *testing.T) {
		out := soar(t, append([]string{"incident", "list"}, good...)...)
		if !strings.HasPrefix(out, "INCIDENT") {
			t.Errorf("soar incident list printed %q, want the table header", out)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		// want is what the error must say. When the client refuses the
		// server it says why; when the server refuses the client, TLS 1.3
		// reports it after the handshake, as "certificate required" or, as
		// often, a broken pipe, so only the address is certain.
		want string
	}{
		{"plaintext", []string{"--temporal-address", ts.Address()}, "connect to Temporal at " + ts.Address()},
		{"TLS without a client certificate", []string{"--temporal-address", ts.Address(),
			"--temporal-tls-ca", ca.File, "--temporal-tls-server-name", serverName}, "connect to Temporal at " + ts.Address()},
		// Go offers only a certificate signed by a CA the server names, so
		// a rogue certificate is never even sent.
		{"a certificate from another CA", []string{"--temporal-address", ts.Address(),
			"--temporal-tls-cert", rogueCert, "--temporal-tls-key", rogueKey,
			"--temporal-tls-ca", ca.File, "--temporal-tls-server-name", serverName}, "connect to Temporal at " + ts.Address()},
		{"a frontend that does not hold the expected name", []string{"--temporal-address", ts.Address(),
			"--temporal-tls-cert", clientCert, "--temporal-tls-key", clientKey,
			"--temporal-tls-ca", ca.File, "--temporal-tls-server-name", "impostor.example"}, "not impostor.example"},
		{"a frontend signed by a CA soar does not trust", []string{"--temporal-address", ts.Address(),
			"--temporal-tls-cert", clientCert, "--temporal-tls-key", clientKey,
			"--temporal-tls-ca", rogue.File, "--temporal-tls-server-name", serverName}, "unknown authority"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			root := newRootCmd()
			var out testenv.SyncBuffer
			root.SetOut(&out)
			root.SetErr(io.Discard)
			root.SetArgs(append([]string{"incident", "list"}, tc.args...))
			err := root.ExecuteContext(ctx)
			if err == nil {
				t.Fatalf("soar incident list succeeded and printed %q; Temporal must refuse this client", out.String())
			}
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to mention %q", err, tc.want)
			}
		})
	}

	t.Run("serve is ready over mTLS", func(t *testing.T) {
		report, _ := serveReady(t, good...)
		if !report.Ready || report.Checks["temporal"] != "ok" {
			t.Errorf("/readyz = %+v, want ready with temporal ok", report)
		}
	})
}
