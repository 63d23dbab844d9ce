package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// applyAdmission creates deploy/admission.yaml's policy and binding on the
// test API server, removed again when the test ends.
func applyAdmission(t *testing.T) {
	t.Helper()
	docs := manifests(t, "admission.yaml")
	if len(docs["ValidatingAdmissionPolicy"]) != 1 || len(docs["ValidatingAdmissionPolicyBinding"]) != 1 {
		t.Fatalf("deploy/admission.yaml: want one policy and one binding, got %d and %d", len(docs["ValidatingAdmissionPolicy"]), len(docs["ValidatingAdmissionPolicyBinding"]))
	}
	createPolicies(t, docs)
	// The API server checks the expressions' types in a controller that
	// this test API server does not run: a broken expression shows as a
	// denial of everything, which the allowed requests below would meet.
}

// createPolicies creates the ValidatingAdmissionPolicies and bindings of a
// manifest on the test API server, and removes them when the test ends,
// bindings first.
func createPolicies(t *testing.T, docs map[string][][]byte) {
	t.Helper()
	if err := installPolicies(docs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		api := kubeCS.AdmissionregistrationV1()
		for _, name := range objectNames(t, docs["ValidatingAdmissionPolicyBinding"]) {
			_ = api.ValidatingAdmissionPolicyBindings().Delete(ctx, name, metav1.DeleteOptions{})
		}
		for _, name := range objectNames(t, docs["ValidatingAdmissionPolicy"]) {
			_ = api.ValidatingAdmissionPolicies().Delete(ctx, name, metav1.DeleteOptions{})
		}
	})
}

// objectNames returns the metadata.name of each manifest document.
func objectNames(t *testing.T, docs [][]byte) []string {
	t.Helper()
	var names []string
	for _, doc := range docs {
		var obj metav1.PartialObjectMetadata
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		names = append(names, obj.Name)
	}
	return names
}

// workerClientset is a clientset that impersonates the deploy/
// ServiceAccount, as asWorker's kube.Client does.
func workerClientset(t *testing.T) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(kubeConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: workerSA, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:soar", "system:authenticated"}}
	return kubernetes.NewForConfigOrDie(cfg)
}

// grantWorker grants soar-worker rules in namespace ns until the test ends.
func grantWorker(t *testing.T, ns string, rules []rbacv1.PolicyRule) {
	t.Helper()
	bindRules(t, ns, "e2e-worker-extra", rules, rbacv1.Subject{Kind: "ServiceAccount", Name: "soar-worker", Namespace: "soar"})
}

// bindRules grants subject rules in namespace ns, through a Role and a
// RoleBinding named name, until the test ends.
func bindRules(t *testing.T, ns, name string, rules []rbacv1.PolicyRule, subject rbacv1.Subject) {
	t.Helper()
	bindRulesOn(t, kubeCS, ns, name, rules, subject)
}

// bindRulesOn is bindRules on the API server of cs.
func bindRulesOn(t *testing.T, cs kubernetes.Interface, ns, name string, rules []rbacv1.PolicyRule, subject rbacv1.Subject) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rules}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects: []rbacv1.Subject{subject}}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.RbacV1().RoleBindings(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = cs.RbacV1().Roles(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// refusedBy reports whether err is the admission policy's denial naming
// want.
func refusedBy(err error, want string) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "soar-worker-bounds") && strings.Contains(err.Error(), want)
}

// TestAdmissionBoundsTheWorker: deploy/admission.yaml on a real API server.
// soar-worker's own work (quarantine and release with its NetworkPolicy, a
// checkpoint through its kubelet) passes; what RBAC grants it but soar
// must never do is refused by the API server, whatever the worker asks:
// removing someone else's NetworkPolicy, writing in a namespace protected
// by name or by label, cordoning a control-plane node, reaching a kubelet's
// /run.
func TestAdmissionBoundsTheWorker(t *testing.T) {
	applyWorkerRBAC(t)
	applyAdmission(t)
	ctx := context.Background()
	wcs := workerClientset(t)
	dry := metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}

	// Someone else's allow policy in an ordinary namespace.
	const ns = "admission"
	pod := testenv.Pod(t, kubeCS, ns, "web-0")
	allow := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-all", Namespace: ns,
		Labels: map[string]string{kube.ManagedByLabel: "soar"}}, // the label alone makes no policy soar's
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}}
	if _, err := kubeCS.NetworkingV1().NetworkPolicies(ns).Create(ctx, allow, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the policy in force", func() error {
		err := wcs.NetworkingV1().NetworkPolicies(ns).Delete(ctx, "allow-all", dry)
		if !refusedBy(err, "is not one of soar's quarantine policies") {
			return fmt.Errorf("deleting someone else's policy: %w", err)
		}
		return nil
	})
	forged := allow.DeepCopy()
	forged.Name, forged.ResourceVersion = "soar-quarantine-forged", ""
	if _, err := wcs.NetworkingV1().NetworkPolicies(ns).Create(ctx, forged, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !refusedBy(err, "is not one of soar's") {
		t.Errorf("creating a policy named like soar's without its annotation: %v", err)
	}

	// soar's own work passes, as the connector does it, with the
	// quarantine lock of deploy/ in force too: the worker writes its lock
	// list in the namespace this policy otherwise protects from it.
	applyLock(t)
	w := asWorker(t).WithLocks(kube.DefaultLockList)
	const inc = "soar-admission-incident"
	// (Quarantine is idempotent: it is asked again while the API server
	// has not loaded a lock policy that applyLock just created.)
	testenv.Eventually(t, 30*time.Second, "the quarantine tamper-proof", func() error {
		q, err := w.Quarantine(ctx, kube.QuarantineRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc})
		if err != nil {
			t.Fatalf("quarantine under the policy: %v", err)
		}
		if !q.TamperProof {
			return fmt.Errorf("not tamper-proof: %s", q.NotTamperProof)
		}
		return nil
	})
	if r, err := w.Release(ctx, kube.ReleaseRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc}); err != nil || !r.PolicyDeleted {
		t.Fatalf("release under the policy: %+v, %v", r, err)
	}
	// Only those two lists: RBAC granting more in soar's namespace does
	// not let the worker write there.
	grantWorker(t, "soar", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create", "update"}}})
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "soar-locks-2", Namespace: "soar"}}
	// RBAC's authorizer learns of the new binding a moment later: until
	// then RBAC refuses, which proves nothing here.
	testenv.Eventually(t, 10*time.Second, "the grant in force", func() error {
		_, err := wcs.CoreV1().ConfigMaps("soar").Create(ctx, other, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case refusedBy(err, "namespace soar is protected"):
			return nil
		case err == nil:
			t.Fatal("the worker may create another ConfigMap in soar's namespace")
		}
		return fmt.Errorf("the worker creating another ConfigMap in soar's namespace: %w", err)
	})
	node := testenv.Kubelet(t, kubeCS, "admission-node")
	scheduled := testenv.Pod(t, kubeCS, ns, "scheduled", func(p *corev1.Pod) { p.Spec.NodeName = node.NodeName })
	scheduled.Status.Phase = corev1.PodRunning
	scheduled.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: "docker.io/library/alpine:3.20", ContainerID: "containerd://app-1",
		Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}
	if _, err := kubeCS.CoreV1().Pods(ns).UpdateStatus(ctx, scheduled, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	snap, err := w.CollectSnapshot(ctx, kube.SnapshotRequest{Namespace: ns, Pod: scheduled.Name, Checkpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range snap.Artifacts {
		if a.Error != "" {
			t.Logf("artifact %s: %s", a.Name, a.Error)
		}
	}

	// A kubelet's /run, which nodes/proxy create would otherwise allow.
	res := wcs.CoreV1().RESTClient().Post().AbsPath("/api/v1/nodes/" + node.NodeName + "/proxy/run/" + ns + "/" + scheduled.Name + "/app").
		Body([]byte("cmd=id")).Do(ctx)
	if err := res.Error(); !refusedBy(err, "only to checkpoint a container") {
		t.Errorf("a kubelet's /run through nodes/proxy: %v", err)
	}
	checkpointed := false
	for _, p := range node.Requests() {
		if strings.HasPrefix(p.Path, "/run") {
			t.Errorf("the kubelet received %s %s", p.Method, p.Path)
		}
		checkpointed = checkpointed || p.Method == "POST" && strings.HasPrefix(p.Path, "/checkpoint/"+ns+"/scheduled/")
	}
	if !checkpointed {
		t.Errorf("the checkpoint never reached the kubelet: %+v", node.Requests())
	}

	// Namespaces protected by name and by label: no write, not even to the
	// namespace object.
	testenv.Namespace(t, kubeCS, "admission-vault")
	vault, err := kubeCS.CoreV1().Namespaces().Get(ctx, "admission-vault", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vault.Labels["soar.dev/protected"] = "true"
	if _, err := kubeCS.CoreV1().Namespaces().Update(ctx, vault, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	secret := testenv.Pod(t, kubeCS, "admission-vault", "vault-0")
	system := testenv.Pod(t, kubeCS, "kube-system", "admission-coredns")
	patch := []byte(`{"metadata":{"labels":{"soar.dev/quarantine":"x"}}}`)
	for _, p := range []*corev1.Pod{secret, system} {
		_, err := wcs.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if !refusedBy(err, "namespace "+p.Namespace+" is protected") {
			t.Errorf("labelling %s/%s: %v", p.Namespace, p.Name, err)
		}
	}
	if _, err := wcs.CoreV1().Namespaces().Patch(ctx, "admission-vault", types.MergePatchType, []byte(`{"metadata":{"annotations":{"x":"y"}}}`), metav1.PatchOptions{}); !refusedBy(err, "namespace admission-vault is protected") {
		t.Errorf("annotating a protected namespace: %v", err)
	}
	if _, err := wcs.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(`{"metadata":{"annotations":{"x":"y"}}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("annotating an ordinary namespace: %v", err)
	}

	// A control-plane node is never cordoned; a worker node is.
	cp := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "admission-cp", Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}}}
	if _, err := kubeCS.CoreV1().Nodes().Create(ctx, cp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kubeCS.CoreV1().Nodes().Delete(context.Background(), cp.Name, metav1.DeleteOptions{}) })
	cordon := []byte(`{"spec":{"unschedulable":true}}`)
	if _, err := wcs.CoreV1().Nodes().Patch(ctx, cp.Name, types.MergePatchType, cordon, metav1.PatchOptions{}); !refusedBy(err, "is a control-plane node") {
		t.Errorf("cordoning a control-plane node: %v", err)
	}
	if _, err := wcs.CoreV1().Nodes().Patch(ctx, node.NodeName, types.MergePatchType, cordon, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("cordoning a worker node: %v", err)
	}
}

// TestALabelledNamespaceIsProtected: the worker itself refuses to act in a
// namespace labelled soar.dev/protected=true, before any change and without
// the admission policy: the step fails with ProtectedNamespace and the pod
// is untouched.
func TestALabelledNamespaceIsProtected(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	startSoar(t, js, tc, testPlaybook(t), dispatch.Config{})
	testenv.Pod(t, kubeCS, "labelled", "web-0")
	if _, err := kubeCS.CoreV1().Namespaces().Patch(ctx, "labelled", types.MergePatchType, []byte(`{"metadata":{"labels":{"soar.dev/protected":"true"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	send := func(id string) string {
		alert := fmt.Sprintf(`{"id":%q,"source":"e2e","rule":"e2e quarantine","kubernetes":{"namespace":"labelled","pod":"web-0"}}`, id)
		if _, err := js.Publish(ctx, "alerts.e2e", []byte(alert)); err != nil {
			t.Fatal(err)
		}
		return playbooks.IncidentID("e2e-quarantine", id)
	}
	id := send("labelled-1")
	testenv.Eventually(t, 30*time.Second, "the step refused", func() error {
		st, err := incidentState(ctx, tc, id)
		if err != nil {
			return err
		}
		if len(st.Steps) == 0 {
			return errors.New("no step yet")
		}
		if s := st.Steps[0]; s.Status != workflows.StepFailed || s.ErrorType != activities.ErrTypeProtectedNamespace || !strings.Contains(s.Error, "labelled soar.dev/protected=true") {
			t.Fatalf("step %+v", s)
		}
		return nil
	})
	pod, err := kubeCS.CoreV1().Pods("labelled").Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil || pod.Labels[kube.QuarantineLabel] != "" {
		t.Fatalf("pod labels %v, err %v", pod.Labels, err)
	}
}
