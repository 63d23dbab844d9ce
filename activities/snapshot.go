package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/kube"
)

// SnapshotParams are kubernetes.snapshot's parameters.
type SnapshotParams struct {
	PodParams
	Checkpoint    bool  `json:"checkpoint,omitempty"`
	LogLimitBytes int64 `json:"logLimitBytes,omitempty"`
}

// SnapshotOutput is what a snapshot leaves in the workflow's history: where
// the bundle's manifest is and its digest, never the evidence itself.
type SnapshotOutput struct {
	Namespace string   `json:"namespace"`
	Pod       string   `json:"pod"`
	PodUID    string   `json:"podUID"`
	Node      string   `json:"node,omitempty"`
	Location  string   `json:"location,omitempty"`
	SHA256    string   `json:"sha256,omitempty"`
	Artifacts int      `json:"artifacts"`
	Failed    int      `json:"failed"`
	Planned   []string `json:"planned,omitempty"`
	DryRun    bool     `json:"dryRun,omitempty"`
}

// snapshot collects the pod's evidence and stores it as a bundle under
// <incident>/<step>/ in the evidence store. A retried activity, or a second
// run of the same step, finds the bundle's manifest there and returns it
// instead of collecting again: one bundle per incident and step.
func (a *Activities) snapshot(ctx context.Context, req ActionRequest) (any, error) {
	var in SnapshotParams
	if err := a.podRequest(req, &in, &in.PodParams); err != nil {
		return nil, err
	}
	if a.Evidence == nil && !req.DryRun {
		return nil, temporal.NewNonRetryableApplicationError("no evidence store is configured (see --evidence-dir and --evidence-s3-bucket)", ErrTypeEvidenceStore, nil)
	}
	out := SnapshotOutput{Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID, DryRun: req.DryRun}
	prefix := bundlePrefix(req.IncidentID, req.Step)
	if !req.DryRun {
		ref, ok, err := evidence.Existing(ctx, a.Evidence, prefix)
		if err != nil {
			return nil, evidenceError(err)
		}
		if ok {
			return fromRef(out, ref), nil
		}
	}
	snap, err := a.Kube.CollectSnapshot(ctx, kube.SnapshotRequest{
		Namespace: in.Namespace, Pod: in.Pod, PodUID: in.PodUID,
		Checkpoint: in.Checkpoint, LogLimitBytes: in.LogLimitBytes, DryRun: req.DryRun,
	})
	if err != nil {
		return nil, kubeError(err)
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
		Target:      evidence.Target{Namespace: snap.Namespace, Pod: snap.Pod, PodUID: snap.PodUID, Node: snap.Node},
	}, arts)
	if err != nil {
		return nil, evidenceError(err)
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
func bundlePrefix(incident, step string) string {
	clean := func(s string) string { return strings.NewReplacer("/", "_", "..", "_").Replace(s) }
	if step == "" {
		step = "snapshot"
	}
	return clean(incident) + "/" + clean(step)
}

// evidenceError marks store errors retrying cannot fix as non-retryable.
func evidenceError(err error) error {
	if errors.Is(err, evidence.ErrPermanent) {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("evidence store: %v", err), ErrTypeEvidenceStore, err)
	}
	return fmt.Errorf("evidence store: %w", err)
}
