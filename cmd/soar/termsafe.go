package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What soar prints for people comes partly from alerts, written by whoever
// controls a pod: a pod name, a rule, a command line. Printed as is, an
// escape sequence in it would drive the operator's terminal (clear it, move
// the cursor, set its title, on some terminals answer back), and a newline
// would forge a line of output, say a "Status: released" that is not.
// Everything printed as text therefore goes through cleanText, and the
// writer below escapes whatever control character is left.

// unsafeRune reports whether r may not reach a terminal as is: control
// characters (C0, DEL, C1), invalid UTF-8, and the bidirectional overrides
// and isolates that reorder what is shown.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || r == utf8.RuneError ||
		(r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

// cleanText returns s with every unsafe rune written as its Go escape
// (\x1b, \n, \u202e), so that it shows what it is and does nothing.
func cleanText(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r):
			b.WriteString(strings.Trim(strconv.QuoteRune(r), "'"))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// fprintf is fmt.Fprintf with every string argument cleaned.
func fprintf(w io.Writer, format string, args ...any) {
	for i, a := range args {
		switch v := a.(type) {
		case string:
			args[i] = cleanText(v)
		case fmt.Stringer:
			args[i] = cleanText(v.String())
		}
	}
	fmt.Fprintf(w, format, args...)
}

// terminalWriter escapes, in what passes through it, every control
// character but the newlines and tabs of soar's own layout: the last line
// of defence for text that did not go through cleanText.
type terminalWriter struct{ w io.Writer }

func (t terminalWriter) Write(p []byte) (int, error) {
	s := string(p)
	if !strings.ContainsFunc(s, func(r rune) bool { return r != '\n' && r != '\t' && unsafeRune(r) }) {
		return t.w.Write(p)
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		body, nl := strings.CutSuffix(line, "\n")
		parts := strings.Split(body, "\t")
		for j, part := range parts {
			parts[j] = cleanText(part)
		}
		b.WriteString(strings.Join(parts, "\t"))
		if nl {
			b.WriteByte('\n')
		}
	}
	if _, err := io.WriteString(t.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
