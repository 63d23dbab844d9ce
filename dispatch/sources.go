package dispatch

import (
	"cmp"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/soar-dev/soar/alert"
)

// ClusterSource is one cluster's alert stream that the hub's alert stream
// sources from: a stream in the JetStream domain of the cluster's leaf
// node, which keeps buffering the cluster's alerts while its link to the
// hub is down. Sourced alerts arrive under
// ClusterSubjectPrefix + Cluster + "." + their subject, so the dispatcher
// knows their cluster from the hub's own configuration
// (docs/multi-cluster.md).
type ClusterSource struct {
	// Cluster names the cluster (alert.ValidCluster).
	Cluster string
	// Domain is the JetStream domain of the cluster's leaf node.
	Domain string
	// Stream is the alert stream in that domain; default DefaultLeafStream.
	Stream string
}

// DefaultLeafStream is the name of a cluster's own alert stream.
const DefaultLeafStream = "SOAR_LEAF_ALERTS"

// SourceDeliverPrefix starts the subjects on which a cluster's leaf node
// delivers its alerts to the hub's alert stream:
// SourceDeliverPrefix + cluster + ".S.<random>". One prefix per cluster lets
// the hub allow each leaf to publish on its own deliveries only, so that a
// compromised cluster cannot feed, or disturb, the source of another
// (docs/multi-cluster.md).
const SourceDeliverPrefix = "soar.sources."

// ParseClusterSources parses the --cluster-source flag's values, each
// cluster=domain or cluster=domain/stream (stream default
// DefaultLeafStream). Its error names the first bad value: a malformed one,
// a cluster that is not a cluster name, a domain or stream that cannot
// appear in a subject, a cluster named twice, or a domain's stream given
// to two clusters.
func ParseClusterSources(specs []string) ([]ClusterSource, error) {
	var out []ClusterSource
	for _, spec := range specs {
		cluster, rest, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("cluster source %q: want cluster=domain or cluster=domain/stream", spec)
		}
		domain, stream, hasStream := strings.Cut(rest, "/")
		if hasStream && stream == "" {
			return nil, fmt.Errorf("cluster source %q: the stream after '/' is empty", spec)
		}
		out = append(out, ClusterSource{Cluster: cluster, Domain: domain, Stream: stream})
		if err := ValidateClusterSources(out); err != nil {
			return nil, fmt.Errorf("cluster source %q: %w", spec, err)
		}
	}
	return out, nil
}

// ValidateClusterSources checks the sources one by one and against each
// other: every cluster named once, every domain's stream sourced for one
// cluster only. A stream sourced twice would bring each of its alerts
// twice, once as each cluster.
func ValidateClusterSources(cs []ClusterSource) error {
	clusters := make(map[string]bool, len(cs))
	streams := make(map[string]string, len(cs))
	for _, c := range cs {
		if err := c.validate(); err != nil {
			return err
		}
		if clusters[c.Cluster] {
			return fmt.Errorf("cluster %s is named twice", c.Cluster)
		}
		clusters[c.Cluster] = true
		key := c.Domain + "/" + c.stream()
		if other, ok := streams[key]; ok {
			return fmt.Errorf("stream %s is already the source of cluster %s", key, other)
		}
		streams[key] = c.Cluster
	}
	return nil
}

func (c ClusterSource) validate() error {
	if err := alert.ValidCluster(c.Cluster); err != nil {
		return err
	}
	if c.Domain == "" {
		return errors.New("the domain is empty")
	}
	if !validToken(c.Domain) {
		return fmt.Errorf("domain %q is not one subject token (no '.', '*', '>', spaces or control characters)", c.Domain)
	}
	if c.Stream != "" && (!validToken(c.Stream) || strings.ContainsAny(c.Stream, `/\`)) {
		return fmt.Errorf("stream %q is not a stream name (no '.', '*', '>', '/', '\\', spaces or control characters)", c.Stream)
	}
	return nil
}

func (c ClusterSource) stream() string { return cmp.Or(c.Stream, DefaultLeafStream) }

// validToken reports whether s can be one token of a NATS subject, as a
// JetStream domain in $JS.<domain>.API must be.
func validToken(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '.' || r == '*' || r == '>' {
			return false
		}
	}
	return s != ""
}

// streamSources are the alert stream's sources, one per cluster: the
// cluster's leaf stream, reached through the JetStream API of its domain
// ($JS.<domain>.API, what jetstream.StreamSource.Domain stands for), every
// subject written as ClusterSubjectPrefix + cluster + "." + subject, and
// delivered under SourceDeliverPrefix + cluster. The server keeps each
// source's position in the hub stream's store, by the source's name,
// domain and transform, so a work-queue stream that deleted what it
// sourced resumes after the last alert it took; changing a cluster's name,
// domain or stream makes a new source.
func streamSources(cs []ClusterSource) []*jetstream.StreamSource {
	if len(cs) == 0 {
		return nil
	}
	out := make([]*jetstream.StreamSource, 0, len(cs))
	for _, c := range cs {
		out = append(out, &jetstream.StreamSource{
			Name: c.stream(),
			// Domain would set the same API prefix, but no delivery prefix.
			External: &jetstream.ExternalStream{
				APIPrefix:     "$JS." + c.Domain + ".API",
				DeliverPrefix: SourceDeliverPrefix + c.Cluster,
			},
			SubjectTransforms: []jetstream.SubjectTransformConfig{{
				Source:      ">",
				Destination: ClusterSubjectPrefix + c.Cluster + ".>",
			}},
		})
	}
	return out
}
