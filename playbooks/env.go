package playbooks

import (
	"time"

	"github.com/soar-dev/soar/alert"
)

// Env is the environment every playbook expression is evaluated against.
// Authors see it as the variables alert, incident and the severity names:
//
//	alert.severity >= Warning && "T1059" in alert.tags
//
// Build it with NewEnv. The severity fields are constants that NewEnv sets;
// they are fields rather than expr constants so that the environment stays
// one plain typed struct that expr checks at compile time.
type Env struct {
	// Alert is the alert being matched, or, when a step runs, the alert that
	// opened the incident.
	Alert alert.Alert `expr:"alert"`
	// Incident is empty while matching, because the incident does not exist
	// yet; steps see the incident they belong to.
	Incident Incident `expr:"incident"`
	// Latest is the latest alert of the incident when a step runs (the alert
	// being matched while matching).
	Latest alert.Alert `expr:"latest"`
	// Steps holds the steps that have run so far, by step ID.
	Steps map[string]StepView `expr:"steps"`
	// Now is the workflow's current time when a step runs (deterministic in
	// Temporal's replays), and the alert's time while matching.
	Now time.Time `expr:"now"`

	Debug         alert.Severity `expr:"Debug"`
	Informational alert.Severity `expr:"Informational"`
	Notice        alert.Severity `expr:"Notice"`
	Warning       alert.Severity `expr:"Warning"`
	Error         alert.Severity `expr:"Error"`
	Critical      alert.Severity `expr:"Critical"`
	// AlertSeverity is the severity named "Alert" in expressions; the Go
	// field cannot be called Alert because the alert itself is.
	AlertSeverity alert.Severity `expr:"Alert"`
	Emergency     alert.Severity `expr:"Emergency"`
}

// Incident describes the incident a step runs for.
type Incident struct {
	// ID is the incident's workflow ID (see IncidentID).
	ID string `expr:"id"`
	// Key is the value of the playbook's incidentKey for the first alert.
	Key string `expr:"key"`
	// AlertCount counts the alerts the incident has received so far.
	AlertCount int `expr:"alertCount"`
}

// StepView is what later steps see of an earlier one.
type StepView struct {
	// Status is "succeeded", "failed" or "skipped".
	Status string `expr:"status"`
	// Output is the action's output; for an approval step,
	// {"outcome": "approved"|"denied"|"expired", "votes": [...]}.
	Output map[string]any `expr:"output"`
	// Error is the failure message of a failed step.
	Error string `expr:"error"`
}

// NewEnv returns the environment for alert a in incident inc, with the
// severity names set. Pass a zero Incident while matching. Latest is a, and
// Now the alert's time; steps set both from the incident.
func NewEnv(a alert.Alert, inc Incident) Env {
	env := Env{Alert: a, Incident: inc, Latest: a, Now: a.Time}
	env.setSeverities()
	return env
}

// setSeverities sets the severity names. EvalParams calls it too, so that an
// Env built by hand cannot make Warning mean something else.
func (e *Env) setSeverities() {
	e.Debug = alert.SeverityDebug
	e.Informational = alert.SeverityInformational
	e.Notice = alert.SeverityNotice
	e.Warning = alert.SeverityWarning
	e.Error = alert.SeverityError
	e.Critical = alert.SeverityCritical
	e.AlertSeverity = alert.SeverityAlert
	e.Emergency = alert.SeverityEmergency
}
