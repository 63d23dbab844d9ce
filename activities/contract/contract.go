// Package contract is what Respond and the activities agree on: the names
// of the activities the workflow schedules, the names of the actions whose
// orchestration it knows, and the request and result types that cross the
// activity boundary. It imports nothing of soar's and no connector, so that
// workflow code depends on plain data only; package activities implements
// these activities and aliases these types.
//
// Their JSON is what recorded histories and running incidents carry: a field
// is renamed never, only added.
package contract

import "time"

// Names of the activities that are methods of activities.Activities, as
// the worker registers them (the method's name).
const (
	SlackThreadActivity   = "SlackThread"
	SlackApprovalActivity = "SlackApproval"
	SlackNoteActivity     = "SlackNote"
	TicketUpdateActivity  = "TicketUpdate"
	// QuarantineActivity is what incidents from before generic actions call.
	QuarantineActivity = "Quarantine"
	// ClusterCheckActivity runs on the incident's own task queue and
	// finds whether a worker polls a cluster's task queue
	// (ClusterCheckRequest).
	ClusterCheckActivity = "ClusterCheck"
)

// KubernetesPrefix starts the name of every action that acts on a
// Kubernetes cluster. An incident with a cluster runs these on that
// cluster's task queue (ClusterTaskQueue), where only that cluster's
// workers poll.
const KubernetesPrefix = "kubernetes."

// ClusterTaskQueue is the task queue of the workers that act on cluster,
// for a soar whose workflows run on base.
func ClusterTaskQueue(base, cluster string) string { return base + "-cluster-" + cluster }

// ClusterCheckRequest asks whether a worker polls the task queue of a
// cluster.
type ClusterCheckRequest struct {
	Cluster   string `json:"cluster"`
	TaskQueue string `json:"taskQueue"`
}

// ErrTypeClusterUnavailable is the error type of a Kubernetes action of an
// incident whose cluster no worker serves: no worker polls the cluster's
// task queue (an unknown cluster, or all its workers down). The action runs
// nowhere; it does not fall back to another cluster's worker.
const ErrTypeClusterUnavailable = "ClusterUnavailable"

// ErrTypeUnprovenCaller is the error type of an activity task that no
// incident of soar's scheduled: a workflow of another type, or one that
// does not run on soar's task queue. Workers refuse it without running it.
const ErrTypeUnprovenCaller = "UnprovenCaller"

// Actions whose orchestration Respond knows by name; every other action is
// scheduled by the name its step gives, with the facts pinned into the step.
const (
	ActionQuarantine    = "kubernetes.quarantine"
	ActionSnapshot      = "kubernetes.snapshot"
	ActionTicketOpen    = "ticket.open"
	ActionTicketResolve = "ticket.resolve"
)

// ActionRequest is the input of every catalogue action's activity. Each
// action is registered as an activity named after it (kubernetes.quarantine),
// so the Temporal UI and history show what ran.
type ActionRequest struct {
	Action     string `json:"action"`
	IncidentID string `json:"incidentID"`
	// Step is the playbook step running the action; actions that store
	// something (snapshot) key it by incident and step, so a retried activity
	// finds what its earlier attempt stored.
	Step string `json:"step,omitempty"`
	// Occurrence identifies this occurrence of the incident (when it
	// opened): an incident that closes and later opens again with the same
	// ID stores its evidence apart from the earlier one's.
	Occurrence string `json:"occurrence,omitempty"`
	// Params are the step's parameters, with the ones the playbook left out
	// filled from the incident's first alert (namespace, pod, podUID).
	Params map[string]any `json:"params,omitempty"`
	// Undo is the output of the action an inverse undoes: what it changed and
	// what was there before.
	Undo map[string]any `json:"undo,omitempty"`
	// DryRun asks for a plan: every write is sent as a server-side dry run, or
	// the action only describes what it would do.
	DryRun bool `json:"dryRun,omitempty"`
	// Incident tells actions that need it where the incident's Slack
	// thread is.
	Incident *IncidentContext `json:"incident,omitempty"`
}

// MessageRef locates one Slack message.
type MessageRef struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// Target is the pod an incident is about.
type Target struct {
	Namespace, Pod, Node string
	// Cluster is the incident's cluster; empty for a single-cluster one.
	Cluster string `json:",omitempty"`
}

// IncidentSummary is what the root message of an incident's thread shows.
// These types carry no JSON tags: their JSON is the Slack views' that
// histories recorded before the activities owned them carry.
type IncidentSummary struct {
	IncidentID, Title, Severity, Playbook, Summary string
	Target                                         Target
}

// PlannedAction is a step that runs if an approval is granted.
type PlannedAction struct {
	Step, Action string
	Params       map[string]any
	Destructive  bool
	// Condition is the step's "if", when it has one.
	Condition string
}

// VoteSummary is a vote cast so far.
type VoteSummary struct {
	// User is the voter's identity: a Slack user ID (U..., W...) is shown as
	// a mention; anything else (cli:alice, api:ci) as escaped text.
	User    string
	Approve bool
	Comment string
	At      time.Time
}

// ApprovalSummary is everything an approval request message shows.
type ApprovalSummary struct {
	IncidentID, Title, Severity, Playbook, Step string
	Target                                      Target
	// Message is written by the playbook author.
	Message  string
	Plan     []PlannedAction
	PlanHash string
	Quorum   int
	// Approvers are identities: U.../W... users, S... user groups, and
	// cli:/api: names.
	Approvers []string
	Deadline  time.Time
	Votes     []VoteSummary
	// Outcome is "" while the approval is open, then "approved", "denied"
	// or "expired"; OnExpiry is what expiry decides ("deny" or "approve").
	Outcome   string
	DecidedAt time.Time
	OnExpiry  string
	Escalated bool
}

// SlackThreadRequest asks for an incident's thread: its root message.
type SlackThreadRequest struct {
	IncidentID string `json:"incidentID"`
	// Channel is the playbook's; empty means the worker's.
	Channel  string          `json:"channel,omitempty"`
	OpenedAt time.Time       `json:"openedAt"`
	View     IncidentSummary `json:"view"`
}

// SlackThreadResult is the thread, or why there is none.
type SlackThreadResult struct {
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
	Skipped string `json:"skipped,omitempty"`
}

// SlackApprovalRequest posts or updates an approval request.
type SlackApprovalRequest struct {
	IncidentID string     `json:"incidentID"`
	Thread     MessageRef `json:"thread"`
	// Channel, when set, takes the request out of the thread to another
	// channel (an escalation).
	Channel string `json:"channel,omitempty"`
	// Existing is the message to update; nil posts a new one.
	Existing *MessageRef `json:"existing,omitempty"`
	// Key names the message among the incident's: the step, and
	// "/escalation" for the copy in the escalation channel.
	Key  string          `json:"key"`
	View ApprovalSummary `json:"view"`
}

// SlackNoteRequest posts a note of soar's in the incident's thread.
type SlackNoteRequest struct {
	IncidentID string     `json:"incidentID"`
	Thread     MessageRef `json:"thread"`
	Key        string     `json:"key"`
	// Note is what to say; the activity renders it.
	Note *Note `json:"note,omitempty"`
	// Text is a note rendered as mrkdwn already, by workers from before
	// notes were structured; it is posted as is.
	Text      string    `json:"text,omitempty"`
	Broadcast bool      `json:"broadcast,omitempty"`
	Since     time.Time `json:"since"`
}

// IncidentContext is what an action may need to know of its incident
// beyond its ID: where its Slack thread is.
type IncidentContext struct {
	Playbook      string `json:"playbook,omitempty"`
	SlackChannel  string `json:"slackChannel,omitempty"`
	SlackThreadTS string `json:"slackThreadTS,omitempty"`
	// SlackSkipped says why the incident has no thread.
	SlackSkipped string `json:"slackSkipped,omitempty"`
	// Ticket is what ticket actions need.
	Ticket *TicketContext `json:"ticket,omitempty"`
}

// Kinds of Note.
const (
	// NoteReminder: an approval still needs Missing votes from Users
	// before At.
	NoteReminder = "reminder"
	// NoteEscalated: nobody decided in After; Users may now vote too.
	NoteEscalated = "escalated"
	// NoteApproved and NoteDenied: Users decided; Plan runs, or not.
	NoteApproved = "approved"
	NoteDenied   = "denied"
	// NoteExpired: nobody decided by At; Outcome is what expiry decided.
	NoteExpired = "expired"
)

// Note is one of soar's own notes in an incident's thread, as the workflow
// states it: facts, not text. SlackNote renders it, so that the wording,
// mentions and dates are Slack's business, not the workflow's.
type Note struct {
	Kind string `json:"kind"`
	Step string `json:"step"`
	// Users are the approvers still to vote (reminder), added by the
	// escalation, or who decided (approved, denied).
	Users   []string      `json:"users,omitempty"`
	Missing int           `json:"missing,omitempty"`
	At      time.Time     `json:"at,omitzero"`
	After   time.Duration `json:"after,omitempty"`
	// Plan names the planned steps as "step (action)".
	Plan    []string `json:"plan,omitempty"`
	Outcome string   `json:"outcome,omitempty"`
}

// TicketRef identifies an incident's ticket. Its JSON is the ticket
// connector's Ticket's, which incident state and recorded histories carry.
type TicketRef struct {
	// Provider is "jira", "github" or "webhook".
	Provider string `json:"provider"`
	// ID is the Jira issue id, the GitHub issue number or the webhook
	// receiver's id (which may be "").
	ID string `json:"id"`
	// Key is "SEC-123", "owner/repo#45", or the webhook receiver's key.
	Key string `json:"key"`
	// URL is the page a human opens to see the ticket.
	URL string `json:"url,omitempty"`
}

// TicketContext is what the incident tells ticket actions: the facts a
// ticket shows, and the ticket once one is open. The workflow fills it.
type TicketContext struct {
	// Key identifies this occurrence of the incident to the ticket system
	// (the incident ID and when it opened); empty means the incident ID.
	Key      string   `json:"key,omitempty"`
	Title    string   `json:"title,omitempty"`
	Severity string   `json:"severity,omitempty"`
	Summary  string   `json:"summary,omitempty"`
	Target   string   `json:"target,omitempty"`
	Rule     string   `json:"rule,omitempty"`
	Alerts   int      `json:"alerts,omitempty"`
	Actions  []string `json:"actions,omitempty"`
	Evidence []string `json:"evidence,omitempty"`
	Approval []string `json:"approvals,omitempty"`
	// Ticket is the incident's ticket, once opened.
	Ticket *TicketRef `json:"ticket,omitempty"`
}

// TicketUpdateRequest carries what happened to an incident since its
// ticket's last comment, and whether to resolve it now.
type TicketUpdateRequest struct {
	IncidentID string    `json:"incidentID"`
	Ticket     TicketRef `json:"ticket"`
	Lines      []string  `json:"lines,omitempty"`
	Resolve    bool      `json:"resolve,omitempty"`
}

// QuarantineInput names the pod to isolate and the incident asking for it.
type QuarantineInput struct {
	IncidentID string `json:"incidentID"`
	Namespace  string `json:"namespace"`
	Pod        string `json:"pod"`
	// PodUID, when the alert knew it, guards against acting on a replacement.
	PodUID string `json:"podUID,omitempty"`
	// DryRun asks the API server to check every change without storing it
	// (plan mode).
	DryRun bool `json:"dryRun,omitempty"`
}
