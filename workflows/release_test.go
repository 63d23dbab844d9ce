package workflows

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/playbooks"
)

// Steps of the playbooks below.
var (
	containStep  = playbooks.StepSpec{ID: "contain", Action: activities.ActionQuarantine}
	labelStep    = playbooks.StepSpec{ID: "label", Action: activities.ActionLabelPod, With: map[string]string{"labels": `{"team": "security"}`}}
	evidenceStep = playbooks.StepSpec{ID: "evidence", Action: activities.ActionSnapshot, OnError: playbooks.OnErrorRelease}
	killStep     = playbooks.StepSpec{ID: "kill", Action: activities.ActionDeletePod, WithoutApproval: true}
	scaleStep    = playbooks.StepSpec{ID: "scale", Action: activities.ActionScaleToZero, WithoutApproval: true}
)

func playbookOf(steps ...playbooks.StepSpec) RespondInput {
	in := input()
	in.Playbook.Steps = steps
	return in
}

// releaseMocks mocks every action the tests below run, forward and inverse,
// and returns the requests each action received.
func (e env) releaseMocks() map[string]*[]activities.ActionRequest {
	pod := func(req activities.ActionRequest) map[string]any {
		return map[string]any{"namespace": req.Params["namespace"], "pod": req.Params["pod"], "dryRun": req.DryRun}
	}
	with := func(req activities.ActionRequest, fields map[string]any) (map[string]any, error) {
		out := pod(req)
		maps.Copy(out, fields)
		return out, nil
	}
	return map[string]*[]activities.ActionRequest{
		activities.ActionQuarantine: e.onAction(activities.ActionQuarantine, quarantined),
		activities.ActionRelease: e.onAction(activities.ActionRelease, func(req activities.ActionRequest) (map[string]any, error) {
			return with(req, map[string]any{"unlabeled": true, "markerRemoved": true, "policyDeleted": true})
		}),
		activities.ActionLabelPod: e.onAction(activities.ActionLabelPod, func(req activities.ActionRequest) (map[string]any, error) {
			return with(req, map[string]any{"set": map[string]any{"team": "security"}, "previous": map[string]any{"team": "web"}, "changed": true})
		}),
		activities.ActionRestoreLabels: e.onAction(activities.ActionRestoreLabels, func(req activities.ActionRequest) (map[string]any, error) {
			return with(req, map[string]any{"restored": []any{"team"}})
		}),
		activities.ActionDeletePod: e.onAction(activities.ActionDeletePod, func(req activities.ActionRequest) (map[string]any, error) {
			return with(req, map[string]any{"deleted": true})
		}),
		activities.ActionScaleToZero: e.onAction(activities.ActionScaleToZero, func(req activities.ActionRequest) (map[string]any, error) {
			return map[string]any{"namespace": req.Params["namespace"], "kind": "Deployment", "name": "checkout", "previousReplicas": 3, "scaled": true}, nil
		}),
		activities.ActionRestoreScale: e.onAction(activities.ActionRestoreScale, func(req activities.ActionRequest) (map[string]any, error) {
			return map[string]any{"namespace": "payments", "kind": "Deployment", "name": "checkout", "replicas": 3, "restored": true}, nil
		}),
		activities.ActionSnapshot: e.onAction(activities.ActionSnapshot,
			fails(temporal.NewNonRetryableApplicationError("pod payments/checkout-7d9f8b6c5-x2lqp is gone", activities.ErrTypeTargetNotFound, nil))),
	}
}

// stepIDs lists the IDs of the recorded steps, in order.
func stepIDs(st *IncidentState) []string {
	ids := make([]string, len(st.Steps))
	for i, s := range st.Steps {
		ids[i] = s.ID
	}
	return ids
}

// checkReleased checks every "<id>.release" step of st: it ran the
// catalogue inverse of step id's action, succeeded, and the inverse received
// step id's parameters as Params and its output as Undo.
func checkReleased(t *testing.T, st *IncidentState, reqs map[string]*[]activities.ActionRequest) {
	t.Helper()
	for _, r := range st.Steps {
		id, ok := strings.CutSuffix(r.ID, ".release")
		if !ok {
			continue
		}
		i := slices.IndexFunc(st.Steps, func(f StepResult) bool { return f.ID == id })
		if i < 0 {
			t.Errorf("step %s releases no step", r.ID)
			continue
		}
		fwd := st.Steps[i]
		def, _ := activities.Lookup(fwd.Action)
		if r.Action != def.Inverse || r.Status != StepSucceeded || !reflect.DeepEqual(r.Params, fwd.Params) {
			t.Errorf("step %s = %+v, want %s succeeded with the params of %s, %v", r.ID, r, def.Inverse, id, fwd.Params)
		}
		var got []activities.ActionRequest
		if reqs[r.Action] != nil {
			got = slices.DeleteFunc(slices.Clone(*reqs[r.Action]), func(req activities.ActionRequest) bool { return req.Step != r.ID })
		}
		want := activities.ActionRequest{Action: r.Action, IncidentID: st.IncidentID, Step: r.ID, Params: fwd.Params, Undo: fwd.Output}
		if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Errorf("%s received %+v, want once %+v", r.Action, got, want)
		}
	}
}

func TestOnErrorReleaseUndoesWhatSucceededNewestFirst(t *testing.T) {
	e := newEnv(t)
	statuses := e.statuses()
	reqs := e.releaseMocks()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.ExecuteWorkflow(Respond, playbookOf(containStep, labelStep, evidenceStep))
	st := e.result()

	want := []string{"contain", "label", "evidence", "label.release", "contain.release"}
	if got := stepIDs(st); !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v", got, want)
	}
	if ev := st.Steps[2]; ev.Status != StepFailed || ev.ErrorType != activities.ErrTypeTargetNotFound {
		t.Errorf("evidence step = %+v, want failed with TargetNotFound", ev)
	}
	checkReleased(t, st, reqs)
	if !slices.Equal(*statuses, []string{"open/released", "closed/released"}) {
		t.Errorf("statuses %v, want released then closed", *statuses)
	}
}

func TestReleaseSignalRunsEveryInverseThenCloses(t *testing.T) {
	tests := []struct {
		name   string
		steps  []playbooks.StepSpec
		reason string
		// want lists the recorded steps, the releases included.
		want       []string
		wantReason string
	}{
		{
			name:  "a quarantine is released",
			steps: []playbooks.StepSpec{containStep}, reason: "false positive: red team exercise",
			want: []string{"contain", "contain.release"}, wantReason: "false positive: red team exercise",
		},
		{
			name:  "labels and quarantine are undone newest first",
			steps: []playbooks.StepSpec{containStep, labelStep}, reason: "false positive",
			want: []string{"contain", "label", "label.release", "contain.release"}, wantReason: "false positive",
		},
		{
			name:  "a release without a reason says it was asked for",
			steps: []playbooks.StepSpec{containStep},
			want:  []string{"contain", "contain.release"}, wantReason: "released on request",
		},
		{
			name:  "a deleted pod has no inverse: nothing is run for it",
			steps: []playbooks.StepSpec{containStep, killStep}, reason: "false positive",
			want: []string{"contain", "kill", "contain.release"}, wantReason: "false positive",
		},
		{
			name:  "scaling to zero is destructive but has an inverse",
			steps: []playbooks.StepSpec{scaleStep}, reason: "false positive",
			want: []string{"scale", "scale.release"}, wantReason: "false positive",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			statuses := e.statuses()
			reqs := e.releaseMocks()
			e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
			e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalRelease, tc.reason) }, time.Minute)
			e.ExecuteWorkflow(Respond, playbookOf(tc.steps...))
			st := e.result()

			if got := stepIDs(st); !slices.Equal(got, tc.want) {
				t.Fatalf("steps %v, want %v", got, tc.want)
			}
			checkReleased(t, st, reqs)
			if !slices.Equal(*statuses, []string{"open/contained", "open/released", "closed/released"}) {
				t.Errorf("statuses %v, want contained, released, closed", *statuses)
			}
			if st.Status != StatusClosed || st.CloseReason != tc.wantReason || st.ClosedAt.Sub(st.OpenedAt) != time.Minute {
				t.Errorf("status %s, reason %q, closed %s after opening; want closed, %q, at the signal (1m)",
					st.Status, st.CloseReason, st.ClosedAt.Sub(st.OpenedAt), tc.wantReason)
			}
		})
	}
}

func TestReleaseSignalAfterOnErrorReleaseUndoesNothingTwice(t *testing.T) {
	e := newEnv(t)
	statuses := e.statuses()
	reqs := e.releaseMocks()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalRelease, "confirmed false positive") }, time.Minute)
	e.ExecuteWorkflow(Respond, playbookOf(containStep, evidenceStep))
	st := e.result()

	if got, want := stepIDs(st), []string{"contain", "evidence", "contain.release"}; !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	if n := len(*reqs[activities.ActionRelease]); n != 1 {
		t.Errorf("the quarantine was released %d times, want once", n)
	}
	if !slices.Equal(*statuses, []string{"open/released", "open/released", "closed/released"}) || st.CloseReason != "confirmed false positive" {
		t.Errorf("statuses %v, reason %q", *statuses, st.CloseReason)
	}
}

func TestAFailedInverseIsRecorded(t *testing.T) {
	e := newEnv(t)
	e.onAction(activities.ActionQuarantine, quarantined)
	e.onAction(activities.ActionRelease, fails(temporal.NewNonRetryableApplicationError(
		`pods "checkout-7d9f8b6c5-x2lqp" is forbidden`, activities.ErrTypeForbidden, nil)))
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalRelease, "false positive") }, time.Minute)
	e.ExecuteWorkflow(Respond, input())
	st := e.result()
	if len(st.Steps) != 2 {
		t.Fatalf("steps %+v", st.Steps)
	}
	if r := st.Steps[1]; r.ID != "contain.release" || r.Status != StepFailed || r.ErrorType != activities.ErrTypeForbidden || r.Error != `pods "checkout-7d9f8b6c5-x2lqp" is forbidden` {
		t.Errorf("release step = %+v, want failed with Forbidden", r)
	}
}

func TestPlanModeReleasesAsADryRun(t *testing.T) {
	e := newEnv(t)
	reqs := e.releaseMocks()
	in := input()
	in.Playbook.Mode = playbooks.ModePlan
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(SignalRelease, "done planning") }, time.Minute)
	e.ExecuteWorkflow(Respond, in)
	st := e.result()
	for _, action := range []string{activities.ActionQuarantine, activities.ActionRelease} {
		got := *reqs[action]
		if len(got) != 1 || !got[0].DryRun {
			t.Errorf("%s requests %+v, want one dry run", action, got)
		}
	}
	if got, want := stepIDs(st), []string{"contain", "contain.release"}; !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
}

// TestLaterStepsActOnThePodTheFirstActionFound: Falco's alerts name no pod
// UID. The UID the quarantine found is pinned, and the later steps, and the
// release, carry it: a namesake that replaced the pod meanwhile is refused
// by the API calls (TargetChanged), never acted on.
func TestLaterStepsActOnThePodTheFirstActionFound(t *testing.T) {
	e := newEnv(t)
	contain := e.onAction(activities.ActionQuarantine, func(req activities.ActionRequest) (map[string]any, error) {
		out, err := quarantined(req)
		out["podUID"] = "uid-first"
		return out, err
	})
	label := e.onAction(activities.ActionLabelPod, succeeds)
	evidence := e.onAction(activities.ActionSnapshot, succeeds)
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	e.ExecuteWorkflow(Respond, playbookOf(containStep, labelStep, evidenceStep))
	st := e.result()
	if st.PodUID != "uid-first" {
		t.Errorf("pinned pod UID %q, want uid-first", st.PodUID)
	}
	if len(*contain) != 1 || (*contain)[0].Params["podUID"] != nil {
		t.Errorf("quarantine requests %+v: the first action has no UID to carry", *contain)
	}
	for name, reqs := range map[string]*[]activities.ActionRequest{"label_pod": label, "snapshot": evidence} {
		if len(*reqs) != 1 || (*reqs)[0].Params["podUID"] != "uid-first" {
			t.Errorf("%s requests %+v, want podUID uid-first", name, *reqs)
		}
	}
}
