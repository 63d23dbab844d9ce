package tickets_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/soar-dev/soar/connectors/tickets"
)

// attackText is alert text written to become mentions, links, markup and
// macros wherever it is rendered.
const attackText = "@octocat #1 <script> [link](http://evil) *bold* {noformat} [~accountid:123] |x|"

// attackContent is a ticket whose alert text attacks every markup.
func attackContent() tickets.Content {
	return tickets.Content{IncidentID: "inc-evil", Title: attackText, Body: []tickets.Block{{Text: attackText}}}
}

func TestAlertTextArrivesEscaped(t *testing.T) {
	ctx := context.Background()
	t.Run("github", func(t *testing.T) {
		g := newFakeGitHub(t)
		if _, err := newGitHub(t, g).Create(ctx, attackContent()); err != nil {
			t.Fatal(err)
		}
		var sent struct{ Title, Body string }
		if err := json.Unmarshal(g.requests()[0].Body, &sent); err != nil {
			t.Fatal(err)
		}
		if want := "@\u200doctocat #\u200d1 <script> [link](http://evil) *bold* {noformat} [~accountid:123] |x|"; sent.Title != want {
			t.Errorf("title %q, want %q (titles are not markdown, but references still notify)", sent.Title, want)
		}
		if want := "@\u200doctocat \\#\u200d1 \\<script\\> \\[link\\]\\(http://evil\\) \\*bold\\* \\{noformat\\} \\[\\~accountid:123\\] \\|x\\|\n\n"; !strings.HasPrefix(sent.Body, want) {
			t.Errorf("body %q, want it to start with %q", sent.Body, want)
		}
	})
	t.Run("jira data center", func(t *testing.T) {
		j := newFakeJira(t, false)
		if _, err := newJira(t, j).Create(ctx, attackContent()); err != nil {
			t.Fatal(err)
		}
		f := j.all()[0].fields
		if f["summary"] != attackText {
			t.Errorf("summary %q: Jira shows summaries as plain text, want it unchanged", f["summary"])
		}
		if want := `@octocat \#1 <script> \[link\](http://evil) \*bold\* \{noformat\} \[\~accountid:123\] \|x\|` + "\n\n"; !strings.HasPrefix(f["description"].(string), want) {
			t.Errorf("description %q, want it to start with %q", f["description"], want)
		}
	})
	t.Run("jira cloud", func(t *testing.T) {
		j := newFakeJira(t, true)
		if _, err := newJira(t, j).Create(ctx, attackContent()); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(j.all()[0].fields["description"])
		var doc struct {
			Content []struct {
				Type    string
				Content []struct {
					Type, Text string
					Marks      []any
				}
			}
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		p := doc.Content[0]
		if p.Type != "paragraph" || len(p.Content) != 1 || p.Content[0].Type != "text" || p.Content[0].Text != attackText || p.Content[0].Marks != nil {
			t.Errorf("description %s: want the alert text as one plain text node", raw)
		}
	})
}
