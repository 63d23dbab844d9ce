package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/kube"
)

// ActionSnapshot collects forensic evidence of one pod.
const ActionSnapshot = contract.ActionSnapshot

var snapshot = Define(Action{
	Name: ActionSnapshot,
	Summary: "Collect forensic evidence of one pod — manifest, owner chain, node, events, image digests, current and previous logs, optionally a kubelet checkpoint — " +
		"hash every artifact (SHA-256) into a manifest and store the bundle.",
	// Logs and checkpoints of every container take longer than an API
	// write.
	Attempt: 5 * time.Minute,
	Role:    RoleEvidence,
	Permissions: []Permission{
		{Group: "", Resource: "events", Verbs: []string{"list"}},
		{Group: "", Resource: "nodes", Verbs: []string{"get"}},
		{Group: "", Resource: "nodes/proxy", Verbs: []string{"create"}, Role: RoleCheckpoint},
		{Group: "", Resource: "pods", Verbs: []string{"get"}},
		{Group: "", Resource: "pods/log", Verbs: []string{"get"}},
		{Group: "", Resource: "replicationcontrollers", Verbs: []string{"get"}},
		{Group: "apps", Resource: "daemonsets", Verbs: []string{"get"}},
		{Group: "apps", Resource: "deployments", Verbs: []string{"get"}},
		{Group: "apps", Resource: "replicasets", Verbs: []string{"get"}},
		{Group: "apps", Resource: "statefulsets", Verbs: []string{"get"}},
		{Group: "batch", Resource: "cronjobs", Verbs: []string{"get"}},
		{Group: "batch", Resource: "jobs", Verbs: []string{"get"}},
	},
}, (*Activities).snapshot)

// SnapshotParams are kubernetes.snapshot's parameters.
type SnapshotParams struct {
	PodParams
	Checkpoint    bool  `json:"checkpoint,omitempty" default:"false" doc:"also ask the kubelet to checkpoint each container (Kubernetes ≥ 1.30 with the ContainerCheckpoint feature and a runtime that supports it)"`
	LogLimitBytes int64 `json:"logLimitBytes,omitempty" default:"10485760" doc:"bytes kept of each container log"`
}

type snapshotter interface {
	CollectSnapshot(ctx context.Context, req kube.SnapshotRequest) (kube.Snapshot, error)
}

var _ snapshotter = (*kube.Client)(nil)

// SnapshotOutput is what a snapshot leaves in the workflow's history: where
// the bundle's manifest is and its digest, never the evidence itself.
type SnapshotOutput struct {
	Namespace string   `json:"namespace" doc:"namespace of the pod"`
	Pod       string   `json:"pod" doc:"name of the pod"`
	PodUID    string   `json:"podUID" doc:"UID of the pod acted on"`
	Node      string   `json:"node,omitempty" doc:"the node the pod runs on"`
	Location  string   `json:"location,omitempty" doc:"where the bundle's manifest is stored (file:// or s3://)"`
	SHA256    string   `json:"sha256,omitempty" doc:"SHA-256 of the manifest, which holds every artifact's SHA-256"`
	Artifacts int      `json:"artifacts" doc:"artifacts stored"`
	Failed    int      `json:"failed" doc:"artifacts that could not be collected (the manifest says why)"`
	Planned   []string `json:"planned,omitempty" doc:"in plan mode, the artifacts it would collect"`
	DryRun    bool     `json:"dryRun,omitempty" doc:"true in plan mode: nothing was stored; the other fields say what would have changed"`
}

// snapshot collects the pod's evidence and stores it as a bundle under
// <incident>/<occurrence>/<step>/ in the evidence store. A retried activity, or a second
// run of the same step, finds the bundle's manifest there and returns it
// instead of collecting again: one bundle per incident and step.
func (a *Activities) snapshot(ctx context.Context, in SnapshotParams, req ActionRequest) (SnapshotOutput, error) {
	if err := a.needPod(ctx, req.Action, in.PodParams); err != nil {
		return SnapshotOutput{}, err
	}
	k, err := kubeFor[snapshotter](a, req.Action)
	if err != nil {
		return SnapshotOutput{}, err
	}
	if a.Evidence == nil && !req.DryRun {
		return SnapshotOutput{}, temporal.NewNonRetryableApplicationError("no evidence store is configured (see --evidence-dir and --evidence-s3-bucket)", ErrTypeEvidenceStore, nil)
	}
	out := SnapshotOutput{Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, DryRun: req.DryRun}
	prefix := bundlePrefix(req.IncidentID, req.Occurrence, req.Step)
	if !req.DryRun {
		ref, ok, err := evidence.Existing(ctx, a.Evidence, prefix)
		if err != nil {
			return SnapshotOutput{}, evidenceError(err)
		}
		if ok {
			return fromRef(out, ref), nil
		}
	}
	snap, err := k.CollectSnapshot(ctx, kube.SnapshotRequest{
		Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID,
		Checkpoint: in.Checkpoint, LogLimitBytes: in.LogLimitBytes, DryRun: req.DryRun,
	})
	if err != nil {
		return SnapshotOutput{}, kubeError(err)
	}
	out.PodUID, out.Node = snap.PodUID, snap.Node
	if req.DryRun {
		for _, art := range snap.Artifacts {
			out.Planned = append(out.Planned, art.Name)
		}
		return out, nil
	}
	arts := make([]evidence.Artifact, len(snap.Artifacts))
	for i, art := range snap.Artifacts {
		arts[i] = evidence.Artifact{Name: art.Name, ContentType: art.ContentType, Data: art.Data, Error: art.Error}
	}
	collector := a.Collector
	collector.Tool = cmp.Or(collector.Tool, "soar")
	ref, err := evidence.WriteBundle(ctx, a.Evidence, prefix, evidence.Manifest{
		Incident:    req.IncidentID,
		Step:        req.Step,
		Action:      req.Action,
		Collector:   collector,
		CollectedAt: time.Now().UTC(),
		Target:      evidence.Target{Namespace: snap.Namespace, Pod: snap.Pod, PodUID: snap.PodUID, Node: snap.Node, Cluster: a.Cluster},
	}, arts)
	if err != nil {
		return SnapshotOutput{}, evidenceError(err)
	}
	return fromRef(out, ref), nil
}

func fromRef(out SnapshotOutput, ref evidence.Ref) SnapshotOutput {
	out.Location, out.SHA256, out.Artifacts, out.Failed = ref.Location, ref.SHA256, ref.Artifacts, ref.Failed
	return out
}

// bundlePrefix is where an incident step's bundle lives in the store. Step
// IDs are playbook identifiers and incident IDs are soar's workflow IDs, so
// neither holds a slash; the replacement only guards against surprises.
func bundlePrefix(incident, occurrence, step string) string {
	clean := func(s string) string { return strings.NewReplacer("/", "_", "..", "_").Replace(s) }
	if step == "" {
		step = "snapshot"
	}
	if occurrence == "" {
		// Incidents from before occurrences: one bundle per incident ID.
		return clean(incident) + "/" + clean(step)
	}
	return clean(incident) + "/" + clean(occurrence) + "/" + clean(step)
}

// evidenceError marks store errors retrying cannot fix as non-retryable.
func evidenceError(err error) error {
	if errors.Is(err, evidence.ErrPermanent) {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("evidence store: %v", err), ErrTypeEvidenceStore, err)
	}
	return fmt.Errorf("evidence store: %w", err)
}
