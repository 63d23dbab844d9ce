package slack

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Block action IDs of the approval buttons.
const (
	ActionApprove = "soar_approve"
	ActionDeny    = "soar_deny"
)

// ErrBadButton means a button value was not signed by soar with this key, or
// was changed after. Verify wraps it.
var ErrBadButton = errors.New("slack: the button's value is not one soar signed")

// minKeyLen is the shortest key NewSigner accepts: HMAC-SHA256's block of
// security.
const minKeyLen = 32

// signedPrefix versions the format, so that a later format can coexist with
// buttons already posted.
const signedPrefix = "v1."

// b64 is unpadded base64url in strict mode: a value has exactly one
// encoding, so no changed character decodes to the same bytes.
var b64 = base64.RawURLEncoding.Strict()

// ButtonValue is what an approval button carries: the vote it casts.
type ButtonValue struct {
	Incident string    `json:"i"`
	Step     string    `json:"s"`
	Approve  bool      `json:"a"`
	PlanHash string    `json:"p"`
	Expires  time.Time `json:"e"` // unix seconds on the wire
}

// buttonWire is ButtonValue as it is signed: short keys and unix seconds, so
// that the value stays far below Slack's 2000-character limit.
type buttonWire struct {
	Incident string `json:"i"`
	Step     string `json:"s"`
	Approve  bool   `json:"a"`
	PlanHash string `json:"p"`
	Expires  int64  `json:"e"`
}

// MarshalJSON encodes Expires as unix seconds.
func (v ButtonValue) MarshalJSON() ([]byte, error) {
	return json.Marshal(buttonWire{v.Incident, v.Step, v.Approve, v.PlanHash, v.Expires.Unix()})
}

// UnmarshalJSON decodes Expires from unix seconds.
func (v *ButtonValue) UnmarshalJSON(b []byte) error {
	var w buttonWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*v = ButtonValue{w.Incident, w.Step, w.Approve, w.PlanHash, time.Unix(w.Expires, 0)}
	return nil
}

// Signer signs and verifies button values with an HMAC key. It is safe for
// concurrent use.
type Signer struct {
	key []byte
}

// NewSigner returns a signer with key, which must be at least 32 bytes of
// secret randomness shared by every soar process that posts or receives
// buttons.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < minKeyLen {
		return nil, fmt.Errorf("slack: the button signing key is %d bytes; it must be at least %d random bytes (e.g. from 'openssl rand -base64 32')", len(key), minKeyLen)
	}
	return &Signer{key: bytes.Clone(key)}, nil
}

// Sign returns the button value for v: "v1." + base64url(JSON) + "." +
// base64url(HMAC-SHA256(key, "v1." + payload)). With a 64-character incident
// ID and step it is about 400 characters, within Slack's 2000.
func (s *Signer) Sign(v ButtonValue) string {
	js, err := json.Marshal(v)
	if err != nil {
		// ButtonValue holds only strings, a bool and an int64.
		panic(fmt.Sprintf("slack: marshal button value: %v", err))
	}
	signed := signedPrefix + b64.EncodeToString(js)
	return signed + "." + b64.EncodeToString(s.mac(signed))
}

// Verify returns the vote in value, or an error wrapping ErrBadButton when
// soar did not sign it with this key or it was changed. The MAC is compared
// in constant time. It does not check Expires: that is the caller's.
func (s *Signer) Verify(value string) (ButtonValue, error) {
	rest, ok := strings.CutPrefix(value, signedPrefix)
	if !ok {
		return ButtonValue{}, fmt.Errorf("%w: unknown format", ErrBadButton)
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return ButtonValue{}, fmt.Errorf("%w: no signature", ErrBadButton)
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(signedPrefix+payload)) {
		return ButtonValue{}, fmt.Errorf("%w: wrong signature", ErrBadButton)
	}
	js, err := b64.DecodeString(payload)
	if err != nil {
		return ButtonValue{}, fmt.Errorf("%w: payload: %w", ErrBadButton, err)
	}
	var v ButtonValue
	if err := json.Unmarshal(js, &v); err != nil {
		return ButtonValue{}, fmt.Errorf("%w: payload: %w", ErrBadButton, err)
	}
	return v, nil
}

// mac is HMAC-SHA256(key, msg).
func (s *Signer) mac(msg string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
