package testenv

import (
	"errors"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// TestKubeToolsCompileSoarsVersions guards what a cold make test costs.
// kube-apiserver, etcd and helm are compiled in hack/kube-tools' own module,
// and about 850 of their packages (client-go, grpc, protobuf, otel,
// golang.org/x) are packages soar compiles too. The go command compiles such
// a package once for both only when both builds take it from the same module
// version (and with the same flags, which the Makefile keeps alike). Drift,
// such as a dependency bump in soar's go.mod alone, costs minutes of every
// cold run without failing anything else.
func TestKubeToolsCompileSoarsVersions(t *testing.T) {
	soar := packageModules(t, "../..", "-test", "./...")
	tools := packageModules(t, "../../hack/kube-tools",
		"k8s.io/kubernetes/cmd/kube-apiserver", "./etcd", "helm.sh/helm/v4/cmd/helm")

	shared := 0
	drift := map[string]string{}
	for pkg, toolsMod := range tools {
		soarMod, ok := soar[pkg]
		if !ok {
			continue
		}
		shared++
		if soarMod != toolsMod {
			path, _, _ := strings.Cut(soarMod, "@")
			drift[path] = "soar " + soarMod + ", kube-tools " + toolsMod
		}
	}
	// Far fewer shared packages would mean the lists were read wrong, and
	// the comparison above proved nothing.
	if shared < 500 {
		t.Fatalf("soar and kube-tools share %d packages; expected hundreds (client-go, grpc, protobuf)", shared)
	}
	if len(drift) > 0 {
		var lines []string
		for _, d := range drift {
			lines = append(lines, d)
		}
		sort.Strings(lines)
		t.Errorf("%d of the modules whose packages both soar and hack/kube-tools compile differ in version, so a cold make test compiles them twice:\n  %s\n"+
			"raise the lower side to the higher one: `go get mod@version && go mod tidy` in soar's root or in hack/kube-tools",
			len(lines), strings.Join(lines, "\n  "))
	}
	t.Logf("%d packages compiled once for soar and kube-tools", shared)
}

// packageModules lists the non-standard packages that building args in dir
// compiles, each with its module path@version.
func packageModules(t *testing.T, dir string, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps",
		"-f", "{{if not .Standard}}{{.ImportPath}} {{with .Module}}{{.Path}}@{{.Version}}{{end}}{{end}}"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list in %s: %v\n%s", dir, err, stderr)
	}
	mods := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		// Test variants ("p [p.test]"), test mains and soar's own packages
		// (no version) are not shared.
		if len(f) != 2 || strings.HasSuffix(f[1], "@") {
			continue
		}
		mods[f[0]] = f[1]
	}
	return mods
}
