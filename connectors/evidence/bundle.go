package evidence

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// SchemaVersion is the version of the manifest format WriteBundle writes.
const SchemaVersion = 1

// ManifestName is the manifest's name in a bundle: <prefix>/manifest.json.
const ManifestName = "manifest.json"

// Manifest describes one evidence bundle: who collected it, when, for which
// incident and target, and every artifact with its SHA-256.
type Manifest struct {
	SchemaVersion int `json:"schemaVersion"`
	// Incident, Step and Action say why the evidence was collected: the
	// incident (workflow) ID, the playbook step and its action.
	Incident    string    `json:"incident"`
	Step        string    `json:"step,omitempty"`
	Action      string    `json:"action,omitempty"`
	Collector   Collector `json:"collector"`
	CollectedAt time.Time `json:"collectedAt"`
	Target      Target    `json:"target"`
	Artifacts   []Entry   `json:"artifacts"`
}

// Collector identifies the program that collected a bundle.
type Collector struct {
	Tool    string `json:"tool"`
	Version string `json:"version,omitempty"`
	// Identity names the instance, e.g. soar-worker@host.
	Identity string `json:"identity,omitempty"`
}

// Target is the object the evidence is about.
type Target struct {
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	PodUID    string `json:"podUID,omitempty"`
	Node      string `json:"node,omitempty"`
	// Cluster is the cluster of the worker that collected the bundle
	// (soar worker --cluster); empty for a single-cluster soar.
	Cluster string `json:"cluster,omitempty"`
}

// Entry is one artifact in a manifest.
type Entry struct {
	Name string `json:"name"`
	// Key is where the artifact is stored, relative to the manifest's
	// directory, so a bundle copied elsewhere (downloaded from S3, say) still
	// verifies. It is empty when the artifact could not be collected.
	Key         string `json:"key,omitempty"`
	SHA256      string `json:"sha256,omitempty"`
	Size        int64  `json:"size"`
	ContentType string `json:"contentType,omitempty"`
	// Error says why the artifact could not be collected; nothing is stored.
	Error string `json:"error,omitempty"`
}

// Artifact is one piece of evidence to store.
type Artifact struct {
	// Name is a relative slash path (see ValidateKey), unique in a bundle,
	// e.g. "logs/app.log".
	Name        string
	ContentType string
	Data        []byte
	// Error, when set, records why the artifact could not be collected; Data
	// is then ignored.
	Error string
}

// Ref points at a stored bundle. It is all a workflow needs to keep.
type Ref struct {
	// Location is the manifest's URL (Store.Location), Key its key in the
	// store, SHA256 the hex SHA-256 of the manifest's bytes.
	Location string `json:"location"`
	Key      string `json:"key"`
	SHA256   string `json:"sha256"`
	// Artifacts counts the artifacts stored, Failed those recorded with an
	// error instead.
	Artifacts int `json:"artifacts"`
	Failed    int `json:"failed"`
}

// ManifestKey is the key of the manifest of the bundle at prefix.
func ManifestKey(prefix string) string { return strings.TrimSuffix(prefix, "/") + "/" + ManifestName }

// Existing returns the Ref of the bundle at prefix when its manifest exists.
// A bundle without a manifest is incomplete and reported as absent. Callers
// check it before collecting, so a retried collection returns the bundle the
// first attempt stored. Errors from the store are returned as they are
// (ErrInvalidKey, ErrPermanent or transient); a manifest that does not decode
// wraps ErrTampered and ErrPermanent.
func Existing(ctx context.Context, store Store, prefix string) (Ref, bool, error) {
	key := ManifestKey(prefix)
	if err := ValidateKey(key); err != nil {
		return Ref{}, false, err
	}
	data, err := store.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return Ref{}, false, nil
	}
	if err != nil {
		return Ref{}, false, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Ref{}, false, fmt.Errorf("%w: %w: manifest %s does not decode: %w", ErrPermanent, ErrTampered, store.Location(key), err)
	}
	return refOf(store, key, data, m), true, nil
}

// WriteBundle stores artifacts and their manifest m as the bundle at prefix,
// and returns its Ref. The artifacts go under <prefix>/<run>/, where run is
// unique to this call, and the manifest, written last, to
// <prefix>/manifest.json: a bundle without a manifest is incomplete, and the
// manifest always describes the artifacts of one call, even when two calls
// race. WriteBundle fills m's SchemaVersion and Artifacts, and CollectedAt
// when it is zero.
//
// It is idempotent: when the bundle's manifest exists, before or after the
// artifacts are written, it returns that manifest's Ref and writes no
// manifest. (The artifacts of a call that lost a race stay, unreferenced.)
// Errors wrap ErrInvalidKey (a bad prefix or artifact name), ErrPermanent, or
// are the store's transient errors.
func WriteBundle(ctx context.Context, store Store, prefix string, m Manifest, artifacts []Artifact) (Ref, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	if err := ValidateKey(prefix); err != nil {
		return Ref{}, fmt.Errorf("evidence: bundle prefix: %w", err)
	}
	if err := validateNames(artifacts); err != nil {
		return Ref{}, err
	}
	if ref, ok, err := Existing(ctx, store, prefix); err != nil || ok {
		return ref, err
	}
	if m.CollectedAt.IsZero() {
		m.CollectedAt = time.Now().UTC()
	}
	run, err := runID(m.CollectedAt)
	if err != nil {
		return Ref{}, err
	}
	m.SchemaVersion = SchemaVersion
	m.Artifacts = make([]Entry, 0, len(artifacts))
	for _, a := range artifacts {
		e := Entry{Name: a.Name, ContentType: a.ContentType, Error: a.Error}
		if a.Error == "" {
			sum := sha256.Sum256(a.Data)
			e.Key, e.SHA256, e.Size = run+"/"+a.Name, hex.EncodeToString(sum[:]), int64(len(a.Data))
			if err := store.Put(ctx, prefix+"/"+e.Key, a.Data, a.ContentType); err != nil {
				return Ref{}, fmt.Errorf("evidence: store artifact %s: %w", a.Name, err)
			}
		}
		m.Artifacts = append(m.Artifacts, e)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Ref{}, fmt.Errorf("%w: evidence: encode manifest: %w", ErrPermanent, err)
	}
	data = append(data, '\n')
	// Another call may have finished the bundle while this one collected.
	if ref, ok, err := Existing(ctx, store, prefix); err != nil || ok {
		return ref, err
	}
	key := ManifestKey(prefix)
	if err := store.Put(ctx, key, data, "application/json"); err != nil {
		if errors.Is(err, ErrExists) {
			// Another call finished the bundle first; its manifest stands.
			ref, _, err := Existing(ctx, store, prefix)
			return ref, err
		}
		return Ref{}, fmt.Errorf("evidence: store manifest: %w", err)
	}
	return refOf(store, key, data, m), nil
}

// Verify reads the manifest at manifestKey, checks that its SHA-256 is
// wantSHA256 (unless that is empty), then reads every stored artifact and
// checks its size and SHA-256. It returns the manifest, and an error wrapping
// ErrTampered that lists every mismatch (a changed, missing or misplaced
// artifact, a changed manifest). Store errors other than ErrNotFound are
// returned as they are. It only reads.
func Verify(ctx context.Context, store Store, manifestKey string, wantSHA256 string) (Manifest, error) {
	m, _, err := readManifest(ctx, store, manifestKey, wantSHA256)
	if err != nil {
		return Manifest{}, err
	}
	var problems []string
	for _, e := range m.Artifacts {
		if e.Error != "" {
			continue
		}
		_, problem, err := readArtifact(ctx, store, manifestKey, e)
		if err != nil {
			return m, err
		}
		if problem != "" {
			problems = append(problems, problem)
		}
	}
	if len(problems) > 0 {
		return m, fmt.Errorf("%w: bundle %s: %s", ErrTampered, store.Location(manifestKey), strings.Join(problems, "; "))
	}
	return m, nil
}

// ReadVerified returns the artifact name of the bundle whose manifest is at
// manifestKey (or the manifest itself, for ManifestName), once the
// manifest's SHA-256 is wantSHA256 and the artifact's size and SHA-256 are
// the manifest's: the two reads that prove what is served, not the whole
// bundle's. A name the manifest does not list wraps ErrNotFound; a mismatch
// wraps ErrTampered.
func ReadVerified(ctx context.Context, store Store, manifestKey, wantSHA256, name string) ([]byte, error) {
	m, data, err := readManifest(ctx, store, manifestKey, wantSHA256)
	if err != nil || name == ManifestName {
		return data, err
	}
	i := slices.IndexFunc(m.Artifacts, func(e Entry) bool { return e.Name == name && e.Error == "" })
	if i < 0 {
		return nil, fmt.Errorf("%w: bundle %s lists no stored artifact %q", ErrNotFound, store.Location(manifestKey), name)
	}
	data, problem, err := readArtifact(ctx, store, manifestKey, m.Artifacts[i])
	switch {
	case err != nil:
		return nil, err
	case problem != "":
		return nil, fmt.Errorf("%w: bundle %s: %s", ErrTampered, store.Location(manifestKey), problem)
	}
	return data, nil
}

// readManifest reads and decodes the manifest at key, after checking its
// SHA-256 against want (unless want is empty).
func readManifest(ctx context.Context, store Store, key, want string) (Manifest, []byte, error) {
	data, err := store.Get(ctx, key)
	if err != nil {
		return Manifest{}, nil, err
	}
	if got := sha256Hex(data); want != "" && !strings.EqualFold(got, want) {
		return Manifest{}, nil, fmt.Errorf("%w: manifest %s has SHA-256 %s, the bundle's record says %s", ErrTampered, store.Location(key), got, want)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, nil, fmt.Errorf("%w: manifest %s does not decode: %w", ErrTampered, store.Location(key), err)
	}
	return m, data, nil
}

// readArtifact reads the stored artifact e of the bundle whose manifest is
// at manifestKey. problem says how it differs from e (changed, missing,
// misplaced); err is a store error other than ErrNotFound.
func readArtifact(ctx context.Context, store Store, manifestKey string, e Entry) (data []byte, problem string, err error) {
	if err := ValidateKey(e.Key); err != nil {
		return nil, fmt.Sprintf("%s: %v", e.Name, err), nil
	}
	data, err = store.Get(ctx, path.Join(path.Dir(manifestKey), e.Key))
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, e.Name + ": missing", nil
	case err != nil:
		return nil, "", fmt.Errorf("evidence: verify %s: %w", e.Name, err)
	case int64(len(data)) != e.Size:
		return nil, fmt.Sprintf("%s: %d bytes, the manifest says %d", e.Name, len(data), e.Size), nil
	case !strings.EqualFold(sha256Hex(data), e.SHA256):
		return nil, fmt.Sprintf("%s: SHA-256 %s, the manifest says %s", e.Name, sha256Hex(data), e.SHA256), nil
	}
	return data, "", nil
}

func refOf(store Store, key string, data []byte, m Manifest) Ref {
	ref := Ref{Location: store.Location(key), Key: key, SHA256: sha256Hex(data)}
	for _, e := range m.Artifacts {
		if e.Error != "" {
			ref.Failed++
		} else {
			ref.Artifacts++
		}
	}
	return ref
}

func validateNames(artifacts []Artifact) error {
	seen := map[string]bool{}
	for _, a := range artifacts {
		if err := ValidateKey(a.Name); err != nil {
			return fmt.Errorf("evidence: artifact name: %w", err)
		}
		if seen[a.Name] {
			return fmt.Errorf("%w: artifact %q appears twice", ErrInvalidKey, a.Name)
		}
		seen[a.Name] = true
	}
	return nil
}

// runID names one WriteBundle call's artifact directory: the collection time
// and a random suffix, so that racing calls never write the same keys.
func runID(at time.Time) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("evidence: random run ID: %w", err)
	}
	return at.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]), nil
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
