package kube

import (
	"maps"
	"testing"
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
