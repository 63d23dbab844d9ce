package alert

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Limits bound the work Decode does for one message. A zero or negative field
// means the corresponding field of DefaultLimits.
type Limits struct {
	// MaxBytes is the largest message accepted, checked before any parsing.
	MaxBytes int
	// MaxDepth is the deepest nesting of JSON objects and arrays accepted; the
	// top-level object counts as depth 1.
	MaxDepth int
	// MaxValues is the most JSON values (object members and array elements,
	// at any depth) accepted. Bytes alone do not bound the work: a 1 MiB
	// array of zeros is half a million values, each a boxed number once
	// parsed.
	MaxValues int
}

// DefaultLimits are generous for any real alert (Falco events are a few
// kilobytes) while keeping a hostile message cheap to reject.
var DefaultLimits = Limits{MaxBytes: 1 << 20, MaxDepth: 32, MaxValues: 20000}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxValues <= 0 {
		l.MaxValues = DefaultLimits.MaxValues
	}
	return l
}

// Reason classifies why a message could not be decoded. Its values are stable:
// they name dead-letter subjects and metric labels.
type Reason string

// Reasons, in the order Decode checks for them.
const (
	// ReasonOversize means the message is larger than Limits.MaxBytes.
	ReasonOversize Reason = "oversize"
	// ReasonInvalidUTF8 means the message is not valid UTF-8.
	ReasonInvalidUTF8 Reason = "invalid_utf8"
	// ReasonTooDeep means objects and arrays nest deeper than Limits.MaxDepth.
	ReasonTooDeep Reason = "too_deep"
	// ReasonTooManyValues means the message holds more values than
	// Limits.MaxValues.
	ReasonTooManyValues Reason = "too_many_values"
	// ReasonInvalidJSON means the message is not exactly one well-formed JSON
	// value: it is truncated, malformed, empty or followed by more data.
	ReasonInvalidJSON Reason = "invalid_json"
	// ReasonNotObject means the message is JSON but not an object.
	ReasonNotObject Reason = "not_object"
	// ReasonUnrecognised means the message is a JSON object but neither a Falco
	// event nor a generic alert: it has no non-empty string "rule".
	ReasonUnrecognised Reason = "unrecognised"
)

// DecodeError is the error Decode returns. Every DecodeError means the message
// can never be decoded, so retrying is pointless: the caller should dead-letter
// it under Reason.
type DecodeError struct {
	// Reason classifies the failure.
	Reason Reason
	// Err describes it, with the byte offset where one is known.
	Err error
}

// Error returns "alert: <reason>: <detail>".
func (e *DecodeError) Error() string {
	if e.Err == nil {
		return "alert: " + string(e.Reason)
	}
	return "alert: " + string(e.Reason) + ": " + e.Err.Error()
}

// Unwrap returns the underlying error, such as a *json.SyntaxError.
func (e *DecodeError) Unwrap() error { return e.Err }

func fail(r Reason, err error) (Alert, error) {
	return Alert{}, &DecodeError{Reason: r, Err: err}
}

// Decode parses one alert message: a Falco event (as Falco or Falcosidekick emit
// it) or a generic alert (see docs/alerts.md). It never panics and does not
// retain data.
//
// The checks run cheapest first, so a hostile message costs little: size, UTF-8,
// nesting depth (a byte scan that stops at the limit), then the JSON parse and
// the format detection. Any failure returns the zero Alert and a *DecodeError.
//
// Decode is a pure function: the same data and limits always give the same
// result, and it is safe to call from many goroutines. In particular it never
// reads the clock: an alert without a time keeps the zero time.
func Decode(data []byte, lim Limits) (Alert, error) {
	lim = lim.withDefaults()
	if len(data) > lim.MaxBytes {
		return fail(ReasonOversize, fmt.Errorf("%d bytes exceeds the %d-byte limit", len(data), lim.MaxBytes))
	}
	if !utf8.Valid(data) {
		return fail(ReasonInvalidUTF8, fmt.Errorf("invalid UTF-8 at byte %d", invalidUTF8At(data)))
	}
	if reason, err := checkShape(data, lim); err != nil {
		return fail(reason, err)
	}
	v, err := parseJSON(data)
	if err != nil {
		return fail(ReasonInvalidJSON, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return fail(ReasonNotObject, fmt.Errorf("top-level value is %s, want an object", jsonKind(v)))
	}

	rule, err := ruleOf(obj)
	if err != nil {
		return fail(ReasonUnrecognised, err)
	}
	var a Alert
	if isFalco(obj) {
		a = decodeFalco(obj)
	} else {
		a = decodeGeneric(obj)
	}
	a.Rule = rule
	if a.Cluster != "" {
		if err := ValidCluster(a.Cluster); err != nil {
			return fail(ReasonInvalidCluster, err)
		}
	}
	if a.ID == "" {
		a.ID = derivedID(data)
	}
	return a, nil
}

// invalidUTF8At returns the offset of the first byte that is not part of a
// valid UTF-8 sequence. It only runs once utf8.Valid has failed.
func invalidUTF8At(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(data)
}

// checkShape rejects data whose objects and arrays nest deeper than
// lim.MaxDepth, or that holds more than lim.MaxValues values (counted as
// containers opened and commas, an upper bound on members and elements). It
// scans bytes without parsing, skipping string contents (brackets and commas
// there are text) and stopping as soon as a limit is passed, so a mebibyte of
// "[" costs MaxDepth bytes of work. It does not validate the JSON: the parser
// does that next.
func checkShape(data []byte, lim Limits) (Reason, error) {
	depth, values := 0, 0
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++ // The escaped byte, a quote perhaps, cannot end the string.
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > lim.MaxDepth {
				return ReasonTooDeep, fmt.Errorf("nesting deeper than %d levels at byte %d", lim.MaxDepth, i)
			}
			values++ // the container's first member, if any
		case ',':
			values++ // the next member
		case '}', ']':
			// Unbalanced closers can drive depth below zero only in invalid
			// JSON, which the parser rejects anyway.
			depth--
		}
		if values > lim.MaxValues {
			return ReasonTooManyValues, fmt.Errorf("more than %d values (object members and array elements) at byte %d", lim.MaxValues, i)
		}
	}
	return "", nil
}

// parseJSON decodes exactly one JSON value, keeping numbers as json.Number so
// that large integers such as Falco's nanosecond timestamps stay exact.
func parseJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty message")
		}
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("at byte %d: %w", syn.Offset, err)
		}
		return nil, err
	}
	// A second value, even a valid one, means the message is not one alert.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("unexpected data after the top-level value at byte %d", dec.InputOffset())
	}
	return v, nil
}

// jsonKind names the JSON type of a value decoded by parseJSON.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	}
	return "an object"
}

// ruleOf returns the rule name, which both formats require.
func ruleOf(obj map[string]any) (string, error) {
	v, ok := obj["rule"]
	if !ok {
		return "", errors.New(`no "rule": neither a Falco event nor a generic alert`)
	}
	rule, ok := v.(string)
	if !ok || rule == "" {
		return "", fmt.Errorf(`"rule" is %s, want a non-empty string`, describe(v))
	}
	return rule, nil
}

// describe is jsonKind, except that it calls the empty string what it is.
func describe(v any) string {
	if s, ok := v.(string); ok && s == "" {
		return "empty"
	}
	return jsonKind(v)
}

// derivedID names an alert whose source sent no ID. Hashing the exact bytes
// makes a redelivered message keep its ID, so downstream deduplication still
// works; 128 bits of SHA-256 are plenty to avoid collisions.
func derivedID(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:16])
}
