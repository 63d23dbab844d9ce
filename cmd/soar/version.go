package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// commit is set at build time with -ldflags "-X main.commit=…" (make build,
// make image, the Dockerfile); go install leaves it to the build info.
var commit = ""

// reportedModules are the modules whose versions decide what soar can talk
// to. They are read from the binary's build info, so `soar version` cannot
// disagree with go.mod; a module that is not linked is left out.
var reportedModules = []string{
	"go.temporal.io/sdk",
	"go.temporal.io/server",
	"github.com/nats-io/nats.go",
	"github.com/nats-io/nats-server/v2",
	"k8s.io/client-go",
}

// buildVersion is what `soar version` prints.
type buildVersion struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	// Modified is true when the build info says the working tree had
	// uncommitted changes; a Makefile build says so in Version ("-dirty").
	Modified bool            `json:"modified,omitempty"`
	Go       string          `json:"go"`
	Platform string          `json:"platform"`
	Modules  []moduleVersion `json:"modules"`
}

type moduleVersion struct {
	Path    string `json:"path"`
	Version string `json:"version"`
}

// readBuildVersion prefers the -ldflags values and falls back to the build
// info that go build records (main module version, vcs.revision,
// vcs.modified), so that a plain `go install` still names its commit.
func readBuildVersion(ldVersion, ldCommit string, bi *debug.BuildInfo) buildVersion {
	v := buildVersion{
		Version:  ldVersion,
		Commit:   ldCommit,
		Go:       runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH,
		Modules:  []moduleVersion{},
	}
	if bi == nil {
		return v
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	if (v.Version == "" || v.Version == "dev") && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	if v.Commit == "" {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	v.Modules = linkedVersions(bi.Deps, reportedModules)
	return v
}

// linkedVersions returns the versions of the wanted modules among deps, in
// the order of wanted, following replace directives.
func linkedVersions(deps []*debug.Module, wanted []string) []moduleVersion {
	out := []moduleVersion{}
	for _, path := range wanted {
		for _, d := range deps {
			if d.Path != path {
				continue
			}
			version := d.Version
			if d.Replace != nil {
				version = d.Replace.Version
				if version == "" {
					version = "=> " + d.Replace.Path
				}
			}
			out = append(out, moduleVersion{Path: path, Version: version})
		}
	}
	return out
}

// soarVersion is the version `soar --version` prints, the same as `soar
// version`'s.
func soarVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return readBuildVersion(version, commit, bi).Version
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print soar's version and commit, and the Temporal, NATS and Kubernetes client versions it is built with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("unknown output format %q: use text or json", output)
			}
			bi, _ := debug.ReadBuildInfo()
			v := readBuildVersion(version, commit, bi)
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			return v.writeText(cmd)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func (v buildVersion) writeText(cmd *cobra.Command) error {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	rev := v.Commit
	if rev == "" {
		rev = "unknown"
	}
	if v.Modified {
		rev += " (modified)"
	}
	fmt.Fprintf(w, "soar\t%s\n", v.Version)
	fmt.Fprintf(w, "commit\t%s\n", rev)
	fmt.Fprintf(w, "go\t%s %s\n", v.Go, v.Platform)
	for _, m := range v.Modules {
		fmt.Fprintf(w, "%s\t%s\n", m.Path, m.Version)
	}
	return w.Flush()
}
