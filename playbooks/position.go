package playbooks

import (
	"iter"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// exprPosition returns the 1-based line and column in the YAML file of the
// character at offset (counted in runes, as expr's file.Location.From is;
// expr derives its own Line and Column from it) in the value of scalar node
// n; lines are the file's lines.
//
// expr reports positions within the expression and yaml.v3 reports where a
// scalar starts, so exprPosition walks the scalar's lines in the file and
// counts every line break of the value as one character. For a single-line
// scalar that gives line = scalar line and column = scalar column +
// expression column (0-based), +1 past the opening quote of a quoted scalar.
// It is also exact for literal block scalars (|), line for line, and for
// plain multi-line scalars and folded block scalars (>) whose line breaks
// YAML folds into single spaces. It is approximate in three cases: escape
// sequences in quoted scalars (each escape before the position moves the
// reported column left by the escape's extra length), blank or
// more-indented lines inside folded and plain multi-line scalars, and block
// scalars with an explicit indentation indicator such as "|4" (the
// indentation is taken from the first non-blank line).
func exprPosition(n *yaml.Node, lines []string, offset int) (line, column int) {
	line, column = n.Line, n.Column
	for s := range scalarSegments(n, lines) {
		if offset <= s.length {
			return s.line, s.column + offset
		}
		offset -= s.length + 1
		line, column = s.line, s.column+s.length
	}
	// The offset lies past the scalar as far as the walk could tell, which
	// only an approximation can cause: point at the last character seen.
	return line, column
}

// segment is the part of one file line that belongs to a scalar's value.
type segment struct {
	line, column int // 1-based position of the segment's first character
	length       int // in runes
}

// scalarSegments yields the file lines that make up scalar n, from the first.
func scalarSegments(n *yaml.Node, lines []string) iter.Seq[segment] {
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return blockSegments(n, lines)
	}
	return flowSegments(n, lines)
}

// blockSegments yields the content lines of a block scalar: the lines after
// the header ("|" or ">"), with the block's indentation removed, up to the
// first non-blank line that is indented less.
func blockSegments(n *yaml.Node, lines []string) iter.Seq[segment] {
	return func(yield func(segment) bool) {
		indent := -1
		for i := n.Line; i < len(lines); i++ { // n.Line is the header's line, 1-based
			text := strings.TrimSuffix(lines[i], "\r")
			content := strings.TrimLeft(text, " ")
			if content == "" {
				if !yield(segment{line: i + 1, column: max(indent, 0) + 1}) {
					return
				}
				continue
			}
			lead := len(text) - len(content)
			if indent < 0 {
				indent = lead
			}
			if lead < indent {
				return
			}
			s := segment{line: i + 1, column: indent + 1, length: utf8.RuneCountInString(text[indent:])}
			if !yield(s) {
				return
			}
		}
	}
}

// flowSegments yields the lines of a plain or quoted scalar: the rest of the
// first line from the value's first character, then each following line
// without its indentation. It cannot tell where the scalar ends, which does
// not matter because exprPosition stops at the offset it looks for.
func flowSegments(n *yaml.Node, lines []string) iter.Seq[segment] {
	return func(yield func(segment) bool) {
		if n.Line < 1 || n.Line > len(lines) {
			return
		}
		start := n.Column // 1-based column of the first character of the value
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			start++
		}
		first := strings.TrimRight(strings.TrimSuffix(lines[n.Line-1], "\r"), " \t")
		length := max(utf8.RuneCountInString(first)-(start-1), 0)
		if !yield(segment{line: n.Line, column: start, length: length}) {
			return
		}
		for i := n.Line; i < len(lines); i++ {
			text := strings.TrimRight(strings.TrimSuffix(lines[i], "\r"), " \t")
			content := strings.TrimLeft(text, " \t")
			lead := len(text) - len(content)
			if !yield(segment{line: i + 1, column: lead + 1, length: utf8.RuneCountInString(content)}) {
				return
			}
		}
	}
}
