package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/kube"
)

func wantNonRetryable(t *testing.T, err error, errType string) {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != errType {
		t.Fatalf("error %v, want non-retryable %s", err, errType)
	}
}

func TestEveryPodActionRefusesProtectedNamespacesBeforeAnyCall(t *testing.T) {
	a := &Activities{Kube: &stubKube{}, ProtectedNamespaces: DefaultProtectedNamespaces}
	for _, def := range Catalogue() {
		if !strings.Contains(fmt.Sprint(def.Params), "{namespace") {
			continue
		}
		t.Run(def.Name, func(t *testing.T) {
			params := map[string]any{"namespace": "kube-system", "pod": "coredns-1", "kind": "Deployment", "name": "coredns",
				"labels": map[string]any{"a": "b"}, "annotations": map[string]any{"a": "b"}}
			// The stub's nil methods would panic if the action reached the
			// connector.
			_, err := a.run(context.Background(), def.Name, ActionRequest{IncidentID: "i", Params: params})
			wantNonRetryable(t, err, ErrTypeProtectedNamespace)
		})
	}
}

func TestSoarsOwnInfrastructureIsProtectedByDefault(t *testing.T) {
	a := &Activities{Kube: &stubKube{}, ProtectedNamespaces: DefaultProtectedNamespaces}
	for _, ns := range []string{"soar", "temporal", "nats", "falco", "ingress-nginx"} {
		_, err := a.run(context.Background(), ActionQuarantine, ActionRequest{IncidentID: "i", Params: map[string]any{"namespace": ns, "pod": "x-1"}})
		wantNonRetryable(t, err, ErrTypeProtectedNamespace)
	}
}

func TestParametersOfTheWrongTypeAreInvalidRequests(t *testing.T) {
	a := &Activities{Kube: &stubKube{}}
	_, err := a.run(context.Background(), ActionDeletePod, ActionRequest{Params: map[string]any{"namespace": "shop", "pod": "web", "gracePeriodSeconds": "soon"}})
	wantNonRetryable(t, err, ErrTypeInvalidRequest)
	if !strings.Contains(err.Error(), "gracePeriodSeconds must be a number") {
		t.Errorf("message %q does not name the parameter and its type", err)
	}
	_, err = a.run(context.Background(), ActionLabelPod, ActionRequest{Params: map[string]any{"namespace": "shop", "pod": "web", "labels": map[string]any{"tier": 3}}})
	wantNonRetryable(t, err, ErrTypeInvalidRequest)
	_, err = a.run(context.Background(), ActionLabelPod, ActionRequest{Params: map[string]any{"namespace": "shop", "pod": "web"}})
	wantNonRetryable(t, err, ErrTypeInvalidRequest)
}

func TestUndoFillsAnInverseAndParamsWin(t *testing.T) {
	k := &releaseStub{}
	a := &Activities{Kube: k}
	_, err := a.run(context.Background(), ActionRelease, ActionRequest{
		IncidentID: "inc-1",
		Params:     map[string]any{"namespace": "shop", "pod": "web-1"},
		Undo:       map[string]any{"namespace": "ignored", "pod": "ignored", "podUID": "uid-1", "labeled": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := kube.ReleaseRequest{Namespace: "shop", Pod: "web-1", PodUID: "uid-1", Incident: "inc-1"}
	if k.got != want {
		t.Errorf("release request %+v, want %+v", k.got, want)
	}
}

type releaseStub struct {
	stubKube
	got kube.ReleaseRequest
}

func (r *releaseStub) Release(_ context.Context, req kube.ReleaseRequest) (kube.ReleaseResult, error) {
	r.got = req
	return kube.ReleaseResult{Namespace: req.Namespace, Pod: req.Pod}, nil
}

func TestQuarantineOfAPodThatCannotBeDetachedStillContainsIt(t *testing.T) {
	k := &detachStub{}
	a := &Activities{Kube: k}
	out, err := a.run(context.Background(), ActionQuarantine, ActionRequest{IncidentID: "i", Params: map[string]any{"namespace": "shop", "pod": "db-0", "detach": true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.reqs) != 2 || !k.reqs[0].Detach || k.reqs[1].Detach {
		t.Fatalf("requests %+v, want a detach then a plain quarantine", k.reqs)
	}
	if s, _ := out["detachSkipped"].(string); !strings.Contains(s, "StatefulSet") || out["labeled"] != true {
		t.Errorf("output %v", out)
	}
}

type detachStub struct {
	reqs []kube.QuarantineRequest
}

func (d *detachStub) Quarantine(_ context.Context, req kube.QuarantineRequest) (kube.QuarantineResult, error) {
	d.reqs = append(d.reqs, req)
	if req.Detach {
		return kube.QuarantineResult{}, fmt.Errorf("%w: pod shop/db-0 is owned by StatefulSet/db", kube.ErrUnsupportedOwner)
	}
	return kube.QuarantineResult{Namespace: req.Namespace, Pod: req.Pod, Labeled: true}, nil
}

func TestKubeErrorsMapToRetryDecisions(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	terminating := apierrors.NewForbidden(gr, "p", errors.New("namespace x is being terminated"))
	terminating.ErrStatus.Details.Causes = append(terminating.ErrStatus.Details.Causes, metaCause("NamespaceTerminating"))
	for _, tc := range []struct {
		err      error
		wantType string // "" means retryable
	}{
		{fmt.Errorf("%w: x", kube.ErrNodeNotFound), ErrTypeTargetNotFound},
		{fmt.Errorf("%w: x", kube.ErrNamespaceTerminating), ErrTypeNamespaceTerminating},
		{terminating, ErrTypeNamespaceTerminating},
		{fmt.Errorf("%w: x", kube.ErrUnsupportedOwner), ErrTypeUnsupportedOwner},
		{fmt.Errorf("%w: x", kube.ErrNotScheduled), ErrTypeNotScheduled},
		{fmt.Errorf("%w: x", kube.ErrCheckpointUnsupported), ErrTypeCheckpointUnsupported},
		{fmt.Errorf("wrapped: %w", kube.ErrReservedKey), ErrTypeInvalidRequest},
		{fmt.Errorf("%w: budget", kube.ErrDisruptionBudget), ""},
		{apierrors.NewConflict(gr, "p", errors.New("modified")), ""},
		{apierrors.NewInternalError(errors.New("etcd")), ""},
		{apierrors.NewTooManyRequests("slow down", 2), ""},
	} {
		err := kubeError(tc.err)
		var appErr *temporal.ApplicationError
		isApp := errors.As(err, &appErr)
		switch {
		case tc.wantType == "" && isApp && appErr.NonRetryable():
			t.Errorf("%v: non-retryable, want retryable", tc.err)
		case tc.wantType != "" && (!isApp || !appErr.NonRetryable() || appErr.Type() != tc.wantType):
			t.Errorf("%v: got %v, want non-retryable %s", tc.err, err, tc.wantType)
		}
	}
}

// snapStub collects a fixed snapshot and counts collections.
type snapStub struct {
	stubKube
	collections int
	// yielded: every collection's requests were of low priority.
	yielded bool
}

func (s *snapStub) CollectSnapshot(ctx context.Context, req kube.SnapshotRequest) (kube.Snapshot, error) {
	s.yielded = (s.collections == 0 || s.yielded) && kube.LowPriority(ctx)
	s.collections++
	snap := kube.Snapshot{Namespace: req.Namespace, Pod: req.Pod, PodUID: "uid-1", Node: "node-1"}
	snap.Artifacts = []kube.Artifact{
		{Name: "pod.json", ContentType: "application/json", Data: []byte(`{"kind":"Pod"}`)},
		{Name: "logs/app.previous.log", Error: "previous terminated container not found"},
	}
	return snap, nil
}

func TestSnapshotStoresOneBundlePerIncidentStep(t *testing.T) {
	k := &snapStub{}
	store := evidence.NewLocal(t.TempDir())
	a := &Activities{Kube: k, Evidence: store, Collector: evidence.Collector{Tool: "soar", Version: "test", Identity: "soar-worker@test"}}
	req := ActionRequest{IncidentID: "soar-inc-1", Step: "evidence", Params: map[string]any{"namespace": "shop", "pod": "web-1"}}
	first, err := a.run(context.Background(), ActionSnapshot, req)
	if err != nil {
		t.Fatal(err)
	}
	if !k.yielded {
		t.Error("the snapshot's API requests do not yield to containment's (kube.WithLowPriority)")
	}
	if first["artifacts"] != float64(1) || first["failed"] != float64(1) || first["node"] != "node-1" {
		t.Errorf("output %v", first)
	}
	loc, _ := first["location"].(string)
	if !strings.HasPrefix(loc, "file://") || !strings.HasSuffix(loc, "soar-inc-1/evidence/manifest.json") {
		t.Errorf("location %q", loc)
	}
	m, err := evidence.Verify(context.Background(), store, "soar-inc-1/evidence/manifest.json", first["sha256"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if m.Incident != "soar-inc-1" || m.Step != "evidence" || m.Collector.Identity != "soar-worker@test" || m.Target.PodUID != "uid-1" {
		t.Errorf("manifest %+v", m)
	}
	// A retry (or a duplicate execution) of the same step finds the bundle.
	again, err := a.run(context.Background(), ActionSnapshot, req)
	if err != nil {
		t.Fatal(err)
	}
	if k.collections != 1 || again["sha256"] != first["sha256"] {
		t.Errorf("collections %d, second output %v", k.collections, again)
	}
}

func TestSnapshotPlanStoresNothing(t *testing.T) {
	dir := t.TempDir()
	a := &Activities{Kube: &snapStub{}, Evidence: evidence.NewLocal(dir)}
	out, err := a.run(context.Background(), ActionSnapshot, ActionRequest{IncidentID: "i", Step: "s", DryRun: true, Params: map[string]any{"namespace": "shop", "pod": "web-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if out["dryRun"] != true || fmt.Sprint(out["planned"]) != "[pod.json logs/app.previous.log]" || out["location"] != nil {
		t.Errorf("output %v", out)
	}
	if _, ok, _ := evidence.Existing(context.Background(), evidence.NewLocal(dir), "i/s"); ok {
		t.Error("a plan stored a bundle")
	}
}

func metaCause(t string) metav1.StatusCause {
	return metav1.StatusCause{Type: metav1.CauseType(t), Message: "namespace is being terminated"}
}
