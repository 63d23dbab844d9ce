package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
)

// soar runs one soar command line in process and returns what it printed.
func soar(t *testing.T, args ...string) string {
	t.Helper()
	out, err := soarOut(args...)
	if err != nil {
		t.Fatalf("soar %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// soarOut runs one soar command line in process and returns what it
// printed and its error.
func soarOut(args ...string) (string, error) {
	var out testenv.SyncBuffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// soarErr runs one soar command line in process and returns its error.
func soarErr(t *testing.T, args ...string) error {
	t.Helper()
	root := newRootCmd()
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetArgs(args)
	return root.ExecuteContext(context.Background())
}

type devPorts struct{ nats, temporal, ui, http int }

// freePorts returns four distinct free ports (devstack.FreePorts: below the
// ephemeral range, where no outgoing connection takes them before soar dev
// binds them).
func freePorts(t *testing.T) devPorts {
	t.Helper()
	ps, err := devstack.FreePorts("127.0.0.1", 4)
	if err != nil {
		t.Fatal(err)
	}
	return devPorts{ps[0], ps[1], ps[2], ps[3]}
}

// startDev runs 'soar dev --local-kube' until the returned run is stopped,
// and returns its banner once it is ready.
func startDev(t *testing.T, dataDir string, p *devPorts, extra ...string) (banner string, run *bgRun) {
	t.Helper()
	// freePorts' ports are free when it returns, not for sure when soar dev
	// binds them (the kube-apiserver it starts first takes ports too): on
	// "address already in use" soar dev is started again on other ports,
	// which p then holds.
	for attempt := 1; ; attempt++ {
		banner, run, err := tryStartDev(t, dataDir, *p, extra...)
		if err == nil {
			return banner, run
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("soar dev, attempt %d: %v; again on other ports", attempt, err)
		*p = freePorts(t)
	}
}

// tryStartDev is one attempt of startDev.
func tryStartDev(t *testing.T, dataDir string, p devPorts, extra ...string) (banner string, run *bgRun, err error) {
	t.Helper()
	var out testenv.SyncBuffer
	run = runBackground(t, &out, append([]string{"dev", "--local-kube", "--data-dir", dataDir, "--playbooks", "../../playbooks/library",
		"--nats-port", fmt.Sprint(p.nats), "--temporal-port", fmt.Sprint(p.temporal),
		"--ui-port", fmt.Sprint(p.ui), "--http-port", fmt.Sprint(p.http), "--log-format", "json", "--log-level", "warn"}, extra...)...)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "Press Ctrl-C to stop.") {
		if err, ended := run.ended(); ended {
			return "", nil, fmt.Errorf("soar dev exited: %w\n%s", err, out.String())
		}
		if time.Now().After(deadline) {
			if err := run.abandon(); err != nil {
				t.Logf("soar dev, stopped after the timeout: %v", err)
			}
			return "", nil, fmt.Errorf("soar dev not ready in 2 minutes:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return out.String(), run, nil
}

// consolePage GETs a console page and returns its HTML.
func consolePage(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, b)
	}
	return string(b)
}

// TestDevWalkthrough follows the README: start soar dev, create the pod the
// sample alert names, send the alert, see the pod quarantined and the incident
// listed; then restart with the same data directory and find the incident and
// an alert left undelivered while soar was down.
func TestDevWalkthrough(t *testing.T) {
	dataDir := t.TempDir()
	p := freePorts(t)
	banner, dev := startDev(t, dataDir, &p)
	for _, want := range []string{
		"soar dev is running; data in " + dataDir,
		fmt.Sprintf("NATS         nats://127.0.0.1:%d", p.nats),
		fmt.Sprintf("Temporal     127.0.0.1:%d", p.temporal),
		fmt.Sprintf("Temporal UI  http://127.0.0.1:%d", p.ui),
		fmt.Sprintf("HTTP         http://127.0.0.1:%d", p.http),
		fmt.Sprintf("Console      http://127.0.0.1:%d/console/  (local user %s on loopback, no password)", p.http, devUser()),
		fmt.Sprintf("API          http://127.0.0.1:%d/api/v1  (soar approve, soar incident close|release as api:%s; token in %s)", p.http, devUser(), filepath.Join(dataDir, "api-token")),
		"(kubeconfig " + filepath.Join(dataDir, "kubeconfig") + ")",
		"Playbooks    ../../playbooks/library  (",
		"Slack        not configured: vote with 'soar approve'",
		"Worker       acts as system:serviceaccount:soar:soar-worker; quarantines locked through soar/soar-locks (deploy/'s policies installed)",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "payments"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-7d9f8b6c5-x2lqp", Namespace: "payments", Labels: map[string]string{"app": "checkout"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "shell", Image: "docker.io/library/alpine:3.20"}}},
	}
	if _, err := cs.CoreV1().Pods("payments").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	id := playbooks.IncidentID("terminal-shell-in-container", "payments/checkout-7d9f8b6c5-x2lqp")
	sample := filepath.Join("..", "..", "..", "shared", "testdata", "alerts", "falco-terminal-shell.json")
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", p.nats)
	out := soar(t, "alert", "send", "--nats-url", natsURL, sample)
	if want := "published " + sample + " to falco.notice.terminal_shell_in_container (stream SOAR_ALERTS, sequence 1)\n"; out != want {
		t.Errorf("alert send printed %q, want %q", out, want)
	}
	testenv.Eventually(t, 20*time.Second, "pod quarantined", func() error {
		got, err := cs.CoreV1().Pods("payments").Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Labels["soar.dev/quarantine"] != "true" || got.Labels[kube.LockedLabel] != "true" {
			show, _ := soarOut("incident", "show", "--temporal-address", fmt.Sprintf("127.0.0.1:%d", p.temporal), id)
			return fmt.Errorf("labels %v; the incident:\n%s", got.Labels, show)
		}
		_, err = cs.NetworkingV1().NetworkPolicies("payments").Get(ctx, kube.PolicyName(id), metav1.GetOptions{})
		return err
	})
	// Once the worker has proven the lock (the API server has seen the
	// list), the kubeconfig's user, a cluster admin, is refused taking the
	// pod out of quarantine, naming the incident.
	testenv.Eventually(t, 20*time.Second, "the lock proven", func() error {
		show, err := soarOut("incident", "show", "--temporal-address", fmt.Sprintf("127.0.0.1:%d", p.temporal), id)
		if err != nil || !strings.Contains(show, `"tamperProof":true`) {
			return fmt.Errorf("incident show: %w\n%s", err, show)
		}
		return nil
	})
	_, err = cs.CoreV1().Pods("payments").Patch(ctx, pod.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"soar.dev/quarantine":null}}}`), metav1.PatchOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "soar incident show "+id) {
		t.Errorf("the admin's unlabel of the quarantined pod: %v", err)
	}
	t.Logf("the admin's unlabel is refused: %v", err)
	kubeconfigFile := filepath.Join(dataDir, "kubeconfig")
	check := soar(t, "monitor", "check", "--kubeconfig", kubeconfigFile)
	for _, want := range []string{`proof: unlabel payments/checkout-7d9f8b6c5-x2lqp\s+ok\s+refused by the lock`, `lock list soar/soar-locks\s+ok\s+1 pod locked`, `\ncontainment tamper-proof\n$`} {
		if !regexp.MustCompile(want).MatchString(check) {
			t.Errorf("monitor check lacks %q:\n%s", want, check)
		}
	}

	temporalAddr := fmt.Sprintf("127.0.0.1:%d", p.temporal)
	testenv.Eventually(t, 20*time.Second, "incident listed", func() error {
		out := soar(t, "incident", "list", "--temporal-address", temporalAddr)
		if !strings.HasPrefix(out, "INCIDENT") || !strings.Contains(out, id+"  terminal-shell-in-container  open    contained  notice    payments/checkout-7d9f8b6c5-x2lqp") {
			return fmt.Errorf("incident list printed:\n%s", out)
		}
		return nil
	})
	show := soar(t, "incident", "show", "--temporal-address", temporalAddr, id)
	for _, want := range []string{`Status:\s+open\nOutcome:\s+contained\n`, `Alerts:\s+1 \(`, `contain\s+kubernetes.quarantine\s+succeeded\s+\{.*"tamperProof":true\}\n\s+evidence\s+kubernetes.snapshot\s+succeeded\s+\{"artifacts":7,"failed":1,`} {
		if !regexp.MustCompile(want).MatchString(show) {
			t.Errorf("incident show lacks %q:\n%s", want, show)
		}
	}
	if strings.Contains(show, "not tamper-proof") {
		t.Errorf("incident show:\n%s", show)
	}
	// The console shows the same incident to the local user, its evidence
	// verified.
	page := consolePage(t, fmt.Sprintf("http://127.0.0.1:%d/console/incidents/%s", p.http, id))
	for _, want := range []string{`<span class="me" id="me" title="signed in: local">api:` + devUser() + `</span>`, `&#34;tamperProof&#34;: true`, "Every artifact matches its SHA-256.", "Step evidence (kubernetes.snapshot) succeeded"} {
		if !strings.Contains(page, want) {
			t.Errorf("the console's incident page lacks %q", want)
		}
	}
	// The evidence bundle is in the data directory, under the incident's
	// one occurrence, and verifies.
	manifests, _ := filepath.Glob(filepath.Join(dataDir, "evidence", id, "*", "evidence", "manifest.json"))
	if len(manifests) != 1 {
		t.Fatalf("evidence manifests %v, want one, under the incident's occurrence", manifests)
	}
	occurrence := filepath.Base(filepath.Dir(filepath.Dir(manifests[0])))
	st, err := evidence.Verify(ctx, evidence.NewLocal(filepath.Join(dataDir, "evidence")), id+"/"+occurrence+"/evidence/manifest.json", "")
	if err != nil {
		t.Fatalf("evidence bundle: %v", err)
	}
	if st.Incident != id || st.Target.Pod != pod.Name || len(st.Artifacts) == 0 {
		t.Errorf("evidence manifest %+v", st)
	}
	// The dispatcher indexes the local API server's pods, as soar-dispatch
	// under deploy/dispatch-rbac.yaml (dispatch/triage.go).
	testenv.Eventually(t, 30*time.Second, "the dispatcher's pod index ready", func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p.http))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var report httpserver.ReadyReport
		if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
			return err
		}
		if report.Checks["pod-index"] != "ok" {
			return fmt.Errorf("/readyz: %+v", report)
		}
		return nil
	})
	for _, url := range []string{fmt.Sprintf("http://127.0.0.1:%d/readyz", p.http), fmt.Sprintf("http://127.0.0.1:%d/", p.ui)} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", url, resp.StatusCode)
		}
	}
	dev.stop()

	// While soar is down an alert reaches the stream but no dispatcher: it
	// must be dispatched after the restart.
	publishWhileDown(t, filepath.Join(dataDir, "nats"), sample)

	_, dev = startDev(t, dataDir, &p)
	defer dev.stop()
	temporalAddr = fmt.Sprintf("127.0.0.1:%d", p.temporal) // p may have changed
	testenv.Eventually(t, 20*time.Second, "incident kept and undelivered alert dispatched after restart", func() error {
		show := soar(t, "incident", "show", "--temporal-address", temporalAddr, id)
		if !regexp.MustCompile(`Alerts:\s+2 \(`).MatchString(show) || !regexp.MustCompile(`Status:\s+open\nOutcome:\s+contained\n`).MatchString(show) {
			return fmt.Errorf("incident show printed:\n%s", show)
		}
		return nil
	})

	// The restart applied deploy/ again and kept the lock list: the pod is
	// still locked. (The restarted API server listens on another port.)
	cfg, err = clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cs = kubernetes.NewForConfigOrDie(cfg)
	_, err = cs.CoreV1().Pods("payments").Patch(ctx, pod.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"soar.dev/quarantine":null}}}`), metav1.PatchOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "soar incident show "+id) {
		t.Errorf("after the restart, the admin's unlabel of the quarantined pod: %v", err)
	}

	// The CLI reaches serve's API with the token soar dev wrote; a wrong
	// token is refused, and Temporal is never asked.
	t.Setenv("SOAR_API_TOKEN", "not-the-token-soar-dev-wrote-0123456789")
	if err := soarErr(t, "incident", "release", "--api-url", fmt.Sprintf("http://127.0.0.1:%d", p.http), id); err == nil || !strings.Contains(err.Error(), "the API refused the token") {
		t.Errorf("release with a wrong token: %v", err)
	}
	t.Setenv("SOAR_API_TOKEN", "")
	t.Setenv("SOAR_API_TOKEN_FILE", filepath.Join(dataDir, "api-token"))
	if out := soar(t, "incident", "release", "--api-url", fmt.Sprintf("http://127.0.0.1:%d", p.http), "--reason", "false positive: the walkthrough", id); out != "incident "+id+": release requested\n" {
		t.Errorf("incident release printed %q", out)
	}
	testenv.Eventually(t, 20*time.Second, "incident released and closed", func() error {
		show := soar(t, "incident", "show", "--temporal-address", temporalAddr, id)
		if !regexp.MustCompile(`Status:\s+closed\nOutcome:\s+released\n`).MatchString(show) || !strings.Contains(show, "(false positive: the walkthrough (by api:"+devUser()+"))") ||
			!regexp.MustCompile(`contain\.release\s+kubernetes.release\s+succeeded`).MatchString(show) {
			return fmt.Errorf("incident show printed:\n%s", show)
		}
		return nil
	})
	got, err := cs.CoreV1().Pods("payments").Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil || got.Labels["soar.dev/quarantine"] != "" || got.Labels[kube.LockedLabel] != "" || got.Labels["app"] != "checkout" {
		t.Errorf("released pod: labels %v, err %v", got.Labels, err)
	}
	if _, err := cs.NetworkingV1().NetworkPolicies("payments").Get(ctx, kube.PolicyName(id), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the incident's policy after release: %v", err)
	}
}

// publishWhileDown stores an alert in soar dev's JetStream directory with only
// NATS running, as a detector would while soar's dispatcher is down.
func publishWhileDown(t *testing.T, storeDir, file string) {
	t.Helper()
	s, err := devstack.StartNATS(devstack.NATSOptions{Port: -1, StoreDir: storeDir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), "falco.notice.terminal_shell_in_container", data); err != nil {
		t.Fatal(err)
	}
}
