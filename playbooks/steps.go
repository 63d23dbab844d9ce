package playbooks

import (
	"fmt"
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
	if step.Kind == KindAction && slices.Contains(d.opts.Destructive, step.Action) && !approvalBefore && !step.WithoutApproval {
		d.Failf(nodes["action"], yamlfile.JoinPath(path, "action"),
			"%s is destructive: put an approval step before it, or set withoutApproval: true to run it unapproved", step.Action)
	}
}

func (d *decoder) approval(n *yaml.Node, path string) *Approval {
	a := &Approval{Quorum: 1, Timeout: DefaultApprovalTimeout, OnExpiry: "deny"}
	var approversNode, quorumNode *yaml.Node
	d.Mapping(n, path, []yamlfile.Field{
		{Key: "approvers", Required: true, Decode: func(n *yaml.Node, path string) {
			approversNode = n
			if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
				d.Failf(n, path, "must be a non-empty list of approver IDs")
				return
			}
			for i, item := range n.Content {
				if s, ok := d.RequiredString(yamlfile.Resolve(item), fmt.Sprintf("%s[%d]", path, i)); ok {
					if slices.Contains(a.Approvers, s) {
						d.Failf(item, fmt.Sprintf("%s[%d]", path, i), "duplicate approver %q", s)
						continue
					}
					a.Approvers = append(a.Approvers, s)
				}
			}
		}},
		{Key: "quorum", Decode: func(n *yaml.Node, path string) {
			quorumNode = n
			q, err := strconv.Atoi(n.Value)
			if n.Kind != yaml.ScalarNode || err != nil || q < 1 {
				d.Failf(n, path, "must be a whole number of at least 1")
				return
			}
			a.Quorum = q
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
	})
	if quorumNode != nil && approversNode != nil && len(a.Approvers) > 0 && a.Quorum > len(a.Approvers) {
		d.Failf(quorumNode, yamlfile.JoinPath(path, "quorum"), "a quorum of %d needs at least %d approvers, not %d", a.Quorum, a.Quorum, len(a.Approvers))
	}
	return a
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
