package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/testenv"
)

const workerSA = "system:serviceaccount:soar:soar-worker"

// manifests decodes every YAML document of a file in deploy/ into out, keyed
// by kind.
func manifests(t testing.TB, file string) map[string][][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", file))
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string][][]byte{}
	for _, doc := range bytes.Split(b, []byte("\n---")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if meta.Kind != "" {
			docs[meta.Kind] = append(docs[meta.Kind], doc)
		}
	}
	return docs
}

// applyWorkerRBAC creates the worker's ServiceAccount, ClusterRoles and
// ClusterRoleBindings exactly as deploy/ defines them, the opt-in
// checkpoint role included, and returns the roles.
func applyWorkerRBAC(t testing.TB) []rbacv1.ClusterRole {
	t.Helper()
	ctx := context.Background()
	testenv.Namespace(t, kubeCS, "soar")
	rbac := manifests(t, "rbac.yaml")
	if len(rbac["ClusterRole"]) != 2 || len(rbac["ClusterRoleBinding"]) != 2 {
		t.Fatalf("deploy/rbac.yaml: want two ClusterRoles and two ClusterRoleBindings, got %d and %d", len(rbac["ClusterRole"]), len(rbac["ClusterRoleBinding"]))
	}
	checkpoint := manifests(t, "checkpoint-rbac.yaml")
	if len(checkpoint["ClusterRole"]) != 1 || len(checkpoint["ClusterRoleBinding"]) != 1 {
		t.Fatalf("deploy/checkpoint-rbac.yaml: want one ClusterRole and one ClusterRoleBinding, got %d and %d", len(checkpoint["ClusterRole"]), len(checkpoint["ClusterRoleBinding"]))
	}
	for kind, docs := range checkpoint {
		rbac[kind] = append(rbac[kind], docs...)
	}
	for _, doc := range manifests(t, "serviceaccounts.yaml")["ServiceAccount"] {
		var sa corev1.ServiceAccount
		if err := yaml.UnmarshalStrict(doc, &sa); err != nil {
			t.Fatal(err)
		}
		if _, err := kubeCS.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, &sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	var roles []rbacv1.ClusterRole
	for _, doc := range rbac["ClusterRole"] {
		var role rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(doc, &role); err != nil {
			t.Fatal(err)
		}
		if _, err := kubeCS.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		roles = append(roles, role)
	}
	for _, doc := range rbac["ClusterRoleBinding"] {
		var binding rbacv1.ClusterRoleBinding
		if err := yaml.UnmarshalStrict(doc, &binding); err != nil {
			t.Fatal(err)
		}
		if len(binding.Subjects) != 1 || "system:serviceaccount:"+binding.Subjects[0].Namespace+":"+binding.Subjects[0].Name != workerSA {
			t.Errorf("binding %s binds %+v, want only %s", binding.Name, binding.Subjects, workerSA)
		}
		if _, err := kubeCS.RbacV1().ClusterRoleBindings().Create(ctx, &binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	return roles
}

// permissions flattens a role's rules into one Permission per group and
// resource, with sorted verbs.
func permissions(t *testing.T, role rbacv1.ClusterRole) []activities.Permission {
	t.Helper()
	var got []activities.Permission
	for _, r := range role.Rules {
		if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
			t.Errorf("%s: unexpected rule %+v", role.Name, r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				verbs := slices.Clone(r.Verbs)
				slices.Sort(verbs)
				got = append(got, activities.Permission{Group: g, Resource: res, Verbs: verbs})
			}
		}
	}
	return got
}

func TestDeployRBACGrantsExactlyTheCataloguePermissions(t *testing.T) {
	deployed := map[string][]activities.Permission{}
	for _, role := range applyWorkerRBAC(t) {
		deployed[role.Name] = permissions(t, role)
	}
	// nodes/proxy only in the opt-in file, which kustomize does not apply.
	for _, doc := range manifests(t, "rbac.yaml")["ClusterRole"] {
		var role rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(doc, &role); err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(permissions(t, role), func(p activities.Permission) bool { return p.Resource == "nodes/proxy" }) {
			t.Errorf("deploy/rbac.yaml: %s grants nodes/proxy by default", role.Name)
		}
	}
	kustomization, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(kustomization, []byte("- checkpoint-rbac.yaml")) {
		t.Error("kustomization.yaml applies the opt-in checkpoint role")
	}
	for _, want := range activities.ClusterRoles() {
		got, ok := deployed[want.Name]
		if !ok {
			t.Errorf("deploy/rbac.yaml has no ClusterRole %s", want.Name)
			continue
		}
		if w := permissions(t, want); !slices.EqualFunc(got, w, func(a, b activities.Permission) bool {
			return a.Group == b.Group && a.Resource == b.Resource && slices.Equal(a.Verbs, b.Verbs)
		}) {
			t.Errorf("deploy/rbac.yaml %s grants %+v, the action catalogue needs exactly %+v ('soar actions rbac' prints it)", want.Name, got, w)
		}
	}
}

// asWorker is a kube.Client that impersonates the deploy/ ServiceAccount.
func asWorker(t testing.TB) *kube.Client {
	t.Helper()
	cfg := rest.CopyConfig(kubeConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: workerSA, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:soar", "system:authenticated"}}
	c, err := kube.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEveryActionRunsAsTheDeployServiceAccount runs each action and inverse
// of the catalogue, every code path that needs its own verb, as soar-worker:
// a verb missing from deploy/rbac.yaml fails it with Forbidden.
func TestEveryActionRunsAsTheDeployServiceAccount(t *testing.T) {
	applyWorkerRBAC(t)
	ctx := context.Background()
	w := asWorker(t)
	const ns, inc = "rbac", "soar-rbac-incident"
	ran := map[string]bool{}
	must := func(action string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s as %s: %v", action, workerSA, err)
		}
		ran[action] = true
	}

	_, rs, pod := testenv.DeploymentChain(t, kubeCS, ns, "web", 2)
	q, err := w.Quarantine(ctx, kube.QuarantineRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc, Detach: true})
	must(activities.ActionQuarantine, err)
	if !q.Labeled || !q.PolicyCreated || !q.Detached || q.Owner != "ReplicaSet/"+rs.Name {
		t.Errorf("quarantine = %+v", q)
	}
	// The repair path needs update.
	np, _ := kubeCS.NetworkingV1().NetworkPolicies(ns).Get(ctx, kube.PolicyName(inc), metav1.GetOptions{})
	np.Spec.PolicyTypes = np.Spec.PolicyTypes[:1]
	if _, err := kubeCS.NetworkingV1().NetworkPolicies(ns).Update(ctx, np, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	q, err = w.Quarantine(ctx, kube.QuarantineRequest{Namespace: ns, Pod: pod.Name, Incident: inc})
	must(activities.ActionQuarantine, err)
	if !q.PolicyRepaired {
		t.Errorf("repair = %+v", q)
	}
	r, err := w.Release(ctx, kube.ReleaseRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc})
	must(activities.ActionRelease, err)
	if !r.PolicyDeleted || !r.MarkerRemoved || len(r.LabelsRestored) == 0 {
		t.Errorf("release = %+v", r)
	}

	l, err := w.LabelPod(ctx, kube.MetadataRequest{Namespace: ns, Pod: pod.Name, Values: map[string]string{"security.example.com/suspect": "true"}})
	must(activities.ActionLabelPod, err)
	_, err = w.RestorePodLabels(ctx, kube.RestoreMetadataRequest{Namespace: ns, Pod: pod.Name, Set: l.Set, Previous: l.Previous, Added: l.Added})
	must(activities.ActionRestoreLabels, err)
	a, err := w.AnnotatePod(ctx, kube.MetadataRequest{Namespace: ns, Pod: pod.Name, Values: map[string]string{"security.example.com/case": "IR-1"}})
	must(activities.ActionAnnotatePod, err)
	_, err = w.RestorePodAnnotations(ctx, kube.RestoreMetadataRequest{Namespace: ns, Pod: pod.Name, Set: a.Set, Previous: a.Previous, Added: a.Added})
	must(activities.ActionRestoreAnnotations, err)

	node := testenv.Kubelet(t, kubeCS, "rbac-node")
	scheduled := testenv.Pod(t, kubeCS, ns, "scheduled", func(p *corev1.Pod) { p.Spec.NodeName = node.NodeName })
	c, err := w.Cordon(ctx, kube.CordonRequest{Namespace: ns, Pod: scheduled.Name, Incident: inc})
	must(activities.ActionCordonNode, err)
	u, err := w.Uncordon(ctx, kube.UncordonRequest{Node: c.Node, Incident: inc})
	must(activities.ActionUncordonNode, err)
	if !c.Cordoned || !u.Uncordoned {
		t.Errorf("cordon %+v, uncordon %+v", c, u)
	}

	snap, err := w.CollectSnapshot(ctx, kube.SnapshotRequest{Namespace: ns, Pod: scheduled.Name, Checkpoint: true})
	must(activities.ActionSnapshot, err)
	for _, art := range snap.Artifacts {
		if strings.Contains(art.Error, "forbidden") {
			t.Errorf("snapshot artifact %s: %s", art.Name, art.Error)
		}
	}

	s, err := w.ScaleOwnerToZero(ctx, kube.ScaleRequest{Namespace: ns, Pod: pod.Name, Incident: inc})
	must(activities.ActionScaleToZero, err)
	_, err = w.RestoreScale(ctx, kube.RestoreScaleRequest{Namespace: ns, Kind: s.Kind, Name: s.Name, Incident: inc})
	must(activities.ActionRestoreScale, err)

	_, err = w.EvictPod(ctx, kube.EvictPodRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID)})
	must(activities.ActionEvictPod, err)
	_, err = w.DeletePod(ctx, kube.DeletePodRequest{Namespace: ns, Pod: scheduled.Name, PodUID: string(scheduled.UID)})
	must(activities.ActionDeletePod, err)

	an, err := w.AnnotateNamespace(ctx, kube.NamespaceMetadataRequest{Namespace: ns, Values: map[string]string{"security.example.com/case": "IR-1"}})
	must(activities.ActionAnnotateNamespace, err)
	_, err = w.RestoreNamespaceAnnotations(ctx, kube.RestoreNamespaceMetadataRequest{Namespace: ns, Set: an.Set, Previous: an.Previous, Added: an.Added})
	must(activities.ActionRestoreNamespaceAnnotations, err)

	// The lock lists' writers, with the Role of deploy/quarantine-lock.yaml.
	applyDeploymentControl(t)
	wl := asWorker(t).WithLocks(kube.DefaultLockList)
	target := testenv.Pod(t, kubeCS, ns, "block-target")
	b, err := wl.BlockImages(ctx, kube.BlockImageRequest{Namespace: ns, Pod: target.Name, PodUID: string(target.UID), Incident: inc})
	must(activities.ActionBlockImage, err)
	must(activities.ActionUnblockImage, wl.UnblockImages(ctx, inc, false))
	_, err = wl.FreezeNamespace(ctx, ns, inc, false)
	must(activities.ActionFreezeNamespace, err)
	_, err = wl.UnfreezeNamespace(ctx, ns, inc, false)
	must(activities.ActionUnfreezeNamespace, err)
	if len(b.Images) == 0 {
		t.Errorf("block_image = %+v", b)
	}

	for _, def := range activities.Catalogue() {
		if !ran[def.Name] && def.Role != activities.RoleNone { // Slack's need nothing of Kubernetes
			t.Errorf("%s was not run as the deploy ServiceAccount", def.Name)
		}
	}
}

func TestDeployServiceAccountCannotDoWhatItMustNot(t *testing.T) {
	applyWorkerRBAC(t)
	ctx := context.Background()
	for _, attr := range []authzv1.ResourceAttributes{
		{Verb: "get", Resource: "secrets", Namespace: "payments"},
		{Verb: "list", Resource: "secrets"},
		{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "payments"},
		{Verb: "create", Resource: "pods", Namespace: "payments"},
		{Verb: "create", Resource: "pods", Subresource: "attach", Namespace: "payments"},
		{Verb: "patch", Resource: "pods", Subresource: "ephemeralcontainers", Namespace: "payments"},
		{Verb: "get", Resource: "configmaps", Namespace: "payments"},
		{Verb: "get", Resource: "nodes", Subresource: "proxy"},
		{Verb: "delete", Resource: "nodes"},
		{Verb: "delete", Resource: "namespaces"},
		{Verb: "delete", Group: "apps", Resource: "deployments", Namespace: "payments"},
		{Verb: "watch", Resource: "pods"},
		{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
		{Verb: "bind", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
		{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},
		{Verb: "impersonate", Resource: "users"},
		{Verb: "impersonate", Resource: "serviceaccounts", Namespace: "kube-system"},
	} {
		review, err := kubeCS.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{
			Spec: authzv1.SubjectAccessReviewSpec{
				User:               workerSA,
				Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:soar", "system:authenticated"},
				ResourceAttributes: &attr,
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if review.Status.Allowed {
			t.Errorf("%s may %s %s/%s in %q", workerSA, attr.Verb, attr.Resource, attr.Subresource, attr.Namespace)
		}
	}
	// And the review is not vacuous: what the catalogue needs is allowed.
	review, err := kubeCS.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{
		Spec: authzv1.SubjectAccessReviewSpec{User: workerSA, ResourceAttributes: &authzv1.ResourceAttributes{Verb: "patch", Resource: "pods", Namespace: "payments"}},
	}, metav1.CreateOptions{})
	if err != nil || !review.Status.Allowed {
		t.Fatalf("%s may not patch pods: %v %+v", workerSA, err, review.Status)
	}
}
