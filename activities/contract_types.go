package activities

import "github.com/soar-dev/soar/activities/contract"

// The types that cross the activity boundary live in package contract, so
// that workflow code imports no connector; these aliases keep their names
// here, beside the activities that take them.
type (
	ActionRequest        = contract.ActionRequest
	IncidentContext      = contract.IncidentContext
	MessageRef           = contract.MessageRef
	Target               = contract.Target
	IncidentSummary      = contract.IncidentSummary
	PlannedAction        = contract.PlannedAction
	VoteSummary          = contract.VoteSummary
	ApprovalSummary      = contract.ApprovalSummary
	SlackThreadRequest   = contract.SlackThreadRequest
	SlackThreadResult    = contract.SlackThreadResult
	SlackApprovalRequest = contract.SlackApprovalRequest
	SlackNoteRequest     = contract.SlackNoteRequest
	Note                 = contract.Note
	TicketRef            = contract.TicketRef
	TicketContext        = contract.TicketContext
	TicketUpdateRequest  = contract.TicketUpdateRequest
	QuarantineInput      = contract.QuarantineInput
)

// Kinds of Note.
const (
	NoteReminder  = contract.NoteReminder
	NoteEscalated = contract.NoteEscalated
	NoteApproved  = contract.NoteApproved
	NoteDenied    = contract.NoteDenied
	NoteExpired   = contract.NoteExpired
)
