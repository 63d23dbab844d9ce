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
