package alert

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeFindsTheCluster(t *testing.T) {
	for _, tt := range []struct {
		name, input, want string
	}{
		{"Falcosidekick's customfields join the output fields",
			`{"rule":"r","priority":"Notice","output":"o","output_fields":{"cluster":"prod-eu","k8s.ns.name":"a"}}`, "prod-eu"},
		{"a Falco event without the field has none",
			`{"rule":"r","priority":"Notice","output":"o","output_fields":{"k8s.ns.name":"a"}}`, ""},
		{"Falco's <NA> is none",
			`{"rule":"r","priority":"Notice","output":"o","output_fields":{"cluster":"<NA>"}}`, ""},
		{"a generic alert's top-level cluster",
			`{"rule":"r","cluster":"eks_Prod-1","fields":{"cluster":"other"}}`, "eks_Prod-1"},
		{"a generic alert's field when no top-level one",
			`{"rule":"r","fields":{"cluster":"gke-1"}}`, "gke-1"},
		{"a cluster that is not a string is none",
			`{"rule":"r","cluster":7}`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Decode([]byte(tt.input), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if a.Cluster != tt.want {
				t.Errorf("cluster %q, want %q", a.Cluster, tt.want)
			}
		})
	}
}

func TestDecodeRefusesAnInvalidCluster(t *testing.T) {
	for _, cluster := range []string{`a b`, `prod.>`, `*`, `-x`, `.x`, `<b>x</b>`, `é`, strings.Repeat("c", MaxClusterLen+1), `x\u0000y`} {
		input := `{"rule":"r","cluster":"` + cluster + `"}`
		_, err := Decode([]byte(input), Limits{})
		var de *DecodeError
		if !errors.As(err, &de) || de.Reason != ReasonInvalidCluster {
			t.Errorf("cluster %q: error %v, want reason %s", cluster, err, ReasonInvalidCluster)
		}
	}
}

func TestValidCluster(t *testing.T) {
	for _, ok := range []string{"a", "dev-1", "prod_eu-west-1", "EKS-Prod", strings.Repeat("c", MaxClusterLen)} {
		if err := ValidCluster(ok); err != nil {
			t.Errorf("ValidCluster(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "_a", "a b", "a/b", "a>", "a*", "a\n", "prod.eu"} {
		if ValidCluster(bad) == nil {
			t.Errorf("ValidCluster(%q) = nil, want an error", bad)
		}
	}
}
