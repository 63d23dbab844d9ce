package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Package is the command the image runs.
const Package = "github.com/soar-dev/soar/cmd/soar"

// HostCABundle is where Debian, Ubuntu and Alpine keep the system trust
// store; the image gets a copy of the build host's.
const HostCABundle = "/etc/ssl/certs/ca-certificates.crt"

// LDFlags strips the symbol table and sets the version and commit that
// `soar version` prints. The Makefile's build and the Dockerfile set the
// same variables.
func LDFlags(version, commit string) string {
	return fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s", version, commit)
}

// Compile builds soar for linux/goarch into out with the go command goCmd.
// It runs in the current directory, which must be inside soar's module.
//
// With static, what make image ships: without cgo (so that the binary
// needs no libc) and with -trimpath (so that it holds no path of the build
// host and a commit gives the same bytes wherever it is built). Without,
// with the host's cgo setting and paths, as go test and make build compile:
// the binary then shares their build cache, which matters because
// switching cgo off recompiles every package (8 minutes cold on two cores,
// measured 2026-12-03), and it runs on the host but needs its libc.
func Compile(ctx context.Context, goCmd, out, goarch, version, commit string, static bool) error {
	if strings.ContainsAny(version+commit, " \t\n'\"") {
		return fmt.Errorf("version %q and commit %q must not contain spaces or quotes", version, commit)
	}
	args := []string{"build", "-ldflags", LDFlags(version, commit), "-o", out, Package}
	env := append(os.Environ(), "GOOS=linux", "GOARCH="+goarch)
	if static {
		args = append([]string{"build", "-trimpath"}, args[1:]...)
		env = append(env, "CGO_ENABLED=0")
	}
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", Package, err, b)
	}
	return nil
}

// ReadCABundle reads the build host's CA bundle. An image without one
// could not verify Temporal Cloud, Slack or Jira, so a missing or empty
// file is an error that names the package providing it.
func ReadCABundle(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 0 {
		err = errors.New("file is empty")
	}
	if err != nil {
		return nil, fmt.Errorf("CA certificates for the image: %w (install ca-certificates, or give another bundle)", err)
	}
	return b, nil
}

// Outputs are the two forms the image is written in.
type Outputs struct {
	Layout  string // an OCI image layout directory, for skopeo, crane, oras, podman
	Tarball string // a `docker load` tarball
	Tag     string // the reference both carry, e.g. ghcr.io/soar-dev/soar:v1.2.0
}

// Write writes img to o.Layout, replacing whatever was there so that the
// layout holds exactly this image, and to o.Tarball. It is idempotent.
func Write(img v1.Image, o Outputs) error {
	tag, err := name.NewTag(o.Tag)
	if err != nil {
		return fmt.Errorf("image tag: %w", err)
	}
	if err := writeLayout(img, o.Layout, tag); err != nil {
		return fmt.Errorf("OCI layout %s: %w", o.Layout, err)
	}
	if err := writeTarball(img, o.Tarball, tag); err != nil {
		return fmt.Errorf("image tarball %s: %w", o.Tarball, err)
	}
	return nil
}

// writeLayout names the image by its tag twice: ref.name is what skopeo's
// oci:DIR:TAG and crane's layout commands look up, io.containerd.image.name
// what ctr and nerdctl import as.
func writeLayout(img v1.Image, dir string, tag name.Tag) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
		"io.containerd.image.name":          tag.Name(),
	}))
}

func writeTarball(img v1.Image, path string, tag name.Tag) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := tarball.Write(tag, img, f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Options say what to build and from what.
type Options struct {
	Metadata
	Go       string // the go command, e.g. "go"
	CABundle string // the trust store to copy, e.g. HostCABundle
	// Static builds soar without cgo and with -trimpath, as make image
	// does; see Compile for why the tests do not.
	Static bool
}

// Build compiles soar in workDir and returns its image. It reads the CA
// bundle first, so that a host without one fails before the compile.
func Build(ctx context.Context, workDir string, o Options) (v1.Image, error) {
	ca, err := ReadCABundle(o.CABundle)
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(workDir, "soar")
	if err := Compile(ctx, o.Go, bin, o.Arch, o.Version, o.Revision, o.Static); err != nil {
		return nil, err
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	return Assemble(binary, ca, o.Metadata)
}
