package alert

import "cmp"

// decodeGeneric maps a generic alert, the format any detector can send (see
// docs/alerts.md), to an Alert without ID or Rule, which Decode fills in.
// Members it does not know are ignored, so detectors can send more.
func decodeGeneric(obj map[string]any) Alert {
	k8s, _ := obj["kubernetes"].(map[string]any)
	fields := fieldsOf(obj, "fields")
	return Alert{
		Cluster:  cmp.Or(stringField(obj, ClusterField), k8sField(fields, ClusterField)),
		ID:       stringField(obj, "id"),
		Source:   stringField(obj, "source"),
		Severity: severityField(obj, "severity"),
		Time:     timeField(obj, "time"),
		Summary:  stringField(obj, "summary"),
		Hostname: stringField(obj, "hostname"),
		Tags:     tagsField(obj, "tags"),
		Kubernetes: Kubernetes{
			Namespace: k8sField(k8s, "namespace"),
			Pod:       k8sField(k8s, "pod"),
			Container: k8sField(k8s, "container"),
			Node:      k8sField(k8s, "node"),
			PodUID:    k8sField(k8s, "podUID"),
		},
		Fields: fields,
		Format: "generic",
	}
}
