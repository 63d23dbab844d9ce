package fakeslack

import (
	"encoding/json"
	"unicode/utf8"
)

// Block Kit limits the fake enforces, as Slack does, so that a builder that
// overflows one fails in tests rather than in production.
const (
	maxBlocks         = 50
	maxHeaderText     = 150
	maxSectionText    = 3000
	maxFields         = 10
	maxFieldText      = 2000
	maxActions        = 25
	maxButtonText     = 75
	maxButtonValue    = 2000
	maxContextElement = 10
	maxBlockID        = 255
)

type textObject struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type element struct {
	Type     string      `json:"type"`
	Text     *textObject `json:"text"`
	ActionID string      `json:"action_id"`
	Value    string      `json:"value"`
}

type block struct {
	Type     string          `json:"type"`
	BlockID  string          `json:"block_id"`
	Text     *textObject     `json:"text"`
	Fields   []textObject    `json:"fields"`
	Elements json.RawMessage `json:"elements"`
}

// validateBlocks returns "invalid_blocks" when raw is not a block list
// within Block Kit's limits, else "".
func validateBlocks(raw json.RawMessage) string {
	var blocks []block
	if err := json.Unmarshal(raw, &blocks); err != nil || len(blocks) > maxBlocks {
		return "invalid_blocks"
	}
	for _, b := range blocks {
		if !validBlock(b) {
			return "invalid_blocks"
		}
	}
	return ""
}

// validBlock checks one block's type and lengths.
func validBlock(b block) bool {
	if utf8.RuneCountInString(b.BlockID) > maxBlockID {
		return false
	}
	switch b.Type {
	case "header":
		return b.Text != nil && b.Text.Type == "plain_text" && within(b.Text.Text, maxHeaderText)
	case "section":
		return validSection(b)
	case "actions":
		var els []element
		if json.Unmarshal(b.Elements, &els) != nil || len(els) == 0 || len(els) > maxActions {
			return false
		}
		for _, e := range els {
			if e.Type == "button" && (e.Text == nil || !within(e.Text.Text, maxButtonText) || !within(e.Value, maxButtonValue)) {
				return false
			}
		}
		return true
	case "context":
		var els []json.RawMessage
		return json.Unmarshal(b.Elements, &els) == nil && len(els) > 0 && len(els) <= maxContextElement
	case "divider", "image", "rich_text", "markdown", "input", "file", "video":
		return true
	}
	return false
}

// validSection checks a section's text and fields.
func validSection(b block) bool {
	if b.Text == nil && len(b.Fields) == 0 {
		return false
	}
	if b.Text != nil && (b.Text.Text == "" || !within(b.Text.Text, maxSectionText)) {
		return false
	}
	if len(b.Fields) > maxFields {
		return false
	}
	for _, f := range b.Fields {
		if f.Text == "" || !within(f.Text, maxFieldText) {
			return false
		}
	}
	return true
}

// within reports whether s has at most n characters.
func within(s string, n int) bool { return utf8.RuneCountInString(s) <= n }
