package tickets

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// attack is alert text written to turn into mentions, links, markup and
// macros wherever it is rendered.
const attack = "@octocat #1 <script> [link](http://evil) *bold* {noformat} [~accountid:123] |x|"

func TestEscapeMarkdownLeavesAlertTextInert(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"the attack", attack, "@\u200doctocat \\#\u200d1 \\<script\\> \\[link\\]\\(http://evil\\) \\*bold\\* \\{noformat\\} \\[\\~accountid:123\\] \\|x\\|"},
		{"mention", "ping @security-team", "ping @\u200dsecurity\\-team"},
		{"issue references", "see #12, GH-7 and acme/web#3", "see \\#\u200d12, GH\u200d\\-7 and acme/web\\#\u200d3"},
		{"not a reference", "color #fff and BGH-7", "color \\#fff and BGH\\-7"},
		{"entity spelling a mention", "&#64;octocat", "\\&\\#\u200d64;octocat"},
		{"image and html", "![x](http://evil/a.png) <img src=x>", "\\!\\[x\\]\\(http://evil/a\\.png\\) \\<img src\\=x\\>"},
		{"headings and lists", "# title\n- item\n1. one", "\\# title\n\\- item\n1\\. one"},
		{"code and math", "`rm` $x$ ~~del~~", "\\`rm\\` \\$x\\$ \\~\\~del\\~\\~"},
		{"backslash", `C:\temp\*`, `C:\\temp\\\*`},
		{"controls and bidi", "a\x00b\x1bc\u202ed\r\ne", "abcd\ne"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := escapeMarkdown(tc.in); got != tc.want {
				t.Errorf("escapeMarkdown(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestEscapeWikiLeavesAlertTextInert(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"the attack", attack, `@octocat \#1 <script> \[link\](http://evil) \*bold\* \{noformat\} \[\~accountid:123\] \|x\|`},
		{"link and image", "[click|http://evil] !http://evil/x.png!", `\[click\|http://evil\] \!http://evil/x.png\!`},
		{"text effects", "+u+ ^s^ -d- _e_ {{m}}", `\+u\+ \^s\^ \-d\- \_e\_ \{\{m\}\}`},
		{"heading at the start", "h1. Pwned", "&#104;1. Pwned"},
		{"quote at the start", "bq. quoted", "&#98;q. quoted"},
		{"newlines stay on one source line", "line one\nh1. two\n* three\n|| four", `line one\\h1. two\\\* three\\\|\| four`},
		{"backslash and ampersand", `C:\temp & \\server`, `C:&#92;temp &amp; &#92;&#92;server`},
		{"controls and bidi", "a\x00b\u202ec\td", "abc d"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := escapeWiki(tc.in); got != tc.want {
				t.Errorf("escapeWiki(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCodeBlocksCannotBeClosedFromInside(t *testing.T) {
	code := "x\n{noformat}\nh1. out\n{NOFORMAT:title=y}\n```\n````"
	if got, want := wikiCode(code), "{noformat}\nx\n{\u200bnoformat}\nh1. out\n{\u200bNOFORMAT:title=y}\n```\n````\n{noformat}"; got != want {
		t.Errorf("wikiCode\n got %q\nwant %q", got, want)
	}
	if got, want := markdownCode(code), "`````\n"+code+"\n`````"; got != want {
		t.Errorf("markdownCode\n got %q\nwant %q", got, want)
	}
}

func TestLinksComeOnlyFromLinkBlocks(t *testing.T) {
	const trusted = "https://soar.example.com/incidents/inc-1"
	blocks := []Block{
		{Heading: attack},
		{Text: attack + "\n" + attack},
		{Items: []string{attack}},
		{Code: attack},
		{Link: &Link{Text: attack, URL: trusted}},
	}
	t.Run("adf", func(t *testing.T) {
		raw, _ := json.Marshal(renderADF(blocks, nil, jiraBodyMax))
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		texts := 0
		walk(doc, func(node map[string]any) {
			for _, m := range asList(node["marks"]) {
				mark := m.(map[string]any)
				href, _ := mark["attrs"].(map[string]any)["href"].(string)
				if mark["type"] == "link" && href != trusted {
					t.Errorf("a link mark points to %q", href)
				}
			}
			if node["type"] == "text" && strings.Contains(node["text"].(string), "http://evil") {
				texts++
			}
			for k, v := range node {
				if s, ok := v.(string); ok && k != "text" && strings.Contains(s, "evil") {
					t.Errorf("alert text in %q of a %v node", k, node["type"])
				}
			}
		})
		if texts != 6 {
			t.Errorf("the alert text is in %d text nodes, want 6 (heading, two lines, item, code, link text)", texts)
		}
	})
	t.Run("markdown", func(t *testing.T) {
		md := renderMarkdown(blocks, nil, githubBodyMax)
		outside := strings.Replace(md, "```\n"+attack+"\n```", "", 1) // nothing renders in a fence
		if n := strings.Count(outside, "]("); n != 1 || !strings.Contains(outside, "]("+trusted+")") {
			t.Errorf("markdown has %d link destinations, want only the trusted one:\n%s", n, md)
		}
		if strings.Contains(outside, "@octocat") || regexp.MustCompile(`(^|[^\\])[<\[*|]`).MatchString(strings.ReplaceAll(outside, "["+escapeMarkdown(attack)+"]", "")) {
			t.Errorf("an unbroken mention or tag outside the code block:\n%s", md)
		}
	})
	t.Run("wiki", func(t *testing.T) {
		wiki := renderWiki(blocks, nil, jiraBodyMax)
		if n := strings.Count(wiki, "|http"); n != 1 || !strings.Contains(wiki, "|"+trusted+"]") {
			t.Errorf("wiki has %d links, want only the trusted one:\n%s", n, wiki)
		}
		if strings.Count(wiki, "{noformat}") != 2 {
			t.Errorf("the alert text closed or opened a noformat block:\n%s", wiki)
		}
	})
}

// walk calls f for every object in v.
func walk(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(v)
		for _, c := range v {
			walk(c, f)
		}
	case []any:
		for _, c := range v {
			walk(c, f)
		}
	}
}

// asList returns v as a JSON list, or nil.
func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func TestHugeBodiesAreTruncatedToFit(t *testing.T) {
	huge := []Block{{Text: "first"}, {Code: strings.Repeat(`C:\windows\x.dll `, 20000)}, {Text: "never shown"}}
	tail := []Block{{Text: "soar incident inc-1"}}
	md := renderMarkdown(huge, tail, githubBodyMax)
	wiki := renderWiki(huge, tail, jiraBodyMax)
	adf, _ := json.Marshal(renderADF(huge, tail, jiraBodyMax))
	for name, s := range map[string]string{"markdown": md, "wiki": wiki, "adf": string(adf)} {
		limit := jiraBodyMax
		if name == "markdown" {
			limit = githubBodyMax
		}
		if len(s) > limit {
			t.Errorf("%s: %d bytes, more than %d", name, len(s), limit)
		}
		if !strings.Contains(s, "first") || !strings.Contains(s, "soar truncated") || !strings.Contains(s, "inc") || strings.Contains(s, "never shown") {
			t.Errorf("%s: want the first block, the note and the tail, without the blocks after the cut", name)
		}
		if len(s) < limit/2 {
			t.Errorf("%s: only %d bytes of %d used", name, len(s), limit)
		}
	}
}

func TestTitlesAreOneShortLine(t *testing.T) {
	long := strings.Repeat("é", 300)
	tests := []struct {
		c    Content
		max  int
		want string
	}{
		{Content{Title: "a\nb\t c\x00"}, 255, "a b c"},
		{Content{IncidentID: "inc-1"}, 255, "soar incident inc-1"},
		{Content{Title: long}, 255, strings.Repeat("é", 254) + "…"},
		{Content{Title: strings.Repeat("😀", 200)}, 255, strings.Repeat("😀", 127) + "…"},
	}
	for _, tc := range tests {
		if got := title(tc.c, tc.max); got != tc.want {
			t.Errorf("title(%q) = %q, want %q", tc.c.Title, got, tc.want)
		}
	}
}
