// Package testenv starts soar's real dependencies for tests: a NATS server, a
// Temporal server and a kube-apiserver with etcd, each stopped when the test
// ends. It fails the test, never skips it, when a dependency cannot start: a
// missing kube-apiserver is a broken checkout, fixed by 'make kube-tools'.
package testenv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.temporal.io/sdk/client"
	"k8s.io/client-go/kubernetes"

	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/logging"
	"github.com/soar-dev/soar/internal/proof"
)

// NATS starts a JetStream server on a free port with its store in a temporary
// directory, and returns it with a connection and a JetStream handle.
func NATS(t testing.TB) (*server.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	s, err := devstack.StartNATS(devstack.NATSOptions{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, js := Connect(t, s.ClientURL())
	return s, nc, js
}

// Connect connects to the NATS server at url with opts, closed when the
// test ends, and returns the connection with a JetStream handle.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// StreamConfig reads the configuration of the stream name.
func StreamConfig(t testing.TB, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().Config
}

// ReplaceStream deletes the stream name and creates it again at once with
// its configuration as change leaves it, as somebody with access to the
// JetStream API could. Should a running dispatcher's creation of its
// deleted stream come first, it tries again. A file-backed stream created
// this soon may open the deleted one's files (dispatch/recreate.go), so
// the tests replace streams with memory ones.
func ReplaceStream(t testing.TB, js jetstream.JetStream, name string, change func(*jetstream.StreamConfig)) {
	t.Helper()
	ctx := context.Background()
	cfg := StreamConfig(t, js, name)
	change(&cfg)
	for attempt := 1; ; attempt++ {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Fatal(err)
		}
		_, err := js.CreateStream(ctx, cfg)
		if err == nil {
			return
		}
		if attempt == 5 {
			t.Fatalf("create stream %s in place of the deleted one: %v", name, err)
		}
	}
}

// Kube starts kube-apiserver and etcd. Callers that share one across tests
// use devstack.StartKube from TestMain instead.
func Kube(t testing.TB) (*devstack.Kube, kubernetes.Interface) {
	t.Helper()
	k, err := devstack.StartKube(devstack.KubeOptions{})
	if err != nil {
		t.Fatalf("start kube-apiserver (run 'make kube-tools'): %v", err)
	}
	t.Cleanup(func() { _ = k.Stop() })
	cs, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	return k, cs
}

// Temporal starts a Temporal dev server of the test's own, with the
// namespace "default" and none of soar's search attributes, and dials it.
func Temporal(t testing.TB) client.Client {
	t.Helper()
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{Namespaces: []string{"default"}})
	if err != nil {
		t.Fatalf("start temporal: %v", err)
	}
	t.Cleanup(func() { _ = ts.Stop() })
	c, err := client.Dial(client.Options{HostPort: ts.Address(), Logger: logging.Temporal{L: zerolog.Nop()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Eventually polls cond every 20ms until it returns nil, and fails the test
// with cond's last error when timeout passes first. Tests use it instead of
// sleeping, so they are as fast as the system and never assert a timing.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SigningKey is the proof key of every soar process the tests start, as
// SOAR_SIGNING_KEYS gives it: a test key, never used outside tests.
const SigningKey = "soar-tests-signing-key-not-for-production"

// SigningKeys returns the tests' proof keys (internal/proof).
func SigningKeys() *proof.Keys {
	k, err := proof.Parse(SigningKey)
	if err != nil {
		panic(err)
	}
	return k
}
