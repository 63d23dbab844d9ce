package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
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
func manifests(t *testing.T, file string) map[string][][]byte {
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

// applyWorkerRBAC creates the worker's ServiceAccount, ClusterRole and
// ClusterRoleBinding exactly as deploy/ defines them, and returns the role.
func applyWorkerRBAC(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	ctx := context.Background()
	testenv.Namespace(t, kubeCS, "soar")
	rbac := manifests(t, "rbac.yaml")
	var role rbacv1.ClusterRole
	var binding rbacv1.ClusterRoleBinding
	if len(rbac["ClusterRole"]) != 1 || len(rbac["ClusterRoleBinding"]) != 1 {
		t.Fatalf("deploy/rbac.yaml: want one ClusterRole and one ClusterRoleBinding, got %d and %d", len(rbac["ClusterRole"]), len(rbac["ClusterRoleBinding"]))
	}
	if err := yaml.UnmarshalStrict(rbac["ClusterRole"][0], &role); err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(rbac["ClusterRoleBinding"][0], &binding); err != nil {
		t.Fatal(err)
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
	if _, err := kubeCS.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := kubeCS.RbacV1().ClusterRoleBindings().Create(ctx, &binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return &role
}

func TestDeployRBACGrantsExactlyTheCataloguePermissions(t *testing.T) {
	role := applyWorkerRBAC(t)
	var got []activities.Permission
	for _, r := range role.Rules {
		if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
			t.Errorf("unexpected rule %+v", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				verbs := slices.Clone(r.Verbs)
				slices.Sort(verbs)
				got = append(got, activities.Permission{Group: g, Resource: res, Verbs: verbs})
			}
		}
	}
	want := activities.RequiredPermissions()
	if !slices.EqualFunc(got, want, func(a, b activities.Permission) bool {
		return a.Group == b.Group && a.Resource == b.Resource && slices.Equal(a.Verbs, b.Verbs)
	}) {
		t.Errorf("deploy/rbac.yaml grants %+v, the action catalogue needs exactly %+v", got, want)
	}
}

func TestQuarantineRunsAsTheDeployServiceAccount(t *testing.T) {
	applyWorkerRBAC(t)
	ctx := context.Background()
	cfg := rest.CopyConfig(kubeConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: workerSA, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:soar", "system:authenticated"}}
	asWorker, err := kube.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Pod(t, kubeCS, "rbac", "web-1")
	res, err := asWorker.Quarantine(ctx, kube.QuarantineRequest{Namespace: "rbac", Pod: "web-1", Incident: "soar-rbac"})
	if err != nil || !res.Labeled || !res.PolicyCreated {
		t.Fatalf("quarantine as %s: %+v, %v", workerSA, res, err)
	}
	// The repair path needs update.
	np, _ := kubeCS.NetworkingV1().NetworkPolicies("rbac").Get(ctx, kube.PolicyName, metav1.GetOptions{})
	np.Spec.PolicyTypes = np.Spec.PolicyTypes[:1]
	if _, err := kubeCS.NetworkingV1().NetworkPolicies("rbac").Update(ctx, np, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if res, err := asWorker.Quarantine(ctx, kube.QuarantineRequest{Namespace: "rbac", Pod: "web-1"}); err != nil || !res.PolicyRepaired {
		t.Fatalf("repair as %s: %+v, %v", workerSA, res, err)
	}
}

func TestDeployServiceAccountCannotDoWhatItMustNot(t *testing.T) {
	applyWorkerRBAC(t)
	ctx := context.Background()
	for _, attr := range []authzv1.ResourceAttributes{
		{Verb: "get", Resource: "secrets", Namespace: "payments"},
		{Verb: "list", Resource: "secrets"},
		{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "payments"},
		{Verb: "delete", Resource: "pods", Namespace: "payments"},
		{Verb: "create", Resource: "pods", Namespace: "payments"},
		{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
		{Verb: "bind", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
		{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},
		{Verb: "impersonate", Resource: "users"},
		{Verb: "impersonate", Resource: "serviceaccounts", Namespace: "kube-system"},
		{Verb: "delete", Group: "networking.k8s.io", Resource: "networkpolicies", Namespace: "payments"},
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
