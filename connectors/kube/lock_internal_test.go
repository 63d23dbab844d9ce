package kube

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestApplyLocksKeepsTheDerivedKeysTrue(t *testing.T) {
	a, b := "incident-a", "incident-b"
	ha, hb := IncidentHash(a), IncidentHash(b)
	op := func(ns, pod, inc string, lock bool) *lockOp {
		return &lockOp{key: podLockKey(ns, pod), incident: inc, lock: lock}
	}

	// Two incidents on one pod, a second pod of a in another namespace.
	got := applyLocks(nil, []*lockOp{op("shop", "web-0", a, true), op("shop", "web-0", b, true), op("db", "pg-0", a, true)})
	want := map[string]string{
		"pod_shop_web-0":                    ha + " " + hb,
		"pod_db_pg-0":                       ha,
		"ns_shop":                           min(ha, hb) + " " + max(ha, hb),
		"ns_db":                             ha,
		"netpol_shop_soar-quarantine-" + ha: ha,
		"netpol_shop_soar-quarantine-" + hb: hb,
		"netpol_db_soar-quarantine-" + ha:   ha,
		"incident_" + ha:                    a,
		"incident_" + hb:                    b,
	}
	if !maps.Equal(got, want) {
		t.Fatalf("after locking:\n got %v\nwant %v", got, want)
	}

	// Locking again changes nothing.
	if again := applyLocks(got, []*lockOp{op("shop", "web-0", a, true)}); !maps.Equal(again, got) {
		t.Errorf("a repeated lock changed the list:\n got %v\nwant %v", again, got)
	}

	// Releasing a from both pods leaves b's lock, and nothing of a.
	got = applyLocks(got, []*lockOp{op("shop", "web-0", a, false), op("db", "pg-0", a, false)})
	want = map[string]string{
		"pod_shop_web-0":                    hb,
		"ns_shop":                           hb,
		"netpol_shop_soar-quarantine-" + hb: hb,
		"incident_" + hb:                    b,
	}
	if !maps.Equal(got, want) {
		t.Fatalf("after releasing a:\n got %v\nwant %v", got, want)
	}

	// Unlocking what was never locked changes nothing; unlocking the last
	// leaves an empty list.
	if again := applyLocks(got, []*lockOp{op("shop", "other", a, false)}); !maps.Equal(again, got) {
		t.Errorf("unlocking a pod never locked changed the list: %v", again)
	}
	if got = applyLocks(got, []*lockOp{op("shop", "web-0", b, false)}); len(got) != 0 {
		t.Errorf("after the last release: %v, want an empty list", got)
	}
}

func TestCompactControlsRoundTrips(t *testing.T) {
	a, b := "incident-a", "incident-b"
	ops := []*lockOp{
		{key: ImageKey("ghcr.io/evil/miner:1.0"), incident: a, lock: true},
		{key: ImageKey("ghcr.io/evil/miner@sha256:" + "ab"), incident: a, lock: true},
		{key: ImageKey("my_registry:5000/x_y/z:1"), incident: b, lock: true},
		{key: ImageKey("ghcr.io/evil/miner:1.0"), incident: b, lock: true},
		{key: FreezeKey("shop"), incident: b, lock: true},
	}
	l := &locker{compact: true}
	got := l.apply(nil, ops)
	ha, hb := IncidentHash(a), IncidentHash(b)
	want := map[string]string{
		"images": "ghcr.io/evil/miner:1.0 " + ha + "," + hb + "\n" +
			"ghcr.io/evil/miner@sha256:ab " + ha + "\n" +
			"my_registry:5000/x_y/z:1 " + hb,
		"frozen":    "shop " + hb,
		"incidents": min(ha+" "+a, hb+" "+b) + "\n" + max(ha+" "+a, hb+" "+b),
	}
	if !maps.Equal(got, want) {
		t.Fatalf("compact:\n got %q\nwant %q", got, want)
	}
	if again := l.apply(got, ops); !maps.Equal(again, got) {
		t.Errorf("applying the same ops again changed the list: %q", again)
	}
	// Unblocking a's images and b's freeze leaves b's images only.
	got = l.apply(got, []*lockOp{{prefix: "image_", incident: a}, {key: FreezeKey("shop"), incident: b}})
	want = map[string]string{
		"images":    "ghcr.io/evil/miner:1.0 " + hb + "\n" + "my_registry:5000/x_y/z:1 " + hb,
		"incidents": hb + " " + b,
	}
	if !maps.Equal(got, want) {
		t.Fatalf("after unblocking a and unfreezing:\n got %q\nwant %q", got, want)
	}
}

// TestProveHeldWaitsForTheAPIServerToSeeTheList: the lock's policies read
// the list through an informer, so the first dry runs after a write may be
// let through. proveHeld asks again until they are refused, and reports a
// lock that keeps letting them through once it may wait no longer. (A fake
// clientset, because a real API server's informer lag cannot be ordered.)
func TestProveHeldWaitsForTheAPIServerToSeeTheList(t *testing.T) {
	refused := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "web-0",
		errors.New("ValidatingAdmissionPolicy 'soar-quarantine-lock-pods' denied request"))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", UID: "u"}}

	// Let through twice, then refused: proven.
	cs := fake.NewClientset()
	var patches int
	cs.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if patches++; patches <= 2 {
			return true, pod, nil
		}
		return true, nil, refused
	})
	cs.PrependReactor("delete", "networkpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, refused
	})
	if why := New(cs).proveHeld(context.Background(), pod, "soar-quarantine-x"); why != "" || patches != 3 {
		t.Errorf("proveHeld = %q after %d dry runs, want proven on the third", why, patches)
	}

	// Always let through: reported, within the context's time.
	cs = fake.NewClientset()
	cs.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, pod, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if why := New(cs).proveHeld(ctx, pod, "soar-quarantine-x"); !strings.Contains(why, "let soar itself remove the quarantine label") {
		t.Errorf("proveHeld on a lock that does not hold = %q", why)
	}

	// An error is reported at once, without waiting.
	cs = fake.NewClientset()
	cs.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "web-0", errors.New("RBAC: no patch"))
	})
	start := time.Now()
	if why := New(cs).proveHeld(context.Background(), pod, "soar-quarantine-x"); !strings.Contains(why, "could not check the lock") || time.Since(start) > time.Second {
		t.Errorf("proveHeld on an error = %q after %s", why, time.Since(start))
	}
}

// TestReleaseWaitsForTheAPIServerToSeeTheUnlock: Release takes the pod off
// the lock list, then unlabels it and deletes its policy; the lock's
// policies may still refuse that for a moment, in the incident's own name,
// until their informer sees the list without it. Release asks again. A
// refusal in another incident's name is not waited out. (A fake
// clientset, because a real API server's informer lag cannot be ordered.)
func TestReleaseWaitsForTheAPIServerToSeeTheUnlock(t *testing.T) {
	const inc = "soar-inc-1"
	lockedBy := func(resource, incident string) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: resource}, "web-0",
			errors.New("ValidatingAdmissionPolicy 'soar-quarantine-lock-pods' denied request: pod shop/web-0 is quarantined by soar incident "+incident+
				": its labels, soar's annotations and its spec are locked until the incident releases it (soar incident show "+incident+"; break-glass: group soar:break-glass)"))
	}
	setup := func(refusals int, incident string) (*Client, *int, *int) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", UID: "u",
			Labels:      map[string]string{IncidentLabel(inc): QuarantineValue, QuarantineLabel: QuarantineValue},
			Annotations: map[string]string{PodIncidentAnnotation(inc): inc}}}
		list := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "soar", Name: "soar-locks"}, Data: map[string]string{}}
		cs := fake.NewClientset(pod, list)
		var patches, deletes int
		cs.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			if patches++; patches <= refusals {
				return true, nil, lockedBy("pods", incident)
			}
			return true, pod, nil
		})
		// Unlabeled: no pod holds the policy any more.
		cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, &corev1.PodList{}, nil
		})
		cs.PrependReactor("delete", "networkpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
			if deletes++; deletes <= refusals {
				return true, nil, lockedBy("networkpolicies", incident)
			}
			return true, nil, nil
		})
		return New(cs).WithLocks(DefaultLockList), &patches, &deletes
	}
	req := ReleaseRequest{Namespace: "shop", Pod: "web-0", PodUID: "u", Incident: inc}

	c, patches, deletes := setup(2, inc)
	if res, err := c.Release(context.Background(), req); err != nil || !res.Unlabeled || !res.PolicyDeleted || *patches != 3 || *deletes != 3 {
		t.Errorf("release refused twice in its own incident's name: %+v, %v after %d patches and %d deletes; want done on the third of each", res, err, *patches, *deletes)
	}

	c, patches, _ = setup(100, "soar-other-incident")
	start := time.Now()
	if _, err := c.Release(context.Background(), req); !lockRefused(err) || *patches != 1 || time.Since(start) > time.Second {
		t.Errorf("release refused in another incident's name: %v after %d patches and %s; want that refusal at once", err, *patches, time.Since(start))
	}
}
