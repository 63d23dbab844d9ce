package kube_test

import (
	"context"
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/testenv"
)

// TestNodeAndWorkloadActions covers Cordon, Uncordon, ScaleOwnerToZero and
// RestoreScale on one API server.
func TestNodeAndWorkloadActions(t *testing.T) {
	_, cs := testenv.Kube(t)
	t.Run("cordon", func(t *testing.T) { testCordon(t, cs) })
	t.Run("scale", func(t *testing.T) { testScale(t, cs) })
	t.Run("monitor check without the lock", func(t *testing.T) { testMonitorWithoutLock(t, cs) })
}

// testMonitorWithoutLock: on a cluster where deploy/quarantine-lock.yaml was
// never applied, CheckMonitor says so, naming the first missing piece.
func testMonitorWithoutLock(t *testing.T, cs kubernetes.Interface) {
	r := kube.New(cs).CheckMonitor(context.Background(), kube.DefaultLockList)
	if r.TamperProof || r.Why != "policy soar-quarantine-lock-pods: missing: apply deploy/quarantine-lock.yaml" {
		t.Errorf("CheckMonitor = tamperProof %v, why %q", r.TamperProof, r.Why)
	}
	// Each policy, each binding and the list: 11 checks, all failed.
	failed := 0
	for _, c := range r.Checks {
		if !c.OK {
			failed++
		}
	}
	if len(r.Checks) != 2*len(kube.LockPolicies)+1 || failed != len(r.Checks) {
		t.Errorf("checks %+v: want %d, all failed", r.Checks, 2*len(kube.LockPolicies)+1)
	}
}

func testScale(t *testing.T, cs kubernetes.Interface) {
	c := kube.New(cs)
	ctx := context.Background()

	t.Run("scales the pod's Deployment to zero and back; each step is idempotent", func(t *testing.T) {
		d, _, pod := testenv.DeploymentChain(t, cs, "scale", "api", 3)
		req := kube.ScaleRequest{Namespace: "scale", Pod: pod.Name, PodUID: string(pod.UID), Incident: "inc-1"}
		res, err := c.ScaleOwnerToZero(ctx, req)
		if err != nil || !res.Scaled || res.Kind != kube.KindDeployment || res.Name != d.Name || res.PreviousReplicas != 3 {
			t.Fatalf("scale = %+v, %v", res, err)
		}
		got := getWorkload(t, cs, "scale", kube.KindDeployment, d.Name)
		if got.replicas != 0 || got.meta.Annotations[kube.PreviousReplicasAnnotation] != "3" || got.meta.Annotations[kube.ScaledByAnnotation] != "inc-1" {
			t.Errorf("deployment: replicas %d, annotations %v", got.replicas, got.meta.Annotations)
		}

		again, err := c.ScaleOwnerToZero(ctx, req)
		if err != nil || again.Scaled || again.PreviousReplicas != 3 {
			t.Fatalf("retry = %+v, %v", again, err)
		}
		got.assertUnchanged(t, cs)

		restore := kube.RestoreScaleRequest{Namespace: "scale", Kind: res.Kind, Name: res.Name, Incident: "inc-1"}
		back, err := c.RestoreScale(ctx, restore)
		if err != nil || !back.Restored || back.Replicas != 3 || back.Skipped != "" {
			t.Fatalf("restore = %+v, %v", back, err)
		}
		got = getWorkload(t, cs, "scale", kube.KindDeployment, d.Name)
		if got.replicas != 3 || len(got.meta.Annotations) != 0 {
			t.Errorf("deployment: replicas %d, annotations %v", got.replicas, got.meta.Annotations)
		}
		if again, err := c.RestoreScale(ctx, restore); err != nil || again.Restored || again.Skipped == "" {
			t.Fatalf("second restore = %+v, %v", again, err)
		}
		got.assertUnchanged(t, cs)
	})

	t.Run("someone who rescaled meanwhile wins", func(t *testing.T) {
		d, _, pod := testenv.DeploymentChain(t, cs, "rescale", "api", 4)
		if _, err := c.ScaleOwnerToZero(ctx, kube.ScaleRequest{Namespace: "rescale", Pod: pod.Name, Incident: "inc-1"}); err != nil {
			t.Fatal(err)
		}
		d, _ = cs.AppsV1().Deployments("rescale").Get(ctx, d.Name, metav1.GetOptions{})
		d.Spec.Replicas = new(int32(2))
		if _, err := cs.AppsV1().Deployments("rescale").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		other, err := c.RestoreScale(ctx, kube.RestoreScaleRequest{Namespace: "rescale", Kind: kube.KindDeployment, Name: d.Name, Incident: "inc-2"})
		if err != nil || other.Restored || other.Skipped == "" {
			t.Fatalf("restore by another incident = %+v, %v", other, err)
		}
		res, err := c.RestoreScale(ctx, kube.RestoreScaleRequest{Namespace: "rescale", Kind: kube.KindDeployment, Name: d.Name, Incident: "inc-1"})
		if err != nil || res.Restored || res.Skipped == "" || res.Replicas != 2 {
			t.Fatalf("restore = %+v, %v; want it skipped at 2 replicas", res, err)
		}
		got := getWorkload(t, cs, "rescale", kube.KindDeployment, d.Name)
		if got.replicas != 2 || len(got.meta.Annotations) != 0 {
			t.Errorf("deployment: replicas %d, annotations %v; want 2 and soar's bookkeeping gone", got.replicas, got.meta.Annotations)
		}
	})

	t.Run("a ReplicaSet without a Deployment and a StatefulSet are scaled themselves", func(t *testing.T) {
		rs := createReplicaSet(t, cs, "own", "solo", 2)
		sts := createStatefulSet(t, cs, "own", "db", 3)
		for _, tc := range []struct {
			pod        *corev1.Pod
			kind, name string
			replicas   int32
		}{
			{testenv.Pod(t, cs, "own", "solo-abcde", controlledBy("apps/v1", kube.KindReplicaSet, rs.Name, string(rs.UID))), kube.KindReplicaSet, rs.Name, 2},
			{testenv.Pod(t, cs, "own", "db-0", controlledBy("apps/v1", kube.KindStatefulSet, sts.Name, string(sts.UID))), kube.KindStatefulSet, sts.Name, 3},
		} {
			res, err := c.ScaleOwnerToZero(ctx, kube.ScaleRequest{Namespace: "own", Pod: tc.pod.Name, Incident: "inc-1"})
			if err != nil || !res.Scaled || res.Kind != tc.kind || res.Name != tc.name || res.PreviousReplicas != tc.replicas {
				t.Errorf("scale %s = %+v, %v", tc.pod.Name, res, err)
			}
			if got := getWorkload(t, cs, "own", tc.kind, tc.name); got.replicas != 0 {
				t.Errorf("%s/%s has %d replicas", tc.kind, tc.name, got.replicas)
			}
			back, err := c.RestoreScale(ctx, kube.RestoreScaleRequest{Namespace: "own", Kind: tc.kind, Name: tc.name, Incident: "inc-1"})
			if err != nil || !back.Restored || back.Replicas != tc.replicas {
				t.Errorf("restore %s/%s = %+v, %v", tc.kind, tc.name, back, err)
			}
		}
	})

	t.Run("a dry run stores nothing", func(t *testing.T) {
		d, _, pod := testenv.DeploymentChain(t, cs, "plan", "api", 2)
		before := getWorkload(t, cs, "plan", kube.KindDeployment, d.Name)
		res, err := c.ScaleOwnerToZero(ctx, kube.ScaleRequest{Namespace: "plan", Pod: pod.Name, Incident: "inc-1", DryRun: true})
		if err != nil || !res.Scaled || !res.DryRun || res.PreviousReplicas != 2 {
			t.Fatalf("dry run = %+v, %v", res, err)
		}
		before.assertUnchanged(t, cs)
	})

	t.Run("pods without a scalable owner are refused", func(t *testing.T) {
		for name, mod := range map[string]func(*corev1.Pod){
			"bare":     func(*corev1.Pod) {},
			"daemon-x": controlledBy("apps/v1", "DaemonSet", "agent", "uid-ds"),
			"job-x":    controlledBy("batch/v1", "Job", "backup", "uid-job"),
		} {
			testenv.Pod(t, cs, "refuse", name, mod)
			if _, err := c.ScaleOwnerToZero(ctx, kube.ScaleRequest{Namespace: "refuse", Pod: name, Incident: "inc-1"}); !errors.Is(err, kube.ErrUnsupportedOwner) {
				t.Errorf("%s: err = %v, want ErrUnsupportedOwner", name, err)
			}
		}
		old := testenv.ReplacedPod(t, cs, "refuse", "bare")
		if _, err := c.ScaleOwnerToZero(ctx, kube.ScaleRequest{Namespace: "refuse", Pod: "bare", PodUID: string(old.UID), Incident: "inc-1"}); !errors.Is(err, kube.ErrTargetChanged) {
			t.Errorf("replaced pod: err = %v, want ErrTargetChanged", err)
		}
		testenv.Pod(t, cs, "refuse", "orphan-x", controlledBy("apps/v1", kube.KindReplicaSet, "deleted", "uid-rs"))
		if _, err := c.ScaleOwnerToZero(ctx, kube.ScaleRequest{Namespace: "refuse", Pod: "orphan-x", Incident: "inc-1"}); !errors.Is(err, kube.ErrOwnerNotFound) {
			t.Errorf("owner missing: err = %v, want ErrOwnerNotFound", err)
		}
	})

	t.Run("restoring a workload that is gone is skipped", func(t *testing.T) {
		res, err := c.RestoreScale(ctx, kube.RestoreScaleRequest{Namespace: "scale", Kind: kube.KindStatefulSet, Name: "gone", Incident: "inc-1"})
		if err != nil || res.Restored || res.Skipped == "" {
			t.Fatalf("restore = %+v, %v", res, err)
		}
		if _, err := c.RestoreScale(ctx, kube.RestoreScaleRequest{Namespace: "scale", Kind: "DaemonSet", Name: "agent", Incident: "inc-1"}); !errors.Is(err, kube.ErrInvalidInput) {
			t.Fatalf("unknown kind: err = %v, want ErrInvalidInput", err)
		}
	})
}

// workloadState is what the scale tests look at on a workload.
type workloadState struct {
	namespace, kind, name string
	replicas              int32
	meta                  metav1.ObjectMeta
}

func getWorkload(t *testing.T, cs kubernetes.Interface, namespace, kind, name string) workloadState {
	t.Helper()
	ctx := context.Background()
	s := workloadState{namespace: namespace, kind: kind, name: name}
	var (
		replicas *int32
		err      error
	)
	switch kind {
	case kube.KindDeployment:
		var d *appsv1.Deployment
		if d, err = cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{}); err == nil {
			s.meta, replicas = d.ObjectMeta, d.Spec.Replicas
		}
	case kube.KindStatefulSet:
		var sts *appsv1.StatefulSet
		if sts, err = cs.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{}); err == nil {
			s.meta, replicas = sts.ObjectMeta, sts.Spec.Replicas
		}
	case kube.KindReplicaSet:
		var rs *appsv1.ReplicaSet
		if rs, err = cs.AppsV1().ReplicaSets(namespace).Get(ctx, name, metav1.GetOptions{}); err == nil {
			s.meta, replicas = rs.ObjectMeta, rs.Spec.Replicas
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	s.replicas = *replicas
	return s
}

func (s workloadState) assertUnchanged(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	if now := getWorkload(t, cs, s.namespace, s.kind, s.name); now.meta.ResourceVersion != s.meta.ResourceVersion {
		t.Errorf("%s/%s was written: resourceVersion %s → %s", s.kind, s.name, s.meta.ResourceVersion, now.meta.ResourceVersion)
	}
}

func podTemplate(app string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "docker.io/library/alpine:3.20"}}},
	}
}

func createReplicaSet(t *testing.T, cs kubernetes.Interface, namespace, name string, replicas int32) *appsv1.ReplicaSet {
	t.Helper()
	testenv.Namespace(t, cs, namespace)
	rs, err := cs.AppsV1().ReplicaSets(namespace).Create(context.Background(), &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func createStatefulSet(t *testing.T, cs kubernetes.Interface, namespace, name string, replicas int32) *appsv1.StatefulSet {
	t.Helper()
	testenv.Namespace(t, cs, namespace)
	sts, err := cs.AppsV1().StatefulSets(namespace).Create(context.Background(), &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template:    podTemplate(name),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sts
}
