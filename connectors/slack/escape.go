package slack

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Characters Escape substitutes for mrkdwn's formatting characters. Slack has
// no escape for *, _, ~ and `, so they become look-alikes that Slack does not
// format (the same choice jsx-slack made). Kubernetes names never contain
// them, so namespaces, pods and nodes are unchanged.
const (
	zeroWidthSpace = "\u200b"
	softHyphen     = "\u00ad"
	asteriskLike   = "\u2217" // ∗ asterisk operator
	underscoreLike = "\u02cd" // ˍ modifier letter low macron
	tildeLike      = "\u223c" // ∼ tilde operator
	backtickLike   = "\u02cb" // ˋ modifier letter grave accent
)

// broadcastWords are the words that, after an @, notify a whole channel or
// workspace when Slack parses names.
var broadcastWords = []string{"channel", "here", "everyone"}

// Escape makes untrusted text (alert content) inert in Slack mrkdwn: it
// escapes Slack's control characters & < > so that "<!channel>", "<@U123>"
// and "<https://evil|click>" show as typed; replaces * _ ~ ` with look-alikes
// so that they format nothing; puts a soft hyphen before a ">" that starts a
// line so it quotes nothing; and puts a zero-width space after the @ of
// "@channel", "@here" and "@everyone". The result is meant for display, not
// for copying back: those substitutions change the characters.
func Escape(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	lineStart := true
	for i, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			if lineStart {
				b.WriteString(softHyphen)
			}
			b.WriteString("&gt;")
		case '*':
			b.WriteString(asteriskLike)
		case '_':
			b.WriteString(underscoreLike)
		case '~':
			b.WriteString(tildeLike)
		case '`':
			b.WriteString(backtickLike)
		case '@':
			b.WriteByte('@')
			if startsWithBroadcast(s[i+1:]) {
				b.WriteString(zeroWidthSpace)
			}
		default:
			b.WriteRune(r)
		}
		lineStart = r == '\n'
	}
	return b.String()
}

// startsWithBroadcast reports whether s starts with one of broadcastWords,
// in any case.
func startsWithBroadcast(s string) bool {
	for _, w := range broadcastWords {
		if len(s) >= len(w) && strings.EqualFold(s[:len(w)], w) {
			return true
		}
	}
	return false
}

// oneLine escapes s and folds its line breaks into spaces, for values shown
// in a field or after a label.
func oneLine(s string) string {
	return Escape(strings.Join(strings.Fields(s), " "))
}

// clip shortens escaped text to at most max runes, ending with "…", without
// cutting an entity such as "&amp;" or a mention such as "<@U123>" in two.
// Slack rejects blocks whose text is longer than the block allows
// (invalid_blocks), and alert content has no length limit.
func clip(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	runes := 0
	for i := range s {
		if runes == max-1 {
			s = s[:i]
			break
		}
		runes++
	}
	if amp := strings.LastIndexByte(s, '&'); amp >= 0 && !strings.Contains(s[amp:], ";") {
		s = s[:amp]
	}
	if lt := strings.LastIndexByte(s, '<'); lt >= 0 && !strings.Contains(s[lt:], ">") {
		s = s[:lt]
	}
	return s + "…"
}

// slackDate renders t with Slack's date formatting, so each reader sees it in
// their own time zone, with RFC 3339 UTC as the fallback for clients that
// cannot.
func slackDate(t time.Time) string {
	return "<!date^" + strconv.FormatInt(t.Unix(), 10) + "^{date_short_pretty} {time}|" + t.UTC().Format(time.RFC3339) + ">"
}
