package dispatch

import (
	"fmt"
	"strings"

	"github.com/soar-dev/soar/alert"
)

// ClusterSubjectPrefix starts the subjects that name their cluster:
// clusters.<name>.<anything>. The hub's alert stream sources each
// cluster's leaf stream with a subject transform that writes this prefix
// (see ClusterSource), so the name comes from the hub's configuration,
// not from anything a cluster sends; publishers must not be allowed to
// publish under it (docs/multi-cluster.md).
const ClusterSubjectPrefix = "clusters."

// ClusterIdentity says how the dispatcher finds an alert's cluster
// (docs/multi-cluster.md), in this order:
//  1. the subject, when it is ClusterSubjectPrefix + name + ".…";
//  2. the alert field Field (default "cluster": what Falcosidekick's
//     customfields add, or a generic alert's "cluster");
//  3. Default.
//
// Each is checked with alert.ValidCluster. An alert with no cluster in a
// soar with no Default is a single-cluster alert, acted on by the workers
// that poll the shared task queue.
type ClusterIdentity struct {
	// Field is the output field (Falco) or field (generic alert) that names
	// the cluster, in its dotted form; empty means alert.ClusterField.
	Field string
	// Default is the cluster of alerts that name none; empty means none.
	Default string
}

// Validate checks the configuration.
func (c ClusterIdentity) Validate() error {
	if c.Default != "" {
		if err := alert.ValidCluster(c.Default); err != nil {
			return fmt.Errorf("default cluster: %w", err)
		}
	}
	return nil
}

// resolve sets a.Cluster as ClusterIdentity says. Its error means the
// subject or the field names no valid cluster: the alert is dead-lettered
// with alert.ReasonInvalidCluster rather than acted on in a cluster
// nobody named.
func (c ClusterIdentity) resolve(subject string, a *alert.Alert) error {
	if rest, ok := strings.CutPrefix(subject, ClusterSubjectPrefix); ok {
		name, _, _ := strings.Cut(rest, ".")
		if err := alert.ValidCluster(name); err != nil {
			return fmt.Errorf("subject %s: %w", subject, err)
		}
		a.Cluster = name
		return nil
	}
	if c.Field != "" && c.Field != alert.ClusterField {
		a.Cluster = ""
		switch v := a.Fields[c.Field].(type) {
		case nil:
		case string:
			if v != "" && v != "<NA>" {
				if err := alert.ValidCluster(v); err != nil {
					return fmt.Errorf("field %s: %w", c.Field, err)
				}
				a.Cluster = v
			}
		default:
			return fmt.Errorf("field %s is a %T, want a cluster name", c.Field, v)
		}
	}
	if a.Cluster == "" {
		a.Cluster = c.Default
	}
	return nil
}
