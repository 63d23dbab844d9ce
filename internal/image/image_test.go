package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/soar-dev/soar/internal/image"
)

var testOptions = image.Options{
	Metadata: image.Metadata{
		Version:  "v0.0.0-imagetest",
		Revision: "0123456789abcdef0123456789abcdef01234567",
		Source:   "https://github.com/soar-dev/soar",
		Created:  time.Date(2026, 12, 3, 7, 5, 45, 0, time.UTC),
		Arch:     runtime.GOARCH, // so that the test can run the binary
	},
	Go:       "go",
	CABundle: image.HostCABundle,
	// The tests assemble the image around soar built as make build builds
	// it, which shares the tests' build cache; make image's static build
	// would cost a cold CI run a full second compile (see image.Compile).
	Static: false,
}

const testTag = "ghcr.io/soar-dev/soar:v0.0.0-imagetest"

// scratch holds what the tests share. Compiling soar takes 20 seconds with
// a warm build cache and many minutes with a cold one, so the image is
// built once per test binary (and once more by the reproducibility test).
var scratch string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "soar-image-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scratch = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var first struct {
	once sync.Once
	outs image.Outputs
	err  error
}

// built builds the image once, writes it, and returns where it is.
func built(t *testing.T) image.Outputs {
	t.Helper()
	first.once.Do(func() {
		work := filepath.Join(scratch, "work1")
		first.outs = image.Outputs{Layout: filepath.Join(scratch, "out1", "soar-oci"), Tarball: filepath.Join(scratch, "out1", "soar.tar"), Tag: testTag}
		if first.err = os.MkdirAll(work, 0o755); first.err != nil {
			return
		}
		img, err := image.Build(context.Background(), work, testOptions)
		if err != nil {
			first.err = err
			return
		}
		first.err = image.Write(img, first.outs)
	})
	if first.err != nil {
		t.Fatal(first.err)
	}
	return first.outs
}

// loadLayout reads the one image of an OCI layout, as skopeo or crane would.
func loadLayout(t *testing.T, dir string) (v1.Image, v1.Descriptor) {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("layout holds %d manifests, want 1", len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img, m.Manifests[0]
}

func TestImageConfigRunsSoarAsNonRoot(t *testing.T) {
	img, desc := loadLayout(t, built(t).Layout)
	if desc.MediaType != types.OCIManifestSchema1 || desc.Annotations["org.opencontainers.image.ref.name"] != "v0.0.0-imagetest" {
		t.Errorf("layout descriptor = %s %v, want an OCI manifest named v0.0.0-imagetest", desc.MediaType, desc.Annotations)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	want := v1.Config{
		Entrypoint: []string{"/usr/local/bin/soar"},
		User:       "65532:65532",
		WorkingDir: "/home/nonroot",
		Env:        []string{"PATH=/usr/local/bin", "HOME=/home/nonroot", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		Labels: map[string]string{
			"org.opencontainers.image.title":    "soar",
			"org.opencontainers.image.version":  "v0.0.0-imagetest",
			"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
			"org.opencontainers.image.source":   "https://github.com/soar-dev/soar",
			"org.opencontainers.image.created":  "2026-12-03T07:05:45Z",
		},
	}
	if diff := cmp.Diff(want, cfg.Config); diff != "" {
		t.Errorf("image config (-want +got):\n%s", diff)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH || !cfg.Created.Equal(testOptions.Created) {
		t.Errorf("config platform and time = %s/%s %s", cfg.OS, cfg.Architecture, cfg.Created)
	}
}

func TestImageLayerHoldsExactlyTheExpectedFiles(t *testing.T) {
	img, _ := loadLayout(t, built(t).Layout)
	type file struct {
		Name     string
		Type     byte
		Mode     int64
		UID, GID int
		MTime    time.Time
	}
	mtime := testOptions.Created
	dir := func(name string, mode int64, id int) file { return file{name, tar.TypeDir, mode, id, id, mtime} }
	reg := func(name string, mode int64) file { return file{name, tar.TypeReg, mode, 0, 0, mtime} }
	want := []file{
		dir("etc/", 0o755, 0),
		reg("etc/group", 0o644),
		reg("etc/passwd", 0o644),
		dir("etc/ssl/", 0o755, 0),
		dir("etc/ssl/certs/", 0o755, 0),
		reg("etc/ssl/certs/ca-certificates.crt", 0o644),
		dir("home/", 0o755, 0),
		dir("home/nonroot/", 0o700, 65532),
		dir("tmp/", 0o1777, 0),
		dir("usr/", 0o755, 0),
		dir("usr/local/", 0o755, 0),
		dir("usr/local/bin/", 0o755, 0),
		reg("usr/local/bin/soar", 0o755),
	}
	var got []file
	contents := layerFiles(t, img, func(h *tar.Header) {
		got = append(got, file{h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.UTC()})
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layer (-want +got):\n%s", diff)
	}

	host, err := os.ReadFile(image.HostCABundle)
	if err != nil {
		t.Fatal(err)
	}
	if ca := contents["etc/ssl/certs/ca-certificates.crt"]; len(ca) == 0 || !bytes.Equal(ca, host) {
		t.Errorf("CA bundle in the image has %d bytes, want the host's %d", len(ca), len(host))
	}
	if !strings.Contains(string(contents["etc/passwd"]), "nonroot:x:65532:65532:") || !strings.Contains(string(contents["etc/group"]), "nonroot:x:65532:") {
		t.Errorf("passwd and group lack nonroot:\n%s%s", contents["etc/passwd"], contents["etc/group"])
	}
}

// TestBinaryInTheImageRunsVersion runs the soar taken out of the image, as
// the container runtime would, and checks that it names the commit and the
// client versions go.mod pins.
func TestBinaryInTheImageRunsVersion(t *testing.T) {
	img, _ := loadLayout(t, built(t).Layout)
	bin := filepath.Join(t.TempDir(), "soar")
	if err := os.WriteFile(bin, layerFiles(t, img, nil)["usr/local/bin/soar"], 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("soar version: %v", err)
	}
	var got struct {
		Version, Commit string
		Modules         []struct{ Path, Version string }
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("soar version -o json: %v\n%s", err, out)
	}
	if got.Version != testOptions.Version || got.Commit != testOptions.Revision {
		t.Errorf("soar version = %s %s, want %s %s", got.Version, got.Commit, testOptions.Version, testOptions.Revision)
	}
	gotModules := map[string]string{}
	for _, m := range got.Modules {
		gotModules[m.Path] = m.Version
	}
	if diff := cmp.Diff(pinned(t, "go.temporal.io/sdk", "go.temporal.io/server", "github.com/nats-io/nats.go", "github.com/nats-io/nats-server/v2", "k8s.io/client-go"), gotModules); diff != "" {
		t.Errorf("module versions in soar version (-go.mod +binary):\n%s", diff)
	}

	text, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("soar version: %v", err)
	}
	for _, want := range []string{testOptions.Revision, gotModules["go.temporal.io/sdk"], gotModules["k8s.io/client-go"]} {
		if !strings.Contains(string(text), want) {
			t.Errorf("soar version lacks %q:\n%s", want, text)
		}
	}
}

// TestTwoBuildsGiveTheSameDigest compiles and assembles a second time, so
// that a digest published for a commit can be rebuilt and compared.
func TestTwoBuildsGiveTheSameDigest(t *testing.T) {
	img1, desc1 := loadLayout(t, built(t).Layout)
	work := t.TempDir()
	img2, err := image.Build(context.Background(), work, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := img2.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if desc1.Digest != d2 {
		l1, _ := img1.Layers()
		l2, _ := img2.Layers()
		t.Errorf("digests differ: %s and %s (layers %v and %v)", desc1.Digest, d2, l1, l2)
	}
}

// TestTarballHoldsTheSameImage loads the docker load tarball back by its
// tag. Its manifest is Docker's, written by whoever loads it, so what must
// match the layout is the config and the layer.
func TestTarballHoldsTheSameImage(t *testing.T) {
	outs := built(t)
	img, _ := loadLayout(t, outs.Layout)
	tag, err := name.NewTag(testTag)
	if err != nil {
		t.Fatal(err)
	}
	fromTar, err := tarball.ImageFromPath(outs.Tarball, &tag)
	if err != nil {
		t.Fatal(err)
	}
	if want, got := blobs(t, img), blobs(t, fromTar); !cmp.Equal(want, got) {
		t.Errorf("config and layer digests in the tarball = %v, in the layout %v", got, want)
	}
}

// blobs returns the digests of the image's config and layers.
func blobs(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	config, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	hashes := []v1.Hash{config}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, d)
	}
	return hashes
}

func TestBuildWithoutCABundleFailsBeforeCompiling(t *testing.T) {
	o := testOptions
	o.CABundle = filepath.Join(t.TempDir(), "missing.crt")
	o.Go = "/nonexistent/go" // reached only if the bundle were not checked first
	_, err := image.Build(context.Background(), t.TempDir(), o)
	if err == nil || !strings.Contains(err.Error(), "CA certificates") || !strings.Contains(err.Error(), "missing.crt") {
		t.Errorf("Build without a CA bundle: err = %v", err)
	}
}

// layerFiles reads the image's only layer, calling each for every header,
// and returns the regular files' contents by name.
func layerFiles(t *testing.T, img v1.Image, each func(*tar.Header)) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("image has %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if each != nil {
			each(h)
		}
		if h.Typeflag == tar.TypeReg {
			if files[h.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// pinned returns the versions go.mod selects for the modules.
func pinned(t *testing.T, modules ...string) map[string]string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-m", "-f", "{{.Path}} {{.Version}}"}, modules...)...).Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	versions := map[string]string{}
	for line := range strings.Lines(string(out)) {
		path, version, _ := strings.Cut(strings.TrimSpace(line), " ")
		versions[path] = version
	}
	return versions
}
