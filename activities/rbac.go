package activities

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterRole names in deploy/rbac.yaml, one per Role.
var ClusterRoleNames = map[string]string{
	RoleResponder:  "soar-worker-actions",
	RoleEvidence:   "soar-worker-evidence",
	RoleCheckpoint: "soar-worker-checkpoint",
}

// ClusterRoles returns the worker's ClusterRoles, generated from the
// catalogue: one per role, each granting exactly what its actions need.
// 'soar actions rbac' prints them, and a test checks deploy/rbac.yaml grants
// the same.
func ClusterRoles() []rbacv1.ClusterRole {
	var out []rbacv1.ClusterRole
	for _, role := range []string{RoleResponder, RoleEvidence, RoleCheckpoint} {
		cr := rbacv1.ClusterRole{
			TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{
				Name:   ClusterRoleNames[role],
				Labels: map[string]string{"app.kubernetes.io/name": "soar", "app.kubernetes.io/component": "worker"},
			},
		}
		for _, p := range RolePermissions(role) {
			cr.Rules = append(cr.Rules, rbacv1.PolicyRule{APIGroups: []string{p.Group}, Resources: []string{p.Resource}, Verbs: p.Verbs})
		}
		out = append(out, cr)
	}
	return out
}
