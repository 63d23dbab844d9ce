package kube_test

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/testenv"
)

func testCordon(t *testing.T, cs kubernetes.Interface) {
	c := kube.New(cs)
	ctx := context.Background()

	t.Run("cordons the pod's node and uncordons it; each step is idempotent", func(t *testing.T) {
		node := createNode(t, cs, "worker-1", false)
		pod := testenv.Pod(t, cs, "cordon", "web-1", onNode("worker-1"))
		req := kube.CordonRequest{Namespace: "cordon", Pod: "web-1", PodUID: string(pod.UID), Incident: "inc-1"}
		res, err := c.Cordon(ctx, req)
		if err != nil || !res.Cordoned || res.WasUnschedulable || res.Node != "worker-1" || res.NodeUID != string(node.UID) {
			t.Fatalf("cordon = %+v, %v", res, err)
		}
		got := getNode(t, cs, "worker-1")
		if !got.Spec.Unschedulable || got.Annotations[kube.CordonedByAnnotation] != "inc-1" {
			t.Errorf("node unschedulable %v, annotations %v", got.Spec.Unschedulable, got.Annotations)
		}

		rv := got.ResourceVersion
		if again, err := c.Cordon(ctx, req); err != nil || again != res {
			t.Fatalf("retry = %+v, %v; want the same result %+v", again, err, res)
		}
		assertNodeVersion(t, cs, "worker-1", rv)

		un, err := c.Uncordon(ctx, kube.UncordonRequest{Node: "worker-1", Incident: "inc-1"})
		if err != nil || !un.Uncordoned || un.Skipped != "" {
			t.Fatalf("uncordon = %+v, %v", un, err)
		}
		got = getNode(t, cs, "worker-1")
		if _, ok := got.Annotations[kube.CordonedByAnnotation]; got.Spec.Unschedulable || ok {
			t.Errorf("node unschedulable %v, annotations %v", got.Spec.Unschedulable, got.Annotations)
		}
		if again, err := c.Uncordon(ctx, kube.UncordonRequest{Node: "worker-1", Incident: "inc-1"}); err != nil || again.Uncordoned {
			t.Fatalf("second uncordon = %+v, %v", again, err)
		}
		assertNodeVersion(t, cs, "worker-1", got.ResourceVersion)
	})

	t.Run("a node cordoned before soar stays cordoned", func(t *testing.T) {
		createNode(t, cs, "worker-2", true)
		res, err := c.Cordon(ctx, kube.CordonRequest{Node: "worker-2", Incident: "inc-1"})
		if err != nil || res.Cordoned || !res.WasUnschedulable {
			t.Fatalf("cordon = %+v, %v", res, err)
		}
		rv := getNode(t, cs, "worker-2").ResourceVersion
		un, err := c.Uncordon(ctx, kube.UncordonRequest{Node: "worker-2", Incident: "inc-1"})
		if err != nil || un.Uncordoned || un.Skipped == "" {
			t.Fatalf("uncordon = %+v, %v; want it skipped", un, err)
		}
		if !getNode(t, cs, "worker-2").Spec.Unschedulable {
			t.Error("soar uncordoned a node it had not cordoned")
		}
		assertNodeVersion(t, cs, "worker-2", rv)
	})

	t.Run("only the incident that cordoned a node uncordons it", func(t *testing.T) {
		createNode(t, cs, "worker-3", false)
		if _, err := c.Cordon(ctx, kube.CordonRequest{Node: "worker-3", Incident: "inc-a"}); err != nil {
			t.Fatal(err)
		}
		res, err := c.Cordon(ctx, kube.CordonRequest{Node: "worker-3", Incident: "inc-b"})
		if err != nil || res.Cordoned || !res.WasUnschedulable {
			t.Fatalf("second incident's cordon = %+v, %v", res, err)
		}
		un, err := c.Uncordon(ctx, kube.UncordonRequest{Node: "worker-3", Incident: "inc-b"})
		if err != nil || un.Uncordoned || un.Skipped == "" {
			t.Fatalf("uncordon by the other incident = %+v, %v", un, err)
		}
		if un, err := c.Uncordon(ctx, kube.UncordonRequest{Node: "worker-3", Incident: "inc-a"}); err != nil || !un.Uncordoned {
			t.Fatalf("uncordon by the cordoning incident = %+v, %v", un, err)
		}
	})

	t.Run("a dry run stores nothing", func(t *testing.T) {
		createNode(t, cs, "worker-4", false)
		rv := getNode(t, cs, "worker-4").ResourceVersion
		res, err := c.Cordon(ctx, kube.CordonRequest{Node: "worker-4", Incident: "inc-1", DryRun: true})
		if err != nil || !res.Cordoned || !res.DryRun {
			t.Fatalf("dry run = %+v, %v", res, err)
		}
		assertNodeVersion(t, cs, "worker-4", rv)
	})

	t.Run("errors name what is missing", func(t *testing.T) {
		testenv.Pod(t, cs, "cordon", "pending")
		old := testenv.ReplacedPod(t, cs, "cordon", "db-0")
		for name, tc := range map[string]struct {
			req  kube.CordonRequest
			want error
		}{
			"an unscheduled pod":   {kube.CordonRequest{Namespace: "cordon", Pod: "pending", Incident: "inc-1"}, kube.ErrNotScheduled},
			"a missing pod":        {kube.CordonRequest{Namespace: "cordon", Pod: "gone", Incident: "inc-1"}, kube.ErrPodNotFound},
			"a missing node":       {kube.CordonRequest{Node: "worker-99", Incident: "inc-1"}, kube.ErrNodeNotFound},
			"a replaced pod":       {kube.CordonRequest{Namespace: "cordon", Pod: "db-0", PodUID: string(old.UID), Incident: "inc-1"}, kube.ErrTargetChanged},
			"no incident":          {kube.CordonRequest{Node: "worker-1"}, kube.ErrInvalidInput},
			"neither node nor pod": {kube.CordonRequest{Incident: "inc-1"}, kube.ErrInvalidInput},
		} {
			if _, err := c.Cordon(ctx, tc.req); !errors.Is(err, tc.want) {
				t.Errorf("%s: err = %v, want %v", name, err, tc.want)
			}
		}
		if un, err := c.Uncordon(ctx, kube.UncordonRequest{Node: "worker-99", Incident: "inc-1"}); err != nil || un.Skipped == "" {
			t.Errorf("uncordon of a missing node = %+v, %v; want it skipped", un, err)
		}
	})
}

func createNode(t *testing.T, cs kubernetes.Interface, name string, unschedulable bool) *corev1.Node {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Create(context.Background(), &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.NodeSpec{Unschedulable: unschedulable},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func getNode(t *testing.T, cs kubernetes.Interface, name string) *corev1.Node {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func assertNodeVersion(t *testing.T, cs kubernetes.Interface, name, rv string) {
	t.Helper()
	if got := getNode(t, cs, name).ResourceVersion; got != rv {
		t.Errorf("node %s was written: resourceVersion %s → %s", name, rv, got)
	}
}
