package main

import (
	"maps"
	"strings"
	"testing"
)

func TestPodIndexFlag(t *testing.T) {
	got, err := parsePodIndexes([]string{"in-cluster", "eu=/etc/soar/eu.kubeconfig", "us=in-cluster"})
	if want := map[string]string{"": "in-cluster", "eu": "/etc/soar/eu.kubeconfig", "us": "in-cluster"}; err != nil || !maps.Equal(got, want) {
		t.Errorf("parsed %v, %v; want %v", got, err, want)
	}
	for _, bad := range [][]string{{"eu="}, {""}, {"in-cluster", "/x"}, {"eu=a", "eu=b"}} {
		if _, err := parsePodIndexes(bad); err == nil || !strings.Contains(err.Error(), "--pod-index") {
			t.Errorf("%q: %v, want an error naming the flag", bad, err)
		}
	}
}
