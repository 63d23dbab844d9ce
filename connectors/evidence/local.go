package evidence

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Local stores evidence in a directory: each key is a file under it, created
// 0600 in directories created 0700, since evidence holds whatever the pod
// logged (secrets included).
type Local struct {
	dir string
}

// NewLocal returns a Local store rooted at dir, made absolute. The directory
// is created on the first Put.
func NewLocal(dir string) *Local {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return &Local{dir: filepath.Clean(dir)}
}

// Put writes data to a temporary file beside the key's file, syncs it and
// renames it into place, so a reader (or a crash) never sees half a file. It
// replaces an existing file. Errors wrap ErrInvalidKey for a bad key and
// ErrPermanent when the directory is not writable.
func (l *Local) Put(ctx context.Context, key string, data []byte, _ string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	path := l.path(key)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return localError("create directory for "+key, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*") // created 0600
	if err != nil {
		return localError("store "+key, err)
	}
	// The temporary name goes either way: after a link the data stays under
	// its key.
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close() // the write error is the one to report
		return localError("store "+key, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close() // the sync error is the one to report
		return localError("store "+key, err)
	}
	if err := tmp.Close(); err != nil {
		return localError("store "+key, err)
	}
	// A hard link, unlike a rename, never replaces what is there: evidence
	// is written once.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, l.Location(key))
		}
		return localError("store "+key, err)
	}
	// The rename is durable only once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Get reads the file of key. Errors wrap ErrNotFound or ErrInvalidKey.
func (l *Local) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(l.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, l.Location(key))
	}
	if err != nil {
		return nil, localError("read "+key, err)
	}
	return data, nil
}

// List returns the files under dir, sorted by key; a missing dir holds none.
func (l *Local) List(ctx context.Context, dir string, limit int) ([]string, bool, error) {
	if err := ValidateKey(dir); err != nil {
		return nil, false, err
	}
	root := l.path(dir)
	var keys []string
	more := false
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		if len(keys) == limit {
			more = true
			return filepath.SkipAll
		}
		rel, err := filepath.Rel(l.dir, path)
		if err != nil {
			return err
		}
		keys = append(keys, filepath.ToSlash(rel))
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, localError("list "+dir, err)
	}
	return keys, more, nil
}

// Location returns file:///<dir>/<key>; Location("") is the directory, with a
// trailing slash.
func (l *Local) Location(key string) string {
	p := filepath.ToSlash(l.dir)
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return (&url.URL{Scheme: "file", Path: p + key}).String()
}

func (l *Local) path(key string) string {
	return filepath.Join(l.dir, filepath.FromSlash(key))
}

// localError annotates a file system error. Permission denied wraps
// ErrPermanent: the directory is misconfigured, and a retry would hide that.
// Others (a full disk, an I/O error) may pass and stay transient.
func localError(what string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: evidence: %s: %w", ErrPermanent, what, err)
	}
	return fmt.Errorf("evidence: %s: %w", what, err)
}
