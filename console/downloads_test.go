package console

import (
	"testing"
	"time"
)

func TestDownloadsArePacedPerPerson(t *testing.T) {
	l := newDownloadLimits(6) // six at once, then one every ten seconds
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for i := range 6 {
		if ok, _, _ := l.allow("user:mallory", now); !ok {
			t.Fatalf("download %d of the first six refused", i+1)
		}
	}
	ok, wait, warn := l.allow("user:mallory", now)
	if ok || wait != 10*time.Second || !warn {
		t.Fatalf("the seventh at once: allowed %v, wait %v, warn %v; want refused, 10s, warned", ok, wait, warn)
	}
	if ok, _, warn := l.allow("user:mallory", now.Add(time.Second)); ok || warn {
		t.Errorf("a second later: allowed %v, warned %v; want refused, and not logged again", ok, warn)
	}
	// A refusal takes nothing: ten seconds after the bucket emptied there
	// is one download, not one less.
	if ok, _, _ := l.allow("user:mallory", now.Add(10*time.Second)); !ok {
		t.Error("ten seconds later: refused, want one download")
	}
	if ok, _, _ := l.allow("user:alice", now.Add(10*time.Second)); !ok {
		t.Error("another person is refused because of mallory's loop")
	}

	// Full buckets are forgotten, so the map holds only recent downloaders.
	later := now.Add(2 * time.Minute)
	l.allow("user:bob", later)
	if _, kept := l.people["user:alice"]; kept {
		t.Error("alice's bucket, full again, was kept")
	}
	if _, kept := l.people["user:bob"]; !kept {
		t.Error("bob's bucket, just used, was forgotten")
	}

	var off *downloadLimits
	if ok, _, _ := off.allow("user:x", now); !ok {
		t.Error("no limits refused a download")
	}
	if ok, _, _ := newDownloadLimits(-1).allow("user:x", now); !ok {
		t.Error("a negative limit refused a download")
	}
}
