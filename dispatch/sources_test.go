package dispatch

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/soar-dev/soar/alert"
)

func TestParseClusterSources(t *testing.T) {
	for _, tt := range []struct {
		name  string
		specs []string
		want  []ClusterSource
		// wantErr is a piece of the error, which must also name the bad spec.
		wantErr string
	}{
		{name: "none", specs: nil, want: nil},
		{name: "a cluster and its domain", specs: []string{"dev-1=dev-1"},
			want: []ClusterSource{{Cluster: "dev-1", Domain: "dev-1"}}},
		{name: "a stream of its own", specs: []string{"prod-eu=leaf-eu/ALERTS"},
			want: []ClusterSource{{Cluster: "prod-eu", Domain: "leaf-eu", Stream: "ALERTS"}}},
		{name: "several clusters keep their order", specs: []string{"b=leaf-b", "a=leaf-a/S"},
			want: []ClusterSource{{Cluster: "b", Domain: "leaf-b"}, {Cluster: "a", Domain: "leaf-a", Stream: "S"}}},
		{name: "two clusters, one domain, two streams", specs: []string{"a=shared/A", "b=shared/B"},
			want: []ClusterSource{{Cluster: "a", Domain: "shared", Stream: "A"}, {Cluster: "b", Domain: "shared", Stream: "B"}}},

		{name: "no '='", specs: []string{"dev-1"}, wantErr: "want cluster=domain"},
		{name: "an empty cluster", specs: []string{"=dev-1"}, wantErr: "cluster name is empty"},
		{name: "an empty domain", specs: []string{"dev-1="}, wantErr: "domain is empty"},
		{name: "an empty domain before a stream", specs: []string{"dev-1=/S"}, wantErr: "domain is empty"},
		{name: "an empty stream", specs: []string{"dev-1=dev-1/"}, wantErr: "stream after '/' is empty"},
		{name: "a cluster that is no cluster name", specs: []string{"dev 1=dev-1"}, wantErr: "cluster name"},
		{name: "a cluster with a dot", specs: []string{"eu.prod=eu"}, wantErr: "('.')"},
		{name: "a domain with a dot", specs: []string{"a=leaf.a"}, wantErr: "not one subject token"},
		{name: "a domain with a wildcard", specs: []string{"a=*"}, wantErr: "not one subject token"},
		{name: "a domain with a space", specs: []string{"a=leaf a"}, wantErr: "not one subject token"},
		{name: "a stream with a dot", specs: []string{"a=leaf-a/S.1"}, wantErr: "not a stream name"},
		{name: "a stream with a second slash", specs: []string{"a=leaf-a/S/T"}, wantErr: "not a stream name"},
		{name: "a cluster named twice", specs: []string{"a=leaf-a", "a=leaf-b"}, wantErr: "named twice"},
		{name: "a domain's default stream given twice", specs: []string{"a=leaf", "b=leaf/" + DefaultLeafStream}, wantErr: "already the source of cluster a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseClusterSources(tt.specs)
			if tt.wantErr != "" {
				bad := tt.specs[len(tt.specs)-1]
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), `"`+bad+`"`) {
					t.Fatalf("error %v, want one naming %q and saying %q", err, bad, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStreamSourcesNameTheirClusterInTheSubject(t *testing.T) {
	if got := streamSources(nil); got != nil {
		t.Errorf("no clusters: %+v, want no sources", got)
	}
	got := streamSources([]ClusterSource{{Cluster: "dev-1", Domain: "leaf-1"}, {Cluster: "prod", Domain: "leaf-p", Stream: "ALERTS"}})
	want := []*jetstream.StreamSource{
		{
			Name:              DefaultLeafStream,
			External:          &jetstream.ExternalStream{APIPrefix: "$JS.leaf-1.API", DeliverPrefix: "soar.sources.dev-1"},
			SubjectTransforms: []jetstream.SubjectTransformConfig{{Source: ">", Destination: "clusters.dev-1.>"}},
		},
		{
			Name:              "ALERTS",
			External:          &jetstream.ExternalStream{APIPrefix: "$JS.leaf-p.API", DeliverPrefix: "soar.sources.prod"},
			SubjectTransforms: []jetstream.SubjectTransformConfig{{Source: ">", Destination: "clusters.prod.>"}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %s, want %s", sourcesString(got), sourcesString(want))
	}
	// The dispatcher reads the configured cluster back from a sourced
	// subject, whatever the alert claims.
	for i, s := range got {
		subject := strings.Replace(s.SubjectTransforms[0].Destination, ">", "falco.notice.terminal_shell_in_container", 1)
		a := alert.Alert{Cluster: "claimed-by-the-alert"}
		if err := (ClusterIdentity{}).resolve(subject, &a); err != nil {
			t.Fatal(err)
		}
		if want := []string{"dev-1", "prod"}[i]; a.Cluster != want {
			t.Errorf("%s resolves to cluster %q, want %q", subject, a.Cluster, want)
		}
	}
}

func sourcesString(ss []*jetstream.StreamSource) string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString("{" + s.Name)
		if s.External != nil {
			b.WriteString(" api=" + s.External.APIPrefix + " deliver=" + s.External.DeliverPrefix)
		}
		for _, tr := range s.SubjectTransforms {
			b.WriteString(" " + tr.Source + "→" + tr.Destination)
		}
		b.WriteString("}")
	}
	return b.String()
}
