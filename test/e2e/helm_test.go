package e2e

import (
	"bytes"
	"cmp"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/soar-dev/soar/internal/testenv"
)

// chartDir is soar's Helm chart, from this package.
var chartDir = filepath.Join("..", "..", "deploy", "helm", "soar")

// helmBin is the helm that make test builds into bin/ (make helm).
func helmBin(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin", "helm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm: %v (make test builds it, or make helm)", err)
	}
	return bin
}

// helm runs helm with args and returns its output, or fails the test.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helmOut(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func helmOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	// No user's helm configuration or cache.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// representativeValues exercise every optional part of the chart: an
// external Temporal with mTLS and an API key, NATS with credentials and
// TLS, playbooks from git, metrics, KEDA, a second cluster's workers and
// container checkpoints, the dispatcher's pod index, the console.
const representativeValues = `
image: {repository: registry.example/soar, digest: "sha256:` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `"}
imagePullSecrets: [{name: regcred}]
temporal:
  address: acme.a1b2c.tmprl.cloud:7233
  namespace: acme.a1b2c
  tls: {enabled: true, secret: temporal-mtls, serverName: acme.a1b2c.tmprl.cloud}
  apiKeySecret: temporal-cloud
nats:
  url: tls://nats-0.nats:4222,tls://nats-1.nats:4222,tls://nats-2.nats:4222
  credsSecret: nats-creds
  tls: {secret: nats-tls}
playbooks:
  gitSync: {enabled: true, repo: "https://github.com/acme/playbooks", ref: v3, path: soar, secret: git-creds}
worker:
  replicas: 3
  extraArgs: [--ticket-provider=github, --github-repo=acme/sec]
dispatch:
  replicas: 3
  podIndex: true
  extraArgs: [--stream-replicas=3, --cluster-source=prod-eu=leaf-eu]
  tolerations: [{key: dedicated, value: security, effect: NoSchedule}]
clusterWorkers:
  - {name: prod-eu, kubeconfigSecret: soar-kubeconfig-prod-eu}
  - {name: prod-ap, kubeconfigSecret: soar-kubeconfig-prod-ap, lockList: security/soar-locks}
referenceMonitor: {enabled: true, checkpoints: true}
serviceMonitor: {enabled: true, labels: {release: prometheus}}
keda: {enabled: true, maxReplicas: 12}
` + consoleValues

// renderChart runs helm template with values (none: the defaults) and
// returns the objects by kind and name.
func renderChart(t *testing.T, values string) map[string]map[string]*unstructured.Unstructured {
	t.Helper()
	objs, _ := renderChartIn(t, "soar", values)
	return objs
}

// valuesFile writes values to a file for helm's --values.
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// renderChartIn is renderChart for a release in namespace ns; it returns
// helm's output too.
func renderChartIn(t *testing.T, ns, values string) (map[string]map[string]*unstructured.Unstructured, string) {
	t.Helper()
	args := []string{"template", "soar", chartDir, "--namespace", ns}
	if values != "" {
		args = append(args, "--values", valuesFile(t, values))
	}
	out := helm(t, args...)
	objs := map[string]map[string]*unstructured.Unstructured{}
	for _, doc := range strings.Split(out, "\n---") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("helm template printed invalid YAML: %v\n%s", err, doc)
		}
		if m == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if objs[u.GetKind()] == nil {
			objs[u.GetKind()] = map[string]*unstructured.Unstructured{}
		}
		if _, dup := objs[u.GetKind()][u.GetName()]; dup {
			t.Errorf("two %s named %s", u.GetKind(), u.GetName())
		}
		objs[u.GetKind()][u.GetName()] = u
	}
	return objs, out
}

func deploymentOf(t *testing.T, u *unstructured.Unstructured) appsv1.Deployment {
	t.Helper()
	if u == nil {
		t.Fatal("no such Deployment")
	}
	var d appsv1.Deployment
	b, err := u.MarshalJSON()
	if err == nil {
		err = yaml.UnmarshalStrict(b, &d)
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestChartLintsAndRefusesMistakes(t *testing.T) {
	if out := helm(t, "lint", chartDir, "--namespace", "soar", "--strict"); !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
		t.Errorf("helm lint:\n%s", out)
	}
	helm(t, "lint", chartDir, "--namespace", "soar", "--strict", "--values", valuesFile(t, representativeValues))

	for _, tt := range []struct {
		args []string
		want string
	}{
		// A typo fails at install instead of being ignored.
		{[]string{"--set", "worker.replicass=3"}, "additional properties 'replicass' not allowed"},
		{[]string{"--set", "nats.url=nats://user:secret@nats:4222"}, "/nats/url"},
		{[]string{"--set", "clusterWorkers[0].name=prod.eu", "--set", "clusterWorkers[0].kubeconfigSecret=k"}, "/clusterWorkers/0/name"},
		{[]string{"--set", "playbooks.gitSync.enabled=true"}, "playbooks.gitSync.repo is required"},
		{[]string{"--set", "networkPolicy.natsNamespace=NATS"}, "/networkPolicy/natsNamespace"},
	} {
		args := append([]string{"template", "soar", chartDir, "--namespace", "soar"}, tt.args...)
		out, err := helmOut(t, args...)
		if err == nil || !strings.Contains(out, tt.want) {
			t.Errorf("helm template %v: %v, want an error with %q:\n%s", tt.args, err, tt.want, out)
		}
	}
}

// TestChartMatchesDeploy: the chart and deploy/ are one source of truth.
// Its cluster-wide parts are deploy/'s files, copied by make chart; with
// its default values its Deployments, ServiceAccounts and Service are
// deploy/'s but for the image tag and the labels Helm adds.
func TestChartMatchesDeploy(t *testing.T) {
	copies, err := filepath.Glob(filepath.Join(chartDir, "files", "*.yaml"))
	if err != nil || len(copies) == 0 {
		t.Fatalf("the chart's files: %v %v", copies, err)
	}
	copies = append(copies, filepath.Join(chartDir, "files", "playbooks", "terminal-shell-in-container.yaml"))
	for _, c := range copies {
		src := filepath.Join("..", "..", "deploy", filepath.Base(c))
		if strings.Contains(c, "playbooks") {
			src = filepath.Join("..", "..", "playbooks", "library", filepath.Base(c))
		}
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(c); !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: run make chart", c, src)
		}
	}

	objs := renderChart(t, "")
	for file, want := range deployments(t) {
		got := deploymentOf(t, objs["Deployment"][want.Name])
		for _, d := range []*appsv1.Deployment{&got, &want} {
			for i := range d.Spec.Template.Spec.Containers {
				c := &d.Spec.Template.Spec.Containers[i]
				c.Image, c.ImagePullPolicy = "", ""
			}
		}
		if !reflect.DeepEqual(got.Spec.Template.Spec, want.Spec.Template.Spec) {
			gb, _ := yaml.Marshal(got.Spec.Template.Spec)
			wb, _ := yaml.Marshal(want.Spec.Template.Spec)
			t.Errorf("the chart's %s differs from deploy/%s's pod spec:\nchart:\n%s\ndeploy:\n%s", want.Name, file, gb, wb)
		}
		if *got.Spec.Replicas != *want.Spec.Replicas || !reflect.DeepEqual(got.Spec.Selector, want.Spec.Selector) ||
			!reflect.DeepEqual(got.Spec.Template.Labels, want.Spec.Template.Labels) {
			t.Errorf("the chart's %s: replicas %d, selector %v, pod labels %v; deploy/%s: %d, %v, %v", want.Name,
				*got.Spec.Replicas, got.Spec.Selector, got.Spec.Template.Labels, file, *want.Spec.Replicas, want.Spec.Selector, want.Spec.Template.Labels)
		}
	}
	for _, doc := range manifests(t, "serviceaccounts.yaml")["ServiceAccount"] {
		var want corev1.ServiceAccount
		if err := yaml.UnmarshalStrict(doc, &want); err != nil {
			t.Fatal(err)
		}
		got := objs["ServiceAccount"][want.Name]
		if got == nil || got.Object["automountServiceAccountToken"] != *want.AutomountServiceAccountToken {
			t.Errorf("the chart's ServiceAccount %s: %v, want automountServiceAccountToken %v", want.Name, got, *want.AutomountServiceAccountToken)
		}
	}
	var svc corev1.Service
	if err := yaml.UnmarshalStrict(manifests(t, "serve.yaml")["Service"][0], &svc); err != nil {
		t.Fatal(err)
	}
	if got := objs["Service"]["soar-serve"]; got == nil || !reflect.DeepEqual(got.Object["spec"], toMap(t, svc.Spec)) {
		t.Errorf("the chart's Service soar-serve: %v, want deploy/serve.yaml's spec %+v", got, svc.Spec)
	}
}

func toMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestChartRendersEveryOption checks what the representative values turn
// on, and that each Deployment mounts only volumes it has.
func TestChartRendersEveryOption(t *testing.T) {
	objs := renderChart(t, representativeValues)
	worker := deploymentOf(t, objs["Deployment"]["soar-worker"])
	if worker.Spec.Replicas != nil {
		t.Errorf("with KEDA the worker's replicas are KEDA's, but the chart sets %d", *worker.Spec.Replicas)
	}
	if objs["ScaledObject"]["soar-worker"] == nil || len(objs["ServiceMonitor"]) != 3 || len(objs["PodDisruptionBudget"]) != 3 {
		t.Errorf("ScaledObject %v, ServiceMonitors %d, PodDisruptionBudgets %d", objs["ScaledObject"], len(objs["ServiceMonitor"]), len(objs["PodDisruptionBudget"]))
	}
	if objs["ClusterRole"]["soar-worker-checkpoint"] == nil {
		t.Error("referenceMonitor.checkpoints installs no soar-worker-checkpoint")
	}
	if objs["ConfigMap"]["soar-playbooks"] != nil {
		t.Error("with git-sync, the chart still makes the playbooks ConfigMap")
	}
	if objs["NetworkPolicy"]["soar-dispatch-allow-git"] == nil || objs["NetworkPolicy"]["soar-cluster-workers-allow-api-servers"] == nil {
		t.Error("git-sync or the cluster workers get no NetworkPolicy to reach out: deny-all would cut them off")
	}
	env := func(c corev1.Container) map[string]string {
		m := map[string]string{}
		for _, e := range c.Env {
			m[e.Name] = e.Value
		}
		return m
	}
	dispatch := deploymentOf(t, objs["Deployment"]["soar-dispatch"])
	containers := dispatch.Spec.Template.Spec.Containers
	if len(containers) != 2 || containers[1].Name != "git-sync" || !slices.Contains(containers[1].Args, "--repo=https://github.com/acme/playbooks") {
		t.Fatalf("dispatch's containers %+v, want dispatch and git-sync", containers)
	}
	de := env(containers[0])
	for name, want := range map[string]string{
		"SOAR_PLAYBOOKS": "/etc/soar/git/current/soar", "SOAR_TEMPORAL_TLS": "true", "SOAR_TEMPORAL_TLS_SERVER_NAME": "acme.a1b2c.tmprl.cloud",
		"SOAR_TEMPORAL_TLS_CERT": "/etc/soar/temporal-tls/tls.crt", "SOAR_NATS_CREDS": "/etc/soar/nats-creds/creds", "SOAR_NATS_TLS_CA": "/etc/soar/nats-tls/ca.crt",
	} {
		if de[name] != want {
			t.Errorf("dispatch's %s = %q, want %q", name, de[name], want)
		}
	}
	if !slices.Equal(containers[0].Args, []string{"dispatch", "--stream-replicas=3", "--cluster-source=prod-eu=leaf-eu"}) {
		t.Errorf("dispatch's args %v", containers[0].Args)
	}
	// dispatch.podIndex: the index's role, a token to use it, the way to
	// the API server, and the flag.
	if tok := dispatch.Spec.Template.Spec.AutomountServiceAccountToken; tok == nil || !*tok || objs["ServiceAccount"]["soar-dispatch"].Object["automountServiceAccountToken"] != true {
		t.Error("with dispatch.podIndex the dispatch pods mount no service account token")
	}
	if de["SOAR_POD_INDEX"] != "in-cluster" || objs["ClusterRole"]["soar-dispatch-pod-index"] == nil || objs["ClusterRoleBinding"]["soar-dispatch-pod-index"] == nil ||
		objs["NetworkPolicy"]["soar-dispatch-allow-kube-apiserver"] == nil {
		t.Errorf("dispatch.podIndex: SOAR_POD_INDEX %q, its role, binding or NetworkPolicy missing", de["SOAR_POD_INDEX"])
	}
	defaults := renderChart(t, "")
	if defaults["ClusterRole"]["soar-dispatch-pod-index"] != nil || defaults["NetworkPolicy"]["soar-dispatch-allow-kube-apiserver"] != nil ||
		defaults["ServiceAccount"]["soar-dispatch"].Object["automountServiceAccountToken"] != false {
		t.Error("without dispatch.podIndex the dispatcher still gets the pod index's rights")
	}
	if _, ok := env(worker.Spec.Template.Spec.Containers[0])["SOAR_NATS_CREDS"]; ok {
		t.Error("the worker, which never talks to NATS, gets NATS credentials")
	}
	cw := deploymentOf(t, objs["Deployment"]["soar-worker-prod-eu"])
	c := cw.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"worker", "--cluster", "prod-eu", "--kubeconfig", "/etc/soar/kubeconfig/kubeconfig"}) {
		t.Errorf("the prod-eu worker's args %v", c.Args)
	}
	// A cluster whose soar is in another namespace has its lock list there.
	ap := deploymentOf(t, objs["Deployment"]["soar-worker-prod-ap"]).Spec.Template.Spec.Containers[0]
	if !slices.Equal(ap.Args, []string{"worker", "--cluster", "prod-ap", "--kubeconfig", "/etc/soar/kubeconfig/kubeconfig", "--lock-list", "security/soar-locks"}) {
		t.Errorf("the prod-ap worker's args %v", ap.Args)
	}
	for _, e := range slices.Concat(c.Env, ap.Env) {
		if e.Name == "SOAR_SIGNING_KEYS_FILE" || strings.HasPrefix(e.Name, "SOAR_SLACK") {
			t.Errorf("the prod-eu worker gets %s: a cluster's worker holds no keys or Slack secrets", e.Name)
		}
	}
	// Every container runs the image of the values, and every volume it
	// mounts exists.
	for name, u := range objs["Deployment"] {
		d := deploymentOf(t, u)
		vols := map[string]bool{}
		for _, v := range d.Spec.Template.Spec.Volumes {
			vols[v.Name] = true
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Image == "" || !strings.HasPrefix(c.Image, "registry.example/soar@sha256:") && c.Name != "git-sync" {
				t.Errorf("%s/%s image %q", name, c.Name, c.Image)
			}
			for _, m := range c.VolumeMounts {
				if !vols[m.Name] {
					t.Errorf("%s/%s mounts %s, which is no volume", name, c.Name, m.Name)
				}
			}
		}
	}
}

// TestChartDryRunsOnTheAPIServer sends every object the chart renders,
// with the defaults and with the representative values, to the real
// kube-apiserver as a server-side apply dry run: the API server validates
// each in full (schemas, CEL of the admission policies, RBAC escalation)
// and stores nothing. The Prometheus Operator's and KEDA's kinds are left
// out: the test API server has not their CRDs.
func TestChartDryRunsOnTheAPIServer(t *testing.T) {
	ctx := context.Background()
	testenv.Namespace(t, kubeCS, "soar")
	dc, err := dynamic.NewForConfig(kubeConfig)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(kubeConfig)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	for name, values := range map[string]string{"defaults": "", "representative values": representativeValues} {
		n := 0
		for kind, byName := range renderChart(t, values) {
			if kind == "ServiceMonitor" || kind == "ScaledObject" {
				continue
			}
			for _, u := range byName {
				gvk := u.GroupVersionKind()
				m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				if err != nil {
					t.Fatalf("%s: %s: %v", name, gvk, err)
				}
				ri := dc.Resource(m.Resource)
				var r dynamic.ResourceInterface = ri
				if m.Scope.Name() == "namespace" {
					r = ri.Namespace(cmp.Or(u.GetNamespace(), "soar"))
				}
				if _, err := r.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "soar-chart-test", Force: true, DryRun: []string{metav1.DryRunAll}}); err != nil {
					t.Errorf("%s: %s %s refused: %v", name, kind, u.GetName(), err)
				}
				n++
			}
		}
		if n < 40 {
			t.Errorf("%s: only %d objects dry-run", name, n)
		}
		t.Logf("%s: %d objects accepted by the API server's dry run", name, n)
	}
	if _, err := kubeCS.AppsV1().Deployments("soar").Get(ctx, "soar-dispatch", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dry run stored soar-dispatch: %v", err)
	}
}
