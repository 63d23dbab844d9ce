package alert

import "fmt"

// MaxClusterLen bounds a cluster name: EKS allows 100 characters, GKE and
// AKS fewer.
const MaxClusterLen = 100

// ValidCluster reports whether name can name a cluster: 1 to MaxClusterLen
// ASCII letters, digits, '-' and '_', starting with a letter or digit.
// That covers the names EKS, GKE and AKS allow, and keeps an alert's
// cluster safe as one NATS subject token (no '.', no wildcard: the
// dispatcher reads clusters.<name>.> subjects), in a Temporal task queue
// name, a label and a log line: no spaces, no markup.
func ValidCluster(name string) error {
	if name == "" {
		return fmt.Errorf("cluster name is empty")
	}
	if len(name) > MaxClusterLen {
		return fmt.Errorf("cluster name of %d bytes exceeds %d", len(name), MaxClusterLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '-' || c == '_'):
		default:
			return fmt.Errorf("cluster name %q: byte %d (%q) is not an ASCII letter, digit, '-' or '_' (nor may it start with '-' or '_')", truncate(name, 40), i, c)
		}
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ClusterField is the field that names an alert's cluster by default: the
// output field Falcosidekick adds with customfields: cluster:<name>, and
// the generic alert's top-level "cluster".
const ClusterField = "cluster"

// ReasonInvalidCluster means the alert names its cluster with something
// that is not a cluster name (see ValidCluster): acting on it could reach
// no cluster or a wrong one, so it is dead-lettered.
const ReasonInvalidCluster Reason = "invalid_cluster"

// ReasonUnknownCluster means the alert names a valid cluster that the
// dispatcher does not serve (soar dispatch --allowed-clusters): a flood
// naming many made-up clusters would otherwise open an incident per name.
const ReasonUnknownCluster Reason = "unknown_cluster"
