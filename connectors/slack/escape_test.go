package slack_test

import (
	"testing"

	"github.com/soar-dev/soar/connectors/slack"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain text is unchanged", "kube-system/coredns-7d9f", "kube-system/coredns-7d9f"},
		{"a channel broadcast shows as typed", "<!channel>", "&lt;!channel&gt;"},
		{"a user mention shows as typed", "<@U123>", "&lt;@U123&gt;"},
		{"a link shows as typed", "<https://evil.example|click>", "&lt;https://evil.example|click&gt;"},
		{"an entity is escaped again", "&amp;", "&amp;amp;"},
		{"bold, italic, strike and code format nothing", "*b* _i_ ~s~ `c`", "∗b∗ ˍiˍ ∼s∼ ˋcˋ"},
		{"@here gets a zero-width space", "@here and @Channel and @everyone", "@\u200bhere and @\u200bChannel and @\u200beveryone"},
		{"an e-mail address keeps its @", "alice@example.com", "alice@example.com"},
		{"a quote at a line start quotes nothing", "> quoted\nnot > quoted\n>again", "\u00ad&gt; quoted\nnot &gt; quoted\n\u00ad&gt;again"},
		{"non-ASCII survives", "pod ü ✓ 日本", "pod ü ✓ 日本"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := slack.Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
