// Package proof signs what soar's processes send each other through
// Temporal, and checks it: the dispatcher's incident starts and alerts, the
// votes, closes and releases that serve took from an authenticated person,
// and a worker's continue-as-new. Whoever can reach Temporal can send the
// same requests; only soar's processes hold the keys, so the worker can tell
// the two apart and acts on proven requests only.
//
// A proof is an HMAC-SHA256 over a purpose, a subject (the incident) and a
// canonical JSON encoding of the value, under one of a few shared keys.
// The first key signs; every key verifies, so that a key can be rotated
// without refusing what was signed just before.
package proof

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Purposes: a proof made for one is never accepted for another.
const (
	Start    = "start"    // RespondInput, by the dispatcher (or a worker continuing as new)
	Alert    = "alert"    // AlertSignal, by the dispatcher
	Decision = "decision" // a vote, by serve
	Control  = "control"  // a close or release, by serve
	Park     = "park"     // an alert moved to the parked stream, by the dispatcher
)

// MinKeyBytes is the shortest key accepted.
const MinKeyBytes = 32

// version prefixes every proof, so that the format can change.
const version = "v1"

// Keys signs and verifies proofs. The zero value and nil hold no key.
type Keys struct {
	keys []key
}

type key struct {
	id     string
	secret []byte
}

// Parse reads keys separated by commas, newlines or spaces. Each is used as
// its bytes, and must be at least MinKeyBytes long: `head -c 32
// /dev/urandom | base64` makes one. The error never quotes a key.
func Parse(s string) (*Keys, error) {
	k := &Keys{}
	seen := map[string]bool{}
	for i, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == ' ' || r == '\t' || r == '\r' }) {
		if len(f) < MinKeyBytes {
			return nil, fmt.Errorf("signing key %d is %d bytes; at least %d are needed (head -c 32 /dev/urandom | base64 makes one)", i+1, len(f), MinKeyBytes)
		}
		sum := sha256.Sum256([]byte(f))
		id := hex.EncodeToString(sum[:4])
		if seen[id] {
			return nil, fmt.Errorf("signing key %d is listed twice", i+1)
		}
		seen[id] = true
		k.keys = append(k.keys, key{id: id, secret: []byte(f)})
	}
	if len(k.keys) == 0 {
		return nil, errors.New("no signing key given")
	}
	return k, nil
}

// Generate returns a new random key, as Parse reads it.
func Generate() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// ID names the signing key, for logs: the first 8 hex digits of its
// SHA-256. It is "" for no keys.
func (k *Keys) ID() string {
	if k == nil || len(k.keys) == 0 {
		return ""
	}
	return k.keys[0].id
}

// Sign returns the proof of v for purpose and subject. v is encoded as JSON,
// decoded into a fresh T and encoded again, so that the signer and the
// verifier hash the same bytes whatever either side's decoder normalises
// (the verifier sees v after Temporal's JSON round trip).
func Sign[T any](k *Keys, purpose, subject string, v T) (string, error) {
	if k == nil || len(k.keys) == 0 {
		return "", errors.New("proof: no signing key")
	}
	msg, err := canonical(v)
	if err != nil {
		return "", err
	}
	kk := k.keys[0]
	return version + "." + kk.id + "." + base64.RawURLEncoding.EncodeToString(mac(kk.secret, purpose, subject, msg)), nil
}

// Errors of Verify.
var (
	ErrMissing = errors.New("no proof from soar")
	ErrInvalid = errors.New("an invalid proof")
)

// Verify checks proof p of v for purpose and subject. Its error says why
// the value is refused, without any secret, and reads after "it carries".
func Verify[T any](k *Keys, purpose, subject string, v T, p string) error {
	if p == "" {
		return ErrMissing
	}
	ver, rest, ok := strings.Cut(p, ".")
	id, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || ver != version {
		return fmt.Errorf("%w: not a %s proof", ErrInvalid, version)
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%w: malformed", ErrInvalid)
	}
	var kk *key
	if k != nil {
		for i := range k.keys {
			if k.keys[i].id == id {
				kk = &k.keys[i]
			}
		}
	}
	if kk == nil {
		return fmt.Errorf("%w: made with key %s, which this soar does not hold", ErrInvalid, id)
	}
	msg, err := canonical(v)
	if err != nil {
		return err
	}
	if !hmac.Equal(got, mac(kk.secret, purpose, subject, msg)) {
		return fmt.Errorf("%w: it does not match the %s for %s", ErrInvalid, purpose, subject)
	}
	return nil
}

func mac(secret []byte, purpose, subject string, msg []byte) []byte {
	h := hmac.New(sha256.New, secret)
	// Lengths first: no two (purpose, subject, msg) share an input.
	fmt.Fprintf(h, "soar-proof-%s\x00%d:%s\x00%d:%s\x00", version, len(purpose), purpose, len(subject), subject)
	h.Write(msg)
	return h.Sum(nil)
}

func canonical[T any](v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("proof: encode: %w", err)
	}
	var rt T
	if err := json.Unmarshal(b, &rt); err != nil {
		return nil, fmt.Errorf("proof: decode: %w", err)
	}
	b, err = json.Marshal(rt)
	if err != nil {
		return nil, fmt.Errorf("proof: encode: %w", err)
	}
	return b, nil
}
