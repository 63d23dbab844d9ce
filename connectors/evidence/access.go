package evidence

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// AccessDir is the directory beside a bundle's manifest that records who
// downloaded what from the bundle: one write-once object per download.
const AccessDir = "access"

// Access is one download of a bundle's manifest or artifact.
type Access struct {
	At   time.Time `json:"at"`
	User string    `json:"user"`
	// Name is the artifact (or manifest.json), SHA256 and Size what was
	// served.
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
	// Via is where it was downloaded, e.g. "console".
	Via string `json:"via"`
}

// RecordAccess stores a, a download from the bundle whose manifest is at
// manifestKey, under <bundle>/access/. Each record is its own object, so
// records are never replaced and concurrent downloads never collide. Its
// key names the time, the user and the artifact, so that Accesses reads a
// bundle's log with one listing; the object holds the whole record. Callers
// serve the download only once this returned nil: a download that cannot be
// recorded is not served.
func RecordAccess(ctx context.Context, store Store, manifestKey string, a Access) error {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("evidence: random access ID: %w", err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("evidence: encode access record: %w", err)
	}
	name := a.At.UTC().Format(accessTime) + "-" + hex.EncodeToString(b[:]) + "-" + keyPart(a.User, userMax) + "." + keyPart(a.Name, nameMax) + ".json"
	if err := store.Put(ctx, path.Join(path.Dir(manifestKey), AccessDir, name), data, "application/json"); err != nil {
		return fmt.Errorf("evidence: record the download of %s: %w", a.Name, err)
	}
	return nil
}

// accessTime sorts as text in time order.
const accessTime = "20060102T150405.000000000Z"

// userMax and nameMax bound what of a user and an artifact name goes into a
// key (the record holds them whole), so that the file name stays within the
// 255 bytes file systems allow.
const (
	userMax = 60
	nameMax = 80
)

// keyPart is s, cut to max bytes on a character boundary and marked "…"
// when cut, in base64url.
func keyPart(s string, max int) string {
	if len(s) > max {
		s = s[:max]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// Accesses returns the downloads recorded for the bundle whose manifest is
// at manifestKey, oldest first, at most limit of them, and whether there
// were more: what their keys say (time, user, name; one listing, no reads).
// A key that does not parse is returned with a Name that says so.
func Accesses(ctx context.Context, store Store, manifestKey string, limit int) ([]Access, bool, error) {
	keys, more, err := store.List(ctx, path.Join(path.Dir(manifestKey), AccessDir), limit)
	if err != nil {
		return nil, false, err
	}
	out := make([]Access, 0, len(keys))
	for _, k := range keys {
		a, ok := parseAccessKey(path.Base(k))
		if !ok {
			a = Access{Name: "(an access record named " + path.Base(k) + ", not soar's)"}
		}
		out = append(out, a)
	}
	return out, more, nil
}

// parseAccessKey reads <time>-<random>-<user>.<name>.json.
func parseAccessKey(name string) (Access, bool) {
	rest, ok := strings.CutSuffix(name, ".json")
	if !ok || len(rest) < len(accessTime)+1 {
		return Access{}, false
	}
	at, err := time.Parse(accessTime, rest[:len(accessTime)])
	if err != nil {
		return Access{}, false
	}
	parts := strings.SplitN(rest[len(accessTime)+1:], "-", 2)
	if len(parts) != 2 {
		return Access{}, false
	}
	userPart, namePart, ok := strings.Cut(parts[1], ".")
	if !ok {
		return Access{}, false
	}
	user, err1 := base64.RawURLEncoding.DecodeString(userPart)
	art, err2 := base64.RawURLEncoding.DecodeString(namePart)
	if err1 != nil || err2 != nil {
		return Access{}, false
	}
	return Access{At: at, User: string(user), Name: string(art)}, true
}
