package alert

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Trim bounds for the copy of an alert an incident keeps in its state.
const (
	// TrimBytes bounds the JSON encoding of a trimmed alert.
	TrimBytes = 64 << 10
	// TrimValueBytes bounds each string (summary, a tag, a field's value);
	// a field whose encoded value is longer is cut or replaced.
	TrimValueBytes = 2 << 10
	// TrimTags bounds the number of tags, TrimTagBytes each one.
	TrimTags     = 64
	TrimTagBytes = 256
)

// Trim returns a, when it encodes to at most TrimBytes, or else a copy that
// fits a workflow's state: the summary and every string field cut to
// TrimValueBytes, at most TrimTags tags of TrimTagBytes, a field whose non-string value encodes to more than
// TrimValueBytes replaced by a note saying so, and then, while the whole
// encodes to more than TrimBytes, fields dropped in reverse name order. The
// identity (ID, rule, source, severity, time, Kubernetes, format) is kept
// whole: the decoder bounds those already. It reports whether anything was
// cut. Trim is deterministic: it may run in workflow code.
func Trim(a Alert) (Alert, bool) {
	if encodedLen(a) <= TrimBytes {
		return a, false
	}
	cut := false
	out := a
	if s, ok := cutString(a.Summary); ok {
		out.Summary, cut = s, true
	}
	if len(a.Tags) > 0 {
		n := min(len(a.Tags), TrimTags)
		out.Tags = make([]string, n)
		for i, t := range a.Tags[:n] {
			s, ok := cutTo(t, TrimTagBytes)
			out.Tags[i], cut = s, cut || ok
		}
		cut = cut || n < len(a.Tags)
	}
	if len(a.Fields) == 0 {
		return out, cut
	}
	names := make([]string, 0, len(a.Fields))
	for k := range a.Fields {
		names = append(names, k)
	}
	slices.Sort(names)
	out.Fields = make(map[string]any, len(a.Fields))
	size := 0
	for _, k := range names {
		v, ok := trimValue(a.Fields[k])
		cut = cut || ok
		out.Fields[k] = v
		size += encodedLen(k) + encodedLen(v) + 2
	}
	// Whatever else is in the alert is bounded by the decoder; count it once.
	rest := encodedLen(Alert{ID: out.ID, Source: out.Source, Rule: out.Rule, Severity: out.Severity, Time: out.Time,
		Summary: out.Summary, Hostname: out.Hostname, Tags: out.Tags, Kubernetes: out.Kubernetes, Format: out.Format})
	for i := len(names) - 1; i >= 0 && rest+size > TrimBytes; i-- {
		k := names[i]
		size -= encodedLen(k) + encodedLen(out.Fields[k]) + 2
		delete(out.Fields, k)
		cut = true
	}
	return out, cut
}

// trimValue cuts a long string, and replaces any other value that encodes
// to more than TrimValueBytes with a note of its size.
func trimValue(v any) (any, bool) {
	if s, ok := v.(string); ok {
		return cutString(s)
	}
	if n := encodedLen(v); n > TrimValueBytes {
		return fmt.Sprintf("[cut: %d bytes of %T]", n, v), true
	}
	return v, false
}

// cutString cuts s to at most TrimValueBytes bytes.
func cutString(s string) (string, bool) { return cutTo(s, TrimValueBytes) }

// cutTo cuts s to at most limit bytes, at a rune boundary, and says how much
// was cut.
func cutTo(s string, limit int) (string, bool) {
	if len(s) <= limit {
		return s, false
	}
	n := limit - 32
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	var b strings.Builder
	b.WriteString(s[:n])
	fmt.Fprintf(&b, "…[cut %d bytes]", len(s)-n)
	return b.String(), true
}

// encodedLen is the length of v's JSON encoding; 0 when it has none.
func encodedLen(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}
