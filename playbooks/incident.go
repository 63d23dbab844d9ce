package playbooks

import (
	"crypto/sha256"
	"encoding/hex"
)

// IncidentID returns the Temporal workflow ID of the incident that a
// playbook and an incident key identify: "soar-", the playbook name, "-" and
// the first 20 hex digits (80 bits) of SHA-256(playbookName + "\x00" +
// incidentKey). It is deterministic, so duplicate alerts find the open
// workflow, and it never contains alert text, which may be long, hostile or
// sensitive. Playbook names cannot contain NUL, so the separator makes the
// hashed text unambiguous: no other pair of name and key hashes the same.
func IncidentID(playbookName, incidentKey string) string {
	sum := sha256.Sum256([]byte(playbookName + "\x00" + incidentKey))
	return "soar-" + playbookName + "-" + hex.EncodeToString(sum[:])[:20]
}

// ClusterIncidentID is IncidentID within one cluster: incidents never span
// clusters, whatever a playbook's incidentKey says, so that alerts for
// namesake pods of two clusters never join one incident (which would act
// in the first alert's cluster only). The empty cluster is IncidentID, so
// single-cluster incidents keep their IDs. The hashed text starts with
// \x01, which no playbook name does, and the cluster holds no NUL
// (alert.ValidCluster), so it is unambiguous and differs from every text
// IncidentID hashes.
func ClusterIncidentID(cluster, playbookName, incidentKey string) string {
	if cluster == "" {
		return IncidentID(playbookName, incidentKey)
	}
	sum := sha256.Sum256([]byte("\x01" + cluster + "\x00" + playbookName + "\x00" + incidentKey))
	return "soar-" + playbookName + "-" + hex.EncodeToString(sum[:])[:20]
}
