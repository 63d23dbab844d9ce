package playbooks

import (
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Defaults and limits of the playbook format.
const (
	// DefaultWindow is how long an incident stays open without a new alert
	// when a playbook sets no window.
	DefaultWindow = time.Hour
	// MinWindow is the shortest window a playbook may set. Shorter windows
	// would split one burst of alerts into many incidents.
	MinWindow = time.Second
	// DefaultWorkflow is the generic workflow that runs a playbook's steps
	// in order; it answers a playbook that names no workflow.
	DefaultWorkflow = "Respond"

	// maxNameLen keeps playbook names within a DNS label, so they can appear
	// in Kubernetes object names and labels that actions create.
	maxNameLen = 63
	// maxStepIDLen bounds step IDs for the same reason.
	maxStepIDLen = 63
)

// Playbook is one loaded, validated and compiled playbook file. Load returns
// playbooks that are ready to use; they must not be modified afterwards, and
// they are then safe for concurrent use.
type Playbook struct {
	// Name identifies the playbook; it is unique within a Set and is part of
	// every incident ID, so renaming a playbook starts new incidents.
	Name string
	// Description is free text for humans.
	Description string

	// Match is the source of the condition an alert must satisfy.
	Match        string
	matchProgram *vm.Program
	// IncidentKey is the source of the expression that groups matching
	// alerts into incidents: alerts with the same key share one incident.
	IncidentKey        string
	incidentKeyProgram *vm.Program

	// Owner names who answers for the playbook (a team, a person).
	Owner string
	// Labels are free key/value metadata.
	Labels map[string]string
	// Severity, when set, is an expression giving the incident's severity
	// instead of the first alert's.
	Severity        string
	severityProgram *vm.Program
	// Mode is ModeEnforce (the default) or ModePlan.
	Mode string

	// Window is how long an incident stays open without a new alert.
	Window time.Duration
	// Workflow names the Temporal workflow that answers the playbook.
	Workflow string
	// Steps run in order.
	Steps []Step
	// SlackChannel is where the incident's Slack thread goes (a channel ID
	// or #name); empty means the worker's --slack-channel.
	SlackChannel string
	// TicketCommentEvery bounds how often soar comments on the incident's
	// ticket: what happens meanwhile goes into one comment.
	TicketCommentEvery time.Duration

	// File is the path the playbook was loaded from.
	File string
	// Version is "sha256:" followed by the hex SHA-256 of the file's bytes.
	// A workflow is pinned to the version it started with.
	Version string
	// GitCommit is the commit of the git checkout the playbook was loaded
	// from (HEAD), empty outside a checkout or without git. GitModified says
	// the file differed from that commit when it was loaded: Version, not the
	// commit, then identifies the content.
	GitCommit   string
	GitModified bool
	source      []byte
}

// Step is one action of a playbook.
type Step struct {
	// ID is unique within the playbook.
	ID string
	// Action names the activity that carries the step out, such as
	// "kubernetes.quarantine".
	Action string
	// With maps parameter names to expression sources. They are evaluated
	// when the step runs, against the same environment as Match, so that a
	// step sees the incident as it is then.
	With map[string]string

	// Kind is KindAction, KindWait or KindApproval.
	Kind string
	// If, when set, is a condition evaluated when the step's turn comes and
	// again each time an alert joins the incident while it is false.
	If string
	// Wait is the duration of a wait step: a durable timer.
	Wait time.Duration
	// Approval configures an approval step.
	Approval *Approval
	// Timeout bounds an action, all its attempts included; 0 means soar's
	// default of five minutes.
	Timeout time.Duration
	// Retry overrides an action's retry policy.
	Retry *Retry
	// OnError is OnErrorAbort (the default), OnErrorContinue or
	// OnErrorRelease.
	OnError string
	// WithoutApproval lets a destructive action run with no approval step
	// before it.
	WithoutApproval bool
	// Facts are the facts of the step's action from LoadOptions, pinned
	// into the spec; nil when the options know no actions.
	Facts *ActionFacts
}

// ShortVersion returns the first 16 hex digits of the playbook's content
// hash, for display in logs and user interfaces. It is not unique enough to
// identify a version; use Version for that.
func (p *Playbook) ShortVersion() string {
	v := strings.TrimPrefix(p.Version, "sha256:")
	if len(v) > 16 {
		v = v[:16]
	}
	return v
}

// validName reports whether s is a DNS-label-like playbook name: lowercase
// letters, digits and '-', not starting or ending with '-'.
func validName(s string) bool {
	if s == "" || len(s) > maxNameLen || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

// validStepID reports whether s is a step ID: lowercase letters, digits, '-'
// and '_'.
func validStepID(s string) bool {
	if s == "" || len(s) > maxStepIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// validIdentifier reports whether s is a letter followed by letters, digits
// and '_'. Workflow names and step parameter names use it, because both end
// up as Go identifiers or map keys in Go code.
func validIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '_')) {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}
