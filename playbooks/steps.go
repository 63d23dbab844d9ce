package playbooks

import (
	"fmt"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/soar-dev/soar/internal/yamlfile"
)

// Step kinds: every step is exactly one of them.
const (
	KindAction   = "action"
	KindWait     = "wait"
	KindApproval = "approval"
)

// What a failed step does to the rest of the playbook (a step's onError).
const (
	// OnErrorAbort stops the playbook; the incident is marked failed.
	OnErrorAbort = "abort"
	// OnErrorContinue records the failure and goes on with the next step.
	OnErrorContinue = "continue"
	// OnErrorRelease runs the inverses of the steps that succeeded, newest
	// first, then stops.
	OnErrorRelease = "release"
)

// Modes of a playbook.
const (
	// ModeEnforce carries the steps out.
	ModeEnforce = "enforce"
	// ModePlan runs every action as a server-side dry run and changes
	// nothing; approvals and waits behave as in enforce mode.
	ModePlan = "plan"
)

// Approval outcomes; a step that is not approved fails with one of the
// last two as its error type.
const (
	OutcomeApproved = "approved"
	OutcomeDenied   = "denied"
	OutcomeExpired  = "expired"
)

// Defaults of the step language.
const (
	DefaultApprovalTimeout = time.Hour
	maxWait                = 30 * 24 * time.Hour
)

// Retry overrides an action's retry policy. Zero fields keep soar's default.
type Retry struct {
	// MaxAttempts bounds the attempts, the first included; 0 means until
	// the step's timeout.
	MaxAttempts        int           `json:"maxAttempts,omitempty"`
	InitialInterval    time.Duration `json:"initialInterval,omitempty"`
	MaximumInterval    time.Duration `json:"maximumInterval,omitempty"`
	BackoffCoefficient float64       `json:"backoffCoefficient,omitempty"`
}

// Approval is a human decision a step waits for.
type Approval struct {
	// Approvers may vote: user or group IDs of the approval transport (Slack
	// user and user-group IDs), or "api:<token name>" for the holder of that API token (soar approve).
	Approvers []string `json:"approvers"`
	// Quorum is how many distinct approvers must approve; default 1.
	Quorum int `json:"quorum"`
	// Timeout is how long the approval stays open; default one hour.
	Timeout time.Duration `json:"timeout"`
	// OnExpiry is the outcome when nobody decided in time: "deny" (the
	// default) or "approve".
	OnExpiry string `json:"onExpiry"`
	// Message is shown to the approvers.
	Message string `json:"message,omitempty"`
	// Requester is an expression giving the identity the approval is about,
	// such as the user an alert names (alert.fields.user): that person may
	// not vote on it. It is compared with the voter's Slack user ID, handle
	// and e-mail, and with the name of an api: identity.
	Requester string `json:"requester,omitempty"`
	// Remind re-posts a reminder in the incident's thread at this interval
	// while the approval is open; 0 sends none.
	Remind time.Duration `json:"remind,omitempty"`
	// Escalate widens the approval after a delay.
	Escalate *Escalation `json:"escalate,omitempty"`

	// quorumSet says the playbook wrote a quorum; otherwise it defaults to
	// 2 before a destructive action and 1 elsewhere.
	quorumSet bool
}

// Escalation widens an approval nobody decided after a delay: more
// approvers may vote, and the request is posted again, to another channel
// when one is named.
type Escalation struct {
	After     time.Duration `json:"after"`
	Approvers []string      `json:"approvers,omitempty"`
	Channel   string        `json:"channel,omitempty"`
}

// DestructiveQuorum is the quorum of an approval that sets none and comes
// before a destructive action: two distinct approvers.
const DestructiveQuorum = 2

// IsUserGroup reports whether an approver ID names a Slack user group
// (S…), whose members may each vote.
func IsUserGroup(id string) bool { return strings.HasPrefix(id, "S") }

// validApprover reports whether id is a Slack user (U…, W…) or user group
// (S…) ID, an api: identity (an API token's name) or a user: identity (a
// person signed in to the console through its identity proxy).
func validApprover(id string) bool {
	for _, prefix := range []string{"api:", "user:"} {
		if name, ok := strings.CutPrefix(id, prefix); ok {
			return name != "" && !strings.ContainsAny(name, " \t\n")
		}
	}
	if len(id) < 2 || !strings.ContainsRune("UWS", rune(id[0])) {
		return false
	}
	for _, c := range id[1:] {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// stepFields decodes the fields of one step into step. Which fields make
// sense depends on the step's kind, which is only known once the mapping is
// read; checkStep then checks the combination.
func (d *decoder) stepFields(step *Step, nodes map[string]*yaml.Node) []yamlfile.Field {
	remember := func(key string, decode func(n *yaml.Node, path string)) yamlfile.Field {
		return yamlfile.Field{Key: key, Decode: func(n *yaml.Node, path string) {
			nodes[key] = n
			decode(n, path)
		}}
	}
	return []yamlfile.Field{
		remember("if", func(n *yaml.Node, path string) {
			if yamlfile.IsNull(n) {
				return
			}
			step.If, _ = d.expression(n, path, resultBool)
		}),
		remember("wait", func(n *yaml.Node, path string) {
			step.Wait, _ = d.duration(n, path, time.Second, maxWait)
		}),
		remember("approval", func(n *yaml.Node, path string) {
			step.Approval = d.approval(n, path)
		}),
		remember("timeout", func(n *yaml.Node, path string) {
			step.Timeout, _ = d.duration(n, path, time.Second, 24*time.Hour)
		}),
		remember("retry", func(n *yaml.Node, path string) {
			step.Retry = d.retry(n, path)
		}),
		remember("onError", func(n *yaml.Node, path string) {
			s, ok := d.RequiredString(n, path)
			if !ok {
				return
			}
			if !slices.Contains([]string{OnErrorAbort, OnErrorContinue, OnErrorRelease}, s) {
				d.Failf(n, path, "%q is not abort, continue or release", s)
				return
			}
			step.OnError = s
		}),
		remember("withoutApproval", func(n *yaml.Node, path string) {
			step.WithoutApproval, _ = d.Bool(n, path)
		}),
	}
}

// checkStep checks what only the whole step shows: one kind, and fields that
// fit it. guard is what the approvals before it guarantee.
func (d *decoder) checkStep(step *Step, item *yaml.Node, nodes map[string]*yaml.Node, path string, guard *approvalGuard) {
	if item.Kind != yaml.MappingNode {
		return // already reported by mapping
	}
	var kinds []string
	if step.Action != "" || nodes["action"] != nil {
		kinds = append(kinds, KindAction)
	}
	if nodes["wait"] != nil {
		kinds = append(kinds, KindWait)
	}
	if nodes["approval"] != nil {
		kinds = append(kinds, KindApproval)
	}
	switch len(kinds) {
	case 0:
		d.Failf(item, path, "a step needs one of action, wait or approval")
		return
	case 1:
		step.Kind = kinds[0]
	default:
		d.Failf(item, path, "a step is one of action, wait or approval, not %s", strings.Join(kinds, " and "))
		return
	}
	onlyFor := map[string]string{"with": KindAction, "retry": KindAction, "timeout": KindAction, "withoutApproval": KindAction}
	for key, kind := range onlyFor {
		if n := nodes[key]; n != nil && step.Kind != kind {
			d.Failf(n, yamlfile.JoinPath(path, key), "only an action step takes %s", key)
		}
	}
	if step.Kind != KindAction || !d.opts.destructive(step.Action) || step.WithoutApproval || guard.ok ||
		slices.ContainsFunc(guard.seen, func(id string) bool { return requiresApproved(step.If, id) }) {
		return
	}
	if len(guard.weak) == 0 {
		d.Failf(nodes["action"], yamlfile.JoinPath(path, "action"),
			"%s is destructive: put an approval step before it, or set withoutApproval: true to run it unapproved", step.Action)
		return
	}
	d.Failf(nodes["action"], yamlfile.JoinPath(path, "action"),
		"%s is destructive and no approval before it must be decided by a human: %s; make one unconditional, with onExpiry: deny and without onError: continue, or set withoutApproval: true to run it unapproved",
		step.Action, strings.Join(guard.weak, "; "))
}

// approvalGuard is what the approval steps so far guarantee to the steps
// after them: ok when one of them can only pass by its approvers' votes;
// weak says why each of the others might let the steps after it run
// without a human's approval.
type approvalGuard struct {
	ok   bool
	weak []string
	// seen are the approval steps' IDs.
	seen []string
}

// after takes in step, whose checks are done.
func (g *approvalGuard) after(step *Step) {
	if step.Kind != KindApproval || step.Approval == nil {
		return
	}
	g.seen = append(g.seen, step.ID)
	var why []string
	if step.If != "" {
		why = append(why, "it is skipped when its if is false")
	}
	if step.Approval.OnExpiry == "approve" {
		why = append(why, "it approves itself when it expires (onExpiry: approve)")
	}
	if step.OnError == OnErrorContinue {
		why = append(why, "a denial goes on to the next step (onError: continue)")
	}
	if len(why) == 0 {
		g.ok = true
		return
	}
	g.weak = append(g.weak, fmt.Sprintf("approval %s: %s", step.ID, strings.Join(why, ", ")))
}

func (d *decoder) approval(n *yaml.Node, path string) *Approval {
	a := &Approval{Quorum: 1, Timeout: DefaultApprovalTimeout, OnExpiry: "deny"}
	var escalateNode *yaml.Node
	d.Mapping(n, path, []yamlfile.Field{
		{Key: "approvers", Required: true, Decode: func(n *yaml.Node, path string) {
			a.Approvers = d.approvers(n, path, nil)
		}},
		{Key: "quorum", Decode: func(n *yaml.Node, path string) {
			q, err := strconv.Atoi(n.Value)
			if n.Kind != yaml.ScalarNode || err != nil || q < 1 {
				d.Failf(n, path, "must be a whole number of at least 1")
				return
			}
			a.Quorum, a.quorumSet = q, true
		}},
		{Key: "timeout", Decode: func(n *yaml.Node, path string) {
			if t, ok := d.duration(n, path, 10*time.Second, maxWait); ok {
				a.Timeout = t
			}
		}},
		{Key: "onExpiry", Decode: func(n *yaml.Node, path string) {
			s, ok := d.RequiredString(n, path)
			if ok && s != "deny" && s != "approve" {
				d.Failf(n, path, "%q is not deny or approve", s)
				return
			}
			a.OnExpiry = s
		}},
		{Key: "message", Decode: func(n *yaml.Node, path string) {
			a.Message, _ = d.String(n, path)
		}},
		{Key: "requester", Decode: func(n *yaml.Node, path string) {
			if yamlfile.IsNull(n) {
				return
			}
			a.Requester, _ = d.expression(n, path, resultString)
		}},
		{Key: "remind", Decode: func(n *yaml.Node, path string) {
			a.Remind, _ = d.duration(n, path, time.Minute, maxWait)
		}},
		{Key: "escalate", Decode: func(n *yaml.Node, path string) {
			escalateNode = n
			a.Escalate = d.escalation(n, path)
		}},
	})
	if a.Escalate != nil && a.Escalate.After >= a.Timeout {
		d.Failf(mappingValue(escalateNode, "after"), yamlfile.JoinPath(path, "escalate.after"), "escalation after %s comes after the approval expires (timeout %s)", a.Escalate.After, a.Timeout)
	}
	return a
}

// approvers decodes a non-empty list of distinct approver IDs; seen holds
// IDs listed already elsewhere in the approval.
func (d *decoder) approvers(n *yaml.Node, path string, seen []string) []string {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		d.Failf(n, path, "must be a non-empty list of approver IDs")
		return nil
	}
	var out []string
	for i, item := range n.Content {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		s, ok := d.RequiredString(yamlfile.Resolve(item), ipath)
		switch {
		case !ok:
		case strings.HasPrefix(s, "cli:"):
			// 'soar approve' voted straight through Temporal as cli:<user>,
			// which anyone reaching Temporal could claim to be.
			d.Failf(item, ipath, "%q: cli: identities are gone; 'soar approve' now votes through soar's API as api:<token name>: list api:%s", s, strings.TrimPrefix(s, "cli:"))
		case !validApprover(s):
			d.Failf(item, ipath, "%q is not an approver: use a Slack user ID (U…, W…), a user group ID (S…), api:<token name> or user:<console login>", s)
		case slices.Contains(out, s) || slices.Contains(seen, s):
			d.Failf(item, ipath, "duplicate approver %q", s)
		default:
			out = append(out, s)
		}
	}
	return out
}

func (d *decoder) escalation(n *yaml.Node, path string) *Escalation {
	e := &Escalation{}
	d.Mapping(n, path, []yamlfile.Field{
		{Key: "after", Required: true, Decode: func(n *yaml.Node, path string) {
			e.After, _ = d.duration(n, path, time.Minute, maxWait)
		}},
		{Key: "approvers", Decode: func(n *yaml.Node, path string) {
			e.Approvers = d.approvers(n, path, nil)
		}},
		{Key: "channel", Decode: func(n *yaml.Node, path string) {
			e.Channel, _ = d.RequiredString(n, path)
		}},
	})
	return e
}

// checkQuorums sets the default quorum of each approval step (two before a
// destructive action, up to the next approval; else one) and checks that
// enough approvers can reach it: a user group counts as many.
func (d *decoder) checkQuorums(steps []Step, items []*yaml.Node, path string) {
	for i := range steps {
		a := steps[i].Approval
		if a == nil || len(a.Approvers) == 0 {
			continue
		}
		destructive := ""
		for _, later := range steps[i+1:] {
			if later.Kind == KindApproval {
				break
			}
			if later.Kind == KindAction && d.opts.destructive(later.Action) {
				destructive = later.Action
				break
			}
		}
		if !a.quorumSet && destructive != "" {
			a.Quorum = DestructiveQuorum
		}
		voters := slices.Concat(a.Approvers, escalationApprovers(a))
		if slices.ContainsFunc(voters, IsUserGroup) || a.Quorum <= len(voters) {
			continue
		}
		apath := fmt.Sprintf("%s[%d].approval", path, i)
		node := mappingValue(mappingValue(items[i], "approval"), "quorum")
		if a.quorumSet {
			d.Failf(node, apath+".quorum", "a quorum of %d needs at least %d approvers, not %d", a.Quorum, a.Quorum, len(voters))
			continue
		}
		d.Failf(mappingValue(mappingValue(items[i], "approval"), "approvers"), apath+".approvers", "%s is destructive, so this approval needs %d distinct approvers by default: list another approver or a user group, or set quorum: 1 to let one person decide", destructive, a.Quorum)
	}
}

// mappingValue returns the value of key in mapping n, or n itself when there is
// none, so that an error still points near the problem.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return yamlfile.Resolve(n.Content[i+1])
			}
		}
	}
	return n
}

func escalationApprovers(a *Approval) []string {
	if a.Escalate == nil {
		return nil
	}
	return a.Escalate.Approvers
}

func (d *decoder) retry(n *yaml.Node, path string) *Retry {
	r := &Retry{}
	d.Mapping(n, path, []yamlfile.Field{
		{Key: "maxAttempts", Decode: func(n *yaml.Node, path string) {
			v, err := strconv.Atoi(n.Value)
			if n.Kind != yaml.ScalarNode || err != nil || v < 1 {
				d.Failf(n, path, "must be a whole number of at least 1")
				return
			}
			r.MaxAttempts = v
		}},
		{Key: "initialInterval", Decode: func(n *yaml.Node, path string) {
			r.InitialInterval, _ = d.duration(n, path, time.Millisecond, time.Hour)
		}},
		{Key: "maximumInterval", Decode: func(n *yaml.Node, path string) {
			r.MaximumInterval, _ = d.duration(n, path, time.Millisecond, 24*time.Hour)
		}},
		{Key: "backoffCoefficient", Decode: func(n *yaml.Node, path string) {
			v, err := strconv.ParseFloat(n.Value, 64)
			if n.Kind != yaml.ScalarNode || err != nil || v < 1 || v > 100 {
				d.Failf(n, path, "must be a number from 1 to 100")
				return
			}
			r.BackoffCoefficient = v
		}},
	})
	if r.InitialInterval > 0 && r.MaximumInterval > 0 && r.MaximumInterval < r.InitialInterval {
		d.Failf(n, path, "maximumInterval %s is shorter than initialInterval %s", r.MaximumInterval, r.InitialInterval)
	}
	return r
}

// duration decodes a Go duration within [lo, hi].
func (d *decoder) duration(n *yaml.Node, path string, lo, hi time.Duration) (time.Duration, bool) {
	s, ok := d.RequiredString(n, path)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.Failf(n, path, "%q is not a duration such as 30s, 5m or 1h", s)
		return 0, false
	}
	if v < lo || v > hi {
		d.Failf(n, path, "%s is outside the allowed range %s to %s", v, lo, hi)
		return 0, false
	}
	return v, true
}

// requiresApproved reports whether the condition cond is true only when the
// approval step id's outcome is "approved", which only its approvers' votes
// give: one of the conjuncts of its top-level && is
// steps.<id>.output.outcome == "approved".
func requiresApproved(cond, id string) bool {
	if cond == "" {
		return false
	}
	tree, err := parser.Parse(cond)
	if err != nil {
		return false
	}
	var walk func(n ast.Node) bool
	walk = func(n ast.Node) bool {
		b, ok := n.(*ast.BinaryNode)
		if !ok {
			return false
		}
		switch b.Operator {
		case "&&", "and":
			return walk(b.Left) || walk(b.Right)
		case "==":
			return isOutcomeOf(b.Left, id) && isString(b.Right, OutcomeApproved) ||
				isOutcomeOf(b.Right, id) && isString(b.Left, OutcomeApproved)
		}
		return false
	}
	return walk(tree.Node)
}

// isOutcomeOf reports whether n is steps.<id>.output.outcome, each a plain
// member access.
func isOutcomeOf(n ast.Node, id string) bool {
	for _, want := range []string{"outcome", "output", id} {
		m, ok := n.(*ast.MemberNode)
		if !ok || m.Optional || m.Method || !isString(m.Property, want) {
			return false
		}
		n = m.Node
	}
	ident, ok := n.(*ast.IdentifierNode)
	return ok && ident.Value == "steps"
}

func isString(n ast.Node, want string) bool {
	s, ok := n.(*ast.StringNode)
	return ok && s.Value == want
}
