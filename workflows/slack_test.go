package workflows

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/connectors/slack"
	"github.com/soar-dev/soar/internal/testenv/fakeslack"
	"github.com/soar-dev/soar/playbooks"
)

// newSlackEnv is newEnv with the real Slack activities, talking to fs.
func newSlackEnv(t *testing.T, fs *fakeslack.Server) env {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	e := s.NewTestWorkflowEnvironment()
	e.RegisterWorkflowWithOptions(Respond, workflow.RegisterOptions{Name: RespondName})
	signer, err := slack.NewSigner([]byte("workflow-test-button-key-0123456789ab"))
	if err != nil {
		t.Fatal(err)
	}
	acts := &activities.Activities{Slack: activities.SlackConfig{
		Client: slack.New(slack.Config{BotToken: "xoxb-test", APIURL: fs.URL}), Signer: signer,
	}}
	e.RegisterActivity(acts)
	activities.Register(e, acts)
	return env{e, t}
}

// slackApproval asks for two approvals (a member of S0SECOPS, or U1) in
// C0SECOPS before quarantining, reminding every 10 minutes and escalating
// to U9 in C0LEADS after 25.
func slackApproval() RespondInput {
	in := input()
	in.Playbook.SlackChannel = "C0SECOPS"
	in.Playbook.Steps = append([]playbooks.StepSpec{{
		ID: "ask", Kind: playbooks.KindApproval,
		Approval: &playbooks.Approval{
			Approvers: []string{"S0SECOPS", "U1"}, Quorum: 2, Timeout: time.Hour, OnExpiry: "deny",
			Requester: "alert.fields.user", Remind: 10 * time.Minute,
			Escalate: &playbooks.Escalation{After: 25 * time.Minute, Approvers: []string{"U9"}, Channel: "C0LEADS"},
			Message:  "Quarantine?",
		},
	}}, in.Playbook.Steps...)
	in.Playbook.Steps[1].Kind = playbooks.KindAction
	return in
}

// byKind returns the messages of channel whose soar metadata kind is kind.
func byKind(fs *fakeslack.Server, channel, kind string) []fakeslack.Message {
	var out []fakeslack.Message
	for _, m := range fs.Messages(channel) {
		payload, _ := m.Metadata["event_payload"].(map[string]any)
		if payload["kind"] == kind {
			out = append(out, m)
		}
	}
	return out
}

func TestApprovalInSlackRemindsEscalatesAndAnnounces(t *testing.T) {
	fs := fakeslack.New(t)
	e := newSlackEnv(t, fs)
	calls := e.quarantines()
	e.sendAlert(0, shellAlert(func(a *alert.Alert) { a.Fields = map[string]any{"user": "dave"} }), "SOAR_ALERTS:1")
	var requester, group, otherPlan, early, member, twice, escalated voteResult
	e.vote(5*time.Minute, Decision{User: "U7", Name: "dave", Groups: []string{"S0SECOPS"}, Approve: true}, &requester)
	e.vote(6*time.Minute, Decision{User: "S0SECOPS", Approve: true}, &group)
	e.vote(7*time.Minute, Decision{User: "U8", Groups: []string{"S0SECOPS"}, Approve: true, PlanHash: "000000000000"}, &otherPlan)
	e.vote(8*time.Minute, Decision{User: "U9", Approve: true}, &early)
	e.vote(9*time.Minute, Decision{User: "U8", Groups: []string{"S0SECOPS"}, Approve: true, Source: SourceSlack, Team: "T1"}, &member)
	e.vote(11*time.Minute, Decision{User: "U8", Groups: []string{"S0SECOPS"}, Approve: true}, &twice)
	e.vote(29*time.Minute, Decision{User: "U9", Approve: true}, &escalated)
	e.ExecuteWorkflow(Respond, slackApproval())
	st := e.result()

	for name, r := range map[string]voteResult{"requester": requester, "group ID as a voter": group, "another plan": otherPlan, "U9 before the escalation": early, "second vote": twice} {
		if r.rejected == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if member.rejected != nil || escalated.rejected != nil {
		t.Fatalf("member %v, escalated approver %v", member.rejected, escalated.rejected)
	}
	if !strings.Contains(requester.rejected.Error(), "is the requester") {
		t.Errorf("requester refused with %q", requester.rejected)
	}
	a := st.Approvals[0]
	if a.Outcome != playbooks.OutcomeApproved || len(*calls) != 1 || !a.Escalated || a.Reminders != 2 || a.Requester != "dave" {
		t.Fatalf("approval %+v, %d quarantines", a, len(*calls))
	}
	if a.Votes[0].Via != "S0SECOPS" || a.Votes[0].Team != "T1" || a.Votes[0].Source != SourceSlack {
		t.Errorf("first vote %+v", a.Votes[0])
	}
	if len(a.Plan) != 1 || a.Plan[0].Action != activities.ActionQuarantine || a.Plan[0].Params["pod"] != "checkout-7d9f8b6c5-x2lqp" || len(a.PlanHash) != 12 {
		t.Errorf("plan %+v %q", a.Plan, a.PlanHash)
	}

	// One thread; the request in it (broadcast) and in the escalation
	// channel, both updated to the outcome; two reminders, the outcome.
	if roots := byKind(fs, "C0SECOPS", "incident"); len(roots) != 1 || st.Slack == nil || st.Slack.TS != roots[0].TS {
		t.Fatalf("thread roots %+v, incident thread %+v", roots, st.Slack)
	}
	requests := append(byKind(fs, "C0SECOPS", "approval"), byKind(fs, "C0LEADS", "approval")...)
	if len(requests) != 2 || !requests[0].Broadcast || requests[0].ThreadTS != st.Slack.TS || requests[1].ThreadTS != "" {
		t.Fatalf("approval requests %+v", requests)
	}
	for _, m := range requests {
		if approve, deny := m.ButtonValues(); approve != "" || deny != "" || !strings.Contains(string(m.Blocks), "Approved by") || m.Updated == 0 {
			t.Errorf("request in %s not updated to the outcome: %s", m.Channel, m.Blocks)
		}
	}
	var notes []string
	for _, m := range byKind(fs, "C0SECOPS", "note") {
		notes = append(notes, m.Text)
	}
	if len(notes) != 3 || !strings.Contains(notes[0], "Reminder") || !strings.Contains(notes[1], "Reminder") ||
		!strings.Contains(notes[2], "approved by <@U8>, <@U9>") {
		t.Errorf("thread notes:\n%s", strings.Join(notes, "\n"))
	}
}

func TestSlackRefusingTheChannelLeavesTheApprovalToTheCLI(t *testing.T) {
	fs := fakeslack.New(t)
	fs.Fail("chat.postMessage", fakeslack.Failure{Error: "channel_not_found"})
	e := newSlackEnv(t, fs)
	calls := e.quarantines()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	var first, second voteResult
	e.vote(time.Minute, Decision{User: "U1", Approve: true, Source: SourceCLI}, &first)
	e.vote(2*time.Minute, Decision{User: "U8", Groups: []string{"S0SECOPS"}, Approve: true, Source: SourceAPI}, &second)
	e.ExecuteWorkflow(Respond, slackApproval())
	st := e.result()
	if first.rejected != nil || second.rejected != nil || len(*calls) != 1 || st.Approvals[0].Outcome != playbooks.OutcomeApproved {
		t.Fatalf("votes %v %v, quarantines %d, approval %+v", first.rejected, second.rejected, len(*calls), st.Approvals[0])
	}
	if st.Slack == nil || !strings.Contains(st.Slack.Error, "channel_not_found") {
		t.Errorf("incident thread %+v, want the channel error", st.Slack)
	}
	if n := len(fs.Calls("chat.postMessage")); n != 1 {
		t.Errorf("%d posts: a channel that does not exist is not retried", n)
	}
}

func TestSlackRateLimitIsRetriedAfterRetryAfter(t *testing.T) {
	fs := fakeslack.New(t)
	fs.Fail("chat.postMessage", fakeslack.Failure{Status: 429, RetryAfter: "3", Times: 1})
	e := newSlackEnv(t, fs)
	e.quarantines()
	e.sendAlert(0, shellAlert(), "SOAR_ALERTS:1")
	var first, second voteResult
	e.vote(10*time.Minute, Decision{User: "U1", Approve: true}, &first)
	e.vote(11*time.Minute, Decision{User: "U8", Groups: []string{"S0SECOPS"}, Approve: true}, &second)
	e.ExecuteWorkflow(Respond, slackApproval())
	st := e.result()
	calls := fs.Calls("chat.postMessage")
	if len(byKind(fs, "C0SECOPS", "incident")) != 1 || len(calls) < 3 {
		t.Fatalf("%d posts, thread %+v", len(calls), st.Slack)
	}
	if st.Slack == nil || st.Slack.TS == "" {
		t.Errorf("incident thread %+v", st.Slack)
	}
}
