package main

import (
	"maps"
	"strings"
	"testing"

	"github.com/spf13/cobra"
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

// TestParkingFlags: the waiting room and the parked stream's limit reach
// the dispatcher's configuration; none of them may be zero or less.
func TestParkingFlags(t *testing.T) {
	cmd := &cobra.Command{}
	var f dispatchFlags
	f.register(cmd)
	if err := cmd.Flags().Parse([]string{"--unknown-pod-max-waiting", "100", "--parked-stream-max-bytes", "1048576"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.config("default", "test", nil)
	if err != nil || cfg.UnknownPodMaxWaiting != 100 || cfg.ParkedMaxBytes != 1<<20 {
		t.Errorf("config %+v, %v", cfg, err)
	}
	for _, args := range [][]string{{"--unknown-pod-max-waiting", "0"}, {"--parked-stream-max-bytes", "-1"}} {
		var f dispatchFlags
		c := &cobra.Command{}
		f.register(c)
		if err := c.Flags().Parse(args); err != nil {
			t.Fatal(err)
		}
		if _, err := f.config("default", "test", nil); err == nil || !strings.Contains(err.Error(), "want 1 or more") {
			t.Errorf("%v: %v", args, err)
		}
	}
}
