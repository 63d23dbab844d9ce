package playbooks

import (
	"regexp"
	"testing"
)

func TestIncidentID(t *testing.T) {
	format := regexp.MustCompile(`^soar-[a-z0-9-]+-[0-9a-f]{20}$`)
	tests := []struct {
		name          string
		playbook, key string
	}{
		{"namespace and pod", "terminal-shell-in-container", "payments/checkout-7d9f8b6c5-x2lqp"},
		{"empty key", "p", ""},
		{"hostile key", "p", "'; DROP TABLE incidents; --\x00\n<script>"},
		{"long key", "p", string(make([]byte, 1<<16))},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := IncidentID(tt.playbook, tt.key)
			if id != IncidentID(tt.playbook, tt.key) {
				t.Fatal("IncidentID is not stable")
			}
			if !format.MatchString(id) {
				t.Errorf("IncidentID = %q, want soar-<playbook>-<20 hex digits>", id)
			}
			if other, dup := seen[id]; dup {
				t.Errorf("IncidentID = %q for both %q and %q", id, other, tt.name)
			}
			seen[id] = tt.name
		})
	}
}

// TestIncidentIDIsPinned pins the exact ID: changing the derivation would
// split every open incident in two, so it must only ever change on purpose.
func TestIncidentIDIsPinned(t *testing.T) {
	// printf 'terminal-shell-in-container\0payments/checkout-7d9f8b6c5-x2lqp' | sha256sum | cut -c1-20
	const want = "soar-terminal-shell-in-container-b1690f7ce78082cc9065"
	got := IncidentID("terminal-shell-in-container", "payments/checkout-7d9f8b6c5-x2lqp")
	if got != want {
		t.Errorf("IncidentID = %q, want %q", got, want)
	}
}

func TestIncidentIDSeparatesNameFromKey(t *testing.T) {
	if IncidentID("a", "b-c") == IncidentID("a-b", "c") {
		t.Error(`IncidentID("a", "b-c") == IncidentID("a-b", "c")`)
	}
}

func TestClusterIncidentIDKeepsClustersApart(t *testing.T) {
	if got, want := ClusterIncidentID("", "pb", "ns/pod"), IncidentID("pb", "ns/pod"); got != want {
		t.Errorf("no cluster: %s, want the single-cluster ID %s", got, want)
	}
	ids := map[string]string{}
	for _, c := range []struct{ cluster, key string }{
		{"", "ns/pod"}, {"a", "ns/pod"}, {"b", "ns/pod"},
		// A key that spells another pair's cluster and key cannot reach
		// its ID.
		{"", "a\x00pb\x00ns/pod"}, {"", "\x01a\x00pb\x00ns/pod"}, {"a", "b\x00ns/pod"},
	} {
		id := ClusterIncidentID(c.cluster, "pb", c.key)
		if other, dup := ids[id]; dup {
			t.Errorf("cluster %q key %q has the ID of %s", c.cluster, c.key, other)
		}
		ids[id] = c.cluster + "|" + c.key
	}
}
