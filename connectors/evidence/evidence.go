// Package evidence stores forensic evidence bundles: the artifacts a response
// action collected, each hashed with SHA-256 into a manifest that says who
// collected what, when, for which incident. Bundles live in a local directory
// (Local) or an S3-compatible bucket (S3); only a bundle's Ref, the manifest's
// location and digest, needs to travel further (into a workflow's history).
// The package knows nothing of Kubernetes or Temporal.
package evidence

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Errors callers branch on; test with errors.Is.
var (
	// ErrNotFound means the key holds nothing.
	ErrNotFound = errors.New("evidence: not found")
	// ErrTampered means stored evidence does not match its manifest, or the
	// manifest does not match the digest recorded for it.
	ErrTampered = errors.New("evidence: tampered")
	// ErrPermanent marks errors that retrying the same request cannot fix: an
	// invalid key, a bucket that does not exist, credentials the store
	// refuses. Every other error from a store is presumed transient.
	ErrPermanent = errors.New("evidence: permanent failure")
	// ErrInvalidKey means a key is not a relative slash path without "." and
	// ".." segments. It wraps ErrPermanent.
	ErrInvalidKey = fmt.Errorf("%w: invalid key", ErrPermanent)
	// ErrExists means the key holds something already: stores are
	// write-once, so stored evidence is never replaced. It wraps
	// ErrPermanent.
	ErrExists = fmt.Errorf("%w: already stored (evidence is write-once)", ErrPermanent)
)

// Store keeps evidence under slash-separated keys such as
// "incident-1/snapshot/manifest.json". Implementations are safe for
// concurrent use.
type Store interface {
	// Put stores data under key, which must hold nothing yet: evidence is
	// written once, and a key that holds something is an error wrapping
	// ErrExists. Readers see all of the data or none.
	Put(ctx context.Context, key string, data []byte, contentType string) error
	// Get returns the data under key, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns the keys under dir (a key's leading segments), sorted,
	// at most limit of them, and whether there were more.
	List(ctx context.Context, dir string, limit int) (keys []string, more bool, err error)
	// Location is where key is stored, as a URL (file:///..., s3://...), for
	// people and for the workflow's history; Location("") is the store's root.
	Location(key string) string
}

// ValidateKey checks that key is a relative slash path whose segments are
// neither empty, "." nor "..", without backslashes or NUL bytes, so that no
// key escapes the store's root on any platform. It returns an error wrapping
// ErrInvalidKey.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w: %q is absolute", ErrInvalidKey, key)
	case strings.ContainsAny(key, "\\\x00"):
		return fmt.Errorf("%w: %q holds a backslash or NUL", ErrInvalidKey, key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q has an empty, \".\" or \"..\" segment", ErrInvalidKey, key)
		}
	}
	return nil
}
