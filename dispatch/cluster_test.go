package dispatch

import (
	"testing"

	"github.com/soar-dev/soar/alert"
)

func TestClusterIdentityResolves(t *testing.T) {
	for _, tt := range []struct {
		name     string
		id       ClusterIdentity
		subject  string
		decoded  string
		fields   map[string]any
		want     string
		wantFail bool
	}{
		{name: "the decoded field", subject: "falco.notice.x", decoded: "a", want: "a"},
		{name: "no cluster anywhere", subject: "falco.notice.x", want: ""},
		{name: "the default when none is named", id: ClusterIdentity{Default: "home"}, subject: "falco.x", want: "home"},
		{name: "the alert's own wins over the default", id: ClusterIdentity{Default: "home"}, subject: "falco.x", decoded: "a", want: "a"},
		{name: "the subject wins over the alert", subject: "clusters.b.falco.notice.x", decoded: "a", want: "b"},
		{name: "the subject wins over the default", id: ClusterIdentity{Default: "home"}, subject: "clusters.b.alerts", want: "b"},
		{name: "an invalid subject token fails", subject: "clusters.-b.x", wantFail: true},
		{name: "an empty subject token fails", subject: "clusters..x", wantFail: true},
		{name: "another field", id: ClusterIdentity{Field: "k8s.cluster.name"}, subject: "falco.x", decoded: "a",
			fields: map[string]any{"k8s.cluster.name": "c"}, want: "c"},
		{name: "another field that is missing: the default, not the cluster field", id: ClusterIdentity{Field: "k8s.cluster.name", Default: "home"},
			subject: "falco.x", decoded: "a", want: "home"},
		{name: "another field that is not a string fails", id: ClusterIdentity{Field: "n"}, subject: "falco.x",
			fields: map[string]any{"n": int64(3)}, wantFail: true},
		{name: "another field that is not a cluster name fails", id: ClusterIdentity{Field: "n"}, subject: "falco.x",
			fields: map[string]any{"n": "a b"}, wantFail: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := alert.Alert{Cluster: tt.decoded, Fields: tt.fields}
			err := tt.id.resolve(tt.subject, &a)
			if tt.wantFail {
				if err == nil {
					t.Fatalf("resolved %q, want an error", a.Cluster)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Cluster != tt.want {
				t.Errorf("cluster %q, want %q", a.Cluster, tt.want)
			}
		})
	}
}

func TestClusterIdentityValidatesItsDefault(t *testing.T) {
	if err := (ClusterIdentity{Default: "no spaces"}).Validate(); err == nil {
		t.Error("a default with a space is accepted")
	}
	if err := (ClusterIdentity{Default: "dev-1"}).Validate(); err != nil {
		t.Error(err)
	}
}
