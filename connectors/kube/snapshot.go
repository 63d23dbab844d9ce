package kube

// CollectSnapshot needs exactly these permissions, and only reads:
//
//	""    pods                    get
//	""    pods/log                get
//	""    events                  list
//	""    nodes                   get
//	""    nodes/proxy             create  (only with Checkpoint: the POST to the kubelet's checkpoint API)
//	""    replicationcontrollers  get
//	apps  replicasets, deployments, statefulsets, daemonsets  get
//	batch jobs, cronjobs          get
//
// nodes/proxy create reaches every kubelet API on every node (exec included),
// so grant it only where checkpoints are wanted.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/version"
)

// ErrCheckpointUnsupported means the pod's node cannot checkpoint a
// container: its kubelet is older than 1.30, has the ContainerCheckpoint
// feature gate off, or runs on a container runtime without checkpoint support
// (CRIU). Retrying cannot help; the message says which of them it was.
var ErrCheckpointUnsupported = errors.New("kube: container checkpoint unsupported")

// Defaults of SnapshotRequest.
const (
	DefaultLogLimitBytes int64 = 10 << 20
	DefaultEventsLimit         = 200
)

// checkpointRequirements is what a node needs for a checkpoint, said in every
// ErrCheckpointUnsupported.
const checkpointRequirements = "checkpoints need Kubernetes >= 1.30 with the ContainerCheckpoint feature gate (on by default since 1.30) " +
	"and a runtime with CRIU support (CRI-O >= 1.25 with enable_criu_support, or containerd >= 2.0 with criu installed)"

// minCheckpointKubelet is the first kubelet whose checkpoint API is on by
// default (ContainerCheckpoint beta).
var minCheckpointKubelet = version.MustParseGeneric("1.30.0")

// SnapshotRequest names the pod whose evidence CollectSnapshot collects.
type SnapshotRequest struct {
	Namespace string
	Pod       string
	// PodUID, when set, must be the live pod's UID (ErrTargetChanged
	// otherwise).
	PodUID string
	// Checkpoint also checkpoints every running container through the
	// kubelet (see CollectSnapshot).
	Checkpoint bool
	// LogLimitBytes caps each container log; 0 means DefaultLogLimitBytes.
	LogLimitBytes int64
	// EventsLimit keeps that many of the pod's newest events; 0 means
	// DefaultEventsLimit.
	EventsLimit int
	// DryRun collects nothing and asks no kubelet anything: the result lists
	// the artifacts a real run would collect, without data. It still reads
	// the pod, and with Checkpoint the node, so that it fails where a real
	// run would (a replaced pod, a kubelet that cannot checkpoint).
	DryRun bool
}

// Snapshot is the evidence collected about one pod.
type Snapshot struct {
	Namespace string
	Pod       string
	PodUID    string
	// Node is the node the pod is bound to; empty when it is not scheduled.
	Node      string
	Artifacts []Artifact
	// DryRun is true when nothing was collected: Artifacts then have no Data.
	DryRun bool
}

// Artifact is one piece of evidence.
type Artifact struct {
	// Name is a slash path: pod.json, owners.json, node.json, events.json,
	// images.json, logs/<container>.log, logs/<container>.previous.log,
	// checkpoint/<container>.json.
	Name        string
	ContentType string
	Data        []byte
	// Error is the API server's answer when this artifact could not be
	// collected (no previous log, kubelet unreachable, forbidden); Data is then
	// empty.
	Error string
}

// ContainerImage is one entry of images.json: which image a container runs,
// and the digest the runtime resolved it to.
type ContainerImage struct {
	Container string `json:"container"`
	// Type is "init", "container" or "ephemeral".
	Type  string `json:"type"`
	Image string `json:"image"`
	// ImageID is the image's digest as the kubelet reports it
	// (status.*ContainerStatuses[].imageID); empty before the container ran.
	ImageID     string `json:"imageID,omitempty"`
	ContainerID string `json:"containerID,omitempty"`
}

const (
	contentJSON = "application/json"
	contentText = "text/plain; charset=utf-8"
)

// CollectSnapshot collects a forensic snapshot of one pod: the pod as stored
// (pod.json), its chain of controllers (owners.json, see OwnerChain), its node
// (node.json), its newest core/v1 events, oldest first (events.json), the
// images and digests its containers run (images.json), and the current and
// previous log of every init, regular and ephemeral container, with
// timestamps (logs/). It only reads, and may be called again.
//
// With Checkpoint it also checkpoints every running container through the API
// server's node proxy (POST /api/v1/nodes/{node}/proxy/checkpoint/{ns}/{pod}/
// {container}). The kubelet writes the archive to its own disk
// (/var/lib/kubelet/checkpoints/ by default) and answers with the archive's
// path only; checkpoint/<container>.json records that answer, and the archive
// itself stays on the node, where someone with node access must fetch it.
// The node's kubelet version is checked before anything is collected.
//
// An artifact the API server refused or could not get (a missing previous
// log, a kubelet that does not answer, no permission) is recorded in its Error
// and the rest is collected. Errors wrap ErrPodNotFound, ErrTargetChanged or
// ErrInvalidInput; with Checkpoint, also ErrNotScheduled, ErrNodeNotFound and
// ErrCheckpointUnsupported, none of which a retry fixes. Any other error (the
// API server unreachable, the context done, a checkpoint that failed in the
// runtime) is transient; after a checkpoint failure the returned Snapshot holds
// what was collected before it.
func (c *Client) CollectSnapshot(ctx context.Context, req SnapshotRequest) (Snapshot, error) {
	snap := Snapshot{Namespace: req.Namespace, Pod: req.Pod, PodUID: req.PodUID, DryRun: req.DryRun}
	if err := requireFields("snapshot", "namespace", req.Namespace, "pod", req.Pod); err != nil {
		return snap, err
	}
	if req.LogLimitBytes <= 0 {
		req.LogLimitBytes = DefaultLogLimitBytes
	}
	if req.EventsLimit <= 0 {
		req.EventsLimit = DefaultEventsLimit
	}
	pod, err := c.getPod(ctx, req.Namespace, req.Pod, req.PodUID)
	if err != nil {
		return snap, err
	}
	snap.PodUID, snap.Node = string(pod.UID), pod.Spec.NodeName

	// The node is read first, so that a checkpoint the node cannot take fails
	// before anything else is collected.
	var (
		node    *corev1.Node
		nodeErr error
	)
	if pod.Spec.NodeName != "" && (!req.DryRun || req.Checkpoint) {
		node, nodeErr = c.cs.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
		if err := answered(nodeErr); err != nil {
			return snap, fmt.Errorf("kube: get node %s: %w", pod.Spec.NodeName, err)
		}
	}
	if req.Checkpoint {
		if err := checkpointSupported(pod, node, nodeErr); err != nil {
			return snap, err
		}
	}

	if req.DryRun {
		for _, name := range artifactNames(pod, req.Checkpoint) {
			snap.Artifacts = append(snap.Artifacts, Artifact{Name: name, ContentType: contentTypeOf(name)})
		}
		if c.locks != nil {
			snap.Artifacts = append(snap.Artifacts, Artifact{Name: lockArtifact, ContentType: contentJSON})
		}
		return snap, nil
	}

	// add records an artifact, including one the API server refused, and
	// stops the collection when the API server did not answer.
	add := func(a Artifact, err error) error {
		if err = answered(err); err != nil {
			return err
		}
		snap.Artifacts = append(snap.Artifacts, a)
		return nil
	}
	pod.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	if err := add(jsonArtifact("pod.json", pod, nil)); err != nil {
		return snap, err
	}
	owners, err := c.OwnerChain(ctx, pod)
	if err := add(jsonArtifact("owners.json", owners, err)); err != nil {
		return snap, err
	}
	switch {
	case pod.Spec.NodeName == "":
		snap.Artifacts = append(snap.Artifacts, Artifact{Name: "node.json", ContentType: contentJSON, Error: "the pod is not scheduled to a node"})
	case nodeErr != nil:
		snap.Artifacts = append(snap.Artifacts, Artifact{Name: "node.json", ContentType: contentJSON, Error: fmt.Sprintf("get node %s: %v", pod.Spec.NodeName, nodeErr)})
	default:
		node.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
		if err := add(jsonArtifact("node.json", node, nil)); err != nil {
			return snap, err
		}
	}
	events, err := c.podEvents(ctx, pod, req.EventsLimit)
	if err := add(jsonArtifact("events.json", events, err)); err != nil {
		return snap, err
	}
	if err := add(jsonArtifact("images.json", containerImages(pod), nil)); err != nil {
		return snap, err
	}
	if c.locks != nil {
		state, err := c.lockState(ctx, pod)
		if err := add(jsonArtifact(lockArtifact, state, err)); err != nil {
			return snap, err
		}
	}
	for _, ctr := range allContainers(pod) {
		for _, previous := range []bool{false, true} {
			if err := add(c.containerLog(ctx, pod, ctr.Name, previous, req.LogLimitBytes)); err != nil {
				return snap, err
			}
		}
	}
	if !req.Checkpoint {
		return snap, nil
	}
	running := runningContainers(pod)
	for _, name := range checkpointCandidates(pod) {
		a := Artifact{Name: checkpointArtifact(name), ContentType: contentJSON}
		if !slices.Contains(running, name) {
			a.Error = "the container is not running: nothing to checkpoint"
			snap.Artifacts = append(snap.Artifacts, a)
			continue
		}
		a.Data, err = c.checkpoint(ctx, pod, name)
		if err != nil {
			a.Error = err.Error()
			snap.Artifacts = append(snap.Artifacts, a)
			return snap, err
		}
		snap.Artifacts = append(snap.Artifacts, a)
	}
	return snap, nil
}

// answered returns err when the API server gave no answer to record: it could
// not be reached or the context ended. A retry then collects a complete
// snapshot. An answer (a status error, even one relayed from the kubelet) is
// evidence of why an artifact is missing and returns nil.
func answered(err error) error {
	var status apierrors.APIStatus
	if err == nil || errors.As(err, &status) {
		return nil
	}
	return err
}

// checkpointSupported fails with ErrCheckpointUnsupported unless the pod's
// node runs a kubelet whose checkpoint API is on by default; nodeErr is the
// error reading the node.
func checkpointSupported(pod *corev1.Pod, node *corev1.Node, nodeErr error) error {
	switch {
	case pod.Spec.NodeName == "":
		return fmt.Errorf("%w: pod %s/%s has no container to checkpoint", ErrNotScheduled, pod.Namespace, pod.Name)
	case apierrors.IsNotFound(nodeErr):
		return fmt.Errorf("%w: %s, the node of pod %s/%s", ErrNodeNotFound, pod.Spec.NodeName, pod.Namespace, pod.Name)
	case nodeErr != nil:
		return fmt.Errorf("kube: get node %s to check its kubelet version: %w", pod.Spec.NodeName, nodeErr)
	}
	kv := node.Status.NodeInfo.KubeletVersion
	v, err := version.ParseGeneric(kv)
	if err != nil {
		return fmt.Errorf("%w: node %s reports kubelet version %q, which soar cannot read; %s", ErrCheckpointUnsupported, node.Name, kv, checkpointRequirements)
	}
	if !v.AtLeast(minCheckpointKubelet) {
		return fmt.Errorf("%w: node %s runs kubelet %s; %s", ErrCheckpointUnsupported, node.Name, kv, checkpointRequirements)
	}
	return nil
}

// checkpoint asks the pod's kubelet, through the API server, to checkpoint
// one container, and returns the kubelet's answer: {"items":["<archive path
// on the node>"]}.
func (c *Client) checkpoint(ctx context.Context, pod *corev1.Pod, container string) ([]byte, error) {
	node := pod.Spec.NodeName
	data, err := c.cs.CoreV1().RESTClient().Post().
		AbsPath("/api/v1/nodes", node, "proxy", "checkpoint", pod.Namespace, pod.Name, container).
		Do(ctx).Raw()
	if err == nil {
		return data, nil
	}
	what := fmt.Sprintf("checkpoint container %s of pod %s/%s on node %s", container, pod.Namespace, pod.Name, node)
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return nil, fmt.Errorf("kube: %s: %w", what, err)
	}
	text := statusText(status.Status())
	switch code := status.Status().Code; {
	case code == 404 && (strings.Contains(text, "does not exist") || strings.Contains(text, "not found in pod")):
		// The kubelet has the API but does not know the pod or container
		// (yet): a retry may find it.
		return nil, fmt.Errorf("kube: %s: the kubelet does not know the container: %w", what, err)
	case code == 404:
		// The kubelet installs /checkpoint only with the ContainerCheckpoint
		// feature gate; without it (or before 1.25) the path does not exist.
		return nil, fmt.Errorf("%w: %s: the kubelet has no checkpoint API (404; is the ContainerCheckpoint feature gate off?); %s",
			ErrCheckpointUnsupported, what, checkpointRequirements)
	case code == 500 && runtimeCannotCheckpoint(text):
		return nil, fmt.Errorf("%w: %s: the container runtime cannot checkpoint (%s); %s",
			ErrCheckpointUnsupported, what, strings.TrimSpace(text), checkpointRequirements)
	}
	return nil, fmt.Errorf("kube: %s: %w", what, err)
}

// runtimeCannotCheckpoint recognizes, in the kubelet's 500 ("checkpointing of
// ns/pod/container failed (<CRI error>)"), the runtimes that have no
// checkpoint support: CRI-O without enable_criu_support says "checkpoint/
// restore support not available"; containerd before 2.0 and other runtimes
// without the CRI method answer gRPC Unimplemented; containerd 2.x without the
// criu binary fails to execute it.
func runtimeCannotCheckpoint(text string) bool {
	lower := strings.ToLower(text)
	for _, marker := range []string{
		"checkpoint/restore support not available",
		"code = unimplemented",
		"not implemented",
		"unimplemented",
		`"criu": executable file not found`,
	} {
		if strings.Contains(lower, marker) {
			return true
		}
	}
	return false
}

// statusText is what the kubelet answered, as the API server relays it: a
// non-Status body from the proxied kubelet is in a cause of type
// UnexpectedServerResponse; otherwise the message is the kubelet's.
func statusText(s metav1.Status) string {
	if s.Details != nil {
		for _, cause := range s.Details.Causes {
			if cause.Type == metav1.CauseTypeUnexpectedServerResponse && cause.Message != "" {
				return cause.Message
			}
		}
	}
	return s.Message
}

// containerLog reads one container log through the API server (pods/log),
// at most limit bytes.
func (c *Client) containerLog(ctx context.Context, pod *corev1.Pod, container string, previous bool, limit int64) (Artifact, error) {
	a := Artifact{Name: logArtifact(container, previous), ContentType: contentText}
	rc, err := c.cs.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{
		Container:  container,
		Previous:   previous,
		LimitBytes: &limit,
		Timestamps: true,
	}).Stream(ctx)
	if err != nil {
		a.Error = err.Error()
		return a, err
	}
	defer rc.Close()
	a.Data, err = io.ReadAll(io.LimitReader(rc, limit))
	if err != nil {
		return a, fmt.Errorf("kube: read log of container %s of pod %s/%s: %w", container, pod.Namespace, pod.Name, err)
	}
	return a, nil
}

// podEvents lists the pod's core/v1 events and keeps the newest limit of
// them, oldest first.
func (c *Client) podEvents(ctx context.Context, pod *corev1.Pod, limit int) (*corev1.EventList, error) {
	list, err := c.cs.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(pod.UID)).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("kube: list events of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	slices.SortStableFunc(list.Items, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	if len(list.Items) > limit {
		list.Items = list.Items[len(list.Items)-limit:]
	}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("EventList"))
	return list, nil
}

// eventTime is when an event last happened, from whichever field its
// reporter filled.
func eventTime(e corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// allContainers lists the pod's init, regular and ephemeral containers, in
// that order.
func allContainers(pod *corev1.Pod) []corev1.Container {
	all := slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers)
	for _, e := range pod.Spec.EphemeralContainers {
		all = append(all, corev1.Container(e.EphemeralContainerCommon))
	}
	return all
}

// checkpointCandidates names the containers a checkpoint is taken of: the
// regular and ephemeral containers, and the init containers that keep
// running beside them (sidecars, restartPolicy Always).
func checkpointCandidates(pod *corev1.Pod) []string {
	var names []string
	for _, ctr := range pod.Spec.InitContainers {
		if ctr.RestartPolicy != nil && *ctr.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			names = append(names, ctr.Name)
		}
	}
	for _, ctr := range pod.Spec.Containers {
		names = append(names, ctr.Name)
	}
	for _, ctr := range pod.Spec.EphemeralContainers {
		names = append(names, ctr.Name)
	}
	return names
}

// runningContainers names the containers the pod's status reports running;
// only those can be checkpointed.
func runningContainers(pod *corev1.Pod) []string {
	var names []string
	for _, st := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses) {
		if st.State.Running != nil {
			names = append(names, st.Name)
		}
	}
	return names
}

// containerImages lists every container's image and, once it ran, digest.
func containerImages(pod *corev1.Pod) []ContainerImage {
	status := map[string]corev1.ContainerStatus{}
	for _, st := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses) {
		status[st.Name] = st
	}
	images := []ContainerImage{}
	add := func(typ string, ctr corev1.Container) {
		img := ContainerImage{Container: ctr.Name, Type: typ, Image: ctr.Image}
		if st, ok := status[ctr.Name]; ok {
			img.ImageID, img.ContainerID = st.ImageID, st.ContainerID
			if st.Image != "" {
				img.Image = st.Image
			}
		}
		images = append(images, img)
	}
	for _, ctr := range pod.Spec.InitContainers {
		add("init", ctr)
	}
	for _, ctr := range pod.Spec.Containers {
		add("container", ctr)
	}
	for _, e := range pod.Spec.EphemeralContainers {
		add("ephemeral", corev1.Container(e.EphemeralContainerCommon))
	}
	return images
}

// artifactNames lists, in collection order, the artifacts CollectSnapshot
// collects for pod.
func artifactNames(pod *corev1.Pod, checkpoint bool) []string {
	names := []string{"pod.json", "owners.json", "node.json", "events.json", "images.json"}
	for _, ctr := range allContainers(pod) {
		names = append(names, logArtifact(ctr.Name, false), logArtifact(ctr.Name, true))
	}
	if checkpoint {
		for _, name := range checkpointCandidates(pod) {
			names = append(names, checkpointArtifact(name))
		}
	}
	return names
}

func logArtifact(container string, previous bool) string {
	if previous {
		return "logs/" + container + ".previous.log"
	}
	return "logs/" + container + ".log"
}

func checkpointArtifact(container string) string { return "checkpoint/" + container + ".json" }

func contentTypeOf(name string) string {
	if strings.HasSuffix(name, ".log") {
		return contentText
	}
	return contentJSON
}

// jsonArtifact encodes v as an indented JSON artifact, or records err.
func jsonArtifact(name string, v any, err error) (Artifact, error) {
	a := Artifact{Name: name, ContentType: contentJSON}
	if err != nil {
		a.Error = err.Error()
		return a, err
	}
	a.Data, err = json.MarshalIndent(v, "", "  ")
	if err != nil {
		return a, fmt.Errorf("kube: encode %s: %w", name, err)
	}
	return a, nil
}
