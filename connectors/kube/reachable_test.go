package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/internal/testenv"
)

// TestReachable: the worker's readiness check asks a real API server its
// version. It passes while the server answers, even with the client-side
// limit spent (a storm's quarantines must not fail the probe, nor the
// probe take their requests), and fails, saying why, when the server
// cannot be reached.
func TestReachable(t *testing.T) {
	k, _ := testenv.Kube(t)
	ctx := context.Background()

	cfg := rest.CopyConfig(k.Config)
	cfg.QPS, cfg.Burst = 0.001, 1 // one request, then one every 1,000 s
	c, err := NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Reachable(short); err != nil {
		t.Errorf("Reachable with the client-side limit spent: %v", err)
	}

	gone := rest.CopyConfig(k.Config)
	gone.Host = "https://127.0.0.1:1"
	if c, err = NewForConfig(gone); err != nil {
		t.Fatal(err)
	}
	if err := c.Reachable(ctx); err == nil || !strings.Contains(err.Error(), "the Kubernetes API server does not answer") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Reachable with no server: %v", err)
	}
}
