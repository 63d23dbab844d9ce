package playbooktest

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/internal/alert"
	"github.com/soar-dev/soar/internal/app"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

func TestEveryCatalogueActionIsSimulated(t *testing.T) {
	fns := simulatedActivities()
	for _, action := range activities.Catalogue() {
		fn, ok := fns[action.Name]
		if !ok {
			t.Errorf("action %s has no simulated activity: add it to simulatedActivities", action.Name)
			continue
		}
		ft := reflect.TypeOf(fn)
		if ft.Kind() != reflect.Func || ft.NumIn() != 2 || ft.NumOut() != 2 {
			t.Errorf("action %s: activity %s is not func(ctx, input) (output, error)", action.Name, ft)
		}
	}
}

func TestSimulatedQuarantineEchoesItsInputAndFillsEveryOutputField(t *testing.T) {
	action, _ := activities.Lookup(activities.ActionQuarantine)
	fn := simulatedActivities()[activities.ActionQuarantine]
	sim := simulator(fn, action).(func(context.Context, activities.QuarantineInput) (activities.QuarantineOutput, error))
	for _, dryRun := range []bool{false, true} {
		out, err := sim(context.Background(), activities.QuarantineInput{IncidentID: "i", Namespace: "payments", Pod: "web-1", DryRun: dryRun})
		if err != nil {
			t.Fatal(err)
		}
		want := kube.QuarantineResult{
			Namespace: "payments", Pod: "web-1", PodUID: "simulated", Label: "simulated", Labeled: true,
			Policy: "simulated", PolicyCreated: true, PolicyRepaired: true, DryRun: dryRun,
		}
		if out != want {
			t.Errorf("dry run %v: output = %+v, want %+v", dryRun, out, want)
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
	set, err := playbooks.Load(dir, app.PlaybookOptions())
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
			inc := simulate(m, a, &Case{Repeat: 1, Decisions: map[string]string{"ask": tc.decision}})
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
	inc := simulate(m, a, &Case{Repeat: 2})
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
