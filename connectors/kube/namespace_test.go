package kube_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/testenv"
)

// TestNamespaceAnnotations covers AnnotateNamespace and
// RestoreNamespaceAnnotations on one API server.
func TestNamespaceAnnotationsAreRecordedAndRestoredLikeAPodsAre(t *testing.T) {
	k, cs := testenv.Kube(t)
	c := kube.New(cs)
	ctx := context.Background()
	original := map[string]string{"owner": "team-a"}

	t.Run("annotations are set and restored; each step is idempotent", func(t *testing.T) {
		ns := createNamespace(t, cs, "shop", original)
		req := kube.NamespaceMetadataRequest{Namespace: "shop", Values: map[string]string{"owner": "incident response", "note": "suspected miner", "team": "team-a"}}
		res, err := c.AnnotateNamespace(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changed || res.Namespace != "shop" || !slices.Equal(res.Added, []string{"note", "team"}) ||
			!apiequality.Semantic.DeepEqual(res.Previous, map[string]string{"owner": "team-a"}) ||
			!apiequality.Semantic.DeepEqual(res.Set, req.Values) {
			t.Errorf("result = %+v", res)
		}
		if got := getNamespace(t, cs, "shop"); !apiequality.Semantic.DeepEqual(got.Annotations, req.Values) {
			t.Errorf("annotations = %v, want %v", got.Annotations, req.Values)
		}

		rv := getNamespace(t, cs, "shop").ResourceVersion
		again, err := c.AnnotateNamespace(ctx, req)
		if err != nil || again.Changed || len(again.Added) != 0 || len(again.Previous) != 0 {
			t.Fatalf("second run = %+v, %v; want no change", again, err)
		}
		assertNamespaceVersion(t, cs, "shop", rv)

		restore := namespaceRestoreOf(res)
		undone, err := c.RestoreNamespaceAnnotations(ctx, restore)
		if err != nil || !slices.Equal(undone.Restored, []string{"note", "owner", "team"}) || len(undone.Skipped) != 0 || undone.AlreadyGone {
			t.Fatalf("restore = %+v, %v", undone, err)
		}
		got := getNamespace(t, cs, "shop")
		if !apiequality.Semantic.DeepEqual(got.Annotations, ns.Annotations) {
			t.Errorf("annotations = %v, want the original %v", got.Annotations, ns.Annotations)
		}
		if again, err := c.RestoreNamespaceAnnotations(ctx, restore); err != nil || !slices.Equal(again.Restored, undone.Restored) || len(again.Skipped) != 0 {
			t.Fatalf("second restore = %+v, %v", again, err)
		}
		assertNamespaceVersion(t, cs, "shop", got.ResourceVersion)
	})

	t.Run("a restore leaves alone what someone changed since", func(t *testing.T) {
		createNamespace(t, cs, "shop-2", original)
		res, err := c.AnnotateNamespace(ctx, kube.NamespaceMetadataRequest{Namespace: "shop-2", Values: map[string]string{"owner": "incident response", "note": "suspected miner"}})
		if err != nil {
			t.Fatal(err)
		}
		ns := getNamespace(t, cs, "shop-2")
		ns.Annotations["owner"] = "team-b"
		if _, err := cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		undone, err := c.RestoreNamespaceAnnotations(ctx, namespaceRestoreOf(res))
		if err != nil || !slices.Equal(undone.Restored, []string{"note"}) || !slices.Equal(undone.Skipped, []string{"owner"}) {
			t.Fatalf("restore = %+v, %v", undone, err)
		}
		if got := getNamespace(t, cs, "shop-2"); !apiequality.Semantic.DeepEqual(got.Annotations, map[string]string{"owner": "team-b"}) {
			t.Errorf("annotations = %v, want only the other writer's owner", got.Annotations)
		}
	})

	t.Run("a dry run stores nothing, annotating or restoring", func(t *testing.T) {
		createNamespace(t, cs, "shop-3", original)
		rv := getNamespace(t, cs, "shop-3").ResourceVersion
		req := kube.NamespaceMetadataRequest{Namespace: "shop-3", Values: map[string]string{"owner": "incident response", "note": "x"}, DryRun: true}
		res, err := c.AnnotateNamespace(ctx, req)
		if err != nil || !res.Changed || !res.DryRun || !slices.Equal(res.Added, []string{"note"}) || res.Previous["owner"] != "team-a" {
			t.Fatalf("dry run = %+v, %v", res, err)
		}
		assertNamespaceVersion(t, cs, "shop-3", rv)

		req.DryRun = false
		res, err = c.AnnotateNamespace(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		rv = getNamespace(t, cs, "shop-3").ResourceVersion
		restore := namespaceRestoreOf(res)
		restore.DryRun = true
		undone, err := c.RestoreNamespaceAnnotations(ctx, restore)
		if err != nil || !undone.DryRun || !slices.Equal(undone.Restored, []string{"note", "owner"}) {
			t.Fatalf("dry-run restore = %+v, %v", undone, err)
		}
		assertNamespaceVersion(t, cs, "shop-3", rv)
	})

	t.Run("reserved and invalid keys are refused before any write", func(t *testing.T) {
		createNamespace(t, cs, "shop-4", map[string]string{kube.IncidentAnnotation: "inc-1"})
		rv := getNamespace(t, cs, "shop-4").ResourceVersion
		for _, tc := range []struct {
			name     string
			call     func() error
			reserved bool
		}{
			{name: "annotation under soar.dev/", reserved: true, call: func() error {
				_, err := c.AnnotateNamespace(ctx, kube.NamespaceMetadataRequest{Namespace: "shop-4", Values: map[string]string{kube.IncidentAnnotation: "forged"}})
				return err
			}},
			{name: "restore that would remove a soar.dev/ annotation", reserved: true, call: func() error {
				_, err := c.RestoreNamespaceAnnotations(ctx, kube.RestoreNamespaceMetadataRequest{Namespace: "shop-4", Set: map[string]string{kube.IncidentAnnotation: "inc-1"}, Added: []string{kube.IncidentAnnotation}})
				return err
			}},
			{name: "invalid key", call: func() error {
				_, err := c.AnnotateNamespace(ctx, kube.NamespaceMetadataRequest{Namespace: "shop-4", Values: map[string]string{"not a key": "x"}})
				return err
			}},
			{name: "no values", call: func() error {
				_, err := c.AnnotateNamespace(ctx, kube.NamespaceMetadataRequest{Namespace: "shop-4"})
				return err
			}},
			{name: "no namespace", call: func() error {
				_, err := c.AnnotateNamespace(ctx, kube.NamespaceMetadataRequest{Values: map[string]string{"note": "x"}})
				return err
			}},
			{name: "restore of a key soar did not set", call: func() error {
				_, err := c.RestoreNamespaceAnnotations(ctx, kube.RestoreNamespaceMetadataRequest{Namespace: "shop-4", Added: []string{"note"}})
				return err
			}},
		} {
			err := tc.call()
			if !errors.Is(err, kube.ErrInvalidInput) || errors.Is(err, kube.ErrReservedKey) != tc.reserved {
				t.Errorf("%s: err = %v, want ErrInvalidInput (reserved: %v)", tc.name, err, tc.reserved)
			}
		}
		assertNamespaceVersion(t, cs, "shop-4", rv)
	})

	t.Run("a missing namespace is ErrNamespaceNotFound to annotate and already gone to restore", func(t *testing.T) {
		_, err := c.AnnotateNamespace(ctx, kube.NamespaceMetadataRequest{Namespace: "never", Values: map[string]string{"note": "x"}})
		if !errors.Is(err, kube.ErrNamespaceNotFound) || !apierrors.IsNotFound(err) {
			t.Fatalf("annotate: err = %v, want ErrNamespaceNotFound", err)
		}
		res, err := c.RestoreNamespaceAnnotations(ctx, kube.RestoreNamespaceMetadataRequest{Namespace: "never", Set: map[string]string{"note": "x"}, Added: []string{"note"}})
		if err != nil || !res.AlreadyGone || len(res.Restored) != 0 {
			t.Fatalf("restore = %+v, %v; want already gone", res, err)
		}
	})

	t.Run("a namespace changed between read and write is a conflict, and the retry decides afresh", func(t *testing.T) {
		createNamespace(t, cs, "shop-5", original)
		var done atomic.Bool
		racy := clientWithTransport(t, k, func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
			if req.Method == http.MethodPatch && strings.HasSuffix(req.URL.Path, "/namespaces/shop-5") && done.CompareAndSwap(false, true) {
				ns := getNamespace(t, cs, "shop-5")
				ns.Annotations["note"] = "set by someone else"
				if _, err := cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
					t.Error(err)
				}
			}
			return next.RoundTrip(req)
		})
		req := kube.NamespaceMetadataRequest{Namespace: "shop-5", Values: map[string]string{"note": "suspected miner"}}
		_, err := racy.AnnotateNamespace(ctx, req)
		if !apierrors.IsConflict(err) || errors.Is(err, kube.ErrInvalidInput) {
			t.Fatalf("err = %v, want a transient conflict", err)
		}
		if got := getNamespace(t, cs, "shop-5"); got.Annotations["note"] != "set by someone else" {
			t.Fatalf("annotations = %v: the other writer's value was overwritten", got.Annotations)
		}
		res, err := racy.AnnotateNamespace(ctx, req)
		if err != nil || !res.Changed || res.Previous["note"] != "set by someone else" || len(res.Added) != 0 {
			t.Fatalf("retry = %+v, %v; want the other writer's value recorded as previous", res, err)
		}
	})
}

func namespaceRestoreOf(res kube.NamespaceMetadataResult) kube.RestoreNamespaceMetadataRequest {
	return kube.RestoreNamespaceMetadataRequest{Namespace: res.Namespace, Set: res.Set, Previous: res.Previous, Added: res.Added}
}

func createNamespace(t *testing.T, cs kubernetes.Interface, name string, annotations map[string]string) *corev1.Namespace {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func getNamespace(t *testing.T, cs kubernetes.Interface, name string) *corev1.Namespace {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func assertNamespaceVersion(t *testing.T, cs kubernetes.Interface, name, rv string) {
	t.Helper()
	if got := getNamespace(t, cs, name).ResourceVersion; got != rv {
		t.Errorf("namespace %s was written: resourceVersion %s → %s", name, rv, got)
	}
}
