package main

import (
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadBuildVersion(t *testing.T) {
	deps := []*debug.Module{
		{Path: "github.com/nats-io/nats.go", Version: "v1.55.0"},
		{Path: "github.com/spf13/cobra", Version: "v1.10.2"},
		{Path: "go.temporal.io/sdk", Version: "v1.50.0"},
		{Path: "k8s.io/client-go", Version: "v0.37.0", Replace: &debug.Module{Path: "k8s.io/client-go", Version: "v0.37.1"}},
	}
	clients := []moduleVersion{
		{Path: "go.temporal.io/sdk", Version: "v1.50.0"},
		{Path: "github.com/nats-io/nats.go", Version: "v1.55.0"},
		{Path: "k8s.io/client-go", Version: "v0.37.1"},
	}
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"}}
	tests := []struct {
		name              string
		ldVersion, commit string
		bi                *debug.BuildInfo
		want              buildVersion
	}{
		{
			name:      "the ldflags values win over the build info",
			ldVersion: "v1.2.3-4-gfeed-dirty", commit: "feedface",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}, Deps: deps, Settings: vcs},
			want: buildVersion{Version: "v1.2.3-4-gfeed-dirty", Commit: "feedface", Go: "go1.26.8", Modules: clients},
		},
		{
			name:      "without ldflags a go install names its module version and commit",
			ldVersion: "dev",
			bi:        &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}, Deps: deps, Settings: vcs},
			want:      buildVersion{Version: "v1.2.0", Commit: "0123abcd", Modified: true, Go: "go1.26.8", Modules: clients},
		},
		{
			name:      "a local build without vcs stamping stays dev",
			ldVersion: "dev",
			bi:        &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			want:      buildVersion{Version: "dev", Go: "go1.26.8", Modules: []moduleVersion{}},
		},
		{
			name:      "a replace without a version names the replacement",
			ldVersion: "dev",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Deps: []*debug.Module{
				{Path: "go.temporal.io/sdk", Version: "v1.50.0", Replace: &debug.Module{Path: "../sdk-go"}},
			}},
			want: buildVersion{Version: "dev", Go: "go1.26.8", Modules: []moduleVersion{{Path: "go.temporal.io/sdk", Version: "=> ../sdk-go"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readBuildVersion(tt.ldVersion, tt.commit, tt.bi)
			got.Platform = ""
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("readBuildVersion (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVersionCommandNamesTheLinkedClients runs `soar version` on this test
// binary's own build info, which links the same modules as soar.
func TestVersionCommandNamesTheLinkedClients(t *testing.T) {
	var v buildVersion
	if err := json.Unmarshal([]byte(soar(t, "version", "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range v.Modules {
		got[m.Path] = m.Version
	}
	for _, path := range reportedModules {
		if !strings.HasPrefix(got[path], "v") {
			t.Errorf("version of %s = %q, want a module version", path, got[path])
		}
	}
	if v.Version == "" || !strings.HasPrefix(v.Go, "go1.") {
		t.Errorf("version = %q, go = %q", v.Version, v.Go)
	}

	text := soar(t, "version")
	for _, want := range []string{"soar ", "commit ", "go.temporal.io/sdk ", "k8s.io/client-go ", got["github.com/nats-io/nats.go"]} {
		if !strings.Contains(text, want) {
			t.Errorf("soar version lacks %q:\n%s", want, text)
		}
	}
}

func TestVersionRefusesAnUnknownOutputFormat(t *testing.T) {
	if _, err := soarOut("version", "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "unknown output format") {
		t.Errorf("soar version -o yaml: err = %v", err)
	}
}
