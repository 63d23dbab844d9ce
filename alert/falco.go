package alert

import (
	"strings"
	"time"
	"unicode"
)

// Falco event sources that locate a Kubernetes workload.
const (
	sourceSyscall  = "syscall"
	sourceK8sAudit = "k8s_audit"
)

// isFalco reports whether obj is a Falco event. Falco always writes "rule",
// "priority" and "output"; requiring one of the last two besides "rule" keeps a
// generic alert, which has neither, out.
func isFalco(obj map[string]any) bool {
	_, priority := obj["priority"]
	_, output := obj["output"]
	return priority || output
}

// decodeFalco maps a Falco event, as Falco's json_output writes it and as
// Falcosidekick forwards it (adding "uuid"), to an Alert without ID or Rule,
// which Decode fills in.
func decodeFalco(obj map[string]any) Alert {
	a := Alert{
		ID:       stringField(obj, "uuid"),
		Source:   stringField(obj, "source"),
		Severity: severityField(obj, "priority"),
		Time:     timeField(obj, "time"),
		Summary:  stringField(obj, "output"),
		Hostname: stringField(obj, "hostname"),
		Tags:     tagsField(obj, "tags"),
		Fields:   fieldsOf(obj, "output_fields"),
		Format:   "falco",
	}
	// Falcosidekick's customfields join the output fields.
	a.Cluster = k8sField(a.Fields, ClusterField)
	// Older Falco versions did not write "source". A rule that names no
	// source is a syscall rule, so that is the best guess.
	if a.Source == "" {
		a.Source = sourceSyscall
	}
	// Falco's output line starts with %evt.time, so its output fields carry
	// "evt.time" in nanoseconds since the epoch even when "time" is missing.
	if a.Time.IsZero() {
		if ns, ok := a.Fields["evt.time"].(int64); ok {
			a.Time = time.Unix(0, ns).UTC()
		}
	}

	switch a.Source {
	case sourceSyscall:
		a.Kubernetes = Kubernetes{
			Namespace: k8sField(a.Fields, "k8s.ns.name"),
			Pod:       k8sField(a.Fields, "k8s.pod.name"),
			Container: k8sField(a.Fields, "container.name"),
			PodUID:    k8sField(a.Fields, "k8s.pod.uid"),
			// Falco watches system calls as a DaemonSet, one pod per node, and
			// its hostname is the node's name (the Helm chart sets
			// FALCO_HOSTNAME from spec.nodeName).
			Node: k8sField(obj, "hostname"),
		}
	case sourceK8sAudit:
		a.Kubernetes = auditTarget(a.Fields)
	}
	return a
}

// auditTarget locates the workload a Kubernetes audit event acted on. Only
// pods name a pod; the container is known for pod subresources that take one
// (exec, attach, log), when the "ka.uri.param[container]" field was added to
// the rule's output. The node is never known: the Falco that reported the
// event runs wherever the API server's webhook reaches it, not on the pod's
// node.
func auditTarget(fields map[string]any) Kubernetes {
	k := Kubernetes{Namespace: k8sField(fields, "ka.target.namespace")}
	if k8sField(fields, "ka.target.resource") != "pods" {
		return k
	}
	k.Pod = k8sField(fields, "ka.target.name")
	if k8sField(fields, "ka.target.subresource") != "" {
		k.Container = bracketField(fields, "ka.uri.param", "container")
	}
	return k
}

// maxBracketReplacement bounds the replacement of a bracket that
// bracketField recognises.
const maxBracketReplacement = 4

// bracketField returns the field name[key], such as ka.uri.param[container],
// as k8sField does. Falcosidekick's bracketreplacer option rewrites both
// brackets of every field name with a string of the operator's choice
// (ka.uri.param_container_ with "_"), and other forwarders drop the closing
// one, so when name[key] is missing, bracketField takes a field named
// name+R+key+R or name+R+key, for a short R of neither letters nor digits;
// of several such, the first in byte order, so that a decode is
// deterministic.
func bracketField(fields map[string]any, name, key string) string {
	if v := k8sField(fields, name+"["+key+"]"); v != "" {
		return v
	}
	best := ""
	for f := range fields {
		if replacedBrackets(f, name, key) && (best == "" || f < best) {
			best = f
		}
	}
	if best == "" {
		return ""
	}
	return k8sField(fields, best)
}

// replacedBrackets reports whether field is name[key] with its brackets
// replaced as bracketField describes.
func replacedBrackets(field, name, key string) bool {
	rest, ok := strings.CutPrefix(field, name)
	if !ok {
		return false
	}
	rest, ok = strings.CutSuffix(rest, key)
	open := rest
	if !ok {
		// name+R+key+R: the suffix after key is R again.
		i := strings.LastIndex(rest, key)
		if i < 0 {
			return false
		}
		open = rest[:i]
		if rest[i+len(key):] != open {
			return false
		}
	}
	if open == "" || len(open) > maxBracketReplacement {
		return false
	}
	for _, r := range open {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return false
		}
	}
	return true
}
