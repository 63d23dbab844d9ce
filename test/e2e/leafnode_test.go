package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
)

// The configurations below are those of docs/multi-cluster-intake.md, with
// the tests' addresses, directories and passwords.

// leafConfig is a cluster's leaf node: JetStream in its own domain, and a
// remote that neither exports the alert subjects to the hub (where the
// hub's stream would capture them beside the sourced copies) nor imports
// them from it (where the leaf's stream would capture the hub's alerts and
// hand them back as the cluster's). Arguments: domain, store directory,
// hub URL, and whether to leave the deny rules out (a leaf whose operator
// removed them).
func leafConfig(domain, storeDir, hubURL string, withoutDenyRules bool) string {
	deny := `
      deny_exports: ["falco.>", "alerts.>", "clusters.>"]
      deny_imports: ["falco.>", "alerts.>", "clusters.>"]`
	if withoutDenyRules {
		deny = ""
	}
	return fmt.Sprintf(`
server_name: soar-leaf-%[1]s
listen: "127.0.0.1:-1"
jetstream {
  domain: %[1]s
  store_dir: %[2]q
}
leafnodes {
  remotes [
    {
      url: %[3]q%[4]s
    }
  ]
}
`, domain, storeDir, hubURL, deny)
}

// hubConfig is the hub: JetStream in the domain "hub", replies to its
// sourcing requests that name the domain they went to
// (js_api_reply_v2), and a leaf node listener that does not advertise its
// address (the leaves must reach it through the tests' proxy only). users,
// when not empty, is the authorization block's user list.
func hubConfig(storeDir, users string) string {
	auth := ""
	if users != "" {
		auth = "authorization {\n  users [" + users + "\n  ]\n}\n"
	}
	return fmt.Sprintf(`
server_name: soar-hub
listen: "127.0.0.1:-1"
jetstream {
  domain: hub
  store_dir: %q
}
feature_flags {
  js_api_reply_v2: true
}
leafnodes {
  listen: "127.0.0.1:-1"
  no_advertise: true
}
%s`, storeDir, auth)
}

// hubLeafUser is the hub's user for a cluster's leaf node: it may deliver
// on its cluster's source subjects and answer the hub's requests to its
// domain, and receive its domain's JetStream API requests and flow control
// replies; nothing else, whatever the leaf's own configuration says.
func hubLeafUser(cluster, domain, password string) string {
	return fmt.Sprintf(`
    {
      user: leaf-%[1]s, password: %[3]q
      permissions: {
        publish: { allow: ["%[4]s%[1]s.>", "$JSC.R.%[2]s.>"] }
        subscribe: { allow: ["$JS.%[2]s.API.>", "$JS.FC.>"] }
      }
    }`, cluster, domain, password, dispatch.SourceDeliverPrefix)
}

// leafStreamConfig is a cluster's own alert stream, as
// docs/multi-cluster-intake.md creates it but smaller.
var leafStreamConfig = jetstream.StreamConfig{
	Name:        dispatch.DefaultLeafStream,
	Description: "This cluster's security alerts, kept for soar's hub",
	Subjects:    []string{"falco.>", "alerts.>"},
	Retention:   jetstream.LimitsPolicy,
	Storage:     jetstream.FileStorage,
	MaxAge:      7 * 24 * time.Hour,
	MaxBytes:    1 << 30,
	Discard:     jetstream.DiscardOld,
	Duplicates:  2 * time.Minute,
}

// leafPlaybook runs no action, so its incidents need no worker of the
// alerts' cluster: the test is about intake.
const leafPlaybook = `name: e2e-leafnode-intake
description: Counts one leaf node's alerts; runs no action.
match: alert.rule == "E2E leaf node alert"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
window: 1h
steps:
  - id: pause
    wait: 1s
`

func TestLeafNodeBuffersAlertsWhileItsLinkIsDown(t *testing.T) {
	ctx := context.Background()
	hub, hubOpts := startNATSConfig(t, hubConfig(t.TempDir(), ""))
	link := startLinkProxy(t, fmt.Sprintf("127.0.0.1:%d", hubOpts.LeafNode.Port))
	leaf, _ := startNATSConfig(t, leafConfig("dev-1", t.TempDir(), "nats://"+link.addr(), false))
	waitLinked(t, 1, hub, leaf)
	hubNC, hubJS := connectNATS(t, hub)
	leafNC, leafJS := connectNATS(t, leaf)
	if _, err := leafJS.CreateStream(ctx, leafStreamConfig); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "leaf.yaml"), []byte(leafPlaybook), 0o600); err != nil {
		t.Fatal(err)
	}
	tc := temporalClient(t)
	hubSoar := startSoar(t, hubJS, tc, dir, dispatch.Config{ClusterSources: []dispatch.ClusterSource{{Cluster: "dev-1", Domain: "dev-1"}}})
	// The dispatcher's metrics say how long the hub has not heard from
	// the leaf, and how far behind its copy is.
	source := func(want string, ok func(inactive, lag float64) bool) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, "dev-1's source "+want, func() error {
			inactive := testutil.ToFloat64(hubSoar.metrics.SourceInactive.WithLabelValues("dev-1", "dev-1", dispatch.DefaultLeafStream))
			lag := testutil.ToFloat64(hubSoar.metrics.SourceLag.WithLabelValues("dev-1", "dev-1", dispatch.DefaultLeafStream))
			if !ok(inactive, lag) {
				return fmt.Errorf("inactive %.1f s, lag %.0f", inactive, lag)
			}
			return nil
		})
	}

	// Falcosidekick publishes with core NATS to the leaf in its cluster.
	pod := fmt.Sprintf("leaf-%d", time.Now().UnixNano())
	published := 0
	publish := func(n int) {
		t.Helper()
		for range n {
			subject := "falco.notice.e2e_leaf"
			if published%2 == 1 {
				subject = "alerts.e2e-leaf"
			}
			body := fmt.Sprintf(`{"id":"%s-%d","source":"e2e","rule":"E2E leaf node alert","severity":"high","kubernetes":{"namespace":"leaf","pod":%q}}`, pod, published, pod)
			if err := leafNC.Publish(subject, []byte(body)); err != nil {
				t.Fatal(err)
			}
			published++
		}
		if err := leafNC.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	id := playbooks.ClusterIncidentID("dev-1", "e2e-leafnode-intake", "leaf/"+pod)
	waitAlertCount := func(n int) {
		t.Helper()
		testenv.Eventually(t, 20*time.Second, fmt.Sprintf("%d alerts in the incident", n), func() error {
			st, err := incidentState(ctx, tc, id)
			if err != nil {
				return err
			}
			if st.AlertCount != n {
				return fmt.Errorf("alert count %d", st.AlertCount)
			}
			return nil
		})
	}

	publish(3)
	waitAlertCount(3)
	// Linked and idle, the source stays heard from.
	time.Sleep(5 * time.Second)
	source("heard from within 3 s, nothing behind", func(inactive, lag float64) bool { return inactive >= 0 && inactive < 3 && lag == 0 })

	// The link goes down; the cluster's alerts keep coming.
	link.cut()
	waitLinked(t, 0, hub, leaf)
	const buffered = 20
	publish(buffered)
	testenv.Eventually(t, 5*time.Second, "every alert in the leaf's stream", func() error {
		if st := streamState(t, leafJS, dispatch.DefaultLeafStream); st.Msgs != uint64(published) {
			return fmt.Errorf("%d alerts stored, %d published", st.Msgs, published)
		}
		return nil
	})
	if st := streamState(t, hubJS, dispatch.DefaultStream); st.LastSeq != 3 {
		t.Fatalf("the hub stored %d alerts while its link to the leaf was down, want the 3 from before", st.LastSeq)
	}
	if st, err := incidentState(ctx, tc, id); err != nil || st.AlertCount != 3 {
		t.Fatalf("incident while the link is down: %+v, %v", st, err)
	}
	source("silent for over 3 s", func(inactive, _ float64) bool { return inactive > 3 })
	b, err := dispatch.ReadBacklog(ctx, hubJS, dispatch.DefaultStream, dispatch.DefaultConsumer)
	if err != nil || len(b.Sources) != 1 || b.Sources[0].Cluster != "dev-1" || b.Sources[0].Stream != dispatch.DefaultLeafStream {
		t.Fatalf("backlog sources %+v, %v: want dev-1's %s", b.Sources, err, dispatch.DefaultLeafStream)
	}

	// The link comes back: every buffered alert arrives, once.
	link.restore()
	waitLinked(t, 1, hub, leaf)
	waitAlertCount(published)
	source("heard from again, nothing behind", func(inactive, lag float64) bool { return inactive >= 0 && inactive < 3 && lag == 0 })

	// An alert published at the hub itself is the hub's: the leaf's stream
	// does not capture it and hand it back as the cluster's.
	hubAlert := `{"id":"` + pod + `-hub","source":"e2e","rule":"E2E hub alert","severity":"low"}`
	if err := hubNC.Publish("falco.notice.e2e_hub", []byte(hubAlert)); err != nil {
		t.Fatal(err)
	}
	if err := hubNC.Flush(); err != nil {
		t.Fatal(err)
	}

	// Nothing more arrives later: no copy travels beside the sourced one.
	time.Sleep(time.Second)
	st, err := incidentState(ctx, tc, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.AlertCount != published {
		t.Errorf("alert count %d a second later, want %d", st.AlertCount, published)
	}
	if st.FirstAlert == nil || st.FirstAlert.Cluster != "dev-1" || st.LatestAlert == nil || st.LatestAlert.Cluster != "dev-1" {
		t.Errorf("first alert %+v, latest %+v: want both of cluster dev-1", st.FirstAlert, st.LatestAlert)
	}
	if got := streamState(t, hubJS, dispatch.DefaultStream).LastSeq; got != uint64(published)+1 {
		t.Errorf("the hub stored %d messages, want %d alerts of the leaf and 1 of its own", got, published)
	}
	if got := streamState(t, leafJS, dispatch.DefaultLeafStream).Msgs; got != uint64(published) {
		t.Errorf("the leaf stored %d alerts, want the %d published there", got, published)
	}
	assertDrained(t, hubJS, dispatch.DefaultStream)
}

func TestLeafNodeHubKeepsEachLeafToItsOwnCluster(t *testing.T) {
	ctx := context.Background()
	users := `
    { user: soar, password: soar-e2e }` + hubLeafUser("dev-1", "dev-1", "dev-1-e2e") + hubLeafUser("dev-2", "dev-2", "dev-2-e2e")
	hub, hubOpts := startNATSConfig(t, hubConfig(t.TempDir(), users))
	hubURL := func(user, password string) string {
		return fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", user, password, hubOpts.LeafNode.Port)
	}
	// dev-1's operator removed the deny rules, or an attacker did: the hub
	// alone must keep dev-1 to dev-1's alerts.
	leaf1, _ := startNATSConfig(t, leafConfig("dev-1", t.TempDir(), hubURL("leaf-dev-1", "dev-1-e2e"), true))
	leaf2, _ := startNATSConfig(t, leafConfig("dev-2", t.TempDir(), hubURL("leaf-dev-2", "dev-2-e2e"), false))
	waitLinked(t, 2, hub)
	waitLinked(t, 1, leaf1, leaf2)
	hubNC, hubJS := connectNATS(t, hub, nats.UserInfo("soar", "soar-e2e"))
	nc1, js1 := connectNATS(t, leaf1)
	nc2, js2 := connectNATS(t, leaf2)
	for _, js := range []jetstream.JetStream{js1, js2} {
		if _, err := js.CreateStream(ctx, leafStreamConfig); err != nil {
			t.Fatal(err)
		}
	}
	sources, err := dispatch.ParseClusterSources([]string{"dev-1=dev-1", "dev-2=dev-2"})
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(hubJS, nil, nil, metrics.New(), zerolog.Nop(), dispatch.Config{ClusterSources: sources})
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	// A dispatcher started without --cluster-source keeps the sources.
	if err := dispatch.New(hubJS, nil, nil, metrics.New(), zerolog.Nop(), dispatch.Config{}).EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := hubJS.Stream(ctx, dispatch.DefaultStream); err != nil || len(s.CachedInfo().Config.Sources) != 2 {
		t.Fatalf("the alert stream after a dispatcher without sources started: %v, err %v; want its 2 sources kept", s, err)
	}

	pub := func(nc *nats.Conn, subjects ...string) {
		t.Helper()
		for _, s := range subjects {
			if err := nc.Publish(s, []byte(`{"rule":"E2E leaf node alert"}`)); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// dev-1 publishes an alert of its own, and tries to pass alerts off as
	// dev-2's: under the prefix the sources write, and on the subjects on
	// which dev-2's leaf delivers to the hub.
	pub(nc1, "falco.notice.one", "clusters.dev-2.falco.notice.forged", dispatch.SourceDeliverPrefix+"dev-2.S.forged")
	pub(nc2, "alerts.two")
	pub(hubNC, "falco.notice.hub")
	// dev-1 cannot reach the hub's JetStream API either, to purge its
	// alert stream say.
	if _, err := nc1.Request("$JS.hub.API.STREAM.PURGE."+dispatch.DefaultStream, nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("dev-1 asked the hub to purge its alert stream: %v, want no responders", err)
	}

	want := map[string]uint64{"clusters.dev-1.falco.notice.one": 1, "clusters.dev-2.alerts.two": 1, "falco.notice.hub": 1}
	testenv.Eventually(t, 10*time.Second, "each cluster's alert, and the hub's, in the hub stream", func() error {
		return subjectsAre(ctx, hubJS, dispatch.DefaultStream, want)
	})
	time.Sleep(time.Second)
	if err := subjectsAre(ctx, hubJS, dispatch.DefaultStream, want); err != nil {
		t.Errorf("hub stream a second later: %v", err)
	}
	if err := subjectsAre(ctx, js1, dispatch.DefaultLeafStream, map[string]uint64{"falco.notice.one": 1}); err != nil {
		t.Errorf("dev-1's stream: %v", err)
	}
	if err := subjectsAre(ctx, js2, dispatch.DefaultLeafStream, map[string]uint64{"alerts.two": 1}); err != nil {
		t.Errorf("dev-2's stream: %v", err)
	}
}

// startNATSConfig starts a NATS server from a configuration file's text,
// with JetStream's store where the configuration says, and returns it with
// its options, in which a random leaf node port is resolved.
func startNATSConfig(t *testing.T, config string) (*server.Server, *server.Options) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	// The default is a second; the tests wait for reconnections.
	opts.LeafNode.ReconnectInterval = 100 * time.Millisecond
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server %s not ready", opts.ServerName)
	}
	return s, opts
}

func connectNATS(t *testing.T, s *server.Server, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
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

// waitLinked waits until each server has n leaf node connections.
func waitLinked(t *testing.T, n int, servers ...*server.Server) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("%d leaf node links", n), func() error {
		for _, s := range servers {
			if got := s.NumLeafNodes(); got != n {
				return fmt.Errorf("%s has %d", s.Name(), got)
			}
		}
		return nil
	})
}

func streamState(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamState {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

// subjectsAre reports how the stream's messages per subject differ from want.
func subjectsAre(ctx context.Context, js jetstream.JetStream, name string, want map[string]uint64) error {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		return err
	}
	var diff []string
	for subject, n := range info.State.Subjects {
		if want[subject] != n {
			diff = append(diff, fmt.Sprintf("%s: %d, want %d", subject, n, want[subject]))
		}
	}
	for subject, n := range want {
		if _, ok := info.State.Subjects[subject]; !ok {
			diff = append(diff, fmt.Sprintf("%s: none, want %d", subject, n))
		}
	}
	if len(diff) > 0 {
		return errors.New(strings.Join(diff, "; "))
	}
	return nil
}

// linkProxy forwards TCP connections to a server, and can cut them all
// and refuse new ones until restored: a network link that goes down and
// comes back, while both ends keep running.
type linkProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
	})
	return p
}

func (p *linkProxy) addr() string { return p.ln.Addr().String() }

func (p *linkProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = in.Close()
			continue
		}
		out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			p.mu.Unlock()
			_ = in.Close()
			continue
		}
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

// pipe copies until either side closes, then closes both.
func (p *linkProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut closes every forwarded connection and refuses new ones.
func (p *linkProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// restore accepts connections again.
func (p *linkProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}
