package tickets

import (
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// isBidi reports whether c is a bidirectional formatting character. They
// can make text display in another order than it is stored ("Trojan
// Source"), so untrusted text loses them.
func isBidi(c rune) bool {
	return (c >= '\u202a' && c <= '\u202e') || (c >= '\u2066' && c <= '\u2069') || c == '\u200e' || c == '\u200f' || c == '\u061c'
}

// plain removes what plain text must not carry: control characters other
// than newline and tab, and bidirectional formatting characters. "\r\n"
// becomes "\n".
func plain(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(c rune) rune {
		if c == '\n' || c == '\t' {
			return c
		}
		if unicode.IsControl(c) || isBidi(c) {
			return -1
		}
		return c
	}, s)
}

// oneLine makes s a single line of plain text: whitespace runs (newlines
// included) become one space.
func oneLine(s string) string {
	return strings.Join(strings.Fields(plain(s)), " ")
}

// cut shortens s to at most n characters, ending it with "…" when it cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	i := 0
	for pos := range s {
		if i == n-1 {
			return s[:pos] + "…"
		}
		i++
	}
	return s
}

// cutUTF16 shortens s to at most n UTF-16 code units, the unit in which Jira
// (Java) and GitHub count a title's length, ending it with "…" when it cut.
func cutUTF16(s string, n int) string {
	units := 0
	for _, c := range s {
		units += utf16.RuneLen(c)
	}
	if units <= n {
		return s
	}
	units = 0
	for pos, c := range s {
		if units+utf16.RuneLen(c) > n-1 {
			return s[:pos] + "…"
		}
		units += utf16.RuneLen(c)
	}
	return s
}

// title returns the one-line title of a ticket, at most n UTF-16 units,
// falling back to the incident ID when the alert gave none (both Jira and
// GitHub refuse an empty title).
func title(c Content, n int) string {
	t := oneLine(c.Title)
	if t == "" {
		t = "soar incident " + oneLine(c.IncidentID)
	}
	return cutUTF16(t, n)
}

// truncatedNote ends a body that did not fit.
const truncatedNote = "[soar truncated the rest of this text: it was longer than the ticket system accepts]"

// fit renders blocks one by one while they fit in limit (as measured by
// render), then tail, which always fits. A huge alert (a log dump in a code
// block) thus still opens a ticket instead of failing on the provider's size
// limit: the first block that does not fit is shortened until it does, and a
// note says so.
func fit[T any](blocks, tail []Block, limit int, render func(Block) (T, int)) []T {
	out := make([]T, 0, len(blocks)+len(tail)+1)
	var end []T
	budget := limit
	for _, b := range append([]Block{{Text: truncatedNote}}, tail...) {
		r, size := render(b)
		end, budget = append(end, r), budget-size
	}
	note, end := end[0], end[1:]
	for _, b := range blocks {
		r, size := render(b)
		if size <= budget {
			out, budget = append(out, r), budget-size
			continue
		}
		// Markup makes the rendering longer than the text, so start from
		// the share of the text that would fit and shrink from there.
		for n := textLen(b) * max(budget, 0) / size; n > 0; n = n * 9 / 10 {
			if r, size = render(shorten(b, n)); size <= budget {
				out = append(out, r)
				break
			}
		}
		out = append(out, note)
		break
	}
	return append(out, end...)
}

// hasText reports whether any of blocks would show something: a comment
// without text is refused by Jira and GitHub alike.
func hasText(blocks []Block) bool {
	for _, b := range blocks {
		if strings.TrimSpace(b.Heading+b.Text+b.Code+strings.Join(b.Items, "")) != "" || (b.Link != nil && b.Link.URL != "") {
			return true
		}
	}
	return false
}

// textLen is the number of characters of text in b.
func textLen(b Block) int {
	n := utf8.RuneCountInString(b.Heading) + utf8.RuneCountInString(b.Text) + utf8.RuneCountInString(b.Code)
	for _, it := range b.Items {
		n += utf8.RuneCountInString(it)
	}
	if b.Link != nil {
		n += utf8.RuneCountInString(b.Link.Text)
	}
	return n
}

// shorten cuts every text of b to at most n characters; a list keeps only
// as many items as n characters hold.
func shorten(b Block, n int) Block {
	out := Block{Heading: cut(b.Heading, n), Text: cut(b.Text, n), Code: cut(b.Code, n)}
	left := n
	for _, it := range b.Items {
		if left <= 0 {
			break
		}
		it = cut(it, left)
		out.Items = append(out.Items, it)
		left -= utf8.RuneCountInString(it)
	}
	if b.Link != nil {
		out.Link = &Link{Text: cut(b.Link.Text, n), URL: b.Link.URL}
	}
	return out
}
