package slack

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	goslack "github.com/slack-go/slack"
)

// Slack's Block Kit limits, in characters. Text past them makes Slack reject
// the whole message (invalid_blocks), so builders clip.
const (
	maxHeader     = 150
	maxSectionTxt = 3000
	maxField      = 2000
	maxFallback   = 3000
	maxParamValue = 200
	maxPlanBlocks = 10
	maxVoteLines  = 40
)

// Block IDs of soar's messages; stable, so that tests and interaction
// handlers can find blocks.
const (
	blockApprovalActions = "soar_approval_actions"
	blockPlan            = "soar_plan"
)

// Target is the Kubernetes object an incident is about.
type Target struct {
	Namespace, Pod, Node string
	// Cluster, when set, names the Kubernetes cluster.
	Cluster string `json:",omitempty"`
}

// PlannedAction is a step that runs if the approval is granted.
type PlannedAction struct {
	Step, Action string
	Params       map[string]any
	Destructive  bool
	// Condition is the step's "if", when it has one.
	Condition string
}

// VoteView is a vote cast so far.
type VoteView struct {
	// User is the voter's identity: a Slack user ID (U..., W...) is shown as a
	// mention; anything else (cli:alice, api:ci) as escaped text.
	User    string
	Approve bool
	Comment string
	At      time.Time
}

// ApprovalView is everything an approval request message shows.
type ApprovalView struct {
	IncidentID, Title, Severity, Playbook, Step string
	Target                                      Target
	// Message is written by the playbook author; it is rendered as mrkdwn,
	// escaped like alert content since it may quote it.
	Message  string
	Plan     []PlannedAction
	PlanHash string
	Quorum   int
	// Approvers are identities: U.../W... users are mentioned, S... user
	// groups mentioned as groups, others shown as text.
	Approvers []string
	Deadline  time.Time
	Votes     []VoteView
	// Outcome is "" while the approval is open, then "approved", "denied"
	// or "expired".
	Outcome   string
	DecidedAt time.Time
	// OnExpiry is what expiry decided: "deny" (the default) or "approve".
	OnExpiry string
	// Escalated says escalation approvers were added.
	Escalated bool
	// ApproveValue and DenyValue are the signed button values; each button
	// is shown only while Outcome is "" and its value is set.
	ApproveValue, DenyValue string
}

// ApprovalMessage renders an approval request: a header with the title; the
// severity, target, playbook and step, how many approvals are needed, who may
// approve and when the request expires; the author's message; what happens if
// it is approved (the planned actions and their parameters, destructive ones
// marked, and the plan hash); the votes so far; and, while it is open, the
// Approve and Deny buttons. Once decided, the buttons give way to a line
// saying who decided and when. Every alert-derived string is escaped. The
// caller sets Metadata.
func ApprovalMessage(v ApprovalView) Message {
	title := oneLine(v.Title)
	blocks := []goslack.Block{
		goslack.NewHeaderBlock(plain(clip(approvalHeadline(v.Outcome)+": "+title, maxHeader))),
		goslack.NewSectionBlock(nil, approvalFields(v), nil),
	}
	if strings.TrimSpace(v.Message) != "" {
		blocks = append(blocks, section(Escape(v.Message)))
	}
	blocks = append(blocks, planBlocks(v.Plan, v.PlanHash)...)
	if len(v.Votes) > 0 {
		blocks = append(blocks, section(votesText(v.Votes)))
	}
	if v.Outcome == "" {
		if actions := approvalButtons(v); actions != nil {
			blocks = append(blocks, actions)
		}
	} else {
		blocks = append(blocks, section(outcomeLine(v)))
	}
	return Message{
		Text:   clip(approvalHeadline(v.Outcome)+": "+title, maxFallback),
		Blocks: blocks,
	}
}

// approvalHeadline is the header's first words for an outcome.
func approvalHeadline(outcome string) string {
	switch outcome {
	case "":
		return "Approval needed"
	case "approved":
		return "Approved"
	case "denied":
		return "Denied"
	case "expired":
		return "Expired"
	default:
		return "Approval " + Escape(outcome)
	}
}

// approvalFields are the request's facts, two per row.
func approvalFields(v ApprovalView) []*goslack.TextBlockObject {
	fields := []*goslack.TextBlockObject{
		field("Severity", oneLine(v.Severity)),
		field("Target", targetText(v.Target)),
		field("Playbook", oneLine(v.Playbook)+" · step "+oneLine(v.Step)),
		field("Incident", oneLine(v.IncidentID)),
		field("Progress", fmt.Sprintf("approvals: %d of %d needed", countApprovals(v.Votes), max(v.Quorum, 1))),
		field("Who may approve", approversText(v.Approvers, v.Escalated)),
	}
	if v.Outcome == "" && !v.Deadline.IsZero() {
		fields = append(fields, field("Expires", slackDate(v.Deadline)))
	}
	return fields
}

// planBlocks renders "If approved:" with one line per planned action, packed
// into sections within Slack's length limit, and the plan hash.
func planBlocks(plan []PlannedAction, hash string) []goslack.Block {
	if len(plan) == 0 && hash == "" {
		return nil
	}
	lines := make([]string, 0, len(plan))
	for _, a := range plan {
		lines = append(lines, plannedLine(a))
	}
	if len(plan) == 0 {
		lines = append(lines, "_no further actions_")
	}
	var blocks []goslack.Block
	text := "*If approved:*"
	for i, line := range lines {
		if utf8Len(text)+1+utf8Len(line) > maxSectionTxt {
			if len(blocks) == maxPlanBlocks-1 {
				text += fmt.Sprintf("\n…and %d more", len(lines)-i)
				break
			}
			blocks = append(blocks, section(text))
			text = ""
		}
		if text != "" {
			text += "\n"
		}
		text += clip(line, maxSectionTxt)
	}
	blocks = append(blocks, section(text))
	if hash != "" {
		blocks = append(blocks, goslack.NewContextBlock(blockPlan, mrkdwn("plan "+oneLine(hash))))
	}
	return blocks
}

// plannedLine renders one planned action: step, action, parameters in key
// order, the destructive mark and the condition.
func plannedLine(a PlannedAction) string {
	var b strings.Builder
	b.WriteString("• ")
	b.WriteString(identifier(a.Step))
	b.WriteString(": ")
	b.WriteString(identifier(a.Action))
	if a.Destructive {
		b.WriteString(" :warning: DESTRUCTIVE")
	}
	keys := make([]string, 0, len(a.Params))
	for k := range a.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i == 0 {
			b.WriteString(" (")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(identifier(k))
		b.WriteString("=")
		b.WriteString(clip(oneLine(paramString(a.Params[k])), maxParamValue))
	}
	if len(keys) > 0 {
		b.WriteString(")")
	}
	if a.Condition != "" {
		b.WriteString(" if ")
		b.WriteString(oneLine(a.Condition))
	}
	return b.String()
}

// identifier renders a step ID, action or parameter name: in a code span,
// so that kubernetes.delete_pod keeps its underscore, when it is made of
// letters, digits, '.', '_' and '-' only (as playbooks are checked to use);
// escaped like any other text otherwise.
func identifier(s string) string {
	if s == "" || strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) >= 0 {
		return oneLine(s)
	}
	return "`" + s + "`"
}

// paramString renders a parameter value: strings as they are, anything else
// as JSON.
func paramString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return "null"
	}
	js, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(js)
}

// votesText lists the votes so far, oldest first.
func votesText(votes []VoteView) string {
	lines := []string{"*Votes:*"}
	for i, v := range votes {
		if i == maxVoteLines {
			lines = append(lines, fmt.Sprintf("…and %d more", len(votes)-i))
			break
		}
		mark, verb := ":white_check_mark:", "approved"
		if !v.Approve {
			mark, verb = ":x:", "denied"
		}
		line := mark + " " + identity(v.User) + " " + verb
		if !v.At.IsZero() {
			line += " " + slackDate(v.At)
		}
		if c := strings.TrimSpace(v.Comment); c != "" {
			line += ": “" + clip(oneLine(c), maxParamValue) + "”"
		}
		lines = append(lines, line)
	}
	return clip(strings.Join(lines, "\n"), maxSectionTxt)
}

// approvalButtons are the Approve and Deny buttons, or nil when neither
// value is set.
func approvalButtons(v ApprovalView) goslack.Block {
	var buttons []goslack.BlockElement
	if v.ApproveValue != "" {
		buttons = append(buttons, goslack.NewButtonBlockElement(ActionApprove, v.ApproveValue, plain("Approve")).
			WithStyle(goslack.StylePrimary))
	}
	if v.DenyValue != "" {
		confirm := goslack.NewConfirmationBlockObject(
			plain("Deny this request?"),
			mrkdwn("The step fails and its onError applies; the playbook usually stops."),
			plain("Deny"), plain("Cancel"),
		).WithStyle(goslack.StyleDanger)
		buttons = append(buttons, goslack.NewButtonBlockElement(ActionDeny, v.DenyValue, plain("Deny")).
			WithStyle(goslack.StyleDanger).WithConfirm(confirm))
	}
	if len(buttons) == 0 {
		return nil
	}
	return goslack.NewActionBlock(blockApprovalActions, buttons...)
}

// outcomeLine says who decided and when.
func outcomeLine(v ApprovalView) string {
	at := ""
	if !v.DecidedAt.IsZero() {
		at = " at " + slackDate(v.DecidedAt)
	}
	switch v.Outcome {
	case "approved":
		return clip(":white_check_mark: Approved by "+voters(v.Votes, true)+at, maxSectionTxt)
	case "denied":
		return clip(":x: Denied by "+voters(v.Votes, false)+at, maxSectionTxt)
	case "expired":
		onExpiry := v.OnExpiry
		if onExpiry == "" {
			onExpiry = "deny"
		}
		if at == "" {
			at = " at " + slackDate(v.Deadline)
		}
		return ":hourglass: Expired" + at + ", outcome " + oneLine(onExpiry)
	default:
		return "Outcome: " + oneLine(v.Outcome) + at
	}
}

// voters lists the distinct voters who voted approve (or deny).
func voters(votes []VoteView, approve bool) string {
	var names []string
	seen := map[string]bool{}
	for _, v := range votes {
		if v.Approve == approve && !seen[v.User] {
			seen[v.User] = true
			names = append(names, identity(v.User))
		}
	}
	if len(names) == 0 {
		return "nobody"
	}
	return strings.Join(names, ", ")
}

// countApprovals counts distinct approving voters.
func countApprovals(votes []VoteView) int {
	seen := map[string]bool{}
	for _, v := range votes {
		if v.Approve {
			seen[v.User] = true
		}
	}
	return len(seen)
}

// approversText lists who may approve.
func approversText(approvers []string, escalated bool) string {
	names := make([]string, 0, len(approvers))
	for _, a := range approvers {
		names = append(names, approver(a))
	}
	text := strings.Join(names, ", ")
	if text == "" {
		text = "nobody"
	}
	if escalated {
		text += " (escalated)"
	}
	return clip(text, maxField-len("*Who may approve*\n"))
}

// targetText renders namespace/pod and the node.
func targetText(t Target) string {
	var parts []string
	switch {
	case t.Namespace != "" && t.Pod != "":
		parts = append(parts, oneLine(t.Namespace)+"/"+oneLine(t.Pod))
	case t.Pod != "":
		parts = append(parts, "pod "+oneLine(t.Pod))
	case t.Namespace != "":
		parts = append(parts, "namespace "+oneLine(t.Namespace))
	}
	if t.Node != "" {
		parts = append(parts, "node "+oneLine(t.Node))
	}
	if t.Cluster != "" {
		parts = append(parts, "cluster "+oneLine(t.Cluster))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "\n")
}

// identity renders a voter: a Slack user ID as a mention, anything else as
// escaped text.
func identity(id string) string {
	if isSlackID(id, "UW") {
		return "<@" + id + ">"
	}
	return Escape(id)
}

// approver renders an approver: user groups are mentioned as groups, the
// rest as identity does.
func approver(id string) string {
	if isSlackID(id, "S") {
		return "<!subteam^" + id + ">"
	}
	return identity(id)
}

// isSlackID reports whether id is an ID starting with one of prefixes
// followed by upper-case letters and digits only: exactly what may go
// inside a mention without escaping.
func isSlackID(id, prefixes string) bool {
	if len(id) < 2 || !strings.ContainsRune(prefixes, rune(id[0])) {
		return false
	}
	for _, c := range id[1:] {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// IncidentView is what the root message of an incident's thread shows.
type IncidentView struct {
	IncidentID, Title, Severity, Playbook, Summary string
	Target                                         Target
	// Links point at soar's own pages (the Temporal UI, ...): their URLs come
	// from configuration and are trusted, their texts are escaped.
	Links []Link
}

// Link is a labelled URL.
type Link struct{ Text, URL string }

// IncidentMessage renders the root message of an incident's thread: the
// title, severity, target, playbook, the summary and the links.
func IncidentMessage(v IncidentView) Message {
	title := oneLine(v.Title)
	blocks := []goslack.Block{
		goslack.NewHeaderBlock(plain(clip("Incident: "+title, maxHeader))),
		goslack.NewSectionBlock(nil, []*goslack.TextBlockObject{
			field("Severity", oneLine(v.Severity)),
			field("Target", targetText(v.Target)),
			field("Playbook", oneLine(v.Playbook)),
			field("Incident", oneLine(v.IncidentID)),
		}, nil),
	}
	if strings.TrimSpace(v.Summary) != "" {
		blocks = append(blocks, section(Escape(v.Summary)))
	}
	if links := linksText(v.Links); links != "" {
		blocks = append(blocks, goslack.NewContextBlock("", mrkdwn(links)))
	}
	return Message{
		Text:   clip("Incident: "+title+" ("+oneLine(v.Severity)+")", maxFallback),
		Blocks: blocks,
	}
}

// linksText renders links as Slack links separated by " · ". A URL is
// trusted, but | and > would end the link early, so it is escaped too.
func linksText(links []Link) string {
	parts := make([]string, 0, len(links))
	for _, l := range links {
		if l.URL == "" {
			continue
		}
		u := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "|", "%7C").Replace(l.URL)
		text := oneLine(l.Text)
		if text == "" {
			text = u
		}
		parts = append(parts, "<"+u+"|"+text+">")
	}
	return clip(strings.Join(parts, " · "), maxSectionTxt)
}

// TextMessage renders a note in the incident's thread. The text is soar's or
// the playbook's but may quote alert content, so it is escaped.
func TextMessage(text string) Message {
	escaped := clip(Escape(text), maxSectionTxt)
	return Message{
		Text:   escaped,
		Blocks: []goslack.Block{section(escaped)},
	}
}

// plain is a plain_text object.
func plain(s string) *goslack.TextBlockObject {
	return goslack.NewTextBlockObject(goslack.PlainTextType, s, false, false)
}

// mrkdwn is a mrkdwn object. verbatim keeps Slack from turning bare URLs and
// channel names into links.
func mrkdwn(s string) *goslack.TextBlockObject {
	return goslack.NewTextBlockObject(goslack.MarkdownType, s, false, true)
}

// section is a section block of mrkdwn text, clipped to Slack's limit.
func section(s string) *goslack.SectionBlock {
	return goslack.NewSectionBlock(mrkdwn(clip(s, maxSectionTxt)), nil, nil)
}

// field is a "*label*\nvalue" section field.
func field(label, value string) *goslack.TextBlockObject {
	if value == "" {
		value = "-"
	}
	return mrkdwn(clip("*"+label+"*\n"+value, maxField))
}

// utf8Len counts runes, as Slack's limits do.
func utf8Len(s string) int { return utf8.RuneCountInString(s) }
