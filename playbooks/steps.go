package playbooks

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
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
	// user and user-group IDs), or "cli:<user>" for 'soar approve'.
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
}

// stepFields decodes the fields of one step into step. Which fields make
// sense depends on the step's kind, which is only known once the mapping is
// read; checkStep then checks the combination.
func (d *decoder) stepFields(step *Step, nodes map[string]*yaml.Node) []field {
	remember := func(key string, decode func(n *yaml.Node, path string)) field {
		return field{key: key, decode: func(n *yaml.Node, path string) {
			nodes[key] = n
			decode(n, path)
		}}
	}
	return []field{
		remember("if", func(n *yaml.Node, path string) {
			if isNull(n) {
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
			s, ok := d.requiredString(n, path)
			if !ok {
				return
			}
			if !slices.Contains([]string{OnErrorAbort, OnErrorContinue, OnErrorRelease}, s) {
				d.failf(n, path, "%q is not abort, continue or release", s)
				return
			}
			step.OnError = s
		}),
		remember("withoutApproval", func(n *yaml.Node, path string) {
			step.WithoutApproval, _ = d.bool(n, path)
		}),
	}
}

// checkStep checks what only the whole step shows: one kind, and fields that
// fit it. approvalBefore says whether an earlier step is an approval.
func (d *decoder) checkStep(step *Step, item *yaml.Node, nodes map[string]*yaml.Node, path string, approvalBefore bool) {
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
		d.failf(item, path, "a step needs one of action, wait or approval")
		return
	case 1:
		step.Kind = kinds[0]
	default:
		d.failf(item, path, "a step is one of action, wait or approval, not %s", strings.Join(kinds, " and "))
		return
	}
	onlyFor := map[string]string{"with": KindAction, "retry": KindAction, "timeout": KindAction, "withoutApproval": KindAction}
	for key, kind := range onlyFor {
		if n := nodes[key]; n != nil && step.Kind != kind {
			d.failf(n, joinPath(path, key), "only an action step takes %s", key)
		}
	}
	if step.Kind == KindAction && slices.Contains(d.opts.Destructive, step.Action) && !approvalBefore && !step.WithoutApproval {
		d.failf(nodes["action"], joinPath(path, "action"),
			"%s is destructive: put an approval step before it, or set withoutApproval: true to run it unapproved", step.Action)
	}
}

func (d *decoder) approval(n *yaml.Node, path string) *Approval {
	a := &Approval{Quorum: 1, Timeout: DefaultApprovalTimeout, OnExpiry: "deny"}
	var approversNode, quorumNode *yaml.Node
	d.mapping(n, path, []field{
		{key: "approvers", required: true, decode: func(n *yaml.Node, path string) {
			approversNode = n
			if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
				d.failf(n, path, "must be a non-empty list of approver IDs")
				return
			}
			for i, item := range n.Content {
				if s, ok := d.requiredString(resolve(item), fmt.Sprintf("%s[%d]", path, i)); ok {
					if slices.Contains(a.Approvers, s) {
						d.failf(item, fmt.Sprintf("%s[%d]", path, i), "duplicate approver %q", s)
						continue
					}
					a.Approvers = append(a.Approvers, s)
				}
			}
		}},
		{key: "quorum", decode: func(n *yaml.Node, path string) {
			quorumNode = n
			q, err := strconv.Atoi(n.Value)
			if n.Kind != yaml.ScalarNode || err != nil || q < 1 {
				d.failf(n, path, "must be a whole number of at least 1")
				return
			}
			a.Quorum = q
		}},
		{key: "timeout", decode: func(n *yaml.Node, path string) {
			if t, ok := d.duration(n, path, 10*time.Second, maxWait); ok {
				a.Timeout = t
			}
		}},
		{key: "onExpiry", decode: func(n *yaml.Node, path string) {
			s, ok := d.requiredString(n, path)
			if ok && s != "deny" && s != "approve" {
				d.failf(n, path, "%q is not deny or approve", s)
				return
			}
			a.OnExpiry = s
		}},
		{key: "message", decode: func(n *yaml.Node, path string) {
			a.Message, _ = d.string(n, path)
		}},
	})
	if quorumNode != nil && approversNode != nil && len(a.Approvers) > 0 && a.Quorum > len(a.Approvers) {
		d.failf(quorumNode, joinPath(path, "quorum"), "a quorum of %d needs at least %d approvers, not %d", a.Quorum, a.Quorum, len(a.Approvers))
	}
	return a
}

func (d *decoder) retry(n *yaml.Node, path string) *Retry {
	r := &Retry{}
	d.mapping(n, path, []field{
		{key: "maxAttempts", decode: func(n *yaml.Node, path string) {
			v, err := strconv.Atoi(n.Value)
			if n.Kind != yaml.ScalarNode || err != nil || v < 1 {
				d.failf(n, path, "must be a whole number of at least 1")
				return
			}
			r.MaxAttempts = v
		}},
		{key: "initialInterval", decode: func(n *yaml.Node, path string) {
			r.InitialInterval, _ = d.duration(n, path, time.Millisecond, time.Hour)
		}},
		{key: "maximumInterval", decode: func(n *yaml.Node, path string) {
			r.MaximumInterval, _ = d.duration(n, path, time.Millisecond, 24*time.Hour)
		}},
		{key: "backoffCoefficient", decode: func(n *yaml.Node, path string) {
			v, err := strconv.ParseFloat(n.Value, 64)
			if n.Kind != yaml.ScalarNode || err != nil || v < 1 || v > 100 {
				d.failf(n, path, "must be a number from 1 to 100")
				return
			}
			r.BackoffCoefficient = v
		}},
	})
	if r.InitialInterval > 0 && r.MaximumInterval > 0 && r.MaximumInterval < r.InitialInterval {
		d.failf(n, path, "maximumInterval %s is shorter than initialInterval %s", r.MaximumInterval, r.InitialInterval)
	}
	return r
}

// duration decodes a Go duration within [lo, hi].
func (d *decoder) duration(n *yaml.Node, path string, lo, hi time.Duration) (time.Duration, bool) {
	s, ok := d.requiredString(n, path)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.failf(n, path, "%q is not a duration such as 30s, 5m or 1h", s)
		return 0, false
	}
	if v < lo || v > hi {
		d.failf(n, path, "%s is outside the allowed range %s to %s", v, lo, hi)
		return 0, false
	}
	return v, true
}

// bool decodes a YAML boolean.
func (d *decoder) bool(n *yaml.Node, path string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!bool" && n.ShortTag() != "!!bool") {
		d.failf(n, path, "must be true or false")
		return false, false
	}
	return n.Value == "true", true
}
