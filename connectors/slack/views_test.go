package slack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	goslack "github.com/slack-go/slack"

	"github.com/soar-dev/soar/connectors/slack"
	"github.com/soar-dev/soar/internal/testenv/fakeslack"
)

// hostile is alert content that would notify everyone, mention a user,
// plant a link and format text if it were not escaped.
const hostile = "<!channel> <@U123> <https://evil.example|click> *bold* @here &amp;"

var (
	deadline  = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	decidedAt = deadline.Add(-10 * time.Minute)
)

// approvalView is an open approval whose alert-derived fields are hostile.
func approvalView(signer *slack.Signer) slack.ApprovalView {
	value := func(approve bool) string {
		return signer.Sign(slack.ButtonValue{Incident: "inc-1", Step: "ask", Approve: approve, PlanHash: "ph1", Expires: deadline})
	}
	return slack.ApprovalView{
		IncidentID: "inc-1", Title: "Shell in pod " + hostile, Severity: "critical",
		Playbook: "shell-in-pod", Step: "ask",
		Target:  slack.Target{Namespace: "payments", Pod: "api-7d9f " + hostile, Node: "node-1"},
		Message: "A shell was opened in *{{pod}}*. Contain it? " + hostile,
		Plan: []slack.PlannedAction{
			{Step: "isolate", Action: "kubernetes.networkIsolate", Params: map[string]any{"pod": hostile, "ports": []int{80, 443}}},
			{Step: "kill", Action: "kubernetes.deletePod", Destructive: true, Condition: `alert.severity == "critical"`},
		},
		PlanHash:  "ph1",
		Quorum:    2,
		Approvers: []string{"U0ALICE", "S0SECOPS", "W0WORKER", "cli:bob", "U123> <!channel"},
		Deadline:  deadline,
		Votes: []slack.VoteView{
			{User: "U0ALICE", Approve: true, Comment: "ok " + hostile, At: decidedAt.Add(-time.Minute)},
		},
		ApproveValue: value(true),
		DenyValue:    value(false),
	}
}

// rawJSON renders blocks as JSON without Go's HTML escaping, so that a
// leaked "<!channel>" would show.
func rawJSON(t *testing.T, blocks []goslack.Block) string {
	t.Helper()
	js, err := json.Marshal(blocks)
	if err != nil {
		t.Fatal(err)
	}
	return unescapedJSON(t, js)
}

// unescapedJSON re-encodes js without Go's HTML escaping (\u003c for <),
// which json.Marshal applies, also inside slack-go's own marshalers.
func unescapedJSON(t *testing.T, js []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// postAndGet posts m through the fake, which rejects invalid Block Kit, and
// returns the message the fake keeps.
func postAndGet(t *testing.T, m slack.Message) fakeslack.Message {
	t.Helper()
	c, fake := newClient(t)
	ref, err := c.Post(context.Background(), testChannelID, "", m)
	if err != nil {
		t.Fatalf("posting the message: %v", err)
	}
	for _, got := range fake.Messages(testChannelID) {
		if got.TS == ref.TS {
			return got
		}
	}
	t.Fatal("the posted message is not in the fake")
	return fakeslack.Message{}
}

func TestApprovalMessageEscapesAlertContent(t *testing.T) {
	signer := newSigner(t)
	m := slack.ApprovalMessage(approvalView(signer))
	raw := rawJSON(t, m.Blocks) + m.Text
	for _, leaked := range []string{"<!channel>", "<@U123>", "<https://evil", "*bold*", "@here", "&amp; ", "<!channel"} {
		if strings.Contains(raw, leaked) {
			t.Errorf("the message contains %q unescaped:\n%s", leaked, raw)
		}
	}
	if sub := missing(raw, "&lt;!channel&gt;", "&lt;@U123&gt;", "&lt;https://evil.example|click&gt;", "&amp;amp;"); sub != "" {
		t.Errorf("the message lacks the escaped %q:\n%s", sub, raw)
	}
	if !strings.HasPrefix(m.Text, "Approval needed: Shell in pod &lt;!channel&gt;") {
		t.Errorf("fallback text = %q", m.Text)
	}
}

func TestApprovalMessageWhileOpen(t *testing.T) {
	signer := newSigner(t)
	v := approvalView(signer)
	got := postAndGet(t, slack.ApprovalMessage(v))
	raw := unescapedJSON(t, got.Blocks)
	if sub := missing(raw,
		`"type":"header"`, "Approval needed: Shell in pod",
		"critical", "payments/api-7d9f", "node node-1", "shell-in-pod", "step ask",
		"approvals: 1 of 2 needed",
		"<@U0ALICE>", "<!subteam^S0SECOPS>", "<@W0WORKER>", "cli:bob", "U123&gt; &lt;!channel",
		fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|2026-03-04T05:06:07Z>", deadline.Unix()),
		"If approved:", "`isolate`: `kubernetes.networkIsolate`", "`ports`=[80,443]",
		"`kill`: `kubernetes.deletePod` :warning: DESTRUCTIVE", "plan ph1",
		"Votes:", "<@U0ALICE> approved", "ok &lt;!channel",
		`"style":"primary"`, `"style":"danger"`, `"confirm"`,
	); sub != "" {
		t.Errorf("the open approval lacks %q:\n%s", sub, raw)
	}
	approve, deny := got.ButtonValues()
	if approve != v.ApproveValue || deny != v.DenyValue {
		t.Fatalf("button values = %q, %q; want the signed values", approve, deny)
	}
	for _, tt := range []struct {
		value   string
		approve bool
	}{{approve, true}, {deny, false}} {
		bv, err := signer.Verify(tt.value)
		if err != nil {
			t.Fatal(err)
		}
		want := slack.ButtonValue{Incident: "inc-1", Step: "ask", Approve: tt.approve, PlanHash: "ph1", Expires: deadline}
		if !bv.Expires.Equal(want.Expires) || bv.Incident != want.Incident || bv.Step != want.Step || bv.Approve != want.Approve || bv.PlanHash != want.PlanHash {
			t.Errorf("button value = %+v, want %+v", bv, want)
		}
	}
}

func TestApprovalMessageAfterTheDecision(t *testing.T) {
	signer := newSigner(t)
	date := func(t time.Time) string {
		return "<!date^" + strconv.FormatInt(t.Unix(), 10) + "^"
	}
	tests := []struct {
		name     string
		outcome  string
		onExpiry string
		votes    []slack.VoteView
		want     []string
	}{
		{
			name: "approved", outcome: "approved",
			votes: []slack.VoteView{{User: "U0ALICE", Approve: true}, {User: "U0BOB", Approve: true}},
			want:  []string{"Approved: Shell in pod", "Approved by <@U0ALICE>, <@U0BOB> at " + date(decidedAt), "approvals: 2 of 2 needed"},
		},
		{
			name: "denied", outcome: "denied",
			votes: []slack.VoteView{{User: "U0ALICE", Approve: true}, {User: "cli:bob", Approve: false, Comment: "no"}},
			want:  []string{"Denied: Shell in pod", "Denied by cli:bob at " + date(decidedAt), "cli:bob denied"},
		},
		{
			name: "expired", outcome: "expired",
			want: []string{"Expired: Shell in pod", "Expired at " + date(decidedAt) + "{date_short_pretty} {time}|", ", outcome deny"},
		},
		{
			name: "expired with onExpiry approve", outcome: "expired", onExpiry: "approve",
			want: []string{", outcome approve"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := approvalView(signer)
			v.Outcome, v.OnExpiry, v.Votes, v.DecidedAt = tt.outcome, tt.onExpiry, tt.votes, decidedAt
			got := postAndGet(t, slack.ApprovalMessage(v))
			if approve, deny := got.ButtonValues(); approve != "" || deny != "" {
				t.Errorf("a decided approval still has buttons: %q %q", approve, deny)
			}
			raw := unescapedJSON(t, got.Blocks)
			if strings.Contains(raw, `"type":"actions"`) {
				t.Errorf("a decided approval still has an actions block:\n%s", raw)
			}
			if sub := missing(raw, tt.want...); sub != "" {
				t.Errorf("the decided approval lacks %q:\n%s", sub, raw)
			}
		})
	}
}

func TestMessagesStayWithinBlockKitLimits(t *testing.T) {
	signer := newSigner(t)
	long := strings.Repeat("&<>*_ lorem ipsum ", 1000)
	v := approvalView(signer)
	v.Title, v.Message, v.Target.Pod = long, long, long
	v.Plan = nil
	for i := range 200 {
		v.Plan = append(v.Plan, slack.PlannedAction{Step: fmt.Sprint("s", i), Action: "kubernetes.label", Params: map[string]any{"value": long}})
	}
	for i := range 100 {
		v.Approvers = append(v.Approvers, fmt.Sprintf("U%08d", i))
		v.Votes = append(v.Votes, slack.VoteView{User: fmt.Sprintf("U%08d", i), Approve: true, Comment: long})
	}
	// The fake answers invalid_blocks, as Slack does, when a limit is broken.
	postAndGet(t, slack.ApprovalMessage(v))
	v.Outcome, v.DecidedAt = "approved", decidedAt
	postAndGet(t, slack.ApprovalMessage(v))
	postAndGet(t, slack.IncidentMessage(slack.IncidentView{Title: long, Summary: long, Severity: long, Target: slack.Target{Pod: long}}))
	postAndGet(t, slack.TextMessage(long))
}

func TestIncidentMessageEscapesAlertTextAndLinks(t *testing.T) {
	m := slack.IncidentMessage(slack.IncidentView{
		IncidentID: "inc-1", Title: "Shell in pod " + hostile, Severity: "high", Playbook: "shell-in-pod",
		Summary: "Terminal shell in container " + hostile,
		Target:  slack.Target{Namespace: "payments", Pod: "api-7d9f", Node: "node-1", Cluster: "prod-eu"},
		Links: []slack.Link{
			{Text: "Temporal " + hostile, URL: "https://temporal.example/namespaces/default/workflows/inc-1"},
			{Text: "weird url", URL: "https://x.example/a|b>c"},
		},
	})
	raw := rawJSON(t, m.Blocks)
	for _, leaked := range []string{"<!channel>", "<@U123>", "<https://evil"} {
		if strings.Contains(raw+m.Text, leaked) {
			t.Errorf("the incident message contains %q unescaped:\n%s", leaked, raw)
		}
	}
	if sub := missing(raw, "Incident: Shell in pod &lt;!channel&gt;", "payments/api-7d9f", "cluster prod-eu",
		"<https://temporal.example/namespaces/default/workflows/inc-1|Temporal &lt;!channel&gt;",
		"<https://x.example/a%7Cb&gt;c|weird url>"); sub != "" {
		t.Errorf("the incident message lacks %q:\n%s", sub, raw)
	}
	if !strings.HasPrefix(m.Text, "Incident: Shell in pod &lt;!channel&gt;") {
		t.Errorf("fallback text = %q", m.Text)
	}
	postAndGet(t, m)
}

func TestTextMessageEscapes(t *testing.T) {
	m := slack.TextMessage("Quarantined " + hostile)
	raw := rawJSON(t, m.Blocks) + m.Text
	if strings.Contains(raw, "<!channel>") || strings.Contains(raw, "<@U123>") || !strings.Contains(raw, "Quarantined &lt;!channel&gt;") {
		t.Errorf("TextMessage = %s", raw)
	}
}

func TestNoteMessageMentionAndDate(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	text := "Reminder: step " + slack.Escape("ask <!here>") + " needs approval from " +
		slack.Mention("U0ALICE") + ", " + slack.Mention("S0SECOPS") + ", " + slack.Mention("cli:<!channel>") +
		" before " + slack.Date(at) + "."
	want := "Reminder: step ask &lt;!here&gt; needs approval from <@U0ALICE>, <!subteam^S0SECOPS>, cli:&lt;!channel&gt;" +
		" before <!date^" + strconv.FormatInt(at.Unix(), 10) + "^{date_short_pretty} {time}|2026-03-04T05:06:07Z>."
	if text != want {
		t.Errorf("note text = %q, want %q", text, want)
	}
	got := postAndGet(t, slack.NoteMessage(text))
	if got.Text != want || !strings.Contains(unescapedJSON(t, got.Blocks), want) {
		t.Errorf("posted note = %+v", got)
	}
}
