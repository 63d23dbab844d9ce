package dispatch

import (
	"errors"
	"strings"
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
		// unknown: the failure is ErrUnknownCluster, not an invalid name.
		unknown bool
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
		{name: "an allowed cluster passes", id: ClusterIdentity{Allowed: []string{"a", "b"}}, subject: "falco.x", decoded: "b", want: "b"},
		{name: "an unknown cluster by field fails", id: ClusterIdentity{Allowed: []string{"a", "b"}}, subject: "falco.x", decoded: "c", wantFail: true, unknown: true},
		{name: "an unknown cluster by subject fails", id: ClusterIdentity{Allowed: []string{"a"}}, subject: "clusters.z.falco.x", decoded: "a", wantFail: true, unknown: true},
		{name: "an allowed cluster by subject passes", id: ClusterIdentity{Allowed: []string{"a", "z"}}, subject: "clusters.z.falco.x", want: "z"},
		{name: "no cluster passes the allow-list", id: ClusterIdentity{Allowed: []string{"a"}}, subject: "falco.x", want: ""},
		{name: "the allowed default fills in", id: ClusterIdentity{Allowed: []string{"a", "home"}, Default: "home"}, subject: "falco.x", want: "home"},
		{name: "an invalid name is invalid, not unknown", id: ClusterIdentity{Allowed: []string{"a"}}, subject: "clusters.a b.x", wantFail: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := alert.Alert{Cluster: tt.decoded, Fields: tt.fields}
			err := tt.id.resolve(tt.subject, &a)
			if tt.wantFail {
				if err == nil {
					t.Fatalf("resolved %q, want an error", a.Cluster)
				}
				if errors.Is(err, ErrUnknownCluster) != tt.unknown {
					t.Fatalf("error %v: unknown %v, want %v", err, !tt.unknown, tt.unknown)
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
	if err := (ClusterIdentity{Allowed: []string{"dev-1", "a.b"}}).Validate(); err == nil {
		t.Error("an allowed cluster with a dot is accepted")
	}
	if err := (ClusterIdentity{Allowed: []string{"dev-1"}, Default: "dev-2"}).Validate(); err == nil || !strings.Contains(err.Error(), "dev-2 is not among the allowed clusters dev-1") {
		t.Errorf("a default outside the allowed clusters: %v", err)
	}
	if err := (ClusterIdentity{Allowed: []string{"dev-1", "dev-2"}, Default: "dev-2"}).Validate(); err != nil {
		t.Error(err)
	}
	id := ClusterIdentity{Allowed: []string{"dev-1"}}
	if err := id.ValidateSources([]ClusterSource{{Cluster: "dev-1"}, {Cluster: "dev-3"}}); err == nil || !strings.Contains(err.Error(), "dev-3") {
		t.Errorf("a sourced cluster outside the allowed ones: %v", err)
	}
	if err := (ClusterIdentity{}).ValidateSources([]ClusterSource{{Cluster: "dev-3"}}); err != nil {
		t.Errorf("no allow-list refused a source: %v", err)
	}
}
