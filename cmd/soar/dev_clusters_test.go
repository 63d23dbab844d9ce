package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
)

// TestDevClusters runs soar dev --local-kube --clusters 2: two API servers,
// each with the same namespace and pod. An alert from dev-2 quarantines
// only dev-2's pod; one from dev-1 opens another incident and quarantines
// only dev-1's; one naming a cluster soar dev does not run is dead-lettered
// as unknown_cluster, opens no incident and acts in neither.
func TestDevClusters(t *testing.T) {
	dataDir := t.TempDir()
	p := freePorts(t)
	banner, dev := startDev(t, dataDir, &p, "--clusters", "2")
	defer dev.stop()
	for _, want := range []string{
		"Cluster      dev-1  http", "(kubeconfig " + filepath.Join(dataDir, "kubeconfig-dev-1") + "; its worker polls soar-cluster-dev-1)",
		"Cluster      dev-2  http", "(kubeconfig " + filepath.Join(dataDir, "kubeconfig-dev-2") + "; its worker polls soar-cluster-dev-2)",
		"Clusters     alerts may name dev-1, dev-2; others go to the dead-letter stream (unknown_cluster)",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	ctx := context.Background()
	const ns, podName = "payments", "checkout-7d9f8b6c5-x2lqp"
	cs := map[string]kubernetes.Interface{}
	for _, c := range []string{"dev-1", "dev-2"} {
		cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig-"+c))
		if err != nil {
			t.Fatal(err)
		}
		cs[c] = kubernetes.NewForConfigOrDie(cfg)
		if _, err := cs[c].CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: ns, Labels: map[string]string{"app": "checkout"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "shell", Image: "docker.io/library/alpine:3.20"}}},
		}
		if _, err := cs[c].CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	quarantined := func(c string) bool {
		got, err := cs[c].CoreV1().Pods(ns).Get(ctx, podName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got.Labels["soar.dev/quarantine"] == "true"
	}
	temporalAddr := fmt.Sprintf("127.0.0.1:%d", p.temporal)
	send := func(cluster string) string {
		t.Helper()
		file := clusterAlert(t, cluster)
		soar(t, "alert", "send", "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", p.nats), file)
		return playbooks.ClusterIncidentID(cluster, "terminal-shell-in-container", ns+"/"+podName)
	}
	settled := func(id, want string) string {
		t.Helper()
		var show string
		testenv.Eventually(t, 30*time.Second, "incident "+id+" settled", func() error {
			var err error
			show, err = soarOut("incident", "show", "--temporal-address", temporalAddr, id)
			if err != nil || !regexp.MustCompile(want).MatchString(show) {
				return fmt.Errorf("incident show: %w\n%s", err, show)
			}
			return nil
		})
		return show
	}

	// dev-2's alert: dev-2's pod only.
	id2 := send("dev-2")
	show := settled(id2, `Outcome:\s+contained\n`)
	if !strings.Contains(show, "Cluster:  dev-2") && !regexp.MustCompile(`Cluster:\s+dev-2\n`).MatchString(show) {
		t.Errorf("incident show lacks the cluster:\n%s", show)
	}
	if !quarantined("dev-2") || quarantined("dev-1") {
		t.Fatalf("after dev-2's alert: dev-2 quarantined %v, dev-1 quarantined %v (want true, false)", quarantined("dev-2"), quarantined("dev-1"))
	}

	// An alert naming a cluster soar dev does not run: dead-lettered as
	// unknown_cluster (the default --allowed-clusters of --clusters 2),
	// no incident, nothing acted on anywhere.
	id9 := send("dev-9")
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", p.nats))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the alert for dev-9 dead-lettered", func() error {
		dl, err := js.Stream(ctx, dispatch.DefaultDeadLetterStream)
		if err != nil {
			return err
		}
		m, err := dl.GetLastMsgForSubject(ctx, dispatch.DefaultDeadLetterPrefix+".unknown_cluster")
		if err != nil {
			return err
		}
		if got := m.Header.Get(dispatch.HeaderError); !strings.Contains(got, "not among the dispatcher's allowed clusters: dev-9") {
			return fmt.Errorf("dead letter's error %q", got)
		}
		if !strings.Contains(string(m.Data), `"cluster":"dev-9"`) {
			return fmt.Errorf("dead letter's body is not the alert for dev-9: %.200s", m.Data)
		}
		return nil
	})
	if out, err := soarOut("incident", "show", "--temporal-address", temporalAddr, id9); err == nil {
		t.Errorf("the alert for dev-9 opened incident %s:\n%s", id9, out)
	}
	if quarantined("dev-1") {
		t.Error("the alert for dev-9 quarantined dev-1's pod")
	}

	// dev-1's alert: another incident, dev-1's pod.
	id1 := send("dev-1")
	settled(id1, `Outcome:\s+contained\n`)
	if !quarantined("dev-1") {
		t.Error("dev-1's pod is not quarantined after dev-1's alert")
	}
	if id1 == id2 {
		t.Errorf("dev-1's and dev-2's alerts share incident %s", id1)
	}
	// The console filters by cluster and names it in the target.
	page := consolePage(t, fmt.Sprintf("http://127.0.0.1:%d/console/?cluster=dev-2", p.http))
	if !strings.Contains(page, id2) || strings.Contains(page, id1) || strings.Contains(page, id9) || !strings.Contains(page, "dev-2: payments/checkout-7d9f8b6c5-x2lqp") {
		t.Errorf("the console's list filtered on dev-2 does not show dev-2's incident alone, with its cluster:\n%s", page)
	}
	list := soar(t, "incident", "list", "--temporal-address", temporalAddr)
	for _, want := range []string{
		"SEVERITY  CLUSTER  TARGET",
		id1 + "  terminal-shell-in-container  open    contained  notice    dev-1    payments/checkout-7d9f8b6c5-x2lqp",
		id2 + "  terminal-shell-in-container  open    contained  notice    dev-2    payments/checkout-7d9f8b6c5-x2lqp",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("incident list lacks %q:\n%s", want, list)
		}
	}
	if strings.Contains(list, "dev-9") {
		t.Errorf("incident list shows an incident for dev-9:\n%s", list)
	}

	// Someone replaces the alert stream, and with it the dispatcher's
	// consumer, with one that keeps alerts in memory only: soar dev, which
	// can dispatch nothing more, exits and says why, as soar dispatch does
	// (TestDispatchExitsWhenItsStreamIsReplaced), instead of running on.
	testenv.ReplaceStream(t, js, dispatch.DefaultStream, func(cfg *jetstream.StreamConfig) { cfg.Storage = jetstream.MemoryStorage })
	if err := dev.exited(30 * time.Second); !errors.Is(err, errDispatcherEnded) {
		t.Errorf("soar dev returned %v after its stream was replaced, want %v", err, errDispatcherEnded)
	}
}

// clusterAlert writes the shared Falco sample with the output field
// "cluster" set, as Falcosidekick's customfields do, and a UUID of its own.
func clusterAlert(t *testing.T, cluster string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "testdata", "alerts", "falco-terminal-shell.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatal(err)
	}
	ev["uuid"] = "cluster-" + cluster
	ev["output_fields"].(map[string]any)["cluster"] = cluster
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), cluster+".json")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
