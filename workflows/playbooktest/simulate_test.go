package playbooktest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// TestEveryCatalogueActionIsSimulated runs every catalogue action by name,
// as the Respond workflow does, in a test environment set up like the
// simulation's: an action left unmocked would run the real activity, whose
// nil clients fail it.
func TestEveryCatalogueActionIsSimulated(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	simulateActions(env, testActions())
	runAll := func(ctx workflow.Context) (map[string]map[string]any, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
		})
		outs := map[string]map[string]any{}
		for _, action := range testActions() {
			req := contract.ActionRequest{
				Action: action.Name, IncidentID: "i", Step: "s",
				Params: map[string]any{"namespace": "payments", "pod": "web-1"}, DryRun: true,
			}
			var out map[string]any
			if err := workflow.ExecuteActivity(ctx, action.Name, req).Get(ctx, &out); err != nil {
				return nil, fmt.Errorf("%s: %w", action.Name, err)
			}
			outs[action.Name] = out
		}
		return outs, nil
	}
	env.ExecuteWorkflow(runAll)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("an action is not simulated: %v", err)
	}
	var outs map[string]map[string]any
	if err := env.GetWorkflowResult(&outs); err != nil {
		t.Fatal(err)
	}
	// Every output field is there, with a value of its type, as the workflow
	// sees it after JSON.
	kinds := map[string]reflect.Kind{
		"string": reflect.String, "bool": reflect.Bool, "int": reflect.Float64,
		"map": reflect.Map, "list": reflect.Slice,
	}
	for _, action := range testActions() {
		out := outs[action.Name]
		for _, f := range action.Output {
			v, ok := out[f.Name]
			if !ok || v == nil || reflect.TypeOf(v).Kind() != kinds[f.Type] {
				t.Errorf("%s: output %s = %#v, want a %s", action.Name, f.Name, v, f.Type)
			}
		}
		if len(out) != len(action.Output) {
			t.Errorf("%s: output %v has fields the catalogue does not list", action.Name, out)
		}
		if _, hasPod := out["pod"]; hasPod && (out["namespace"] != "payments" || out["pod"] != "web-1") {
			t.Errorf("%s: output %v does not name the pod it was asked about", action.Name, out)
		}
		if out["dryRun"] != true {
			t.Errorf("%s: output dryRun = %v, want true in plan mode", action.Name, out["dryRun"])
		}
	}
}

func TestSimulatedQuarantineEchoesItsInputAndFillsEveryOutputField(t *testing.T) {
	action := actionNamed(activities.ActionQuarantine)
	sim := simulator(action)
	for _, dryRun := range []bool{false, true} {
		out, err := sim(context.Background(), contract.ActionRequest{
			Action: action.Name, IncidentID: "i", Step: "contain",
			Params: map[string]any{"namespace": "payments", "pod": "web-1", "detach": true}, DryRun: dryRun,
		})
		if err != nil {
			t.Fatal(err)
		}
		// One field of each kind; TestEveryCatalogueActionIsSimulated checks
		// that every field is there.
		want := map[string]any{
			"namespace": "payments", "pod": "web-1", "podUID": "", // a UID is echoed, never invented
			"policy": "simulated", "labeled": true,
			"detachedLabels": map[string]any{}, "otherPolicies": []any{},
			"dryRun": dryRun,
		}
		for name, w := range want {
			if got := out[name]; !reflect.DeepEqual(got, w) {
				t.Errorf("dry run %v: output %s = %#v, want %#v", dryRun, name, got, w)
			}
		}
		if len(out) != len(action.Output) {
			t.Errorf("dry run %v: output %v has %d fields, the catalogue %d", dryRun, out, len(out), len(action.Output))
		}
	}
}

func TestSimulatedInverseReadsWhatItUndoesAndTheStepsParams(t *testing.T) {
	action := actionNamed(activities.ActionRestoreScale)
	out, err := simulator(action)(context.Background(), contract.ActionRequest{
		Action: action.Name, IncidentID: "i", Step: "scale.release",
		Params: map[string]any{"namespace": "payments", "pod": "web-1"},
		Undo:   map[string]any{"namespace": "simulated", "kind": "Deployment", "name": "web", "previousReplicas": 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The workload comes from what scale_to_zero reported (Undo); the
	// step's namespace wins, as it does in the real activity.
	want := map[string]any{"namespace": "payments", "kind": "Deployment", "name": "web", "restored": true, "dryRun": false}
	for name, w := range want {
		if got := out[name]; !reflect.DeepEqual(got, w) {
			t.Errorf("output %s = %#v, want %#v", name, got, w)
		}
	}
}

// matchIn loads the playbook src, matches the sample shell alert against it
// and returns the match and the alert.
func matchIn(t *testing.T, src string) (playbooks.Match, alert.Alert) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := playbooks.LoadDir(dir, testLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../testdata/alerts/falco-terminal-shell.json")
	if err != nil {
		t.Fatal(err)
	}
	a, err := alert.Decode(data, alert.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	matches, errs := set.Match(a)
	if len(matches) != 1 || len(errs) > 0 {
		t.Fatalf("matches %v, errors %v", matches, errs)
	}
	return matches[0], a
}

func TestSimulateVotesAsTheDecisionSays(t *testing.T) {
	tests := []struct {
		decision string
		votes    []workflows.Vote // only User and Approve are compared
		outcome  string
	}{
		{DecisionApprove, []workflows.Vote{{User: "U1", Approve: true}, {User: "U2", Approve: true}}, playbooks.OutcomeApproved},
		{DecisionDeny, []workflows.Vote{{User: "U1", Approve: false}}, playbooks.OutcomeDenied},
		{DecisionExpire, nil, playbooks.OutcomeExpired},
		{"", nil, playbooks.OutcomeExpired},
	}
	for _, tc := range tests {
		t.Run("decision "+tc.decision, func(t *testing.T) {
			m, a := matchIn(t, approvePlaybook)
			inc := simulate(m, a, &Case{Repeat: 1, Decisions: map[string]string{"ask": tc.decision}}, testActions())
			if len(inc.problems) > 0 || inc.state == nil {
				t.Fatalf("problems: %v", inc.problems)
			}
			ap := inc.state.Approvals[0]
			var votes []workflows.Vote
			for _, v := range ap.Votes {
				votes = append(votes, workflows.Vote{User: v.User, Approve: v.Approve})
			}
			if !reflect.DeepEqual(votes, tc.votes) || ap.Outcome != tc.outcome {
				t.Errorf("votes %+v, outcome %s; want %+v, %s", votes, ap.Outcome, tc.votes, tc.outcome)
			}
		})
	}
}

func TestSimulateRunsTheWorkflowAsTheDispatcherStartsIt(t *testing.T) {
	m, a := matchIn(t, planPlaybook)
	inc := simulate(m, a, &Case{Repeat: 2}, testActions())
	if len(inc.problems) > 0 || inc.state == nil {
		t.Fatalf("problems: %v", inc.problems)
	}
	st := inc.state
	if st.IncidentID != m.IncidentID() || st.IncidentKey != "payments/checkout-7d9f8b6c5-x2lqp" || st.PlaybookVersion != m.Playbook.Version {
		t.Errorf("incident %s key %s version %s", st.IncidentID, st.IncidentKey, st.PlaybookVersion)
	}
	if st.AlertCount != 2 || inc.delivered != 2 || !reflect.DeepEqual(st.Seen, []string{"test:1", "test:2"}) {
		t.Errorf("alerts %d, delivered %d, seen %v", st.AlertCount, inc.delivered, st.Seen)
	}
	// The clock starts at the alert's time, and the alerts come a minute
	// apart.
	if !st.OpenedAt.Equal(a.Time) || st.LastAlertAt.Sub(st.OpenedAt) != 60e9 {
		t.Errorf("opened %s, last alert %s; alert time %s", st.OpenedAt, st.LastAlertAt, a.Time)
	}
	if st.Status != workflows.StatusClosed || st.CloseReason != closeReason || inc.statusAfterSteps() != workflows.StatusPlanned {
		t.Errorf("status %s (%s), after the steps %s; statuses %v", st.Status, st.CloseReason, inc.statusAfterSteps(), inc.statuses)
	}
	if out := st.Steps[0].Output; out["dryRun"] != true || out["pod"] != "checkout-7d9f8b6c5-x2lqp" {
		t.Errorf("plan mode output = %v, want a dry run on the alert's pod", out)
	}
}

// TestSimulateAnAlertOfACluster: an alert that names its cluster runs its
// Kubernetes steps as if that cluster's worker were there, and the incident
// is the cluster's.
func TestSimulateAnAlertOfACluster(t *testing.T) {
	m, a := matchIn(t, planPlaybook)
	a.Cluster = "prod-eu"
	m.Cluster = a.Cluster
	inc := simulate(m, a, &Case{}, testActions())
	if len(inc.problems) > 0 || inc.state == nil {
		t.Fatalf("problems: %v", inc.problems)
	}
	st := inc.state
	if st.IncidentID != m.IncidentID() || st.FirstAlert.Cluster != "prod-eu" || !st.ClusterServed {
		t.Errorf("incident %s, first alert's cluster %q, cluster served %v", st.IncidentID, st.FirstAlert.Cluster, st.ClusterServed)
	}
	if len(st.Steps) != 1 || st.Steps[0].Status != workflows.StepSucceeded {
		t.Errorf("steps %+v, want contain succeeded", st.Steps)
	}
}
