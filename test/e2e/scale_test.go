//go:build linux

// The scale-out test needs the parent-death signal (Linux) so that none of
// the dozen processes it starts outlives it.

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.temporal.io/sdk/client"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// scalePlaybook contains the pod, opens a ticket and asks for an approval
// that the test answers, through serve's API, for half of the incidents.
const scalePlaybook = `name: scale-out
match: alert.rule == "scale-out shell"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: contain
    action: kubernetes.quarantine
  - id: ticket
    action: ticket.open
    onError: continue
  - id: ask
    approval:
      approvers: ["api:scale"]
      quorum: 1
      timeout: 1h
`

// scaleToken is the API token the test votes with, as api:scale.
const scaleToken = "scale-out-token-0123456789abcdef0123456789"

// scaleWebhookSecret signs the ticket events.
const scaleWebhookSecret = "scale-out-webhook-secret-0123456789"

// TestScaleOut runs soar as an operator does, every part a process of its
// own: three `soar dispatch`, three `soar worker` and one `soar serve`,
// against a Temporal server in its own process and a three-node NATS
// JetStream cluster whose streams keep three replicas. During a storm of
// alerts over 40 pods, whose incidents open one after the other all through
// it, the test kills one dispatcher, one worker and the alert stream's
// leader node with SIGKILL, and starts them again; it votes through serve's
// API on half of the incidents meanwhile. Afterwards every pod has exactly
// one incident that counted exactly the alerts published for it, every pod
// is quarantined and locked, every ticket opened once, every vote counted
// once, and no Kubernetes object was written twice (see checkWrites for
// what idempotency allows). It runs in parallel with the package's other
// long waits (see waitsInParallel).
func TestScaleOut(t *testing.T) {
	waitsInParallel(t)
	start := time.Now()
	ctx := context.Background()
	const pods, total, rate = 40, 3000, 500
	env := newScaleEnv(t, pods)
	for i := range 3 {
		env.startDispatcher(t, i)
		env.startWorker(t, i)
	}
	env.startServe(t)
	env.awaitStarted(t)
	t.Logf("set up in %s", time.Since(start).Round(time.Millisecond))

	// The first alert of pod i comes at about i*total/pods: incidents open
	// all through the storm, before, while and after the parts are down.
	want := map[string]int{}
	podOf := func(n int) string { return fmt.Sprintf("web-%d", n%(1+n*pods/total)) }
	var (
		votes   chan error
		leader  string
		stopped bool
	)
	pub := env.publisher(t)
	stormStart := time.Now()
	paced(total, rate, func(n int) {
		pod := podOf(n)
		want[pod]++
		pub.publish(t, scaleAlert(n, env.ns, pod))
		switch n {
		case total / 3:
			// A dispatcher that never took an alert would prove nothing.
			testenv.Eventually(t, 30*time.Second, "dispatcher 0 to take alerts", func() error {
				if got := env.dispatched(0); got == 0 {
					return fmt.Errorf("no alert received")
				}
				return nil
			})
			leader = env.streamLeader(t)
			env.dispatchers[0].kill(t)
			env.workers[0].kill(t)
			env.nats[leader].kill(t)
			stopped = true
			t.Logf("killed dispatcher 0, worker 0 and NATS node %s (the stream's leader) after %d alerts", leader, n+1)
			votes = env.voteOnEvenPods(ctx, pods)
		case 2 * total / 3:
			env.startNATSNode(t, leader)
			// As an operator would, the dispatcher starts again once the
			// cluster is whole: one started while the node catches up
			// may time out creating the consumer, and exit for its
			// supervisor to start it again.
			env.awaitReplicas(t, leader)
			env.startDispatcher(t, 0)
			env.startWorker(t, 0)
			stopped = false
			t.Logf("restarted them after %d alerts", n+1)
		}
	})
	if stopped || votes == nil {
		t.Fatal("the storm ended before the kill or the restart")
	}
	pub.await(t)
	t.Logf("published %d alerts over %d pods in %s", total, len(want), time.Since(stormStart).Round(time.Millisecond))
	env.awaitStarted(t)

	// What the killed dispatcher held comes back after the ack wait (30 s).
	env.awaitDrained(t, 3*time.Minute)
	t.Logf("drained %s after the start", time.Since(start).Round(time.Millisecond))
	if err := <-votes; err != nil {
		t.Fatal(err)
	}
	env.checkIncidents(t, want, pods)
	env.checkWrites(t, len(want))
	// Dispatcher 0 took alerts before it was killed.
	for i := 1; i < 3; i++ {
		if env.dispatched(i) == 0 {
			t.Errorf("dispatcher %d received no alert: the consumer was not shared", i)
		}
	}
	t.Logf("wall time %s", time.Since(start).Round(time.Second))
}

// BenchmarkScaleOut measures how fast 1 and 3 dispatchers (separate
// processes, with SOAR_SCALE_WORKERS workers, default 3, on a three-node
// NATS cluster and Temporal in its own process) drain a storm of alerts: SOAR_SCALE_ALERTS alerts
// (default 20,000) over SOAR_SCALE_PODS pods (default 50), published as fast
// as JetStream takes them. alerts/s is the number of alerts divided by the
// time from the first publish until no alert waits in the stream. Run it
// with -benchtime 1x (make scale).
func BenchmarkScaleOut(b *testing.B) {
	total, pods, workers := envInt("SOAR_SCALE_ALERTS", 20000), envInt("SOAR_SCALE_PODS", 50), envInt("SOAR_SCALE_WORKERS", 3)
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("dispatchers=%d", n), func(b *testing.B) {
			for range b.N {
				env := newScaleEnv(b, pods)
				for i := range n {
					env.startDispatcher(b, i)
				}
				for i := range workers {
					env.startWorker(b, i)
				}
				env.awaitStarted(b)
				want := map[string]int{}
				pub := env.publisher(b)
				start := time.Now()
				for i := range total {
					pod := fmt.Sprintf("web-%d", i%pods)
					want[pod]++
					pub.publish(b, scaleAlert(i, env.ns, pod))
				}
				pub.await(b)
				published := time.Since(start)
				env.awaitDrained(b, 10*time.Minute)
				took := time.Since(start)
				env.awaitCounted(b, want)
				b.Logf("%d dispatchers, %d workers: %d alerts published in %s, drained in %s: %.0f alerts/s",
					n, workers, total, published.Round(time.Millisecond), took.Round(time.Millisecond), float64(total)/took.Seconds())
				b.ReportMetric(float64(total)/took.Seconds(), "alerts/s")
				b.ReportMetric(took.Seconds(), "drain-s")
			}
		})
	}
}

// scaleAlert is a generic JSON alert for pod.
func scaleAlert(n int, ns, pod string) []byte {
	return fmt.Appendf(nil, `{"id":"scale-%d","source":"e2e","rule":"scale-out shell","severity":"critical","summary":"a shell in %s","kubernetes":{"namespace":%q,"pod":%q}}`, n, pod, ns, pod)
}

// scaleEnv is Temporal and NATS, each node a process, the API server behind
// a proxy that counts writes, a ticket receiver, and the soar processes.
type scaleEnv struct {
	dir, ns, playbooks string
	// natsNodes are the nodes' names; their ports are natsPorts and
	// clusterPorts.
	natsNodes    []string
	natsPorts    map[string]int
	clusterPorts map[string]int
	nats         map[string]*child
	natsURLs     string
	temporal     *child
	temporalAddr string
	tc           client.Client
	js           jetstream.JetStream

	writes     *kubeWrites
	kubeconfig string
	tickets    *ticketCounter
	ticketURL  string

	dispatchers, workers []*child
	serve                *child
	started              map[*child]string
}

// newScaleEnv starts Temporal and the NATS cluster and makes pods pods.
func newScaleEnv(tb testing.TB, pods int) *scaleEnv {
	tb.Helper()
	e := &scaleEnv{
		dir:          tb.TempDir(),
		ns:           fmt.Sprintf("scale-%d", time.Now().UnixNano()),
		natsNodes:    []string{"n1", "n2", "n3"},
		natsPorts:    map[string]int{},
		clusterPorts: map[string]int{},
		nats:         map[string]*child{},
		started:      map[*child]string{},
		dispatchers:  make([]*child, 3),
		workers:      make([]*child, 3),
	}
	ports := fixedPorts(tb, 7)
	var urls []string
	for i, n := range e.natsNodes {
		e.natsPorts[n], e.clusterPorts[n] = ports[2*i], ports[2*i+1]
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", e.natsPorts[n]))
	}
	e.natsURLs = strings.Join(urls, ",")
	e.temporalAddr = fmt.Sprintf("127.0.0.1:%d", ports[6])
	tb.Cleanup(func() { e.logTails(tb) })

	for _, n := range e.natsNodes {
		e.startNATSNode(tb, n)
	}
	e.temporal = startChild(tb, filepath.Join(e.dir, "temporal.log"), []string{
		scaleChildEnv + "=temporal",
		scaleTemporalDBEnv + "=" + filepath.Join(e.dir, "temporal.db"),
		scaleTemporalPortEnv + "=" + strconv.Itoa(ports[6]),
	}, testBinary(tb))

	nc, err := nats.Connect(e.natsURLs, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	// An acknowledgement lost with a killed node must not leave a publish
	// waiting for ever: it times out and is sent again (scalePublisher).
	if e.js, err = jetstream.New(nc, jetstream.WithPublishAsyncTimeout(5*time.Second)); err != nil {
		tb.Fatal(err)
	}
	testenv.Eventually(tb, time.Minute, "the NATS cluster to elect a JetStream leader", func() error {
		_, err := e.js.AccountInfo(context.Background())
		return err
	})
	// The streams exist, with three replicas, before the dispatchers
	// start: three dispatchers creating an R3 stream at once on a
	// cluster that has just elected its leader may time out and exit,
	// for a supervisor to start again.
	testenv.Eventually(tb, time.Minute, "the alert streams created", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return dispatch.New(e.js, nil, nil, nil, zerolog.Nop(), dispatch.Config{Replicas: 3}).EnsureStreams(ctx)
	})
	testenv.Eventually(tb, 2*time.Minute, "Temporal to serve", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := app.DialTemporal(ctx, app.TemporalOptions{Address: e.temporalAddr, Namespace: "default"}, zerolog.Nop())
		if err != nil {
			return err
		}
		if err := incidents.EnsureSearchAttributes(ctx, c, "default"); err != nil {
			c.Close()
			return err
		}
		e.tc = c
		return nil
	})
	tb.Cleanup(e.tc.Close)

	e.writes = &kubeWrites{}
	e.kubeconfig = e.writes.serve(tb, e.dir)
	e.tickets = &ticketCounter{opens: map[string]map[string]int{}}
	srv := httptest.NewServer(e.tickets)
	tb.Cleanup(srv.Close)
	e.ticketURL = srv.URL

	e.playbooks = filepath.Join(e.dir, "playbooks")
	if err := os.MkdirAll(e.playbooks, 0o750); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.playbooks, "scale.yaml"), []byte(scalePlaybook), 0o600); err != nil {
		tb.Fatal(err)
	}
	testenv.Namespace(tb, kubeCS, e.ns)
	for i := range pods {
		testenv.Pod(tb, kubeCS, e.ns, fmt.Sprintf("web-%d", i))
	}
	// The test's own lock list, so that what other tests left on the
	// shared one changes nothing here.
	if _, err := kubeCS.CoreV1().ConfigMaps(e.ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "soar-locks", Namespace: e.ns}}, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	return e
}

// startNATSNode starts node n, or starts it again on its ports and store.
func (e *scaleEnv) startNATSNode(tb testing.TB, n string) {
	tb.Helper()
	var routes []string
	for _, other := range e.natsNodes {
		if other != n {
			routes = append(routes, strconv.Itoa(e.clusterPorts[other]))
		}
	}
	e.nats[n] = startChild(tb, filepath.Join(e.dir, "nats-"+n+".log"), []string{
		scaleChildEnv + "=nats",
		scaleNATSNameEnv + "=" + n,
		scaleNATSPortEnv + "=" + strconv.Itoa(e.natsPorts[n]),
		scaleNATSClusterPortEnv + "=" + strconv.Itoa(e.clusterPorts[n]),
		scaleNATSRoutesEnv + "=" + strings.Join(routes, ","),
		scaleNATSStoreEnv + "=" + filepath.Join(e.dir, "nats-"+n),
	}, testBinary(tb))
}

// soarEnv is what every soar process gets: the same signing keys, the
// webhook secret and the API token.
func soarEnv() []string {
	return []string{
		app.EnvSigningKeys + "=" + testenv.SigningKey,
		app.EnvWebhookSecret + "=" + scaleWebhookSecret,
		app.EnvAPITokens + "=scale:" + scaleToken,
	}
}

func (e *scaleEnv) startDispatcher(tb testing.TB, i int) {
	tb.Helper()
	c := startChild(tb, filepath.Join(e.dir, fmt.Sprintf("dispatch-%d.log", i)), soarEnv(), soarBinary(tb),
		"dispatch", "--temporal-address", e.temporalAddr, "--nats-url", e.natsURLs, "--playbooks", e.playbooks,
		"--stream-replicas", "3", "--http-addr", "127.0.0.1:0", "--log-format", "json")
	e.dispatchers[i] = c
	e.started[c] = "dispatcher started"
}

func (e *scaleEnv) startWorker(tb testing.TB, i int) {
	tb.Helper()
	c := startChild(tb, filepath.Join(e.dir, fmt.Sprintf("worker-%d.log", i)), soarEnv(), soarBinary(tb),
		"worker", "--temporal-address", e.temporalAddr, "--kubeconfig", e.kubeconfig,
		"--evidence-dir", filepath.Join(e.dir, "evidence"), "--lock-list", e.ns+"/soar-locks",
		"--ticket-provider", "webhook", "--ticket-webhook-url", e.ticketURL,
		"--http-addr", "", "--log-format", "json")
	e.workers[i] = c
	e.started[c] = "worker started"
}

func (e *scaleEnv) startServe(tb testing.TB) {
	tb.Helper()
	e.serve = startChild(tb, filepath.Join(e.dir, "serve.log"), soarEnv(), soarBinary(tb),
		"serve", "--temporal-address", e.temporalAddr, "--http-addr", "127.0.0.1:0", "--log-format", "json")
	e.started[e.serve] = "server started"
}

// awaitStarted waits until every soar process the test did not kill
// logged that it started, and checks that none exited since.
func (e *scaleEnv) awaitStarted(tb testing.TB) {
	tb.Helper()
	for c, msg := range e.started {
		if c.killed {
			continue
		}
		testenv.Eventually(tb, time.Minute, c.log+" to say "+msg, func() error {
			if c.exited() {
				return fmt.Errorf("it exited: %s", tail(c.log, 5))
			}
			b, _ := os.ReadFile(c.log)
			if !bytes.Contains(b, []byte(msg)) {
				return fmt.Errorf("not yet")
			}
			return nil
		})
	}
}

// dispatched is what dispatcher i says it received, from its metrics; 0
// when it cannot be reached.
func (e *scaleEnv) dispatched(i int) float64 {
	resp, err := http.Get("http://" + e.dispatchers[i].httpAddr("dispatcher started") + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "soar_alerts_received_total "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// streamLeader is the NATS node that leads the alert stream.
func (e *scaleEnv) streamLeader(tb testing.TB) string {
	tb.Helper()
	s, err := e.js.Stream(context.Background(), dispatch.DefaultStream)
	if err != nil {
		tb.Fatal(err)
	}
	info := s.CachedInfo()
	if info.Config.Replicas != 3 || info.Cluster == nil || e.nats[info.Cluster.Leader] == nil {
		tb.Fatalf("stream %s: %d replicas, cluster %+v; want three replicas led by one of %v", dispatch.DefaultStream, info.Config.Replicas, info.Cluster, e.natsNodes)
	}
	return info.Cluster.Leader
}

// awaitReplicas waits until node is a current replica of the alert stream
// and of its consumer again.
func (e *scaleEnv) awaitReplicas(tb testing.TB, node string) {
	tb.Helper()
	current := func(c *jetstream.ClusterInfo) error {
		if c == nil {
			return fmt.Errorf("no cluster information")
		}
		if c.Leader == "" {
			return fmt.Errorf("no leader")
		}
		if c.Leader == node {
			return nil
		}
		for _, r := range c.Replicas {
			if r.Name == node {
				if !r.Current || r.Offline {
					return fmt.Errorf("%s: current %v, offline %v, lag %d", node, r.Current, r.Offline, r.Lag)
				}
				return nil
			}
		}
		return fmt.Errorf("%s is no replica: %+v", node, c.Replicas)
	}
	testenv.Eventually(tb, 2*time.Minute, "NATS node "+node+" back in the stream and the consumer", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := e.js.Stream(ctx, dispatch.DefaultStream)
		if err != nil {
			return err
		}
		if err := current(s.CachedInfo().Cluster); err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		c, err := s.Consumer(ctx, dispatch.DefaultConsumer)
		if err != nil {
			return err
		}
		if err := current(c.CachedInfo().Cluster); err != nil {
			return fmt.Errorf("consumer: %w", err)
		}
		return nil
	})
}

// awaitDrained waits until no alert waits in the stream.
func (e *scaleEnv) awaitDrained(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	last := time.Now()
	testenv.Eventually(tb, timeout, "the alert backlog drained", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b, err := dispatch.ReadBacklog(ctx, e.js, dispatch.DefaultStream, dispatch.DefaultConsumer)
		if err != nil {
			return err
		}
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			tb.Logf("%d alerts waiting, %d in flight, %d redelivering", b.Waiting, b.InFlight, b.Redelivering)
		}
		if b.Waiting > 0 {
			return fmt.Errorf("%d waiting, %d in flight, %d redelivering", b.Waiting, b.InFlight, b.Redelivering)
		}
		return nil
	})
}

func (e *scaleEnv) incidentID(pod string) string {
	return playbooks.IncidentID("scale-out", e.ns+"/"+pod)
}

// awaitCounted waits until the incident of every pod counted exactly the
// alerts published for it.
func (e *scaleEnv) awaitCounted(tb testing.TB, want map[string]int) {
	tb.Helper()
	ctx := context.Background()
	testenv.Eventually(tb, 2*time.Minute, "every incident counted its alerts", func() error {
		for pod, n := range want {
			st, err := incidentState(ctx, e.tc, e.incidentID(pod))
			if err != nil {
				return err
			}
			if st.AlertCount != n {
				return fmt.Errorf("%s: counted %d of %d", pod, st.AlertCount, n)
			}
		}
		return nil
	})
}

// voteOnEvenPods approves, through serve's API, the approval of the
// incidents of web-0, web-2, … as each opens, and sends nil or the first
// error when every vote is in.
func (e *scaleEnv) voteOnEvenPods(ctx context.Context, pods int) chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		for i := 0; i < pods; i += 2 {
			if err := e.vote(ctx, e.incidentID(fmt.Sprintf("web-%d", i))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

// vote approves the incident's approval once it is open. A vote whose
// answer was lost may have counted: the incident's state says, and no
// second vote is sent then.
func (e *scaleEnv) vote(ctx context.Context, id string) error {
	var last string
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("vote on %s: %w (last: %s)", id, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
		st, err := incidentState(ctx, e.tc, id)
		if err != nil {
			last = err.Error()
			continue
		}
		i := slices.IndexFunc(st.Approvals, func(a *workflows.ApprovalState) bool { return a.Step == "ask" })
		if i < 0 {
			last = "no approval yet"
			continue
		}
		if len(st.Approvals[i].Votes) > 0 {
			return nil
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.serve.httpAddr("server started")+"/api/v1/incidents/"+id+"/votes", strings.NewReader(`{"approve": true}`))
		req.Header.Set("Authorization", "Bearer "+scaleToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		// 429: the token's rate; 409 before the approval opened; 502
		// while Temporal is busy. The state decides on the next round.
		last = fmt.Sprintf("%s: %s", resp.Status, b)
	}
}

// checkIncidents checks, for every pod, its one incident, its alert count,
// its quarantine and lock, its one ticket and its vote.
func (e *scaleEnv) checkIncidents(tb testing.TB, want map[string]int, pods int) {
	tb.Helper()
	ctx := context.Background()
	if len(want) != pods {
		tb.Fatalf("alerts for %d pods, want %d", len(want), pods)
	}
	last := time.Now()
	testenv.Eventually(tb, 2*time.Minute, "every incident complete", func() (err error) {
		defer func() {
			if err != nil && time.Since(last) > 10*time.Second {
				last = time.Now()
				tb.Logf("waiting: %v", err)
			}
		}()
		for pod, n := range want {
			id := e.incidentID(pod)
			st, err := incidentState(ctx, e.tc, id)
			if err != nil {
				return err
			}
			if st.AlertCount != n {
				return fmt.Errorf("%s: counted %d of %d", pod, st.AlertCount, n)
			}
			if err := quarantined(ctx, e.ns, pod); err != nil {
				return err
			}
			p, err := kubeCS.CoreV1().Pods(e.ns).Get(ctx, pod, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Labels[kube.LockedLabel] != kube.QuarantineValue {
				return fmt.Errorf("%s: not labelled %s", pod, kube.LockedLabel)
			}
			if st.Ticket == nil {
				return fmt.Errorf("%s: no ticket yet", pod)
			}
			i := slices.IndexFunc(st.Approvals, func(a *workflows.ApprovalState) bool { return a.Step == "ask" })
			if i < 0 {
				return fmt.Errorf("%s: no approval yet (status %s)", pod, st.Status)
			}
			a := st.Approvals[i]
			var podIndex int
			_, _ = fmt.Sscanf(pod, "web-%d", &podIndex)
			if voted := podIndex%2 == 0; voted {
				if a.Outcome != "approved" || len(a.Votes) != 1 || a.Votes[0].User != "api:scale" {
					return fmt.Errorf("%s: approval %q with votes %+v, want approved by one vote of api:scale", pod, a.Outcome, a.Votes)
				}
			} else if a.Outcome != "" || len(a.Votes) != 0 {
				return fmt.Errorf("%s: approval %q with votes %+v, want open and unanswered", pod, a.Outcome, a.Votes)
			}
		}
		return nil
	})
	for pod := range want {
		id := e.incidentID(pod)
		if r, err := runs(ctx, e.tc, id); err != nil || r != 1 {
			tb.Errorf("%s: %d runs (%v), want one incident", pod, r, err)
		}
		if keys := e.tickets.opened(id); len(keys) != 1 {
			tb.Errorf("%s: ticket opened under %d idempotency keys %v, want 1", pod, len(keys), keys)
		}
	}
	// Only the incidents of this test ran.
	if n := e.tickets.incidents(); n != pods {
		tb.Errorf("tickets for %d incidents, want %d", n, pods)
	}
	cm, err := kubeCS.CoreV1().ConfigMaps(e.ns).Get(ctx, "soar-locks", metav1.GetOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	for pod := range want {
		if v := cm.Data["pod_"+e.ns+"_"+pod]; v != kube.IncidentHash(e.incidentID(pod)) {
			tb.Errorf("lock list: %s holds %q, want the incident's hash", pod, v)
		}
	}
	tb.Logf("tickets: %d open requests for %d incidents", e.tickets.requests(), pods)
}

// checkWrites checks every write soar's workers sent the API server, as
// the proxy counted them. What idempotency allows:
//
//   - The incident's NetworkPolicy is created (201) exactly once per
//     incident: a repeated quarantine (an attempt retried after a worker
//     died, a workflow task run again) finds it, answered 409
//     AlreadyExists. No policy is updated or deleted.
//   - The pod's quarantine patch (labels and incident annotation) and its
//     lock patch (soar.dev/locked) succeed at least once per pod and are
//     repeated only with the same body: a JSON merge patch that sets the
//     same keys to the same values changes nothing the second time.
//     Quarantine reads the pod first and patches only what is missing, so
//     a repeat needs an attempt that died between its patch and its
//     result.
//   - The lock list is updated successfully at most once per pod (the
//     workers coalesce updates, and skip one that changes nothing);
//     updates refused with 409 Conflict, another worker having written
//     first, are retried.
//   - Server-side dry runs (the lock's proof) store nothing and are not
//     counted. Nothing else is written.
func (e *scaleEnv) checkWrites(tb testing.TB, pods int) {
	tb.Helper()
	created, conflicts, lockUpdates, lockConflicts, repeats := 0, 0, 0, 0, 0
	patches := map[string][]string{} // pod/kind → bodies of successful patches
	for _, w := range e.writes.all() {
		if w.dryRun {
			continue
		}
		p := strings.Split(strings.Trim(w.path, "/"), "/")
		switch {
		case w.verb == http.MethodPost && len(p) == 6 && p[5] == "networkpolicies":
			switch w.status {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
				conflicts++
			default:
				tb.Errorf("%s %s answered %d", w.verb, w.path, w.status)
			}
		case w.verb == http.MethodPatch && len(p) == 6 && p[4] == "pods":
			if w.status != http.StatusOK {
				tb.Errorf("%s %s answered %d", w.verb, w.path, w.status)
				continue
			}
			kind := "quarantine"
			if strings.Contains(w.body, kube.LockedLabel) {
				kind = "lock"
			}
			key := p[5] + " " + kind
			if prev := patches[key]; len(prev) > 0 {
				repeats++
				if !slices.Contains(prev, w.body) {
					tb.Errorf("pod %s: %s patch repeated with another body:\n%s\nafter\n%v", p[5], kind, w.body, prev)
				}
			}
			patches[key] = append(patches[key], w.body)
		case w.verb == http.MethodPut && len(p) == 6 && p[4] == "configmaps" && p[5] == "soar-locks":
			switch w.status {
			case http.StatusOK:
				lockUpdates++
			case http.StatusConflict:
				lockConflicts++
			default:
				tb.Errorf("%s %s answered %d", w.verb, w.path, w.status)
			}
		default:
			tb.Errorf("unexpected write %s %s (%d)", w.verb, w.path, w.status)
		}
	}
	if created != pods {
		tb.Errorf("%d NetworkPolicies created, want one per incident (%d)", created, pods)
	}
	for i := range pods {
		for _, kind := range []string{"quarantine", "lock"} {
			if len(patches[fmt.Sprintf("web-%d %s", i, kind)]) == 0 {
				tb.Errorf("web-%d: no %s patch", i, kind)
			}
		}
	}
	if lockUpdates > pods {
		tb.Errorf("the lock list was updated %d times for %d pods", lockUpdates, pods)
	}
	tb.Logf("kube writes: %d policies created, %d creates answered AlreadyExists; %d pod patches, %d of them repeats of the same patch; lock list updated %d times, %d conflicts",
		created, conflicts, len(patches)+repeats, repeats, lockUpdates, lockConflicts)
}

// kubeWrites is a proxy in front of the API server that records every
// request other than a read.
type kubeWrites struct {
	mu  sync.Mutex
	log []kubeWrite
}

type kubeWrite struct {
	verb, path, body string
	status           int
	dryRun           bool
}

func (k *kubeWrites) all() []kubeWrite {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.log)
}

// serve starts the proxy and returns the path of a kubeconfig for it: plain
// HTTP on 127.0.0.1, the proxy authenticating as the tests' administrator.
func (k *kubeWrites) serve(tb testing.TB, dir string) string {
	tb.Helper()
	target, err := url.Parse(kubeConfig.Host)
	if err != nil {
		tb.Fatal(err)
	}
	rt, err := rest.TransportFor(kubeConfig)
	if err != nil {
		tb.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:     rt,
		FlushInterval: -1,
		// A killed worker's requests end with "context canceled"; any
		// other failure of a write shows as its 502.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			rp.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		// A write reaches the API server whole, whatever happens to its
		// sender meanwhile, as it would over a real network: the proxy
		// records what the API server answered, not a cancellation.
		r = r.WithContext(context.WithoutCancel(r.Context()))
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(rec, r)
		k.mu.Lock()
		k.log = append(k.log, kubeWrite{verb: r.Method, path: r.URL.Path, body: string(body), status: rec.status, dryRun: r.URL.Query().Has("dryRun")})
		k.mu.Unlock()
	}))
	tb.Cleanup(srv.Close)
	path := filepath.Join(dir, "kubeconfig-proxy")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: proxy, cluster: {server: %q}}]
users: [{name: proxy, user: {}}]
contexts: [{name: proxy, context: {cluster: proxy, user: proxy}}]
current-context: proxy
`, srv.URL)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// ticketCounter is a webhook ticket receiver that counts "open" events by
// incident and idempotency key.
type ticketCounter struct {
	mu    sync.Mutex
	opens map[string]map[string]int // incident → idempotency key → requests
}

func (c *ticketCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		Event      string `json:"event"`
		IncidentID string `json:"incidentID"`
	}
	_ = json.NewDecoder(r.Body).Decode(&ev)
	if ev.Event == "open" {
		// The event names the incident's occurrence: <incident>@<opened at>.
		id, _, _ := strings.Cut(ev.IncidentID, "@")
		c.mu.Lock()
		if c.opens[id] == nil {
			c.opens[id] = map[string]int{}
		}
		c.opens[id][r.Header.Get("Idempotency-Key")]++
		c.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"id": "T-1", "key": "SEC-1", "url": "https://tickets.example/SEC-1"}`)
}

// opened returns the idempotency keys under which the incident's ticket
// was opened.
func (c *ticketCounter) opened(incident string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keys []string
	for k := range c.opens[incident] {
		keys = append(keys, k)
	}
	return keys
}

func (c *ticketCounter) incidents() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.opens)
}

func (c *ticketCounter) requests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, keys := range c.opens {
		for _, r := range keys {
			n += r
		}
	}
	return n
}

// scalePublisher publishes alerts asynchronously, each with a message ID,
// and publishes again those whose acknowledgement failed or never came
// (a killed node): the stream's duplicate window keeps one copy of each.
type scalePublisher struct {
	js      jetstream.JetStream
	n       int
	pending []pendingPublish
}

type pendingPublish struct {
	id   string
	data []byte
	ack  jetstream.PubAckFuture
}

const scaleSubject = "alerts.e2e.scale"

func (e *scaleEnv) publisher(tb testing.TB) *scalePublisher {
	tb.Helper()
	// The stream must exist before the first publish; dispatchers create
	// it, with three replicas.
	testenv.Eventually(tb, time.Minute, "the alert stream", func() error {
		_, err := e.js.Stream(context.Background(), dispatch.DefaultStream)
		return err
	})
	return &scalePublisher{js: e.js}
}

func (p *scalePublisher) publish(tb testing.TB, data []byte) {
	tb.Helper()
	p.n++
	id := fmt.Sprintf("scale-%d", p.n)
	ack, err := p.js.PublishAsync(scaleSubject, data, jetstream.WithMsgID(id))
	if err != nil {
		ack = nil // published again by await
	}
	p.pending = append(p.pending, pendingPublish{id: id, data: data, ack: ack})
	// JetStream's client holds at most 4,000 unacknowledged publishes.
	if len(p.pending) >= 2000 {
		p.await(tb)
	}
}

// await waits for every acknowledgement and publishes again, in rounds,
// what was not acknowledged: while a killed leader's stream elects another,
// publishes fail at once with no responders.
func (p *scalePublisher) await(tb testing.TB) {
	tb.Helper()
	again := 0
	deadline := time.Now().Add(2 * time.Minute)
	var lastErr error
	for len(p.pending) > 0 {
		var failed []pendingPublish
		for _, m := range p.pending {
			if m.ack != nil {
				select {
				case <-m.ack.Ok():
					continue
				case err := <-m.ack.Err():
					lastErr = err
				case <-time.After(time.Minute):
					lastErr = fmt.Errorf("no acknowledgement within a minute")
				}
			}
			failed = append(failed, m)
		}
		if len(failed) > 0 && time.Now().After(deadline) {
			tb.Fatalf("%d alerts not acknowledged within 2 minutes: %v", len(failed), lastErr)
		}
		if len(failed) > 0 {
			again += len(failed)
			time.Sleep(100 * time.Millisecond)
		}
		for i, m := range failed {
			failed[i].ack, _ = p.js.PublishAsync(scaleSubject, m.data, jetstream.WithMsgID(m.id))
		}
		p.pending = failed
	}
	if again > 0 {
		tb.Logf("published alerts again %d times after a failed acknowledgement", again)
	}
}

// child is a process the scale-out test started: Temporal, a NATS node or
// a soar command.
type child struct {
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	// killed is set once the test killed it.
	killed bool
}

// forkThread starts children from one OS thread that lives as long as the
// test binary: the parent-death signal fires when the thread that forked a
// child ends, not the process (see internal/devstack's shim).
var forkThread = sync.OnceValue(func() chan func() {
	calls := make(chan func())
	go func() {
		runtime.LockOSThread()
		for f := range calls {
			f()
		}
	}()
	return calls
})

// startChild starts bin with args and the test's environment plus env,
// its output appended to logPath. It is killed with SIGKILL when the test ends,
// and by the kernel when the test binary dies.
func startChild(tb testing.TB, logPath string, env []string, bin string, args ...string) *child {
	tb.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error)
	forkThread() <- func() { started <- cmd.Start() }
	if err := <-started; err != nil {
		_ = f.Close()
		tb.Fatal(err)
	}
	c := &child{log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = f.Close(); close(c.done) }()
	tb.Cleanup(func() { c.kill(tb) })
	return c
}

// kill sends SIGKILL and waits until the process is gone.
func (c *child) kill(tb testing.TB) {
	tb.Helper()
	c.killed = true
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		tb.Errorf("%s did not die after SIGKILL", c.log)
	}
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// logTails logs the end of every process's log when the test failed.
func (e *scaleEnv) logTails(tb testing.TB) {
	if !tb.Failed() {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(e.dir, "*.log"))
	for _, l := range logs {
		tb.Logf("--- %s:\n%s", filepath.Base(l), tail(l, 15))
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// testBinary is this test binary, which runs as Temporal or a NATS node
// with scaleChildEnv set (scale_child_test.go).
func testBinary(tb testing.TB) string {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	return self
}

// fixedPorts returns n distinct ports free on 127.0.0.1 below the
// kernel's range of ephemeral ports: a node killed and started again binds
// its port again, which no outgoing connection nor any server asking for
// port 0 (Temporal's own services among them) can have taken meanwhile.
func fixedPorts(tb testing.TB, n int) []int {
	tb.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 12000 {
				low = v
			}
		}
	}
	var (
		ports     []int
		listeners []net.Listener
	)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			tb.Fatal("no free ports below the ephemeral range")
		}
		port := low - 10000 + rand.IntN(10000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		listeners = append(listeners, l)
		ports = append(ports, port)
	}
	return ports
}

// httpAddr is the address the soar process last logged with msg, as
// "http": it listens on a port of the kernel's choice.
func (c *child) httpAddr(msg string) string {
	b, _ := os.ReadFile(c.log)
	addr := ""
	for line := range strings.Lines(string(b)) {
		var l struct {
			HTTP    string `json:"http"`
			Message string `json:"message"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Message == msg && l.HTTP != "" {
			addr = l.HTTP
		}
	}
	return addr
}
