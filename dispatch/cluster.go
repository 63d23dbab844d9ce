package dispatch

import (
	"errors"
	"fmt"
	"slices"
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
	// Allowed, when not empty, are the only clusters alerts may name: an
	// alert naming another one, by its subject, its field or Default, is
	// dead-lettered with alert.ReasonUnknownCluster. Alerts that name no
	// cluster (and no Default) are single-cluster alerts and pass. A list
	// of a few hundred names at most is expected; it is searched in order.
	Allowed []string
}

// ErrUnknownCluster: the alert names a cluster that is not Allowed.
var ErrUnknownCluster = errors.New("cluster not among the dispatcher's allowed clusters")

// Validate checks the configuration.
func (c ClusterIdentity) Validate() error {
	for _, name := range c.Allowed {
		if err := alert.ValidCluster(name); err != nil {
			return fmt.Errorf("allowed cluster: %w", err)
		}
	}
	if c.Default != "" {
		if err := alert.ValidCluster(c.Default); err != nil {
			return fmt.Errorf("default cluster: %w", err)
		}
		if !c.allowed(c.Default) {
			return fmt.Errorf("default cluster %s is not among the allowed clusters %s", c.Default, strings.Join(c.Allowed, ","))
		}
	}
	return nil
}

// ValidateSources checks that every cluster the stream sources is allowed:
// its alerts would all be dead-lettered otherwise.
func (c ClusterIdentity) ValidateSources(sources []ClusterSource) error {
	for _, s := range sources {
		if !c.allowed(s.Cluster) {
			return fmt.Errorf("cluster %s is sourced but not among the allowed clusters %s", s.Cluster, strings.Join(c.Allowed, ","))
		}
	}
	return nil
}

func (c ClusterIdentity) allowed(name string) bool {
	return len(c.Allowed) == 0 || name == "" || slices.Contains(c.Allowed, name)
}

// resolve sets a.Cluster as ClusterIdentity says. Its error means the
// subject or the field names no valid cluster, and the alert is
// dead-lettered with alert.ReasonInvalidCluster rather than acted on in a
// cluster nobody named; or, wrapping ErrUnknownCluster, that it names one
// that is not Allowed (alert.ReasonUnknownCluster).
func (c ClusterIdentity) resolve(subject string, a *alert.Alert) error {
	if err := c.name(subject, a); err != nil {
		return err
	}
	if !c.allowed(a.Cluster) {
		return fmt.Errorf("%w: %s", ErrUnknownCluster, a.Cluster)
	}
	return nil
}

func (c ClusterIdentity) name(subject string, a *alert.Alert) error {
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
