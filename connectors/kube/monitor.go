// RBAC for CheckMonitor (soar monitor check, run by an operator; the worker
// reads the policies and bindings too, for each quarantine):
//   - admissionregistration.k8s.io validatingadmissionpolicies, validatingadmissionpolicybindings: get
//   - "" configmaps (the lock list): get
//   - "" pods: get, patch (dry run only); networking.k8s.io networkpolicies: delete (dry run only)

package kube

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LockPolicies are deploy/quarantine-lock.yaml's admission policies, each
// with a binding of the same name. All but the last read the lock list.
var LockPolicies = []string{
	"soar-quarantine-lock-pods",
	"soar-quarantine-lock-connect",
	"soar-quarantine-lock-policies",
	"soar-quarantine-lock-namespaces",
	"soar-lock-list",
}

// MonitorCheck is one finding of CheckMonitor.
type MonitorCheck struct {
	What   string `json:"what"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// MonitorReport says whether the quarantine lock holds on a cluster.
type MonitorReport struct {
	Checks []MonitorCheck `json:"checks"`
	// TamperProof is true when every check passed.
	TamperProof bool `json:"tamperProof"`
	// Why is the first failed check, as "what: detail".
	Why string `json:"why,omitempty"`
	// Locked is the number of pods on the lock list.
	Locked int `json:"locked"`
}

func (r *MonitorReport) add(what string, ok bool, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	r.Checks = append(r.Checks, MonitorCheck{What: what, OK: ok, Detail: detail})
	if !ok && r.Why == "" {
		r.Why = what + ": " + detail
	}
}

// CheckMonitor checks the quarantine lock on the cluster: every policy and
// binding of deploy/quarantine-lock.yaml is there, failing closed, without
// type-check warnings, enforcing (Deny) and reading list; the list exists;
// and, when a pod is locked, the API server refuses dry runs that remove its
// quarantine label and delete its incident's policy.
func (c *Client) CheckMonitor(ctx context.Context, list LockList) MonitorReport {
	var r MonitorReport
	c.checkPolicies(ctx, list, &r)
	cm, err := c.cs.CoreV1().ConfigMaps(list.Namespace).Get(ctx, list.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		r.add("lock list "+list.String(), false, "missing: the lock fails closed (exec everywhere and changes to locked pods are refused); recreate it from deploy/quarantine-lock.yaml")
	case err != nil:
		r.add("lock list "+list.String(), false, "cannot read it: %v", err)
	default:
		var pods []string
		for k := range cm.Data {
			if strings.HasPrefix(k, "pod_") {
				pods = append(pods, k)
			}
		}
		slices.Sort(pods)
		r.Locked = len(pods)
		r.add("lock list "+list.String(), true, "%d %s locked", len(pods), map[bool]string{true: "pod", false: "pods"}[len(pods) == 1])
		if len(pods) == 0 {
			r.add("proof", true, "no pod is locked now: each quarantine proves the lock on its own pod")
		} else {
			c.proveOne(ctx, &r, pods[0], cm.Data)
		}
	}
	r.TamperProof = r.Why == ""
	return r
}

// checkPolicies adds a check per policy and binding of
// deploy/quarantine-lock.yaml to r.
func (c *Client) checkPolicies(ctx context.Context, list LockList, r *MonitorReport) {
	api := c.cs.AdmissionregistrationV1()
	for _, name := range LockPolicies {
		pol, err := api.ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			r.add("policy "+name, false, "missing: apply deploy/quarantine-lock.yaml")
		case err != nil:
			r.add("policy "+name, false, "cannot read it: %v", err)
		default:
			r.add("policy "+name, policyOK(pol), "%s", policyDetail(pol))
		}
		b, err := api.ValidatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			r.add("binding "+name, false, "missing: apply deploy/quarantine-lock.yaml")
		case err != nil:
			r.add("binding "+name, false, "cannot read it: %v", err)
		default:
			why := bindingProblem(b, name, list)
			r.add("binding "+name, why == "", "%s", cmp.Or(why, "enforcing ("+actions(b)+")"))
		}
	}
}

// policiesTTL is how long a quarantine trusts the last check of the
// policies and bindings: a storm of quarantines reads them once.
const policiesTTL = 30 * time.Second

// policiesInForce says why the lock's policies and bindings are not as
// deploy/quarantine-lock.yaml has them, or "", from a check at most
// policiesTTL old.
func (c *Client) policiesInForce(ctx context.Context) string {
	l := c.locks
	l.checkMu.Lock()
	defer l.checkMu.Unlock()
	if !l.checkedAt.IsZero() && time.Since(l.checkedAt) < policiesTTL {
		return l.checked
	}
	var r MonitorReport
	c.checkPolicies(ctx, l.list, &r)
	l.checked, l.checkedAt = r.Why, time.Now()
	return r.Why
}

// proveOne asks for dry runs the lock must refuse on the locked pod key.
func (c *Client) proveOne(ctx context.Context, r *MonitorReport, key string, data map[string]string) {
	ns, name, _ := strings.Cut(strings.TrimPrefix(key, "pod_"), "_")
	pod, err := c.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		r.add("proof", false, "cannot read locked pod %s/%s: %v", ns, name, err)
		return
	}
	if why, _ := c.proveLock(ctx, ns, name, string(pod.UID)); why != "" {
		r.add("proof: unlabel "+ns+"/"+name, false, "%s", why)
	} else {
		r.add("proof: unlabel "+ns+"/"+name, true, "refused by the lock (a dry run)")
	}
	hashes := strings.Fields(data[key])
	if len(hashes) == 0 {
		return
	}
	policy := "soar-quarantine-" + hashes[0]
	why, _ := c.provePolicyLock(ctx, ns, policy)
	r.add("proof: delete "+ns+"/"+policy, why == "", "%s", cmp.Or(why, "refused by the lock (a dry run)"))
}

func policyOK(p *admissionv1.ValidatingAdmissionPolicy) bool {
	return (p.Spec.FailurePolicy == nil || *p.Spec.FailurePolicy == admissionv1.Fail) &&
		(p.Status.TypeChecking == nil || len(p.Status.TypeChecking.ExpressionWarnings) == 0)
}

func policyDetail(p *admissionv1.ValidatingAdmissionPolicy) string {
	if p.Spec.FailurePolicy != nil && *p.Spec.FailurePolicy != admissionv1.Fail {
		return "failurePolicy " + string(*p.Spec.FailurePolicy) + ": an error in the policy would let requests through"
	}
	if tc := p.Status.TypeChecking; tc != nil && len(tc.ExpressionWarnings) > 0 {
		var w []string
		for _, e := range tc.ExpressionWarnings {
			w = append(w, e.FieldRef+": "+e.Warning)
		}
		return "type-check warnings: " + strings.Join(w, "; ")
	}
	if p.Status.ObservedGeneration != p.Generation || p.Status.TypeChecking == nil {
		return "present; not type-checked yet (kube-controller-manager checks the expressions' types)"
	}
	return "present, type-checked without warnings"
}

func bindingProblem(b *admissionv1.ValidatingAdmissionPolicyBinding, name string, list LockList) string {
	if b.Spec.PolicyName != name {
		return "binds policy " + b.Spec.PolicyName + ", not " + name
	}
	if !slices.Contains(b.Spec.ValidationActions, admissionv1.Deny) {
		return "validationActions " + actions(b) + ": reports, does not refuse"
	}
	if name == "soar-lock-list" {
		return ""
	}
	ref := b.Spec.ParamRef
	if ref == nil || ref.Name != list.Name || ref.Namespace != list.Namespace {
		return "does not read the lock list " + list.String()
	}
	return ""
}

func actions(b *admissionv1.ValidatingAdmissionPolicyBinding) string {
	var s []string
	for _, a := range b.Spec.ValidationActions {
		s = append(s, string(a))
	}
	return strings.Join(s, ", ")
}
