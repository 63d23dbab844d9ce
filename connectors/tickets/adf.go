package tickets

import (
	"encoding/json"
	"strings"
)

// adfDoc is an Atlassian Document Format document, the body of Jira Cloud's
// descriptions and comments (REST v3).
type adfDoc struct {
	Type    string    `json:"type"`
	Version int       `json:"version"`
	Content []adfNode `json:"content"`
}

// adfNode is a node of an ADF document. Untrusted text only ever goes into
// Text of a "text" node, which Jira shows as is: no markup, mention or link
// can come out of it.
type adfNode struct {
	Type    string         `json:"type"`
	Attrs   map[string]any `json:"attrs,omitempty"`
	Content []adfNode      `json:"content,omitempty"`
	Text    string         `json:"text,omitempty"`
	Marks   []adfMark      `json:"marks,omitempty"`
}

// adfMark formats a text node; soar only uses "link", for Link blocks.
type adfMark struct {
	Type  string         `json:"type"`
	Attrs map[string]any `json:"attrs,omitempty"`
}

// adfText returns text as text nodes separated by hard breaks, one per line.
// ADF forbids empty text nodes, so empty lines become only a break.
func adfText(s string) []adfNode {
	var out []adfNode
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			out = append(out, adfNode{Type: "hardBreak"})
		}
		if line != "" {
			out = append(out, adfNode{Type: "text", Text: line})
		}
	}
	return out
}

// adfParagraph returns a paragraph of nodes.
func adfParagraph(nodes ...adfNode) adfNode {
	return adfNode{Type: "paragraph", Content: nodes}
}

// adfBlock renders b as ADF nodes. A block with several fields set renders
// each of them, in the order of Block's fields.
func adfBlock(b Block) []adfNode {
	var out []adfNode
	if h := oneLine(b.Heading); h != "" {
		out = append(out, adfNode{Type: "heading", Attrs: map[string]any{"level": 3}, Content: adfText(h)})
	}
	if t := strings.TrimSpace(strings.ReplaceAll(plain(b.Text), "\t", " ")); t != "" {
		out = append(out, adfParagraph(adfText(t)...))
	}
	if len(b.Items) > 0 {
		list := adfNode{Type: "bulletList"}
		for _, it := range b.Items {
			item := adfParagraph()
			if t := oneLine(it); t != "" {
				item.Content = adfText(t)
			}
			list.Content = append(list.Content, adfNode{Type: "listItem", Content: []adfNode{item}})
		}
		out = append(out, list)
	}
	if code := strings.TrimSuffix(plain(b.Code), "\n"); code != "" {
		out = append(out, adfNode{Type: "codeBlock", Content: []adfNode{{Type: "text", Text: code}}})
	}
	if b.Link != nil && b.Link.URL != "" {
		link := adfMark{Type: "link", Attrs: map[string]any{"href": b.Link.URL}}
		out = append(out, adfParagraph(adfNode{Type: "text", Text: linkText(*b.Link), Marks: []adfMark{link}}))
	}
	return out
}

// renderADF renders blocks, then tail, as an ADF document whose JSON is at
// most limit bytes.
func renderADF(blocks, tail []Block, limit int) adfDoc {
	doc := adfDoc{Type: "doc", Version: 1, Content: []adfNode{}}
	for _, nodes := range fit(blocks, tail, limit, func(b Block) ([]adfNode, int) {
		nodes := adfBlock(b)
		j, _ := json.Marshal(nodes)
		return nodes, len(j)
	}) {
		doc.Content = append(doc.Content, nodes...)
	}
	return doc
}
