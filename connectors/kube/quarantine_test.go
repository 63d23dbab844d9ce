package kube_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/testenv"
)

// TestQuarantine covers Quarantine and its inverse, Release, on one API
// server.
func TestQuarantine(t *testing.T) {
	k, cs := testenv.Kube(t)
	t.Run("quarantine", func(t *testing.T) { testQuarantine(t, k, cs) })
	t.Run("release", func(t *testing.T) { testRelease(t, cs) })
}

func testQuarantine(t *testing.T, k *devstack.Kube, cs kubernetes.Interface) {
	c := kube.New(cs)
	ctx := context.Background()
	const incident = "soar-x"
	policy := kube.PolicyName(incident)

	t.Run("a dry run reports what it would change and stores nothing", func(t *testing.T) {
		testenv.Pod(t, cs, "plan", "web-1")
		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "plan", Pod: "web-1", Incident: incident, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if !res.DryRun || !res.Labeled || !res.PolicyCreated || res.Policy != policy {
			t.Errorf("dry-run result = %+v, want it to report label and policy", res)
		}
		got := getPod(t, cs, "plan", "web-1")
		if _, ok := got.Labels[kube.QuarantineLabel]; ok {
			t.Error("a dry run labeled the pod")
		}
		if _, err := cs.NetworkingV1().NetworkPolicies("plan").Get(ctx, policy, metav1.GetOptions{}); err == nil {
			t.Error("a dry run created the policy")
		}
	})

	t.Run("labels the pod and creates the incident's deny-all policy that selects it", func(t *testing.T) {
		pod := testenv.Pod(t, cs, "shop", "web-1")
		testenv.Pod(t, cs, "shop", "web-2") // a sibling that must stay untouched

		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "shop", Pod: "web-1", PodUID: string(pod.UID), Incident: incident})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Labeled || !res.PolicyCreated || res.PolicyRepaired || res.PodUID != string(pod.UID) || res.Policy != policy || res.Label != "soar.dev/quarantine=true" {
			t.Errorf("result = %+v", res)
		}
		if len(res.OtherPolicies) != 0 || res.Detached || res.DetachedLabels != nil {
			t.Errorf("result reports other policies or detaching: %+v", res)
		}
		got := getPod(t, cs, "shop", "web-1")
		if got.Labels[kube.QuarantineLabel] != "true" || got.Labels[kube.IncidentLabel(incident)] != "true" || got.Labels["app"] != "web" {
			t.Errorf("pod labels %v", got.Labels)
		}
		if got.Annotations[kube.PodIncidentAnnotation(incident)] != incident {
			t.Errorf("pod annotations %v", got.Annotations)
		}
		sibling := getPod(t, cs, "shop", "web-2")
		if len(sibling.Labels) != 1 {
			t.Errorf("the sibling pod was labeled too: %v", sibling.Labels)
		}
		np := getPolicy(t, cs, "shop", policy)
		assertDenyAll(t, np, incident)
		assertSelects(t, np, got, true)
		assertSelects(t, np, sibling, false)
		if np.Annotations[kube.IncidentAnnotation] != incident || np.Labels[kube.ManagedByLabel] != kube.ManagedByValue {
			t.Errorf("policy metadata: labels %v annotations %v", np.Labels, np.Annotations)
		}
	})

	t.Run("a second run changes nothing", func(t *testing.T) {
		before := snapshot(t, cs, "shop", "web-1", policy)
		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "shop", Pod: "web-1", Incident: incident})
		if err != nil {
			t.Fatal(err)
		}
		if res.Labeled || res.PolicyCreated || res.PolicyRepaired {
			t.Errorf("second run reports changes: %+v", res)
		}
		before.assertUnchanged(t)
	})

	t.Run("a tampered policy is restored", func(t *testing.T) {
		np := getPolicy(t, cs, "shop", policy)
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		np.Spec.PodSelector = metav1.LabelSelector{}
		if _, err := cs.NetworkingV1().NetworkPolicies("shop").Update(ctx, np, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "shop", Pod: "web-1", Incident: incident})
		if err != nil || !res.PolicyRepaired || res.Labeled {
			t.Fatalf("result %+v, err %v; want policy repaired", res, err)
		}
		assertDenyAll(t, getPolicy(t, cs, "shop", policy), incident)
	})

	t.Run("a second incident adds its own label and policy", func(t *testing.T) {
		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "shop", Pod: "web-1", Incident: "soar-y"})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Labeled || !res.PolicyCreated || res.Policy == policy || len(res.OtherPolicies) != 0 {
			t.Errorf("result = %+v: want a new label and a new policy, and soar's own policies not reported", res)
		}
		got := getPod(t, cs, "shop", "web-1")
		for _, inc := range []string{incident, "soar-y"} {
			assertSelects(t, getPolicy(t, cs, "shop", kube.PolicyName(inc)), got, true)
		}
	})

	t.Run("other policies that select the pod are reported", func(t *testing.T) {
		testenv.Pod(t, cs, "open", "web-1")
		allowAll := []networkingv1.NetworkPolicyIngressRule{{}}
		for name, sel := range map[string]metav1.LabelSelector{
			"allow-everything": {},
			"allow-web":        {MatchLabels: map[string]string{"app": "web"}},
			"allow-db":         {MatchLabels: map[string]string{"app": "db"}},
		} {
			np := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "open"},
				Spec:       networkingv1.NetworkPolicySpec{PodSelector: sel, Ingress: allowAll},
			}
			if _, err := cs.NetworkingV1().NetworkPolicies("open").Create(ctx, np, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "open", Pod: "web-1", Incident: incident})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(res.OtherPolicies, ",") != "allow-everything,allow-web" {
			t.Errorf("other policies = %v, want allow-everything and allow-web", res.OtherPolicies)
		}
		if !strings.Contains(res.Degraded, "allow-everything, allow-web") {
			t.Errorf("degraded = %q, want the allowing policies named", res.Degraded)
		}
	})

	t.Run("an allow policy wearing soar's label is still reported", func(t *testing.T) {
		testenv.Pod(t, cs, "disguise", "web-1")
		fake := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{
				Name: kube.PolicyName("other-incident"), Namespace: "disguise",
				Labels:      map[string]string{kube.ManagedByLabel: kube.ManagedByValue},
				Annotations: map[string]string{kube.IncidentAnnotation: "other-incident"},
			},
			Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}},
		}
		if _, err := cs.NetworkingV1().NetworkPolicies("disguise").Create(ctx, fake, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "disguise", Pod: "web-1", Incident: incident})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.OtherPolicies, []string{fake.Name}) || !strings.Contains(res.Degraded, fake.Name) {
			t.Errorf("other policies %v, degraded %q: the disguised allow-all policy was trusted as soar's", res.OtherPolicies, res.Degraded)
		}
	})

	t.Run("a hostNetwork pod is labeled but reported as not contained", func(t *testing.T) {
		testenv.Pod(t, cs, "hostnet", "agent-1", func(p *corev1.Pod) { p.Spec.HostNetwork = true })
		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "hostnet", Pod: "agent-1", Incident: incident})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Labeled || !res.HostNetwork || !strings.Contains(res.Degraded, "hostNetwork") {
			t.Errorf("labeled %v, hostNetwork %v, degraded %q", res.Labeled, res.HostNetwork, res.Degraded)
		}
	})

	t.Run("a pod behind the deny-all policy alone is not degraded", func(t *testing.T) {
		testenv.Pod(t, cs, "clean", "web-1")
		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "clean", Pod: "web-1", Incident: incident})
		if err != nil {
			t.Fatal(err)
		}
		if res.Degraded != "" || res.HostNetwork || len(res.OtherPolicies) != 0 {
			t.Errorf("degraded %q, hostNetwork %v, other policies %v", res.Degraded, res.HostNetwork, res.OtherPolicies)
		}
	})

	t.Run("detach removes the ReplicaSet's selector labels and records them", func(t *testing.T) {
		_, rs, pod := testenv.DeploymentChain(t, cs, "detach", "api", 2)
		res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "detach", Pod: pod.Name, PodUID: string(pod.UID), Incident: incident, Detach: true})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"app": "api", "pod-template-hash": "5d8f7"}
		if !res.Detached || !apiequality.Semantic.DeepEqual(res.DetachedLabels, want) || res.Owner != "ReplicaSet/"+rs.Name || !res.Labeled {
			t.Errorf("result = %+v, want detached from %s with labels %v", res, rs.Name, want)
		}
		got := getPod(t, cs, "detach", pod.Name)
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if sel.Matches(labels.Set(got.Labels)) {
			t.Errorf("the ReplicaSet's selector %s still matches the pod's labels %v", sel, got.Labels)
		}
		if got.Labels["tier"] != "backend" {
			t.Errorf("a label outside the selector was removed: %v", got.Labels)
		}
		if got.Annotations[kube.DetachedLabelsAnnotation] != `{"app":"api","pod-template-hash":"5d8f7"}` {
			t.Errorf("detached-labels annotation = %q", got.Annotations[kube.DetachedLabelsAnnotation])
		}
		assertSelects(t, getPolicy(t, cs, "detach", policy), got, true)

		// A retry writes nothing and still reports what was removed.
		before := snapshot(t, cs, "detach", pod.Name, policy)
		again, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "detach", Pod: pod.Name, Incident: incident, Detach: true})
		if err != nil {
			t.Fatal(err)
		}
		if again.Detached || again.Labeled || !apiequality.Semantic.DeepEqual(again.DetachedLabels, want) {
			t.Errorf("second run = %+v", again)
		}
		before.assertUnchanged(t)

		// The ReplicaSet controller releases a pod it no longer selects; a
		// retry after that must not fail for want of an owner.
		got.OwnerReferences = nil
		if _, err := cs.CoreV1().Pods("detach").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		before = snapshot(t, cs, "detach", pod.Name, policy)
		orphan, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "detach", Pod: pod.Name, Incident: incident, Detach: true})
		if err != nil || !apiequality.Semantic.DeepEqual(orphan.DetachedLabels, want) {
			t.Fatalf("retry after release by the ReplicaSet: %+v, %v", orphan, err)
		}
		before.assertUnchanged(t)
	})

	t.Run("detach refuses owners that would not replace the pod", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			mod  func(*corev1.Pod)
		}{
			{name: "bare", mod: func(*corev1.Pod) {}},
			{name: "stateful-0", mod: controlledBy("apps/v1", "StatefulSet", "stateful", "uid-sts")},
			{name: "daemon-x", mod: controlledBy("apps/v1", "DaemonSet", "daemon", "uid-ds")},
		} {
			testenv.Pod(t, cs, "owners", tc.name, tc.mod)
			_, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "owners", Pod: tc.name, Incident: incident, Detach: true})
			if !errors.Is(err, kube.ErrUnsupportedOwner) {
				t.Errorf("%s: err = %v, want ErrUnsupportedOwner", tc.name, err)
			}
			if got := getPod(t, cs, "owners", tc.name); len(got.Labels) != 1 {
				t.Errorf("%s: pod was changed: %v", tc.name, got.Labels)
			}
		}
		if _, err := cs.NetworkingV1().NetworkPolicies("owners").Get(ctx, policy, metav1.GetOptions{}); err == nil {
			t.Error("a policy was created although detach was refused")
		}
	})

	t.Run("a missing incident is invalid input", func(t *testing.T) {
		_, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "shop", Pod: "web-2"})
		if !errors.Is(err, kube.ErrInvalidInput) {
			t.Fatalf("err = %v, want ErrInvalidInput", err)
		}
	})

	t.Run("a missing pod is ErrPodNotFound", func(t *testing.T) {
		testenv.Namespace(t, cs, "empty")
		_, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "empty", Pod: "gone", Incident: incident})
		if !errors.Is(err, kube.ErrPodNotFound) {
			t.Fatalf("err = %v, want ErrPodNotFound", err)
		}
		if _, err := cs.NetworkingV1().NetworkPolicies("empty").Get(ctx, policy, metav1.GetOptions{}); err == nil {
			t.Error("a policy was created for a pod that does not exist")
		}
	})

	t.Run("short of requests, a missing pod costs one read and no policy", func(t *testing.T) {
		testenv.Namespace(t, cs, "ghosts")
		var mu sync.Mutex
		var sent []string
		counting := func(cfg *rest.Config) *kube.Client {
			cfg.WrapTransport = func(next http.RoundTripper) http.RoundTripper {
				return roundTripper(func(req *http.Request) (*http.Response, error) {
					mu.Lock()
					sent = append(sent, req.Method+" "+req.URL.Path)
					mu.Unlock()
					return next.RoundTrip(req)
				})
			}
			c, err := kube.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		sentSince := func(from int) []string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(sent[from:])
		}
		// A budget that hardly refills: 100 at once, one more every 1000 s.
		cfg := rest.CopyConfig(k.Config)
		cfg.QPS, cfg.Burst = 0.001, 100
		short := counting(cfg)
		if short.Pressed() {
			t.Fatal("a full budget is pressed")
		}
		// At rest the speculation costs a missing pod three requests.
		if _, err := short.Quarantine(ctx, kube.QuarantineRequest{Namespace: "ghosts", Pod: "ghost-1", Incident: "soar-ghost-1"}); !errors.Is(err, kube.ErrPodNotFound) {
			t.Fatalf("err = %v, want ErrPodNotFound", err)
		}
		if got := sentSince(0); len(got) != 3 {
			t.Fatalf("at rest a missing pod sent %d requests %q, want 3 (read, policy, its deletion)", len(got), got)
		}
		if !short.SpendBudget(80) || !short.Pressed() {
			t.Fatal("a budget with 17 of 100 requests left is not pressed")
		}
		from := len(sentSince(0))
		if _, err := short.Quarantine(ctx, kube.QuarantineRequest{Namespace: "ghosts", Pod: "ghost-2", Incident: "soar-ghost-2"}); !errors.Is(err, kube.ErrPodNotFound) {
			t.Fatalf("err = %v, want ErrPodNotFound", err)
		}
		if got := sentSince(from); len(got) != 1 || !strings.HasPrefix(got[0], "GET ") || !strings.HasSuffix(got[0], "/pods/ghost-2") {
			t.Fatalf("short of requests a missing pod sent %q, want the pod's read alone", got)
		}
		if _, err := cs.NetworkingV1().NetworkPolicies("ghosts").Get(ctx, kube.PolicyName("soar-ghost-2"), metav1.GetOptions{}); err == nil {
			t.Error("a policy was created for a pod that does not exist")
		}
		// A pod that is there is still quarantined, policy first.
		testenv.Pod(t, cs, "ghosts", "real-1")
		res, err := short.Quarantine(ctx, kube.QuarantineRequest{Namespace: "ghosts", Pod: "real-1", Incident: "soar-real-1"})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Labeled || !res.PolicyCreated {
			t.Fatalf("result %+v, want the pod labeled and the policy created", res)
		}
		got := sentSince(from + 1)
		policyAt := slices.IndexFunc(got, func(r string) bool { return strings.HasPrefix(r, "POST ") && strings.HasSuffix(r, "/networkpolicies") })
		patchAt := slices.IndexFunc(got, func(r string) bool { return strings.HasPrefix(r, "PATCH ") && strings.HasSuffix(r, "/pods/real-1") })
		if got[0] != "GET /api/v1/namespaces/ghosts/pods/real-1" || policyAt < 1 || patchAt < policyAt {
			t.Fatalf("requests %q: want the pod read, then the policy, then the label", got)
		}
	})

	t.Run("a replaced pod is ErrTargetChanged and is left alone", func(t *testing.T) {
		old := testenv.ReplacedPod(t, cs, "billing", "api-1")
		_, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "billing", Pod: "api-1", PodUID: string(old.UID), Incident: incident})
		if !errors.Is(err, kube.ErrTargetChanged) {
			t.Fatalf("err = %v, want ErrTargetChanged", err)
		}
		if now := getPod(t, cs, "billing", "api-1"); len(now.Labels) != 1 {
			t.Errorf("the namesake was quarantined: %v", now.Labels)
		}
		if _, err := cs.NetworkingV1().NetworkPolicies("billing").Get(ctx, policy, metav1.GetOptions{}); err == nil {
			t.Error("the policy created while the pod was read was left behind for the namesake")
		}
	})

	t.Run("a pod replaced between read and patch is ErrTargetChanged", func(t *testing.T) {
		testenv.Pod(t, cs, "race", "api-1")
		racy := interceptPodWrite(t, k, http.MethodPatch, func() {
			testenv.ReplacedPod(t, cs, "race", "api-1")
		})
		_, err := racy.Quarantine(ctx, kube.QuarantineRequest{Namespace: "race", Pod: "api-1", Incident: incident})
		if !errors.Is(err, kube.ErrTargetChanged) {
			t.Fatalf("err = %v, want ErrTargetChanged", err)
		}
		if now := getPod(t, cs, "race", "api-1"); len(now.Labels) != 1 {
			t.Errorf("the namesake was quarantined: %v", now.Labels)
		}
	})

	t.Run("a conflict on the same pod is transient", func(t *testing.T) {
		testenv.Pod(t, cs, "busy", "api-1")
		busy := conflictOnPatch(t, k)
		_, err := busy.Quarantine(ctx, kube.QuarantineRequest{Namespace: "busy", Pod: "api-1", Incident: incident})
		if err == nil || errors.Is(err, kube.ErrTargetChanged) || errors.Is(err, kube.ErrPodNotFound) {
			t.Fatalf("err = %v, want a plain (retryable) error", err)
		}
		if res, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "busy", Pod: "api-1", Incident: incident}); err != nil || !res.Labeled {
			t.Fatalf("retry: %+v, %v", res, err)
		}
	})

	t.Run("a terminating namespace is ErrNamespaceTerminating", func(t *testing.T) {
		testenv.Pod(t, cs, "doomed", "web-1")
		if err := cs.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// Without a namespace controller the namespace stays Terminating, and
		// its pod stays too.
		_, err := c.Quarantine(ctx, kube.QuarantineRequest{Namespace: "doomed", Pod: "web-1", Incident: incident})
		if !errors.Is(err, kube.ErrNamespaceTerminating) {
			t.Fatalf("err = %v, want ErrNamespaceTerminating", err)
		}
		if got := getPod(t, cs, "doomed", "web-1"); len(got.Labels) != 1 {
			t.Errorf("the pod was labeled without a policy: %v", got.Labels)
		}
	})
}

// Fixtures and assertions shared by the package's tests.

func getPod(t *testing.T, cs kubernetes.Interface, namespace, name string) *corev1.Pod {
	t.Helper()
	p, err := cs.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func getPolicy(t *testing.T, cs kubernetes.Interface, namespace, name string) *networkingv1.NetworkPolicy {
	t.Helper()
	np, err := cs.NetworkingV1().NetworkPolicies(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return np
}

// versions records resourceVersions, to prove a call wrote nothing.
type versions struct {
	read func() map[string]string
	then map[string]string
}

// snapshot records the resourceVersions of a pod and a policy (missing ones
// as "absent").
func snapshot(t *testing.T, cs kubernetes.Interface, namespace, pod, policy string) versions {
	t.Helper()
	read := func() map[string]string {
		ctx := context.Background()
		out := map[string]string{"pod": "absent", "policy": "absent"}
		if p, err := cs.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{}); err == nil {
			out["pod"] = p.ResourceVersion
		}
		if np, err := cs.NetworkingV1().NetworkPolicies(namespace).Get(ctx, policy, metav1.GetOptions{}); err == nil {
			out["policy"] = np.ResourceVersion
		}
		return out
	}
	return versions{read: read, then: read()}
}

func (v versions) assertUnchanged(t *testing.T) {
	t.Helper()
	if now := v.read(); !apiequality.Semantic.DeepEqual(now, v.then) {
		t.Errorf("objects were written: resourceVersions %v → %v", v.then, now)
	}
}

// controlledBy makes a pod controlled by the named owner.
func controlledBy(apiVersion, kind, name, uid string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(uid), Controller: new(true)}}
	}
}

// onNode binds a pod to a node: the API server then deletes it gracefully,
// leaving it terminating, since no kubelet confirms it stopped.
func onNode(node string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.NodeName = node }
}

// interceptPodWrite returns a Client on k that runs before ahead of its first
// pod request with the given HTTP method, to stage a race between soar's read
// and its write.
func interceptPodWrite(t *testing.T, k *devstack.Kube, method string, before func()) *kube.Client {
	t.Helper()
	var done atomic.Bool
	return clientWithTransport(t, k, func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
		if req.Method == method && strings.Contains(req.URL.Path, "/pods/") && done.CompareAndSwap(false, true) {
			before()
		}
		return next.RoundTrip(req)
	})
}

// conflictOnPatch returns a Client on k whose first pod PATCH is answered
// with a 409 optimistic-lock conflict, without reaching the API server.
func conflictOnPatch(t *testing.T, k *devstack.Kube) *kube.Client {
	t.Helper()
	var done atomic.Bool
	return clientWithTransport(t, k, func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
		if req.Method == http.MethodPatch && strings.Contains(req.URL.Path, "/pods/") && done.CompareAndSwap(false, true) {
			body := `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Conflict","code":409,` +
				`"message":"Operation cannot be fulfilled on pods: the object has been modified; please apply your changes to the latest version and try again"}`
			return &http.Response{
				StatusCode: http.StatusConflict,
				Header:     http.Header{"Content-Type": []string{"application/json"}},
				Body:       io.NopCloser(strings.NewReader(body)),
				Request:    req,
			}, nil
		}
		return next.RoundTrip(req)
	})
}

func clientWithTransport(t *testing.T, k *devstack.Kube, rt func(*http.Request, http.RoundTripper) (*http.Response, error)) *kube.Client {
	t.Helper()
	cfg := rest.CopyConfig(k.Config)
	cfg.WrapTransport = func(next http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) { return rt(req, next) })
	}
	c, err := kube.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func assertDenyAll(t *testing.T, np *networkingv1.NetworkPolicy, incident string) {
	t.Helper()
	want := kube.DenyAllPolicy(np.Namespace, incident).Spec
	if !apiequality.Semantic.DeepEqual(np.Spec, want) {
		t.Errorf("policy spec = %+v, want deny-all %+v", np.Spec, want)
	}
	if len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 0 || len(np.Spec.PolicyTypes) != 2 {
		t.Errorf("policy allows traffic: %+v", np.Spec)
	}
}

func assertSelects(t *testing.T, np *networkingv1.NetworkPolicy, pod *corev1.Pod, want bool) {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	if got := sel.Matches(labels.Set(pod.Labels)); got != want {
		t.Errorf("policy %s selects pod %s = %v, want %v", np.Name, pod.Name, got, want)
	}
}
