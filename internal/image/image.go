// Package image builds soar's container image without a Docker daemon: one
// layer holding the static binary, CA certificates and a non-root user, on
// no base image. The same commit always gives the same image digest, so a
// digest can be rebuilt and checked by anyone.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths and identity inside the image. UID and GID 65532 are distroless's
// nonroot, which deploy/*.yaml run as.
const (
	BinaryPath   = "/usr/local/bin/soar"
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
	HomeDir      = "/home/nonroot"
	NonRootID    = 65532
)

// Metadata is what the image says about itself in its config and labels.
type Metadata struct {
	Version  string // org.opencontainers.image.version, and the tag
	Revision string // the full commit hash
	Source   string // the repository URL
	// Created is the commit's time, not the build's, so that rebuilding a
	// commit reproduces its digest. It is also every file's mtime.
	Created time.Time
	Arch    string // GOARCH; the OS is always linux
}

// Labels are the OCI annotations the image config carries.
func (m Metadata) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    "soar",
		"org.opencontainers.image.version":  m.Version,
		"org.opencontainers.image.revision": m.Revision,
		"org.opencontainers.image.source":   m.Source,
		"org.opencontainers.image.created":  m.Created.UTC().Format(time.RFC3339),
	}
}

// Assemble returns the image of binary (a static linux soar) with caBundle
// as its trust store. It only computes: the same arguments give the same
// digest.
func Assemble(binary, caBundle []byte, m Metadata) (v1.Image, error) {
	layerTar, err := layerTar(binary, caBundle, m.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: m.Created.UTC()}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: created, CreatedBy: "hack/image (make image)", Comment: "soar " + m.Version},
	})
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = "linux", m.Arch, created
	cfg.Config = v1.Config{
		Entrypoint: []string{BinaryPath},
		User:       fmt.Sprintf("%d:%d", NonRootID, NonRootID),
		WorkingDir: HomeDir,
		Env: []string{
			"PATH=/usr/local/bin",
			"HOME=" + HomeDir,
			"SSL_CERT_FILE=" + CABundlePath,
		},
		Labels: m.Labels(),
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return img, nil
}

// entry is one file or directory of the layer.
type entry struct {
	name     string // relative, directories end in /
	mode     int64
	uid, gid int
	body     []byte
}

// entries lists the layer's contents. Every parent directory is listed, so
// that its owner and mode are ours and not the runtime's guess; /tmp is
// there for libraries that want it (mount an emptyDir over it under a
// read-only root file system).
func entries(binary, caBundle []byte) []entry {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", NonRootID, NonRootID, HomeDir)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", NonRootID)
	return []entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: CABundlePath[1:], mode: 0o644, body: caBundle},
		{name: "home/", mode: 0o755},
		{name: HomeDir[1:] + "/", mode: 0o700, uid: NonRootID, gid: NonRootID},
		{name: "tmp/", mode: 0o1777},
		{name: "usr/", mode: 0o755},
		{name: "usr/local/", mode: 0o755},
		{name: "usr/local/bin/", mode: 0o755},
		{name: BinaryPath[1:], mode: 0o755, body: binary},
	}
}

// layerTar writes entries as an uncompressed tar, sorted by name, every
// mtime set to mtime and no host user names, so that it depends on nothing
// but its arguments.
func layerTar(binary, caBundle []byte, mtime time.Time) ([]byte, error) {
	es := entries(binary, caBundle)
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			Uname:   userName(e.uid),
			Gname:   userName(e.gid),
			ModTime: mtime.UTC().Truncate(time.Second),
		}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("image layer: %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("image layer: %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	return buf.Bytes(), nil
}

func userName(id int) string {
	switch id {
	case 0:
		return "root"
	case NonRootID:
		return "nonroot"
	}
	return strconv.Itoa(id)
}
