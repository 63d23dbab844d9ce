// Package alert is soar's domain model for a security alert: one normalised shape
// for Falco, Falcosidekick and generic JSON detectors. It depends on nothing but
// the standard library so that every other package can use it.
package alert

import (
	"time"
)

// Alert is one normalised security alert. Its fields are plain data: alert content
// is only ever a value in an expression environment, never code.
type Alert struct {
	// ID identifies the alert at its source (Falco's uuid, the generic "id").
	// When the source sends none, the decoder derives a stable one from the content.
	ID string `json:"id" expr:"id"`
	// Source is the event source: "syscall" and "k8s_audit" for Falco, or the
	// generic alert's "source".
	Source string `json:"source" expr:"source"`
	// Rule names the detection rule that fired.
	Rule string `json:"rule" expr:"rule"`
	// Severity is ordered, so playbooks can write severity >= Warning.
	Severity Severity `json:"severity" expr:"severity"`
	// Time is when the event happened, as reported by the detector.
	Time time.Time `json:"time" expr:"time"`
	// Summary is a one-line human description (Falco's "output").
	Summary string `json:"summary,omitempty" expr:"summary"`
	// Hostname is the host that reported the event, if known.
	Hostname string `json:"hostname,omitempty" expr:"hostname"`
	// Tags are the detector's tags, e.g. MITRE technique IDs.
	Tags []string `json:"tags,omitempty" expr:"tags"`
	// Cluster names the Kubernetes cluster the alert came from: the
	// detector's "cluster" field (what Falcosidekick adds with
	// customfields: cluster:<name>), or what the dispatcher derives from the
	// subject or its configuration (docs/multi-cluster.md). Empty means the
	// one cluster of a single-cluster soar. See ValidCluster.
	Cluster string `json:"cluster,omitempty" expr:"cluster"`
	// Kubernetes locates the workload the alert is about, when the detector knew it.
	Kubernetes Kubernetes `json:"kubernetes" expr:"k8s"`
	// Fields are the detector's own fields, flattened to their dotted names
	// (Falco's output_fields, the generic alert's "fields").
	Fields map[string]any `json:"fields,omitempty" expr:"fields"`
	// Format names the decoder that produced the alert: "falco" or "generic".
	Format string `json:"format" expr:"format"`
}

// Kubernetes locates a workload. Empty strings mean "not known".
type Kubernetes struct {
	Namespace string `json:"namespace,omitempty" expr:"namespace"`
	Pod       string `json:"pod,omitempty" expr:"pod"`
	Container string `json:"container,omitempty" expr:"container"`
	Node      string `json:"node,omitempty" expr:"node"`
	// PodUID is set when the detector reports it; actions use it to make sure
	// they act on the pod the alert named and not a namesake created later.
	PodUID string `json:"podUID,omitempty" expr:"podUID"`
}

// Severity orders alerts by urgency. The values follow Falco's (syslog) priorities
// in increasing order of urgency, so comparisons read naturally.
type Severity int

// Severities, least urgent first.
const (
	SeverityUnknown Severity = iota
	SeverityDebug
	SeverityInformational
	SeverityNotice
	SeverityWarning
	SeverityError
	SeverityCritical
	SeverityAlert
	SeverityEmergency
)
