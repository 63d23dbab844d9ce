package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
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
	"github.com/soar-dev/soar/internal/testenv"
)

var (
	lockOnce sync.Once
	lockErr  error
	lockDone atomic.Bool
)

// lockInstalled says whether applyLock has installed the lock.
func lockInstalled() bool { return lockDone.Load() }

// applyLock installs deploy/quarantine-lock.yaml on the test API server
// once, the list first so that the policies never find it missing, and
// leaves it there, as a cluster keeps it. (Deleted and created again under
// the same names, the policies were seen to go unenforced for over 30 s.)
// With an empty list it changes nothing for other tests; a test that
// empties or deletes the list puts it back before it ends.
func applyLock(t testing.TB) {
	t.Helper()
	docs := manifests(t, "quarantine-lock.yaml")
	if len(docs["ValidatingAdmissionPolicy"]) != 5 || len(docs["ValidatingAdmissionPolicyBinding"]) != 5 ||
		len(docs["ConfigMap"]) != 1 || len(docs["Role"]) != 1 || len(docs["RoleBinding"]) != 1 {
		t.Fatalf("deploy/quarantine-lock.yaml: want five policies and bindings, the list, a Role and a RoleBinding; got %v", kinds(docs))
	}
	testenv.Namespace(t, kubeCS, "soar")
	lockOnce.Do(func() { lockErr = installLock(docs); lockDone.Store(true) })
	if lockErr != nil {
		t.Fatal(lockErr)
	}
}

func installLock(docs map[string][][]byte) error {
	ctx := context.Background()
	create := func(kind string, obj any, do func() error) error {
		if err := yaml.UnmarshalStrict(docs[kind][0], obj); err != nil {
			return err
		}
		if err := do(); err != nil {
			return fmt.Errorf("create the %s of deploy/quarantine-lock.yaml: %w", kind, err)
		}
		return nil
	}
	var list corev1.ConfigMap
	var role rbacv1.Role
	var rb rbacv1.RoleBinding
	if err := errors.Join(
		create("ConfigMap", &list, func() error {
			_, err := kubeCS.CoreV1().ConfigMaps("soar").Create(ctx, &list, metav1.CreateOptions{})
			return err
		}),
		create("Role", &role, func() error {
			_, err := kubeCS.RbacV1().Roles("soar").Create(ctx, &role, metav1.CreateOptions{})
			return err
		}),
		create("RoleBinding", &rb, func() error {
			_, err := kubeCS.RbacV1().RoleBindings("soar").Create(ctx, &rb, metav1.CreateOptions{})
			return err
		}),
	); err != nil {
		return err
	}
	return installPolicies(docs)
}

// createConfigMap creates a manifest's one ConfigMap, for good.
func createConfigMap(docs map[string][][]byte) error {
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(docs["ConfigMap"][0], &cm); err != nil {
		return err
	}
	_, err := kubeCS.CoreV1().ConfigMaps(cm.Namespace).Create(context.Background(), &cm, metav1.CreateOptions{})
	return err
}

// installPolicies creates a manifest's policies and bindings, for good.
func installPolicies(docs map[string][][]byte) error {
	ctx := context.Background()
	api := kubeCS.AdmissionregistrationV1()
	for _, doc := range docs["ValidatingAdmissionPolicy"] {
		var pol admissionv1.ValidatingAdmissionPolicy
		if err := yaml.UnmarshalStrict(doc, &pol); err != nil {
			return err
		}
		if _, err := api.ValidatingAdmissionPolicies().Create(ctx, &pol, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("the API server refuses policy %s: %w", pol.Name, err)
		}
	}
	for _, doc := range docs["ValidatingAdmissionPolicyBinding"] {
		var b admissionv1.ValidatingAdmissionPolicyBinding
		if err := yaml.UnmarshalStrict(doc, &b); err != nil {
			return err
		}
		if _, err := api.ValidatingAdmissionPolicyBindings().Create(ctx, &b, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("the API server refuses binding %s: %w", b.Name, err)
		}
	}
	return nil
}

// breakGlass is a clientset in the break-glass group.
func breakGlass() kubernetes.Interface {
	cfg := rest.CopyConfig(kubeConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "e2e-break-glass", Groups: []string{"system:masters", "soar:break-glass"}}
	return kubernetes.NewForConfigOrDie(cfg)
}

func kinds(docs map[string][][]byte) map[string]int {
	n := map[string]int{}
	for k, v := range docs {
		n[k] = len(v)
	}
	return n
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// editRules are the built-in "edit" role's rights on pods and
// NetworkPolicies. The role itself is aggregated by kube-controller-manager,
// which the test API server does not run, so it is empty there.
var editRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/attach", "pods/portforward"}, Verbs: []string{"get", "create"}},
	{APIGroups: []string{""}, Resources: []string{"pods/ephemeralcontainers"}, Verbs: []string{"update", "patch"}},
	{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
}

// editor returns a clientset for user, holding editRules in namespace ns
// (and in soar's, to show the lock list is guarded by more than RBAC), and
// member of groups.
func editor(t *testing.T, ns, user string, groups ...string) kubernetes.Interface {
	t.Helper()
	for _, where := range []string{ns, "soar"} {
		bindRules(t, where, "edit-"+user, editRules, rbacv1.Subject{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user})
	}
	cfg := rest.CopyConfig(kubeConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append([]string{"system:authenticated"}, groups...)}
	return kubernetes.NewForConfigOrDie(cfg)
}

// locked reports whether err is the quarantine lock's refusal naming the
// incident.
func locked(err error, incident string) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "soar-quarantine-lock") && strings.Contains(err.Error(), "soar incident show "+incident)
}

// tamper is one way to undo or get around a quarantine.
type tamper struct {
	name string
	do   func(ctx context.Context, cs kubernetes.Interface) error
}

// tampers lists what the lock must refuse for pod, quarantined in its
// namespace under the incident's policy.
func tampers(pod *corev1.Pod, incident string) []tamper {
	ns, name := pod.Namespace, pod.Name
	patch := func(body string) func(ctx context.Context, cs kubernetes.Interface) error {
		return func(ctx context.Context, cs kubernetes.Interface) error {
			_, err := cs.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, []byte(body), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}
	}
	connect := func(sub string) func(ctx context.Context, cs kubernetes.Interface) error {
		return func(ctx context.Context, cs kubernetes.Interface) error {
			return cs.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(name).SubResource(sub).
				Param("command", "sh").Param("container", "app").Param("stdout", "true").Do(ctx).Error()
		}
	}
	policy := kube.PolicyName(incident)
	return []tamper{
		{"remove the quarantine label", patch(`{"metadata":{"labels":{"` + kube.QuarantineLabel + `":null}}}`)},
		{"remove the incident's label", patch(`{"metadata":{"labels":{"` + kube.IncidentLabel(incident) + `":null}}}`)},
		{"change a label", patch(`{"metadata":{"labels":{"app":"other"}}}`)},
		{"add a label an allow policy could select", patch(`{"metadata":{"labels":{"role":"frontend"}}}`)},
		{"remove soar's annotation", patch(`{"metadata":{"annotations":{"` + kube.PodIncidentAnnotation(incident) + `":null}}}`)},
		{"change the image", patch(`{"spec":{"containers":[{"name":"app","image":"docker.io/library/busybox:1"}]}}`)},
		{"exec", connect("exec")},
		{"attach", connect("attach")},
		{"port-forward", func(ctx context.Context, cs kubernetes.Interface) error {
			return cs.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(name).SubResource("portforward").
				Param("ports", "8080").Do(ctx).Error()
		}},
		{"add an ephemeral debug container", func(ctx context.Context, cs kubernetes.Interface) error {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "docker.io/library/busybox:1", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent}})
			_, err = cs.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, name, p, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}},
		{"edit the quarantine policy", func(ctx context.Context, cs kubernetes.Interface) error {
			_, err := cs.NetworkingV1().NetworkPolicies(ns).Patch(ctx, policy, types.MergePatchType,
				[]byte(`{"spec":{"ingress":[{}]}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}},
		{"delete the quarantine policy", func(ctx context.Context, cs kubernetes.Interface) error {
			return cs.NetworkingV1().NetworkPolicies(ns).Delete(ctx, policy, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		}},
		{"create an allow-all policy in the namespace", func(ctx context.Context, cs kubernetes.Interface) error {
			np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "let-me-in", Namespace: ns},
				Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}, Egress: []networkingv1.NetworkPolicyEgressRule{{}}}}
			_, err := cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, np, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}},
	}
}

func tamperNamed(pod *corev1.Pod, incident, name string) tamper {
	for _, tc := range tampers(pod, incident) {
		if tc.name == name {
			return tc
		}
	}
	panic("no tamper " + name)
}

// TestTheQuarantineLockHolds: deploy/quarantine-lock.yaml on a real API
// server. While an incident holds a pod, a user with the built-in "edit"
// role in its namespace is refused every way of undoing or getting around
// the quarantine, and each refusal names the incident; the break-glass group
// is not refused; after release the same requests pass admission. The
// worker's own quarantine proves the lock. Deleting the list fails closed
// and the next quarantine reports it.
func TestTheQuarantineLockHolds(t *testing.T) {
	applyWorkerRBAC(t)
	applyLock(t)
	ctx := context.Background()
	const ns, inc = "lock", "soar-lock-incident"
	pod := testenv.Pod(t, kubeCS, ns, "web-0", func(p *corev1.Pod) { p.Labels = map[string]string{"app": "web"} })
	mallory := editor(t, ns, "mallory")
	glass := editor(t, ns, "oncall-lead", "soar:break-glass")
	var proven, unproven atomic.Int64
	w := asWorker(t).WithLocks(kube.DefaultLockList, func(ok bool) {
		if ok {
			proven.Add(1)
		} else {
			unproven.Add(1)
		}
	})

	// The API server loads new policies within seconds; until then the
	// worker's proof fails and says so. Quarantine is idempotent, so it is
	// asked again until the lock is proven.
	var res kube.QuarantineResult
	testenv.Eventually(t, 30*time.Second, "the lock proven", func() error {
		var err error
		res, err = w.Quarantine(ctx, kube.QuarantineRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc})
		if err != nil {
			t.Fatal(err)
		}
		if !res.TamperProof {
			return fmt.Errorf("quarantine: not tamper-proof: %s", res.NotTamperProof)
		}
		return nil
	})

	// The evidence records the lock as the snapshot found it.
	snap, err := w.CollectSnapshot(ctx, kube.SnapshotRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID)})
	if err != nil {
		t.Fatal(err)
	}
	var lockState kube.LockState
	for _, a := range snap.Artifacts {
		if a.Name == "quarantine-lock.json" {
			noErr(t, json.Unmarshal(a.Data, &lockState))
		}
	}
	if !lockState.TamperProof || !slices.Equal(lockState.Incidents, []string{inc}) || lockState.List != "soar/soar-locks" {
		t.Errorf("the snapshot's quarantine-lock.json = %+v, want tamper-proof, held by %s", lockState, inc)
	}

	for _, tc := range tampers(pod, inc) {
		if err := tc.do(ctx, mallory); !locked(err, inc) {
			t.Errorf("%s, with edit rights, while the incident holds the pod: %v (want the lock's refusal naming %s)", tc.name, err, inc)
		}
		if err := tc.do(ctx, glass); lockRefusal(err) {
			t.Errorf("%s, as break-glass: %v", tc.name, err)
		}
	}
	// The list itself: nobody but soar-worker changes it, not even a
	// cluster admin (the test's own identity) short of break-glass.
	lists := kubeCS.CoreV1().ConfigMaps("soar")
	for who, cs := range map[string]kubernetes.Interface{"an admin": kubeCS, "an editor of soar's namespace": mallory} {
		if _, err := cs.CoreV1().ConfigMaps("soar").Patch(ctx, "soar-locks", types.MergePatchType, []byte(`{"data":{"pod_lock_web-0":null}}`), metav1.PatchOptions{}); !refusedByList(err) {
			t.Errorf("%s editing the lock list: %v", who, err)
		}
	}
	if err := mallory.CoreV1().ConfigMaps("soar").Delete(ctx, "soar-locks", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); !refusedByList(err) {
		t.Errorf("an editor deleting the lock list: %v", err)
	}

	// A second incident on the same pod adds its own labels; releasing the
	// first removes the first's and leaves the pod locked by the second.
	const inc2 = "soar-lock-incident-2"
	if res, err := w.Quarantine(ctx, kube.QuarantineRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc2}); err != nil || !res.TamperProof {
		t.Fatalf("a second incident's quarantine of the locked pod: tamperProof=%v (%s), %v", res.TamperProof, res.NotTamperProof, err)
	}
	if r, err := w.Release(ctx, kube.ReleaseRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc}); err != nil || !r.Unlabeled {
		t.Fatalf("release of the first incident while the second holds the pod: %+v, %v", r, err)
	}
	if err := tamperNamed(pod, inc2, "remove the quarantine label").do(ctx, mallory); !locked(err, inc2) {
		t.Errorf("after the first release, the second incident no longer locks the pod: %v", err)
	}
	if r, err := w.Release(ctx, kube.ReleaseRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc2, DryRun: true}); err != nil || !r.MarkerRemoved {
		t.Errorf("a dry-run release of the locked pod: %+v, %v", r, err)
	}
	if r, err := w.Release(ctx, kube.ReleaseRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc2}); err != nil || !r.MarkerRemoved || !r.PolicyDeleted {
		t.Fatalf("release of the second incident: %+v, %v", r, err)
	}
	for _, tc := range tampers(pod, inc2) {
		if err := tc.do(ctx, mallory); lockRefusal(err) {
			t.Errorf("%s after release: still refused by the lock: %v", tc.name, err)
		}
	}
	cm, err := lists.Get(ctx, "soar-locks", metav1.GetOptions{})
	if err != nil || len(cm.Data) != 0 {
		t.Errorf("the lock list after both releases: %v, %v; want it empty", cm.Data, err)
	}

	// Fail closed: without the list every guarded request is refused, and
	// the next quarantine says it is not tamper-proof, and why.
	other := testenv.Pod(t, kubeCS, ns, "web-1")
	testenv.Pod(t, kubeCS, ns, "web-2")
	if err := glass.CoreV1().ConfigMaps("soar").Delete(ctx, "soar-locks", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("break-glass deleting the list: %v", err)
	}
	t.Cleanup(func() { // the next tests need it, should this one stop early
		var fresh corev1.ConfigMap
		noErr(t, yaml.UnmarshalStrict(manifests(t, "quarantine-lock.yaml")["ConfigMap"][0], &fresh))
		_, _ = breakGlass().CoreV1().ConfigMaps("soar").Create(context.Background(), &fresh, metav1.CreateOptions{})
	})
	testenv.Eventually(t, 30*time.Second, "exec refused without the list", func() error {
		err := tamperNamed(other, inc, "exec").do(ctx, mallory)
		// The API server answers 422 here, not 403, saying why.
		if err == nil || !strings.Contains(err.Error(), "soar-quarantine-lock") || !strings.Contains(err.Error(), "no params found") {
			return fmt.Errorf("exec into a pod nobody quarantined, with the list missing: %w", err)
		}
		return nil
	})
	res, err = w.Quarantine(ctx, kube.QuarantineRequest{Namespace: ns, Pod: other.Name, PodUID: string(other.UID), Incident: "soar-lock-incident-3"})
	if err != nil {
		t.Fatalf("quarantine with the list missing: %v (the containment itself must still happen)", err)
	}
	if res.TamperProof || !strings.Contains(res.NotTamperProof, "lock list is missing") {
		t.Errorf("quarantine with the list missing: tamperProof=%v, %q", res.TamperProof, res.NotTamperProof)
	}
	// The worker's metric hears each outcome (soar_quarantine_locks_total).
	if proven.Load() == 0 || unproven.Load() == 0 {
		t.Errorf("the lock outcome callback heard %d proven and %d unproven quarantines, want both", proven.Load(), unproven.Load())
	}
	// Recreated from the manifest, the list restores the lock: the next
	// quarantine proves it again.
	var fresh corev1.ConfigMap
	noErr(t, yaml.UnmarshalStrict(manifests(t, "quarantine-lock.yaml")["ConfigMap"][0], &fresh))
	if _, err := glass.CoreV1().ConfigMaps("soar").Create(ctx, &fresh, metav1.CreateOptions{}); err != nil {
		t.Fatalf("recreating the list: %v", err)
	}
	testenv.Eventually(t, 30*time.Second, "the lock proven again", func() error {
		res, err := w.Quarantine(ctx, kube.QuarantineRequest{Namespace: ns, Pod: other.Name, PodUID: string(other.UID), Incident: "soar-lock-incident-3"})
		if err != nil {
			t.Fatal(err)
		}
		if !res.TamperProof {
			return errors.New(res.NotTamperProof)
		}
		return nil
	})
	if _, err := w.Release(ctx, kube.ReleaseRequest{Namespace: ns, Pod: other.Name, PodUID: string(other.UID), Incident: "soar-lock-incident-3"}); err != nil {
		t.Fatal(err)
	}
	// Pods soar never quarantined are not the lock's business.
	if _, err := mallory.CoreV1().Pods(ns).Patch(ctx, "web-2", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{}); err != nil {
		t.Errorf("labelling an ordinary pod with the list missing: %v", err)
	}
}

// lockRefusal reports whether err is any refusal by the quarantine lock.
func lockRefusal(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "soar-quarantine-lock")
}

func refusedByList(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "soar-lock-list")
}

// TestNoDeployManifestCanChangeTheLock: no Role or ClusterRole in deploy/
// grants any right on admission policies, or on ConfigMaps beyond the
// worker's get and update of the lock list; and the API server confirms
// soar-worker may not touch the policies.
func TestNoDeployManifestCanChangeTheLock(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "deploy", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("deploy/*.yaml: %v, %d files", err, len(files))
	}
	for _, path := range files {
		file := filepath.Base(path)
		for kind, docs := range manifests(t, file) {
			if kind != "Role" && kind != "ClusterRole" {
				continue
			}
			for _, doc := range docs {
				var role rbacv1.ClusterRole // a Role's rules read the same
				noErr(t, yaml.Unmarshal(doc, &role))
				for _, r := range role.Rules {
					// Reading the policies is fine (the worker checks them);
					// any other verb is not.
					if slices.Contains(r.APIGroups, "*") || slices.Contains(r.APIGroups, "admissionregistration.k8s.io") && !slices.Equal(r.Verbs, []string{"get"}) {
						t.Errorf("%s: %s %s grants %v on API groups %v", file, kind, role.Name, r.Verbs, r.APIGroups)
					}
					if slices.Contains(r.Resources, "configmaps") || slices.Contains(r.Resources, "*") {
						if !slices.Equal(r.ResourceNames, []string{"soar-locks", "soar-deploy-control"}) || !slices.Equal(r.Verbs, []string{"get", "update"}) {
							t.Errorf("%s: %s %s grants %v on configmaps %v; only the lock list's get and update are soar's", file, kind, role.Name, r.Verbs, r.ResourceNames)
						}
					}
				}
			}
		}
	}

	// The catalogue's lock-list role is what the Role grants.
	if got := activities.RolePermissions(activities.RoleLocks); len(got) != 1 || got[0].Resource != "configmaps" || !slices.Equal(got[0].Verbs, []string{"get", "update"}) {
		t.Errorf("the catalogue's %s role: %+v, want configmaps get, update (the Role soar-worker-locks)", activities.RoleLocks, got)
	}

	applyWorkerRBAC(t)
	applyLock(t)
	ctx := context.Background()
	for _, check := range []authorizationv1.ResourceAttributes{
		{Resource: "configmaps", Namespace: "soar", Verb: "update", Name: "soar-locks"}, // allowed: the control
		{Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicies", Verb: "delete", Name: "soar-quarantine-lock-pods"},
		{Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicybindings", Verb: "update", Name: "soar-quarantine-lock-connect"},
		{Resource: "configmaps", Namespace: "soar", Verb: "delete", Name: "soar-locks"},
		{Resource: "configmaps", Namespace: "soar", Verb: "create"},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: workerSA, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:soar"}, ResourceAttributes: &check}}
		got, err := kubeCS.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := check.Verb == "update" && check.Name == "soar-locks"; got.Status.Allowed != want {
			t.Errorf("soar-worker may %s %s %s: %v, want %v", check.Verb, check.Resource, check.Name, got.Status.Allowed, want)
		}
	}
}

// monitorCheck runs soar monitor check as an operator would, against the
// test API server, and returns its output and exit code.
func monitorCheck(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(soarBinary(t), append([]string{"monitor", "check", "--kubeconfig", kubeconfigPath}, args...)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// TestMonitorCheckSaysWhetherTheLockHolds: with the lock and a locked pod,
// soar monitor check proves the lock with two refused dry runs and exits 0;
// pointed at a list that is not there, or with a binding switched to Warn,
// it names the missing piece and exits 1. (A cluster with no policy at all
// is connectors/kube's TestCheckMonitorNamesWhatIsMissing.)
func TestMonitorCheckSaysWhetherTheLockHolds(t *testing.T) {
	applyWorkerRBAC(t)
	applyLock(t)
	ctx := context.Background()
	const ns, inc = "lock-check", "soar-lock-check-incident"
	pod := testenv.Pod(t, kubeCS, ns, "web-0")
	w := asWorker(t).WithLocks(kube.DefaultLockList)
	testenv.Eventually(t, 30*time.Second, "the lock proven", func() error {
		res, err := w.Quarantine(ctx, kube.QuarantineRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc})
		if err != nil {
			t.Fatal(err)
		}
		if !res.TamperProof {
			return errors.New(res.NotTamperProof)
		}
		return nil
	})
	out, code := monitorCheck(t)
	for _, want := range []string{
		"lock list soar/soar-locks", "1 pod locked",
		"proof: unlabel lock-check/web-0", "proof: delete lock-check/" + kube.PolicyName(inc), "refused by the lock",
		"containment tamper-proof\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("with the lock and a locked pod, the check lacks %q (exit %d):\n%s", want, code, out)
		}
	}
	if code != 0 || strings.Contains(out, "FAIL") {
		t.Errorf("with the lock and a locked pod: exit %d\n%s", code, out)
	}

	out, code = monitorCheck(t, "--lock-list", "soar/elsewhere")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`binding soar-quarantine-lock-pods\s+FAIL\s+does not read the lock list soar/elsewhere`),
		regexp.MustCompile(`lock list soar/elsewhere\s+FAIL\s+missing: the lock fails closed`),
	} {
		if code != 1 || !want.MatchString(out) {
			t.Errorf("with another list: exit %d, want 1 and %q\n%s", code, want, out)
		}
	}

	api := kubeCS.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	_, err := api.Patch(ctx, "soar-quarantine-lock-connect", types.MergePatchType, []byte(`{"spec":{"validationActions":["Warn","Audit"]}}`), metav1.PatchOptions{})
	noErr(t, err)
	t.Cleanup(func() {
		_, err := api.Patch(context.Background(), "soar-quarantine-lock-connect", types.MergePatchType, []byte(`{"spec":{"validationActions":["Deny"]}}`), metav1.PatchOptions{})
		noErr(t, err)
	})
	out, code = monitorCheck(t)
	if code != 1 || !strings.Contains(out, "containment not tamper-proof: binding soar-quarantine-lock-connect: validationActions Warn, Audit: reports, does not refuse") {
		t.Errorf("with a binding in Warn: exit %d\n%s", code, out)
	}
	// A quarantine says the same (a new worker: the check is cached 30 s),
	// and so does the evidence of a snapshot.
	other := testenv.Pod(t, kubeCS, ns, "web-1")
	warned := asWorker(t).WithLocks(kube.DefaultLockList)
	const inWarn = "binding soar-quarantine-lock-connect: validationActions Warn, Audit: reports, does not refuse"
	res, err := warned.Quarantine(ctx, kube.QuarantineRequest{Namespace: ns, Pod: other.Name, PodUID: string(other.UID), Incident: inc})
	if err != nil || res.TamperProof || res.NotTamperProof != inWarn {
		t.Errorf("quarantine with a binding in Warn: tamperProof=%v %q, %v", res.TamperProof, res.NotTamperProof, err)
	}
	snap, err := warned.CollectSnapshot(ctx, kube.SnapshotRequest{Namespace: ns, Pod: other.Name, PodUID: string(other.UID)})
	noErr(t, err)
	var lockState kube.LockState
	for _, a := range snap.Artifacts {
		if a.Name == "quarantine-lock.json" {
			noErr(t, json.Unmarshal(a.Data, &lockState))
		}
	}
	if lockState.TamperProof || lockState.NotTamperProof != inWarn {
		t.Errorf("the snapshot's quarantine-lock.json with a binding in Warn = %+v", lockState)
	}
	if _, err := w.Release(ctx, kube.ReleaseRequest{Namespace: ns, Pod: other.Name, PodUID: string(other.UID), Incident: inc}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Release(ctx, kube.ReleaseRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc}); err != nil {
		t.Fatal(err)
	}
}
