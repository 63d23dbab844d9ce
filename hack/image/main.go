// Command image builds soar's container image without a Docker daemon, as
// an OCI layout and a `docker load` tarball. `make image` runs it with the
// version, commit and commit time from git; internal/image does the work.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"time"

	"github.com/soar-dev/soar/internal/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	var (
		o       = image.Options{Go: "go", CABundle: image.HostCABundle, Static: true}
		created string
		out     string
		repo    string
	)
	fs.StringVar(&o.Version, "version", "dev", "image version and tag (make image: git describe --tags --always --dirty)")
	fs.StringVar(&o.Revision, "commit", "", "full commit hash")
	fs.StringVar(&created, "created", "", "the commit's time, RFC 3339 (make image: git log -1 --format=%cI); the image's creation time and every file's mtime")
	fs.StringVar(&o.Source, "source", "https://github.com/soar-dev/soar", "repository URL for org.opencontainers.image.source")
	fs.StringVar(&o.Arch, "arch", runtime.GOARCH, "GOARCH of the binary and the image")
	fs.StringVar(&o.CABundle, "ca-bundle", o.CABundle, "CA certificates to copy into the image")
	fs.StringVar(&o.Go, "go", o.Go, "the go command")
	fs.StringVar(&out, "out", "bin/image", "directory for soar-oci/ (OCI layout) and soar.tar (docker load)")
	fs.StringVar(&repo, "repository", "ghcr.io/soar-dev/soar", "repository the image is tagged in; the tag is -version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339, created)
	if err != nil {
		return fmt.Errorf("-created: %w", err)
	}
	o.Created = t

	work, err := os.MkdirTemp("", "soar-image-")
	if err != nil {
		return err
	}
	// A temporary directory left behind is not worth failing a build for.
	defer func() { _ = os.RemoveAll(work) }()
	img, err := image.Build(ctx, work, o)
	if err != nil {
		return err
	}
	outs := image.Outputs{Layout: filepath.Join(out, "soar-oci"), Tarball: filepath.Join(out, "soar.tar"), Tag: repo + ":" + o.Version}
	if err := image.Write(img, outs); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "%s\n%s@%s\n%s (OCI layout)\n%s (docker load)\n", outs.Tag, repo, digest, outs.Layout, outs.Tarball)
	return nil
}
