package kube_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/testenv"
)

// The snapshot tests reach a test kubelet through the API server's node
// proxy, as soar reaches real kubelets: pods/log for logs, nodes/proxy for
// checkpoints.
func TestCollectSnapshot(t *testing.T) {
	_, cs := testenv.Kube(t)
	c := kube.New(cs)
	ctx := context.Background()
	kl := testenv.Kubelet(t, cs, "node-a")

	const ns = "evidence"
	dep, rs, pod := snapChain(t, cs, ns, "web", "node-a")
	snapEvent(t, cs, pod, "Scheduled", 3*time.Minute)
	snapEvent(t, cs, pod, "Started", 2*time.Minute)
	snapEvent(t, cs, pod, "BackOff", 1*time.Minute)
	snapEvent(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other", UID: "other-uid"}}, "Unrelated", 0)
	kl.SetLog(ns, pod.Name, "app", "2026-01-02T15:04:05Z app started\n")
	kl.SetPreviousLog(ns, pod.Name, "app", "2026-01-02T15:00:00Z app crashed\n")
	kl.SetLog(ns, pod.Name, "sidecar", "2026-01-02T15:04:06Z proxy ready\n")

	req := kube.SnapshotRequest{Namespace: ns, Pod: pod.Name, PodUID: string(pod.UID)}
	wantNames := []string{"pod.json", "owners.json", "node.json", "events.json", "images.json",
		"logs/app.log", "logs/app.previous.log", "logs/sidecar.log", "logs/sidecar.previous.log"}

	t.Run("collects pod, owners, node, events, images and logs through the kubelet", func(t *testing.T) {
		kl.Reset()
		snap, err := c.CollectSnapshot(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Namespace != ns || snap.Pod != pod.Name || snap.PodUID != string(pod.UID) || snap.Node != "node-a" || snap.DryRun {
			t.Errorf("target = %s/%s uid %s node %s dryRun %v", snap.Namespace, snap.Pod, snap.PodUID, snap.Node, snap.DryRun)
		}
		if got := snapNames(snap); !slices.Equal(got, wantNames) {
			t.Fatalf("artifacts %v, want %v", got, wantNames)
		}
		arts := snapByName(snap)

		var gotPod corev1.Pod
		snapDecode(t, arts["pod.json"], &gotPod)
		if gotPod.UID != pod.UID || gotPod.Kind != "Pod" || gotPod.Status.ContainerStatuses[0].ImageID == "" {
			t.Errorf("pod.json holds %s/%s uid %s kind %q", gotPod.Namespace, gotPod.Name, gotPod.UID, gotPod.Kind)
		}

		var owners []kube.Owner
		snapDecode(t, arts["owners.json"], &owners)
		if len(owners) != 2 || owners[0].Kind != "ReplicaSet" || owners[0].UID != string(rs.UID) ||
			owners[1].Kind != "Deployment" || owners[1].UID != string(dep.UID) {
			t.Fatalf("owners.json = %+v", owners)
		}
		var gotDep appsv1.Deployment
		if err := json.Unmarshal(owners[1].Object, &gotDep); err != nil || gotDep.Name != "web" || gotDep.Kind != "Deployment" || gotDep.APIVersion != "apps/v1" {
			t.Errorf("the Deployment's object = %s (%v)", owners[1].Object, err)
		}

		var node corev1.Node
		snapDecode(t, arts["node.json"], &node)
		if node.Name != "node-a" || node.Status.NodeInfo.KubeletVersion != testenv.DefaultKubeletVersion {
			t.Errorf("node.json = %s, kubelet %s", node.Name, node.Status.NodeInfo.KubeletVersion)
		}

		var events corev1.EventList
		snapDecode(t, arts["events.json"], &events)
		var reasons []string
		for _, e := range events.Items {
			reasons = append(reasons, e.Reason)
		}
		if !slices.Equal(reasons, []string{"Scheduled", "Started", "BackOff"}) {
			t.Errorf("events.json reasons %v, want the pod's events oldest first", reasons)
		}

		var images []kube.ContainerImage
		snapDecode(t, arts["images.json"], &images)
		want := []kube.ContainerImage{
			{Container: "app", Type: "container", Image: "docker.io/library/alpine:3.20", ImageID: snapDigest("app"), ContainerID: "containerd://app-2"},
			{Container: "sidecar", Type: "container", Image: "docker.io/library/busybox:1.37", ImageID: snapDigest("sidecar"), ContainerID: "containerd://sidecar-1"},
		}
		if !slices.Equal(images, want) {
			t.Errorf("images.json = %+v, want %+v", images, want)
		}

		for name, log := range map[string]string{
			"logs/app.log":          "2026-01-02T15:04:05Z app started\n",
			"logs/app.previous.log": "2026-01-02T15:00:00Z app crashed\n",
			"logs/sidecar.log":      "2026-01-02T15:04:06Z proxy ready\n",
		} {
			if a := arts[name]; string(a.Data) != log || a.Error != "" || !strings.HasPrefix(a.ContentType, "text/plain") {
				t.Errorf("%s = %q (error %q, type %q), want %q", name, a.Data, a.Error, a.ContentType, log)
			}
		}
		if a := arts["logs/sidecar.previous.log"]; len(a.Data) != 0 || !strings.Contains(a.Error, `previous terminated container "sidecar"`) {
			t.Errorf("a missing previous log is recorded as %q (data %q), want the kubelet's error", a.Error, a.Data)
		}

		var logs []string
		for _, r := range kl.Requests() {
			if r.Method != "GET" || !strings.HasPrefix(r.Path, "/containerLogs/") {
				t.Errorf("the kubelet got %s %s", r.Method, r.Path)
				continue
			}
			if r.Query.Get("timestamps") != "true" || r.Query.Get("limitBytes") != "10485760" {
				t.Errorf("log request %s?%s lacks timestamps or the default limit", r.Path, r.Query.Encode())
			}
			logs = append(logs, r.Path+" previous="+r.Query.Get("previous"))
		}
		slices.Sort(logs)
		wantLogs := []string{
			"/containerLogs/evidence/" + pod.Name + "/app previous=",
			"/containerLogs/evidence/" + pod.Name + "/app previous=true",
			"/containerLogs/evidence/" + pod.Name + "/sidecar previous=",
			"/containerLogs/evidence/" + pod.Name + "/sidecar previous=true",
		}
		if !slices.Equal(logs, wantLogs) {
			t.Errorf("the kubelet got log requests %v, want %v", logs, wantLogs)
		}
	})

	t.Run("keeps the newest events and caps logs", func(t *testing.T) {
		r := req
		r.EventsLimit, r.LogLimitBytes = 2, 5
		snap, err := c.CollectSnapshot(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		arts := snapByName(snap)
		var events corev1.EventList
		snapDecode(t, arts["events.json"], &events)
		if len(events.Items) != 2 || events.Items[0].Reason != "Started" || events.Items[1].Reason != "BackOff" {
			t.Errorf("events.json holds %d events, want Started and BackOff", len(events.Items))
		}
		if got := string(arts["logs/app.log"].Data); got != "2026-" {
			t.Errorf("logs/app.log = %q, want its first 5 bytes", got)
		}
	})

	t.Run("checkpoints each running container through the kubelet", func(t *testing.T) {
		kl.Reset()
		r := req
		r.Checkpoint = true
		snap, err := c.CollectSnapshot(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		want := append(slices.Clone(wantNames), "checkpoint/app.json", "checkpoint/sidecar.json")
		if got := snapNames(snap); !slices.Equal(got, want) {
			t.Fatalf("artifacts %v, want %v", got, want)
		}
		arts := snapByName(snap)
		for _, ctr := range []string{"app", "sidecar"} {
			var resp struct{ Items []string }
			snapDecode(t, arts["checkpoint/"+ctr+".json"], &resp)
			if len(resp.Items) != 1 || resp.Items[0] != testenv.CheckpointPath(ns, pod.Name, ctr) {
				t.Errorf("checkpoint/%s.json = %s", ctr, arts["checkpoint/"+ctr+".json"].Data)
			}
		}
		var posts []string
		for _, r := range kl.Requests() {
			if r.Method == "POST" {
				posts = append(posts, r.Path)
			}
		}
		wantPosts := []string{"/checkpoint/evidence/" + pod.Name + "/app", "/checkpoint/evidence/" + pod.Name + "/sidecar"}
		if !slices.Equal(posts, wantPosts) {
			t.Errorf("the kubelet got POSTs %v, want %v", posts, wantPosts)
		}
	})

	t.Run("the snapshot stored as a bundle verifies against hashes of its bytes", func(t *testing.T) {
		r := req
		r.Checkpoint = true
		withCheckpoint, err := c.CollectSnapshot(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		store := evidence.NewLocal(dir)
		arts := make([]evidence.Artifact, len(withCheckpoint.Artifacts))
		for i, a := range withCheckpoint.Artifacts {
			arts[i] = evidence.Artifact{Name: a.Name, ContentType: a.ContentType, Data: a.Data, Error: a.Error}
		}
		ref, err := evidence.WriteBundle(ctx, store, "soar-inc-1/collect", evidence.Manifest{
			Incident:  "soar-inc-1",
			Step:      "collect",
			Action:    "kubernetes.snapshot",
			Collector: evidence.Collector{Tool: "soar", Version: "test"},
			Target:    evidence.Target{Namespace: withCheckpoint.Namespace, Pod: withCheckpoint.Pod, PodUID: withCheckpoint.PodUID, Node: withCheckpoint.Node},
		}, arts)
		if err != nil {
			t.Fatal(err)
		}
		if ref.Artifacts != len(arts)-1 || ref.Failed != 1 {
			t.Errorf("ref counts %d stored and %d failed, want %d and 1 (no previous sidecar log)", ref.Artifacts, ref.Failed, len(arts)-1)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "soar-inc-1", "collect", "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		if snapSHA(raw) != ref.SHA256 {
			t.Errorf("ref SHA-256 %s, the manifest file hashes to %s", ref.SHA256, snapSHA(raw))
		}
		m, err := evidence.Verify(ctx, store, ref.Key, ref.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if m.Target.PodUID != string(pod.UID) || m.Target.Node != "node-a" {
			t.Errorf("manifest target = %+v", m.Target)
		}
		for i, e := range m.Artifacts {
			a := withCheckpoint.Artifacts[i]
			if e.Name != a.Name || e.Error != a.Error {
				t.Errorf("entry %d = %s (error %q), artifact %s", i, e.Name, e.Error, a.Name)
			}
			if a.Error != "" {
				continue
			}
			stored, err := os.ReadFile(filepath.Join(dir, "soar-inc-1", "collect", filepath.FromSlash(e.Key)))
			if err != nil {
				t.Fatal(err)
			}
			if e.SHA256 != snapSHA(a.Data) || snapSHA(stored) != e.SHA256 {
				t.Errorf("%s: manifest says %s, collected bytes hash to %s, stored bytes to %s", e.Name, e.SHA256, snapSHA(a.Data), snapSHA(stored))
			}
		}
	})

	t.Run("a dry run lists the artifacts and asks the kubelet nothing", func(t *testing.T) {
		kl.Reset()
		r := req
		r.DryRun, r.Checkpoint = true, true
		snap, err := c.CollectSnapshot(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		want := append(slices.Clone(wantNames), "checkpoint/app.json", "checkpoint/sidecar.json")
		if got := snapNames(snap); !snap.DryRun || !slices.Equal(got, want) {
			t.Errorf("dry run %v lists %v, want %v", snap.DryRun, got, want)
		}
		for _, a := range snap.Artifacts {
			if len(a.Data) != 0 || a.Error != "" {
				t.Errorf("dry-run artifact %s has data %q or error %q", a.Name, a.Data, a.Error)
			}
		}
		if got := kl.Requests(); len(got) != 0 {
			t.Errorf("the kubelet got %d requests in a dry run: %+v", len(got), got)
		}
	})

	t.Run("checkpoints a node cannot take fail as unsupported", func(t *testing.T) {
		for _, tc := range []struct {
			name        string
			mode        testenv.CheckpointMode
			unsupported bool
			says        string
		}{
			{"the ContainerCheckpoint feature gate is off", testenv.CheckpointGateOff, true, "ContainerCheckpoint feature gate"},
			{"CRI-O without CRIU support", testenv.CheckpointRuntimeUnsupported, true, "checkpoint/restore support not available"},
			{"a runtime without the CRI method", testenv.CheckpointRuntimeUnimplemented, true, "Unimplemented"},
			{"a transient runtime failure is retryable", testenv.CheckpointRuntimeFailure, false, "DeadlineExceeded"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				kl.SetCheckpoint(tc.mode)
				t.Cleanup(func() { kl.SetCheckpoint(testenv.CheckpointOK) })
				r := req
				r.Checkpoint = true
				snap, err := c.CollectSnapshot(ctx, r)
				t.Log(err)
				if errors.Is(err, kube.ErrCheckpointUnsupported) != tc.unsupported || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("err = %v; want unsupported %v, saying %q", err, tc.unsupported, tc.says)
				}
				if tc.unsupported && !strings.Contains(err.Error(), ">= 1.30") {
					t.Errorf("err = %v, want it to say what a checkpoint needs", err)
				}
				// What was collected before the checkpoint is returned.
				if names := snapNames(snap); !slices.Contains(names, "logs/app.log") || snapByName(snap)["checkpoint/app.json"].Error == "" {
					t.Errorf("artifacts after a failed checkpoint: %v", names)
				}
			})
		}
	})

	t.Run("a kubelet older than 1.30 is not asked to checkpoint", func(t *testing.T) {
		old := testenv.Kubelet(t, cs, "node-old", testenv.KubeletVersion("v1.29.4"))
		_, _, oldPod := snapChain(t, cs, ns, "legacy", "node-old")
		_, err := c.CollectSnapshot(ctx, kube.SnapshotRequest{Namespace: ns, Pod: oldPod.Name, Checkpoint: true})
		t.Log(err)
		if !errors.Is(err, kube.ErrCheckpointUnsupported) || !strings.Contains(err.Error(), "v1.29.4") {
			t.Errorf("err = %v, want ErrCheckpointUnsupported naming the kubelet version", err)
		}
		if got := old.Requests(); len(got) != 0 {
			t.Errorf("the old kubelet got %d requests: %+v", len(got), got)
		}
	})

	t.Run("owner chain", func(t *testing.T) { testOwnerChain(t, c, cs) })

	t.Run("a replaced or missing pod is not collected", func(t *testing.T) {
		kl.Reset()
		r := req
		r.PodUID = "uid-of-the-pod-the-alert-named"
		if _, err := c.CollectSnapshot(ctx, r); !errors.Is(err, kube.ErrTargetChanged) {
			t.Errorf("replaced pod: err = %v, want ErrTargetChanged", err)
		}
		if _, err := c.CollectSnapshot(ctx, kube.SnapshotRequest{Namespace: ns, Pod: "gone"}); !errors.Is(err, kube.ErrPodNotFound) {
			t.Errorf("missing pod: err = %v, want ErrPodNotFound", err)
		}
		if got := kl.Requests(); len(got) != 0 {
			t.Errorf("the kubelet got %d requests", len(got))
		}
	})
}

// testOwnerChain covers the ends of an owner chain; TestCollectSnapshot
// covers a whole one.
func testOwnerChain(t *testing.T, c *kube.Client, cs kubernetes.Interface) {
	ctx := context.Background()
	const ns = "owners"
	testenv.Namespace(t, cs, ns)

	for _, tc := range []struct {
		name  string
		ref   *metav1.OwnerReference
		want  []string // kind/name of each owner
		error string   // in the last owner's Error
	}{
		{name: "a pod without a controller has no owners"},
		{
			name:  "a missing owner ends the chain",
			ref:   snapRef("apps/v1", "ReplicaSet", "gone", "uid-gone"),
			want:  []string{"ReplicaSet/gone"},
			error: "does not exist",
		},
		{
			name:  "an unknown kind ends the chain",
			ref:   snapRef("example.com/v1", "Sandbox", "box", "uid-box"),
			want:  []string{"Sandbox/box"},
			error: "not a kind soar reads",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"}}
			if tc.ref != nil {
				pod.OwnerReferences = []metav1.OwnerReference{*tc.ref}
			}
			owners, err := c.OwnerChain(ctx, pod)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range owners {
				got = append(got, o.Kind+"/"+o.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("owners %v, want %v", got, tc.want)
			}
			if tc.error != "" && (!strings.Contains(owners[len(owners)-1].Error, tc.error) || owners[len(owners)-1].Object != nil) {
				t.Errorf("last owner = %+v, want error %q and no object", owners[len(owners)-1], tc.error)
			}
		})
	}

	t.Run("an owner replaced by a namesake ends the chain", func(t *testing.T) {
		_, rs, pod := snapChain(t, cs, ns, "api", "")
		pod.OwnerReferences[0].UID = "uid-of-an-older-replicaset"
		owners, err := c.OwnerChain(ctx, pod)
		if err != nil {
			t.Fatal(err)
		}
		if len(owners) != 1 || owners[0].Name != rs.Name || !strings.Contains(owners[0].Error, "replaced") {
			t.Errorf("owners = %+v", owners)
		}
	})
}

// snapChain creates a Deployment, its ReplicaSet and a pod of that
// ReplicaSet on node (unscheduled when empty), with two running containers:
// app, restarted once, and sidecar. Nothing runs controllers, so the test
// writes what they would.
func snapChain(t *testing.T, cs kubernetes.Interface, ns, name, node string) (*appsv1.Deployment, *appsv1.ReplicaSet, *corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	testenv.Namespace(t, cs, ns)
	labels := map[string]string{"app": name}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: "docker.io/library/alpine:3.20"},
			{Name: "sidecar", Image: "docker.io/library/busybox:1.37"},
		}},
	}
	dep, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-5d8f7", OwnerReferences: []metav1.OwnerReference{*snapRef("apps/v1", "Deployment", dep.Name, dep.UID)}},
		Spec:       appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := testenv.Pod(t, cs, ns, rs.Name+"-x2v4q", func(p *corev1.Pod) {
		p.Labels = labels
		p.OwnerReferences = []metav1.OwnerReference{*snapRef("apps/v1", "ReplicaSet", rs.Name, rs.UID)}
		p.Spec = *template.Spec.DeepCopy()
		p.Spec.NodeName = node
	})
	started := metav1.NewTime(time.Date(2026, 1, 2, 15, 4, 0, 0, time.UTC))
	pod.Status.Phase = corev1.PodRunning
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{
		{
			Name: "app", Image: "docker.io/library/alpine:3.20", ImageID: snapDigest("app"), ContainerID: "containerd://app-2",
			Ready: true, RestartCount: 1, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, ContainerID: "containerd://app-1"}},
		},
		{
			Name: "sidecar", Image: "docker.io/library/busybox:1.37", ImageID: snapDigest("sidecar"), ContainerID: "containerd://sidecar-1",
			Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		},
	}
	pod, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return dep, rs, pod
}

func snapRef(apiVersion, kind, name string, uid types.UID) *metav1.OwnerReference {
	yes := true
	return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: &yes, BlockOwnerDeletion: &yes}
}

// snapEvent records a core/v1 event about pod that last happened ago.
func snapEvent(t *testing.T, cs kubernetes.Interface, pod *corev1.Pod, reason string, ago time.Duration) {
	t.Helper()
	at := metav1.NewTime(time.Now().Add(-ago).Truncate(time.Second))
	_, err := cs.CoreV1().Events(pod.Namespace).Create(context.Background(), &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: pod.Name + "."},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Reason:         reason,
		Message:        reason + " " + pod.Name,
		Type:           corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "kubelet", Host: "node-a"},
		FirstTimestamp: at,
		LastTimestamp:  at,
		Count:          1,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func snapDigest(container string) string {
	return "docker.io/library/" + container + "@sha256:" + snapSHA([]byte(container))
}

func snapSHA(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func snapNames(s kube.Snapshot) []string {
	var names []string
	for _, a := range s.Artifacts {
		names = append(names, a.Name)
	}
	return names
}

func snapByName(s kube.Snapshot) map[string]kube.Artifact {
	m := map[string]kube.Artifact{}
	for _, a := range s.Artifacts {
		m[a.Name] = a
	}
	return m
}

func snapDecode(t *testing.T, a kube.Artifact, v any) {
	t.Helper()
	if a.Error != "" {
		t.Fatalf("%s not collected: %s", a.Name, a.Error)
	}
	if err := json.Unmarshal(a.Data, v); err != nil {
		t.Fatalf("%s: %v", a.Name, err)
	}
}
