package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/internal/testenv"
)

var baselineOnce sync.Once

// applyBaseline installs deploy/baseline-policies.yaml once and keeps it:
// it checks only namespaces labelled soar.dev/baseline.
func applyBaseline(t *testing.T) {
	t.Helper()
	docs := manifests(t, "baseline-policies.yaml")
	if len(docs["ValidatingAdmissionPolicy"]) != 2 || len(docs["ValidatingAdmissionPolicyBinding"]) != 6 || len(docs["ConfigMap"]) != 1 {
		t.Fatalf("deploy/baseline-policies.yaml: want two policies, six bindings and the allow-list, got %v", kinds(docs))
	}
	testenv.Namespace(t, kubeCS, "soar")
	var err error
	baselineOnce.Do(func() {
		if err = createConfigMap(docs); err == nil {
			err = installPolicies(docs)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// warnings collects the API server's warnings to a client.
type warnings struct {
	mu  sync.Mutex
	got []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, text)
}

func (w *warnings) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.Join(w.got, "\n")
	w.got = nil
	return s
}

// TestBaselinePoliciesInEachMode: deploy/baseline-policies.yaml on a real
// API server. In a namespace labelled soar.dev/baseline=deny, a Pod, a
// Deployment and a CronJob from a registry off the allow-list, or with a
// mutable tag, are refused naming the policy; pinned images from allowed
// registries pass. In =warn they pass with the warning; in =audit and
// unlabelled namespaces they pass without one.
func TestBaselinePoliciesInEachMode(t *testing.T) {
	applyBaseline(t)
	ctx := context.Background()
	w := &warnings{}
	cfg := rest.CopyConfig(kubeConfig)
	cfg.WarningHandler = w
	cs := kubernetes.NewForConfigOrDie(cfg)
	mode := func(ns, m string) {
		testenv.Namespace(t, kubeCS, ns)
		if m == "" {
			return
		}
		n, err := kubeCS.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		noErr(t, err)
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels["soar.dev/baseline"] = m
		_, err = kubeCS.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{})
		noErr(t, err)
	}
	mode("baseline-deny", "deny")
	mode("baseline-warn", "warn")
	mode("baseline-audit", "audit")
	mode("baseline-off", "")

	const pinned = "ghcr.io/acme/shop:2.0"
	bad := map[string]string{
		"docker.io/library/nginx:1.27":   "is not from an allowed registry",
		"nginx:1.27":                     "image docker.io/library/nginx:1.27 is not from an allowed registry",
		"ghcr.io/acme/shop:latest":       "has a mutable tag",
		"ghcr.io/acme/shop":              "has a mutable tag",
		"localhost:5000/tools/probe:1.0": "is not from an allowed registry",
	}
	testenv.Eventually(t, 30*time.Second, "the baseline in force", func() error {
		if err := workloads(ctx, cs, "baseline-deny", "ghcr.io/acme/shop:latest")["Pod"]; err == nil {
			return fmt.Errorf("a pod with :latest in a deny namespace was accepted")
		}
		return nil
	})
	for image, want := range bad {
		for kind, err := range workloads(ctx, cs, "baseline-deny", image) {
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "soar-baseline-") {
				t.Errorf("deny: a %s with %s: %v, want refused: %q", kind, image, err, want)
			}
		}
		w.take()
		for kind, err := range workloads(ctx, cs, "baseline-warn", image) {
			if err != nil {
				t.Errorf("warn: a %s with %s: %v", kind, image, err)
			}
		}
		if got := w.take(); !strings.Contains(got, want) {
			t.Errorf("warn: %s drew the warnings %q, want %q", image, got, want)
		}
		for _, ns := range []string{"baseline-audit", "baseline-off"} {
			for kind, err := range workloads(ctx, cs, ns, image) {
				if err != nil {
					t.Errorf("%s: a %s with %s: %v", ns, kind, image, err)
				}
			}
			if got := w.take(); strings.Contains(got, "soar-baseline") || strings.Contains(got, want) {
				t.Errorf("%s: %s drew the warnings %q", ns, image, got)
			}
		}
	}
	for _, image := range []string{pinned, "registry.k8s.io/pause:3.10", "ghcr.io/acme/shop@sha256:" + strings.Repeat("ab", 32)} {
		for kind, err := range workloads(ctx, cs, "baseline-deny", image) {
			if err != nil {
				t.Errorf("deny: a %s with %s: %v", kind, image, err)
			}
		}
	}
}
