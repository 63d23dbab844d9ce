package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

var deployControlOnce sync.Once

// applyDeploymentControl installs deploy/incident-deployment-control.yaml
// once and keeps it, as applyLock does the lock.
func applyDeploymentControl(t testing.TB) {
	t.Helper()
	applyLock(t)
	docs := manifests(t, "incident-deployment-control.yaml")
	if len(docs["ValidatingAdmissionPolicy"]) != 2 || len(docs["ValidatingAdmissionPolicyBinding"]) != 2 || len(docs["ConfigMap"]) != 1 {
		t.Fatalf("deploy/incident-deployment-control.yaml: want two policies and bindings and the list, got %v", kinds(docs))
	}
	var err error
	deployControlOnce.Do(func() {
		if err = createConfigMap(docs); err == nil {
			err = installPolicies(docs)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

var dryCreate = metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}

func podSpec(image string) corev1.PodSpec {
	return corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{{Name: "app", Image: image}}}
}

// workloads creates, as a dry run by cs in ns, a bare Pod, a Deployment and
// a CronJob running image, and returns each one's error by kind.
func workloads(ctx context.Context, cs kubernetes.Interface, ns, image string) map[string]error {
	labels := map[string]string{"app": "x"}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec(image)}
	job := tmpl
	job.Spec.RestartPolicy = corev1.RestartPolicyNever
	_, podErr := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: ns}, Spec: podSpec(image)}, dryCreate)
	_, depErr := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, dryCreate)
	_, cronErr := cs.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: ns},
		Spec: batchv1.CronJobSpec{Schedule: "* * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: job}}}}, dryCreate)
	return map[string]error{"Pod": podErr, "Deployment": depErr, "CronJob": cronErr}
}

// refusedByPolicy reports whether err is policy's refusal naming incident.
func refusedByPolicy(err error, policy, incident string) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "'"+policy+"'") && strings.Contains(err.Error(), "soar incident show "+incident)
}

// TestIncidentDeploymentControl: kubernetes.block_image and
// kubernetes.freeze_namespace on a real API server with
// deploy/incident-deployment-control.yaml. A Pod, a Deployment and a
// CronJob using a blocked image, by tag or by digest, are refused in any
// namespace, naming the incident; other images, the blocked pod's own
// other changes and break-glass pass; after unblocking they are accepted.
// A frozen namespace refuses new workloads to anyone but soar, Kubernetes'
// controllers and break-glass, and accepts them again after unfreezing.
func TestIncidentDeploymentControl(t *testing.T) {
	applyWorkerRBAC(t)
	applyDeploymentControl(t)
	ctx := context.Background()
	const ns, inc = "deploy-control", "soar-deploy-control-incident"
	const tag, digest = "ghcr.io/evil/miner:1.0", "ghcr.io/evil/miner@sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
	miner := testenv.Pod(t, kubeCS, ns, "miner-0", func(p *corev1.Pod) { p.Spec.Containers[0].Image = tag })
	miner.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: tag, ImageID: "docker-pullable://" + digest}}
	if _, err := kubeCS.CoreV1().Pods(ns).UpdateStatus(ctx, miner, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w := asWorker(t).WithLocks(kube.DefaultLockList)

	if _, err := w.BlockImages(ctx, kube.BlockImageRequest{Namespace: ns, Pod: miner.Name, PodUID: string(miner.UID), Incident: inc, DryRun: true}); err != nil {
		t.Fatalf("block_image in plan mode: %v", err)
	}
	res, err := w.BlockImages(ctx, kube.BlockImageRequest{Namespace: ns, Pod: miner.Name, PodUID: string(miner.UID), Incident: inc})
	if err != nil || len(res.Images) != 2 || res.Images[0] != tag || res.Images[1] != digest {
		t.Fatalf("block_image: %+v, %v; want the tag and the digest", res, err)
	}
	elsewhere := "deploy-control-elsewhere"
	testenv.Namespace(t, kubeCS, elsewhere)
	testenv.Eventually(t, 30*time.Second, "the blocked image refused", func() error {
		if err := workloads(ctx, kubeCS, elsewhere, tag)["Pod"]; !refusedByPolicy(err, "soar-blocked-images", inc) {
			return fmt.Errorf("a pod with the blocked image: %w", err)
		}
		return nil
	})
	for _, image := range []string{tag, digest} {
		for kind, err := range workloads(ctx, kubeCS, elsewhere, image) {
			if !refusedByPolicy(err, "soar-blocked-images", inc) || !strings.Contains(err.Error(), "image "+image+" is blocked") {
				t.Errorf("a %s using %s, by a cluster admin: %v", kind, image, err)
			}
		}
	}
	for kind, err := range workloads(ctx, kubeCS, elsewhere, "ghcr.io/acme/shop:2.0") {
		if err != nil {
			t.Errorf("a %s with another image: %v", kind, err)
		}
	}
	for kind, err := range workloads(ctx, breakGlass(), elsewhere, tag) {
		if err != nil {
			t.Errorf("a %s with the blocked image, as break-glass: %v", kind, err)
		}
	}
	if _, err := kubeCS.CoreV1().Pods(ns).Patch(ctx, miner.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"seen":"yes"}}}`), metav1.PatchOptions{}); err != nil {
		t.Errorf("another change to the pod that already runs the image: %v", err)
	}
	if err := w.UnblockImages(ctx, inc, false); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the image accepted after unblocking", func() error {
		for kind, err := range workloads(ctx, kubeCS, elsewhere, tag) {
			if err != nil {
				return fmt.Errorf("a %s after unblocking: %w", kind, err)
			}
		}
		return nil
	})

	// Freeze.
	const frozen = "deploy-control-frozen"
	pod := testenv.Pod(t, kubeCS, frozen, "web-0")
	if _, err := w.FreezeNamespace(ctx, frozen, inc, false); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the namespace frozen", func() error {
		if err := workloads(ctx, kubeCS, frozen, "ghcr.io/acme/shop:2.0")["Deployment"]; !refusedByPolicy(err, "soar-frozen-namespaces", inc) {
			return fmt.Errorf("a Deployment in the frozen namespace: %w", err)
		}
		return nil
	})
	for kind, err := range workloads(ctx, kubeCS, frozen, "ghcr.io/acme/shop:2.0") {
		if !refusedByPolicy(err, "soar-frozen-namespaces", inc) {
			t.Errorf("a %s in the frozen namespace, by a cluster admin: %v", kind, err)
		}
	}
	for kind, err := range workloads(ctx, breakGlass(), frozen, "ghcr.io/acme/shop:2.0") {
		if err != nil {
			t.Errorf("a %s in the frozen namespace, as break-glass: %v", kind, err)
		}
	}
	// Kubernetes' ReplicaSet controller still creates pods there.
	controller := "system:serviceaccount:kube-system:replicaset-controller"
	grant(t, frozen, "replicaset-controller", rbacv1.Subject{Kind: "ServiceAccount", Name: "replicaset-controller", Namespace: "kube-system"})
	cfg := rest.CopyConfig(kubeConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: controller, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}}
	if err := workloads(ctx, kubernetes.NewForConfigOrDie(cfg), frozen, "ghcr.io/acme/shop:2.0")["Pod"]; err != nil {
		t.Errorf("the ReplicaSet controller creating a pod in the frozen namespace: %v", err)
	}
	// soar's own response goes on.
	if res, err := w.Quarantine(ctx, kube.QuarantineRequest{Namespace: frozen, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc}); err != nil || !res.TamperProof {
		t.Errorf("quarantine in the frozen namespace: %+v, %v", res, err)
	}
	if _, err := w.Release(ctx, kube.ReleaseRequest{Namespace: frozen, Pod: pod.Name, PodUID: string(pod.UID), Incident: inc}); err != nil {
		t.Errorf("release in the frozen namespace: %v", err)
	}
	if _, err := w.UnfreezeNamespace(ctx, frozen, inc, false); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the namespace open again", func() error {
		for kind, err := range workloads(ctx, kubeCS, frozen, "ghcr.io/acme/shop:2.0") {
			if err != nil {
				return fmt.Errorf("a %s after unfreezing: %w", kind, err)
			}
		}
		return nil
	})

	// Without a lock list, both refuse to pretend.
	if _, err := asWorker(t).FreezeNamespace(ctx, frozen, inc, false); !errors.Is(err, kube.ErrInvalidInput) {
		t.Errorf("freeze without a lock list: %v", err)
	}
}

// grant gives subject editRules in ns.
func grant(t *testing.T, ns, name string, subject rbacv1.Subject) {
	t.Helper()
	bindRules(t, ns, "e2e-"+name, editRules, subject)
}

// TestReleaseUndoesBlockAndFreeze: a playbook that blocks the pod's images
// and freezes its namespace, run by the worker from an alert; releasing the
// incident runs the inverses, and the API server accepts the image and new
// workloads again.
func TestReleaseUndoesBlockAndFreeze(t *testing.T) {
	applyWorkerRBAC(t)
	applyDeploymentControl(t)
	ctx := context.Background()
	const ns, image = "deploy-control-release", "ghcr.io/evil/dropper:2.1"
	pod := testenv.Pod(t, kubeCS, ns, "dropper-0", func(p *corev1.Pod) { p.Spec.Containers[0].Image = image })
	testenv.Namespace(t, kubeCS, "deploy-control-elsewhere")
	dir := t.TempDir()
	pb := `name: block-and-freeze
match: alert.rule == "Dropper image seen"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: block
    action: kubernetes.block_image
  - id: freeze
    action: kubernetes.freeze_namespace
`
	noErr(t, os.WriteFile(filepath.Join(dir, "block-and-freeze.yaml"), []byte(pb), 0o600))
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	startSoarOn(t, asWorker(t).WithLocks(kube.DefaultLockList), js, tc, dir, dispatch.Config{})
	alert := fmt.Appendf(nil, `{"id":"dropper-1","source":"e2e","rule":"Dropper image seen","severity":"high","kubernetes":{"namespace":%q,"pod":%q}}`, ns, pod.Name)
	if _, err := js.Publish(ctx, "alerts.e2e", alert); err != nil {
		t.Fatal(err)
	}
	id := playbooks.IncidentID("block-and-freeze", ns+"/"+pod.Name)
	testenv.Eventually(t, 60*time.Second, "the image blocked and the namespace frozen", func() error {
		got := workloads(ctx, kubeCS, "deploy-control-elsewhere", image)["Deployment"]
		if !refusedByPolicy(got, "soar-blocked-images", id) {
			return fmt.Errorf("a Deployment with the image elsewhere: %w", got)
		}
		if got := workloads(ctx, kubeCS, ns, "ghcr.io/acme/shop:2.0")["Deployment"]; !refusedByPolicy(got, "soar-frozen-namespaces", id) {
			return fmt.Errorf("a Deployment in the namespace: %w", got)
		}
		return nil
	})
	if err := stopIncident(ctx, t, tc, id, true, "e2e: false positive"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "the image and the namespace open again after release", func() error {
		for kind, err := range workloads(ctx, kubeCS, "deploy-control-elsewhere", image) {
			if err != nil {
				return fmt.Errorf("a %s with the image after release: %w", kind, err)
			}
		}
		for kind, err := range workloads(ctx, kubeCS, ns, "ghcr.io/acme/shop:2.0") {
			if err != nil {
				return fmt.Errorf("a %s in the namespace after release: %w", kind, err)
			}
		}
		return nil
	})
	st, err := incidentState(ctx, tc, id)
	noErr(t, err)
	undone := 0
	for _, s := range st.Steps {
		if s.Action == "kubernetes.unblock_image" || s.Action == "kubernetes.unfreeze_namespace" {
			if s.Status != workflows.StepSucceeded {
				t.Errorf("release step %s: %s %s", s.Action, s.Status, s.Error)
			}
			undone++
		}
	}
	if undone != 2 {
		t.Errorf("the incident's steps after release: %+v; want unblock_image and unfreeze_namespace", st.Steps)
	}
}
