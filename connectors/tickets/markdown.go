package tickets

import (
	"strings"
	"unicode"
)

// zwj is the zero-width joiner put after '@' and before issue numbers: the
// text still reads the same, but GitHub no longer sees a mention or an issue
// reference, so alert text cannot notify people or cross-link issues.
const zwj = '\u200d'

// markdownSpecial are the characters escaped with a backslash in GitHub
// markdown: the ones that start emphasis, code, links, images, HTML, headings,
// lists, tables, strikethrough, math and entity references. CommonMark lets
// a backslash escape any ASCII punctuation, so escaping a few more than
// needed is harmless.
const markdownSpecial = "\\`*_{}[]<>()#+-.!|~&=$"

// escapeMarkdown renders untrusted text as inert GitHub markdown: every
// special character backslash-escaped, and mentions and issue references
// broken (see breakReferences). Newlines stay, as GitHub shows them as line
// breaks.
func escapeMarkdown(s string) string {
	return githubText(s, true)
}

// breakReferences puts a zero-width joiner after every '@' and into "#123"
// and "GH-123", so that GitHub sees no mention and no issue reference.
// Backslash escapes do not stop GitHub's mention and reference filters,
// which run on the rendered text; and issue titles, which are not markdown,
// need this alone.
func breakReferences(s string) string {
	return githubText(s, false)
}

// githubText breaks references in s and, when escape is set, backslash-
// escapes markdown's special characters.
func githubText(s string, escape bool) string {
	rs := []rune(plain(s))
	var b strings.Builder
	for i, c := range rs {
		if escape && strings.ContainsRune(markdownSpecial, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
		if c == '@' || (c == '#' && digitAt(rs, i+1)) || ghReference(rs, i) {
			b.WriteRune(zwj)
		}
	}
	return b.String()
}

// digitAt reports whether rs[i] is an ASCII digit.
func digitAt(rs []rune, i int) bool {
	return i < len(rs) && rs[i] >= '0' && rs[i] <= '9'
}

// ghReference reports whether rs[i] is the H of a "GH-123" issue reference.
func ghReference(rs []rune, i int) bool {
	return i >= 1 && (rs[i] == 'h' || rs[i] == 'H') && (rs[i-1] == 'g' || rs[i-1] == 'G') &&
		(i < 2 || !isWord(rs[i-2])) && i+2 < len(rs) && rs[i+1] == '-' && digitAt(rs, i+2)
}

// isWord reports whether c can be part of a word.
func isWord(c rune) bool { return c == '_' || unicode.IsLetter(c) || unicode.IsDigit(c) }

// markdownBlock renders b as GitHub markdown. A block with several fields
// set renders each of them, in the order of Block's fields.
func markdownBlock(b Block) string {
	var parts []string
	if h := oneLine(b.Heading); h != "" {
		parts = append(parts, "### "+escapeMarkdown(h))
	}
	if t := strings.TrimSpace(plain(b.Text)); t != "" {
		parts = append(parts, escapeMarkdown(t))
	}
	if len(b.Items) > 0 {
		items := make([]string, 0, len(b.Items))
		for _, it := range b.Items {
			items = append(items, "- "+escapeMarkdown(oneLine(it)))
		}
		parts = append(parts, strings.Join(items, "\n"))
	}
	if b.Code != "" {
		parts = append(parts, markdownCode(plain(b.Code)))
	}
	if b.Link != nil && b.Link.URL != "" {
		parts = append(parts, "["+escapeMarkdown(linkText(*b.Link))+"]("+markdownURL(b.Link.URL)+")")
	}
	return strings.Join(parts, "\n\n")
}

// markdownCode fences code with more backticks than it holds in a row, so
// that nothing in it can close the fence; nothing inside a fence renders.
func markdownCode(code string) string {
	run, longest := 0, 0
	for _, c := range code {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	return fence + "\n" + strings.TrimSuffix(code, "\n") + "\n" + fence
}

// markdownURL percent-encodes the characters that would end a link
// destination early. The URL itself is trusted.
func markdownURL(u string) string {
	return strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29", "<", "%3C", ">", "%3E").Replace(u)
}

// linkText is the one-line text of a link, or its URL when it has none.
func linkText(l Link) string {
	if t := oneLine(l.Text); t != "" {
		return t
	}
	return l.URL
}

// renderMarkdown renders blocks, then tail, as one GitHub markdown document
// of at most limit bytes.
func renderMarkdown(blocks, tail []Block, limit int) string {
	parts := fit(blocks, tail, limit, func(b Block) (string, int) {
		s := markdownBlock(b)
		return s, len(s) + 2
	})
	return strings.Join(nonEmpty(parts), "\n\n")
}

// nonEmpty drops empty strings, the renderings of empty blocks.
func nonEmpty(parts []string) []string {
	out := parts[:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
