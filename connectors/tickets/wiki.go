package tickets

import (
	"regexp"
	"strconv"
	"strings"
)

// wikiSpecial are the characters of Jira wiki markup that start text
// effects, lists, tables, links, mentions ([~user]), images, macros and
// numbered lists; untrusted text has each of them backslash-escaped.
const wikiSpecial = "*_-+^~{}[]|!#"

// wikiBlockStart matches what makes a line a heading or a quote in wiki
// markup ("h1. ", "bq. "); those are only recognised at the start of a line.
var wikiBlockStart = regexp.MustCompile(`^(?i:h[1-6]|bq)\.`)

// escapeWiki renders untrusted text as inert Jira wiki markup, on one source
// line: special characters backslash-escaped, a backslash as the entity
// &#92; and '&' as &amp; (a literal backslash cannot be escaped, and "\\" is
// a line break), newlines as wiki line breaks ("\\") so that no line of the
// text can start a heading, a list or a table, and a leading "h1." or "bq."
// broken by writing its first letter as an entity.
func escapeWiki(s string) string {
	s = strings.TrimSpace(plain(s))
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '\\':
			b.WriteString("&#92;")
		case c == '&':
			b.WriteString("&amp;")
		case c == '\n':
			b.WriteString(`\\`)
		case c == '\t':
			b.WriteByte(' ')
		case strings.ContainsRune(wikiSpecial, c):
			b.WriteByte('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	out := b.String()
	if wikiBlockStart.MatchString(out) {
		out = "&#" + strconv.Itoa(int(out[0])) + ";" + out[1:]
	}
	return out
}

// noformatTag matches the start of a {noformat} macro tag, in any case and
// with or without parameters.
var noformatTag = regexp.MustCompile(`(?i)\{(noformat)`)

// wikiCode puts code in a {noformat} block, where nothing renders. A
// "{noformat" inside the code gets a zero-width space after its brace so that
// it cannot end the block; backslash escapes do not work inside it.
func wikiCode(code string) string {
	code = noformatTag.ReplaceAllString(plain(code), "{\u200b$1")
	return "{noformat}\n" + strings.TrimSuffix(code, "\n") + "\n{noformat}"
}

// wikiURL percent-encodes the characters that would end a wiki link early.
// The URL itself is trusted.
func wikiURL(u string) string {
	return strings.NewReplacer(" ", "%20", "|", "%7C", "[", "%5B", "]", "%5D").Replace(u)
}

// wikiBlock renders b as Jira wiki markup. A block with several fields set
// renders each of them, in the order of Block's fields.
func wikiBlock(b Block) string {
	var parts []string
	if h := oneLine(b.Heading); h != "" {
		parts = append(parts, "h3. "+escapeWiki(h))
	}
	if t := escapeWiki(b.Text); t != "" {
		parts = append(parts, t)
	}
	if len(b.Items) > 0 {
		items := make([]string, 0, len(b.Items))
		for _, it := range b.Items {
			items = append(items, "* "+escapeWiki(oneLine(it)))
		}
		parts = append(parts, strings.Join(items, "\n"))
	}
	if b.Code != "" {
		parts = append(parts, wikiCode(b.Code))
	}
	if b.Link != nil && b.Link.URL != "" {
		if t := oneLine(b.Link.Text); t != "" {
			parts = append(parts, "["+escapeWiki(t)+"|"+wikiURL(b.Link.URL)+"]")
		} else {
			parts = append(parts, "["+wikiURL(b.Link.URL)+"]")
		}
	}
	return strings.Join(parts, "\n\n")
}

// renderWiki renders blocks, then tail, as one wiki markup document of at
// most limit bytes.
func renderWiki(blocks, tail []Block, limit int) string {
	parts := fit(blocks, tail, limit, func(b Block) (string, int) {
		s := wikiBlock(b)
		return s, len(s) + 2
	})
	return strings.Join(nonEmpty(parts), "\n\n")
}
