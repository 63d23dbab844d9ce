package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/testenv"
)

// namespaceMeaning are the ways deploy/'s files name soar's namespace,
// which a chart installed elsewhere must not keep (comments aside).
var namespaceMeaning = []*regexp.Regexp{
	regexp.MustCompile(`(?m)^\s*namespace: soar\s*$`),
	regexp.MustCompile(`serviceaccount:soar:`),
	regexp.MustCompile(`serviceaccounts:soar\b`),
	regexp.MustCompile(`namespace == ["']soar["']`),
	regexp.MustCompile(`metadata\.name: soar\s*$`),
	regexp.MustCompile(`["']soar/`),
	regexp.MustCompile(`\bsoar/soar-`),
	regexp.MustCompile(`nats\.soar\.svc`),
}

// notRefused says what a request got instead of the refusal wanted.
func notRefused(err error, want string) error {
	if err == nil {
		return errors.New("allowed; want " + want)
	}
	return fmt.Errorf("want %s, got: %w", want, err)
}

// uncommented drops YAML comment lines.
func uncommented(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestChartRendersForItsNamespace: in namespace "security", with NATS in
// "nats", nothing the chart renders names the namespace soar: every
// namespaced object, RBAC subject and admission parameter is in
// "security", soar-worker is recognised as
// system:serviceaccount:security:soar-worker, the protected namespaces
// include "security", and the worker's lock list is there. In "soar" the
// cluster-wide parts are deploy/'s documents, byte for byte.
func TestChartRendersForItsNamespace(t *testing.T) {
	const ns = "security"
	values := representativeValues + "networkPolicy: {natsNamespace: nats}\n"
	objs, out := renderChartIn(t, ns, values)
	for _, re := range namespaceMeaning {
		for _, line := range re.FindAllString(uncommented(out), -1) {
			t.Errorf("the chart in %s still names soar's namespace: %q", ns, strings.TrimSpace(line))
		}
	}
	for kind, byName := range objs {
		for name, u := range byName {
			if got := u.GetNamespace(); got != "" && got != ns {
				t.Errorf("%s %s is in namespace %s", kind, name, got)
			}
			if kind == "RoleBinding" || kind == "ClusterRoleBinding" {
				subjects, _, _ := unstructured.NestedSlice(u.Object, "subjects")
				for _, s := range subjects {
					s := s.(map[string]any)
					if s["kind"] == "ServiceAccount" && s["namespace"] != ns {
						t.Errorf("%s %s binds %v", kind, name, s)
					}
				}
			}
			if kind == "ValidatingAdmissionPolicyBinding" {
				if got, found, _ := unstructured.NestedString(u.Object, "spec", "paramRef", "namespace"); found && got != ns {
					t.Errorf("%s %s reads its parameters from namespace %s", kind, name, got)
				}
			}
		}
	}
	bounds := objs["ValidatingAdmissionPolicy"]["soar-worker-bounds"]
	if bounds == nil {
		t.Fatal("no soar-worker-bounds")
	}
	vars, _, _ := unstructured.NestedSlice(bounds.Object, "spec", "variables")
	protected := ""
	for _, v := range vars {
		if v := v.(map[string]any); v["name"] == "protectedNames" {
			protected = v["expression"].(string)
		}
	}
	if !strings.Contains(protected, `"security"`) || !strings.Contains(protected, `"soar"`) {
		t.Errorf("soar-worker-bounds protects %s; want security among them, and soar still", protected)
	}
	worker := deploymentOf(t, objs["Deployment"]["soar-worker"])
	lockList := ""
	for _, e := range worker.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "SOAR_LOCK_LIST" {
			lockList = e.Value
		}
	}
	if lockList != ns+"/soar-locks" {
		t.Errorf("the worker's SOAR_LOCK_LIST = %q, want %s/soar-locks", lockList, ns)
	}
	// Another cluster's lock list is where soar is installed there
	// (clusterWorkers[].lockList), not the hub's.
	for _, e := range deploymentOf(t, objs["Deployment"]["soar-worker-prod-eu"]).Spec.Template.Spec.Containers[0].Env {
		if e.Name == "SOAR_LOCK_LIST" {
			t.Errorf("the prod-eu worker gets the hub's %s=%s", e.Name, e.Value)
		}
	}
	nats, _, _ := unstructured.NestedSlice(objs["NetworkPolicy"]["soar-dispatch-allow-nats"].Object, "spec", "egress")
	if got := fmt.Sprint(nats); !strings.Contains(got, "kubernetes.io/metadata.name:nats") {
		t.Errorf("soar-dispatch-allow-nats allows %s, want NATS in namespace nats", got)
	}
	// Without a NATS URL, dispatch dials NATS where the NetworkPolicy lets it.
	defaults, _ := renderChartIn(t, ns, "")
	if got := defaults["ConfigMap"]["soar-config"].Object["data"].(map[string]any)["SOAR_NATS_URL"]; got != "nats://nats.security.svc:4222" {
		t.Errorf("the default SOAR_NATS_URL in %s = %v", ns, got)
	}

	// In soar, the cluster-wide parts are deploy/'s files unchanged.
	_, out = renderChartIn(t, "soar", "referenceMonitor: {checkpoints: true}\ndispatch: {podIndex: true}\n")
	for _, f := range []string{"rbac.yaml", "admission.yaml", "quarantine-lock.yaml", "incident-deployment-control.yaml",
		"baseline-policies.yaml", "checkpoint-rbac.yaml", "dispatch-rbac.yaml", "networkpolicy.yaml"} {
		want, err := os.ReadFile(filepath.Join("..", "..", "deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		// helm template puts each document on its own, under a comment.
		for i, doc := range strings.Split(string(want), "\n---\n") {
			if !strings.Contains(out, strings.TrimSpace(doc)) {
				t.Errorf("the chart in soar does not render document %d of deploy/%s unchanged", i+1, f)
			}
		}
	}
}

// TestChartInstallsIntoAnyNamespace: helm install into namespace
// "security" on a kube-apiserver of its own, reference monitor and all;
// its notes name what is missing there and how to check the lock.
// soar-worker, as system:serviceaccount:security:soar-worker, quarantines
// a pod and proves the lock; someone with edit rights cannot undo it; the
// lock list in "security" is guarded, also against a soar-worker of
// namespace soar, which is nobody special there; the worker may not write
// in its own namespace beyond its lists; soar monitor check's checks hold;
// and a second release in another namespace is refused.
func TestChartInstallsIntoAnyNamespace(t *testing.T) {
	ctx := context.Background()
	const ns, inc = "security", "soar-elsewhere-incident"
	k, cs := testenv.Kube(t)
	kubeconfig, err := k.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	kcFile := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcFile, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	values := valuesFile(t, "referenceMonitor: {enabled: true, checkpoints: true}\ndispatch: {podIndex: true}\n")
	notes := helm(t, "install", "soar", chartDir, "--kubeconfig", kcFile, "--namespace", ns, "--create-namespace", "--values", values)
	// Its notes say what is missing and how to check the lock, for this
	// namespace; once the Secret is there, they no longer ask for it.
	createKeys := "kubectl -n " + ns + " create secret generic soar-signing-keys"
	for _, want := range []string{"installed in namespace " + ns, createKeys, "soar monitor check --lock-list " + ns + "/soar-locks"} {
		if !strings.Contains(notes, want) {
			t.Errorf("helm install's notes lack %q:\n%s", want, notes)
		}
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "soar-signing-keys"},
		StringData: map[string]string{"keys": testenv.SigningKey}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if notes := helm(t, "upgrade", "soar", chartDir, "--kubeconfig", kcFile, "--namespace", ns, "--values", values); strings.Contains(notes, createKeys) {
		t.Errorf("with the Secret there, helm upgrade's notes still ask for it:\n%s", notes)
	}

	impersonate := func(user string, groups ...string) *rest.Config {
		cfg := rest.CopyConfig(k.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append([]string{"system:authenticated"}, groups...)}
		return cfg
	}
	workerCfg := impersonate("system:serviceaccount:"+ns+":soar-worker", "system:serviceaccounts", "system:serviceaccounts:"+ns)
	kc, err := kube.NewForConfig(workerCfg)
	if err != nil {
		t.Fatal(err)
	}
	list := kube.LockList{Namespace: ns, Name: "soar-locks"}
	w := kc.WithLocks(list)

	const app = "shop"
	testenv.Namespace(t, cs, app)
	pod := testenv.Pod(t, cs, app, "web-0", func(p *corev1.Pod) { p.Labels = map[string]string{"app": "web"} })
	// The API server loads new policies within seconds; until then the
	// proof fails and says so. Quarantine is idempotent.
	testenv.Eventually(t, 60*time.Second, "the quarantine locked in "+ns, func() error {
		res, err := w.Quarantine(ctx, kube.QuarantineRequest{Namespace: app, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc})
		if err != nil {
			return err
		}
		if !res.TamperProof {
			return fmt.Errorf("not tamper-proof: %s", res.NotTamperProof)
		}
		return nil
	})

	// Someone with edit rights in the pod's namespace and in soar's.
	mallory := kubernetes.NewForConfigOrDie(impersonate("mallory"))
	for _, where := range []string{app, ns} {
		bindRulesOn(t, cs, where, "edit-mallory", editRules, rbacv1.Subject{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "mallory"})
	}
	// The other policies were created with the pods' and load as fast,
	// but not in step: each refusal is waited for, and one that never
	// comes fails the test.
	for _, tc := range tampers(pod, inc) {
		testenv.Eventually(t, 30*time.Second, tc.name+" refused with edit rights", func() error {
			if err := tc.do(ctx, mallory); !locked(err, inc) {
				return notRefused(err, "the lock's refusal naming "+inc)
			}
			return nil
		})
	}
	// A soar-worker ServiceAccount of namespace soar, with every right on
	// ConfigMaps in "security", is nobody special to these policies.
	impostor := kubernetes.NewForConfigOrDie(impersonate("system:serviceaccount:soar:soar-worker", "system:serviceaccounts", "system:serviceaccounts:soar"))
	bindRulesOn(t, cs, ns, "impostor", editRules, rbacv1.Subject{Kind: "ServiceAccount", Name: "soar-worker", Namespace: "soar"})
	for who, c := range map[string]kubernetes.Interface{"an editor": mallory, "soar's soar-worker": impostor} {
		testenv.Eventually(t, 30*time.Second, who+" refused editing "+list.String(), func() error {
			_, err := c.CoreV1().ConfigMaps(ns).Patch(ctx, list.Name, types.MergePatchType, []byte(`{"data":{"planted":"x"}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			if !refusedByList(err) || !strings.Contains(err.Error(), ns+"/"+list.Name) {
				return notRefused(err, "soar-lock-list's refusal naming it")
			}
			return nil
		})
	}
	// The worker's own namespace is protected: with the rights to, it still
	// may not create a ConfigMap there, while it may in the pod's.
	workerCS := kubernetes.NewForConfigOrDie(workerCfg)
	for _, where := range []string{ns, app} {
		bindRulesOn(t, cs, where, "worker-extra", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}}},
			rbacv1.Subject{Kind: "ServiceAccount", Name: "soar-worker", Namespace: ns})
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "planted"}}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	testenv.Eventually(t, 30*time.Second, "soar-worker refused a ConfigMap in its own namespace", func() error {
		if _, err := workerCS.CoreV1().ConfigMaps(ns).Create(ctx, cm, dry); !refusedBy(err, "namespace "+ns+" is protected") {
			return notRefused(err, "soar-worker-bounds' refusal")
		}
		return nil
	})
	if _, err := workerCS.CoreV1().ConfigMaps(app).Create(ctx, cm, dry); err != nil {
		t.Errorf("soar-worker creating a ConfigMap in %s, which is not protected: %v", app, err)
	}

	admin, err := kube.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	r := admin.CheckMonitor(ctx, list)
	for _, c := range r.Checks {
		if !c.OK {
			t.Errorf("monitor check: %s: %s", c.What, c.Detail)
		}
	}
	if !r.TamperProof || len(r.Checks) < 5 {
		t.Errorf("monitor check: tamper-proof %v (%s), %d checks", r.TamperProof, r.Why, len(r.Checks))
	}

	// One release per cluster: the cluster-wide objects are the first's.
	out, err := helmOut(t, "install", "soar", chartDir, "--kubeconfig", kcFile, "--namespace", "other", "--create-namespace", "--values", values)
	if err == nil || !strings.Contains(out, "cannot be imported into the current release") {
		t.Errorf("a second release in namespace other: %v\n%s", err, out)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, "soar-worker-actions", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	var sas []string
	crb, _ := cs.RbacV1().ClusterRoleBindings().Get(ctx, "soar-worker-actions", metav1.GetOptions{})
	for _, s := range crb.Subjects {
		sas = append(sas, s.Namespace+"/"+s.Name)
	}
	if !slices.Equal(sas, []string{ns + "/soar-worker"}) {
		t.Errorf("after the refused second release, soar-worker-actions binds %v", sas)
	}
	if _, err := cs.CoreV1().ConfigMaps("soar").Get(ctx, list.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a lock list in namespace soar: %v", err)
	}
}
