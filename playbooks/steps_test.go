package playbooks

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/soar-dev/soar/alert"
)

const fullPlaybook = `name: escalate-shell
description: Ask before containing; contain at once when the shell persists.
owner: secops
labels: {team: platform, tier: "1"}
severity: 'incident.alertCount > 1 ? Critical : alert.severity'
mode: plan
match: alert.rule == "Terminal shell in container"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: ask
    approval:
      approvers: [U01, S02, api:alice, user:bob@example.com]
      quorum: 2
      timeout: 30m
      onExpiry: approve
      message: Contain the pod?
    onError: continue
  - id: settle
    wait: 2m
  - id: contain
    action: kubernetes.quarantine
    if: steps.ask.output.outcome == "approved" || incident.alertCount >= 10
    timeout: 2m
    retry: {maxAttempts: 5, initialInterval: 500ms, maximumInterval: 10s, backoffCoefficient: 3}
    onError: release
  - id: wipe
    action: kubernetes.delete_pod
    if: steps.ask.output.outcome == "approved"
`

func stepOptions() LoadOptions {
	return LoadOptions{
		Actions: []ActionInfo{
			{Name: "kubernetes.quarantine", Facts: ActionFacts{Inverse: "kubernetes.release", FromAlert: []AlertParam{{Param: "pod", Field: "pod"}}}},
			{Name: "kubernetes.delete_pod", Facts: ActionFacts{Destructive: true}},
		},
	}
}

func TestStepLanguageLoadsIntoTheSpec(t *testing.T) {
	set := mustLoad(t, writeFiles(t, map[string]string{"p.yaml": fullPlaybook}), stepOptions())
	p, _ := set.Get("escalate-shell")
	if p.Owner != "secops" || !reflect.DeepEqual(p.Labels, map[string]string{"team": "platform", "tier": "1"}) || p.Mode != ModePlan {
		t.Errorf("metadata: owner %q labels %v mode %q", p.Owner, p.Labels, p.Mode)
	}
	spec := p.Spec()
	want := []StepSpec{
		{ID: "ask", Kind: KindApproval, OnError: OnErrorContinue, Approval: &Approval{
			Approvers: []string{"U01", "S02", "api:alice", "user:bob@example.com"}, Quorum: 2, Timeout: 30 * time.Minute, OnExpiry: "approve", Message: "Contain the pod?",
		}},
		{ID: "settle", Kind: KindWait, Wait: 2 * time.Minute},
		{ID: "contain", Kind: KindAction, Action: "kubernetes.quarantine",
			If:      `steps.ask.output.outcome == "approved" || incident.alertCount >= 10`,
			Timeout: 2 * time.Minute, OnError: OnErrorRelease,
			Retry: &Retry{MaxAttempts: 5, InitialInterval: 500 * time.Millisecond, MaximumInterval: 10 * time.Second, BackoffCoefficient: 3},
			// The action's facts are pinned as the options gave them.
			Facts: &ActionFacts{Inverse: "kubernetes.release", FromAlert: []AlertParam{{Param: "pod", Field: "pod"}}}},
		{ID: "wipe", Kind: KindAction, Action: "kubernetes.delete_pod", If: `steps.ask.output.outcome == "approved"`, Facts: &ActionFacts{Destructive: true}},
	}
	if diff := cmp.Diff(want, spec.Steps, cmpopts.IgnoreUnexported(Approval{})); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if spec.Mode != ModePlan {
		t.Errorf("spec mode %q", spec.Mode)
	}
}

func TestStepLanguageErrors(t *testing.T) {
	head := "name: p\nmatch: 'true'\nincidentKey: alert.id\nsteps:\n"
	for _, tc := range []struct {
		name, steps string
		want        wantError
	}{
		{"no kind", "  - id: a\n    onError: continue\n", wantError{"p.yaml:5:5: steps[0]", "needs one of action, wait or approval"}},
		{"two kinds", "  - id: a\n    action: kubernetes.quarantine\n    wait: 1m\n", wantError{"p.yaml:5:5: steps[0]", "not action and wait"}},
		{"with on a wait", "  - id: a\n    wait: 1m\n    with: {pod: alert.k8s.pod}\n", wantError{"p.yaml:7:11: steps[0].with", "only an action step takes with"}},
		{"retry on an approval", "  - id: a\n    approval: {approvers: [U1]}\n    retry: {maxAttempts: 2}\n", wantError{"p.yaml:7:12: steps[0].retry", "only an action step takes retry"}},
		{"bad onError", "  - id: a\n    wait: 1m\n    onError: ignore\n", wantError{"p.yaml:7:14: steps[0].onError", `"ignore" is not abort, continue or release`}},
		{"wait too short", "  - id: a\n    wait: 10ms\n", wantError{"p.yaml:6:11: steps[0].wait", "outside the allowed range"}},
		{"quorum above approvers", "  - id: a\n    approval: {approvers: [U1], quorum: 2}\n", wantError{"p.yaml:6:41: steps[0].approval.quorum", "a quorum of 2 needs at least 2 approvers"}},
		{"no approvers", "  - id: a\n    approval: {approvers: []}\n", wantError{"p.yaml:6:27: steps[0].approval.approvers", "non-empty list"}},
		{"if not bool", "  - id: a\n    wait: 1m\n    if: incident.alertCount\n", wantError{"p.yaml:7:9: steps[0].if", "expected bool"}},
		{"destructive without approval", "  - id: a\n    action: kubernetes.delete_pod\n", wantError{"p.yaml:6:13: steps[0].action", "kubernetes.delete_pod is destructive: put an approval step before it"}},
		{"bad approver", "  - id: a\n    approval: {approvers: [alice]}\n", wantError{"p.yaml:6:28: steps[0].approval.approvers[0]", `"alice" is not an approver`}},
		{"empty user approver", "  - id: a\n    approval: {approvers: [\"user:\"]}\n", wantError{"p.yaml:6:28: steps[0].approval.approvers[0]", `"user:" is not an approver`}},
		{"cli approver", "  - id: a\n    approval: {approvers: [cli:alice]}\n", wantError{"p.yaml:6:28: steps[0].approval.approvers[0]", `cli: identities are gone; 'soar approve' now votes through soar's API as api:<token name>: list api:alice`}},
		{"one approver before a destructive action", "  - id: a\n    approval: {approvers: [U1]}\n  - id: b\n    action: kubernetes.delete_pod\n", wantError{"p.yaml:6:27: steps[0].approval.approvers", "kubernetes.delete_pod is destructive, so this approval needs 2 distinct approvers by default"}},
		{"escalation after expiry", "  - id: a\n    approval: {approvers: [U1], timeout: 10m, escalate: {after: 1h, approvers: [U2]}}\n", wantError{"p.yaml:6:65: steps[0].approval.escalate.after", "comes after the approval expires"}},
		{"requester not a string", "  - id: a\n    approval: {approvers: [U1], requester: incident.alertCount}\n", wantError{"p.yaml:6:44: steps[0].approval.requester", "expected string"}},
		{"retry interval order", "  - id: a\n    action: kubernetes.quarantine\n    retry: {initialInterval: 10s, maximumInterval: 1s}\n", wantError{"p.yaml:7:12: steps[0].retry", "shorter than initialInterval"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadDir(writeFiles(t, map[string]string{"p.yaml": head + tc.steps}), stepOptions())
			var le *LoadErrors
			if !errors.As(err, &le) || len(le.Errs) != 1 {
				t.Fatalf("want exactly one problem, got %v", err)
			}
			got := le.Errs[0]
			at := fmt.Sprintf("%s:%d:%d: %s", filepath.Base(got.File), got.Line, got.Column, got.Field)
			if !strings.HasPrefix(at, tc.want.at) || !strings.Contains(got.Err.Error(), tc.want.msg) {
				t.Errorf("problem %q (%v), want at %q containing %q", at, got.Err, tc.want.at, tc.want.msg)
			}
		})
	}
}

func TestDestructiveActionsPassWithApprovalOrExplicitOptOut(t *testing.T) {
	head := "name: p\nmatch: 'true'\nincidentKey: alert.id\nsteps:\n"
	for name, steps := range map[string]string{
		"approval before":          "  - id: ask\n    approval: {approvers: [U1, U2]}\n  - id: wipe\n    action: kubernetes.delete_pod\n",
		"one person, explicitly":   "  - id: ask\n    approval: {approvers: [U1], quorum: 1}\n  - id: wipe\n    action: kubernetes.delete_pod\n",
		"a user group counts many": "  - id: ask\n    approval: {approvers: [S1]}\n  - id: wipe\n    action: kubernetes.delete_pod\n",
		"withoutApproval":          "  - id: wipe\n    action: kubernetes.delete_pod\n    withoutApproval: true\n",
		"a weak approval, but the step requires its votes": "  - id: ask\n    approval: {approvers: [U1, U2], onExpiry: approve}\n    onError: continue\n" +
			"  - id: wipe\n    action: kubernetes.delete_pod\n    if: incident.alertCount > 0 && steps.ask.output.outcome == \"approved\"\n",
		"a weak approval, then a strong one": "  - id: ask\n    approval: {approvers: [U1]}\n    if: alert.severity > Notice\n" +
			"  - id: again\n    approval: {approvers: [U1, U2]}\n  - id: wipe\n    action: kubernetes.delete_pod\n",
	} {
		t.Run(name, func(t *testing.T) {
			mustLoad(t, writeFiles(t, map[string]string{"p.yaml": head + steps}), stepOptions())
		})
	}
}

func TestDestructiveActionsRefuseApprovalsThatCanBeBypassed(t *testing.T) {
	head := "name: p\nmatch: 'true'\nincidentKey: alert.id\nsteps:\n"
	wipe := "  - id: wipe\n    action: kubernetes.delete_pod\n"
	for name, tc := range map[string]struct{ steps, want string }{
		"an approval under an if": {"  - id: ask\n    approval: {approvers: [U1, U2]}\n    if: alert.severity > Notice\n" + wipe,
			"approval ask: it is skipped when its if is false"},
		"an approval that approves on expiry": {"  - id: ask\n    approval: {approvers: [U1, U2], onExpiry: approve}\n" + wipe,
			"approval ask: it approves itself when it expires (onExpiry: approve)"},
		"an approval whose denial goes on": {"  - id: ask\n    approval: {approvers: [U1, U2]}\n    onError: continue\n" + wipe,
			"approval ask: a denial goes on to the next step (onError: continue)"},
		"an outcome check that an or defeats": {"  - id: ask\n    approval: {approvers: [U1, U2]}\n    onError: continue\n" +
			"  - id: wipe\n    action: kubernetes.delete_pod\n    if: steps.ask.output.outcome == \"approved\" || incident.alertCount > 5\n",
			"approval ask: a denial goes on"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadDir(writeFiles(t, map[string]string{"p.yaml": head + tc.steps}), stepOptions())
			if err == nil || !strings.Contains(err.Error(), "kubernetes.delete_pod is destructive and no approval before it must be decided by a human") ||
				!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "p.yaml:") {
				t.Errorf("load = %v, want the file, line and %q", err, tc.want)
			}
		})
	}
}

func TestApprovalQuorumDefaultsToTwoBeforeADestructiveAction(t *testing.T) {
	head := "name: p\nmatch: 'true'\nincidentKey: alert.id\nslack: {channel: '#secops'}\nsteps:\n"
	steps := `  - id: first
    approval: {approvers: [U1, U2], remind: 10m, requester: alert.fields.user, escalate: {after: 30m, approvers: [S9], channel: '#ir-leads'}}
  - id: contain
    action: kubernetes.quarantine
  - id: second
    approval: {approvers: [U1, U2]}
  - id: wipe
    action: kubernetes.delete_pod
`
	set := mustLoad(t, writeFiles(t, map[string]string{"p.yaml": head + steps}), stepOptions())
	p, _ := set.Get("p")
	spec := p.Spec()
	first, second := spec.Steps[0].Approval, spec.Steps[2].Approval
	if first.Quorum != 1 || second.Quorum != DestructiveQuorum {
		t.Errorf("quorums %d and %d, want 1 (quarantine is not destructive) and %d", first.Quorum, second.Quorum, DestructiveQuorum)
	}
	want := &Escalation{After: 30 * time.Minute, Approvers: []string{"S9"}, Channel: "#ir-leads"}
	if first.Remind != 10*time.Minute || first.Requester != "alert.fields.user" || !reflect.DeepEqual(first.Escalate, want) {
		t.Errorf("first approval %+v, escalate %+v", first, first.Escalate)
	}
	if spec.SlackChannel != "#secops" {
		t.Errorf("slack channel %q", spec.SlackChannel)
	}
}

func TestSeverityOverride(t *testing.T) {
	pb := "name: p\nmatch: 'true'\nincidentKey: alert.id\nseverity: 'alert.k8s.namespace == \"prod\" ? Critical : alert.severity'\nsteps:\n  - id: a\n    wait: 1m\n"
	set := mustLoad(t, writeFiles(t, map[string]string{"p.yaml": pb}), LoadOptions{})
	for ns, want := range map[string]alert.Severity{"prod": alert.SeverityCritical, "dev": alert.SeverityNotice} {
		ms, errs := set.Match(alert.Alert{ID: "1", Rule: "r", Severity: alert.SeverityNotice, Kubernetes: alert.Kubernetes{Namespace: ns}})
		if len(errs) != 0 || len(ms) != 1 || ms[0].Severity != want {
			t.Errorf("namespace %s: matches %+v errs %v, want severity %s", ns, ms, errs, want)
		}
	}
	_, err := LoadDir(writeFiles(t, map[string]string{"p.yaml": strings.Replace(pb, "Critical : alert.severity", `"high" : "low"`, 1)}), LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "severity") {
		t.Errorf("a string severity loaded: %v", err)
	}
}

func TestEvalConditionSeesStepsAndIncident(t *testing.T) {
	env := NewEnv(alert.Alert{Rule: "r"}, Incident{AlertCount: 12})
	env.Steps = map[string]StepView{"ask": {Status: "failed", Output: map[string]any{"outcome": "denied"}}}
	for src, want := range map[string]bool{
		`steps.ask.output.outcome == "approved"`:                              false,
		`steps.ask.status == "failed"`:                                        true,
		`incident.alertCount >= 10`:                                           true,
		`steps.ask.output.outcome == "approved" || incident.alertCount >= 10`: true,
	} {
		got, err := EvalCondition(src, env)
		if err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", src, got, err, want)
		}
	}
	if _, err := EvalCondition(`incident.alertCount`, env); err == nil {
		t.Error("a condition giving an int was accepted")
	}
}

func TestRequiredParameters(t *testing.T) {
	opts := LoadOptions{Actions: []ActionInfo{{Name: "ticket.open", Required: []string{"project"}}}}
	head := "name: p\nmatch: 'true'\nincidentKey: alert.id\nsteps:\n  - id: t\n    action: ticket.open\n"
	_, err := LoadDir(writeFiles(t, map[string]string{"p.yaml": head}), opts)
	if err == nil || !strings.Contains(err.Error(), `p.yaml:5:5: steps[0].with.project: action ticket.open needs the parameter "project"`) {
		t.Errorf("missing required parameter: %v", err)
	}
	mustLoad(t, writeFiles(t, map[string]string{"p.yaml": head + "    with: {project: '\"SEC\"'}\n"}), opts)
}
