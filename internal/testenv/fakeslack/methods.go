package fakeslack

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxTextLen is chat.postMessage's limit on text.
const maxTextLen = 40000

// chatPostMessage posts a message or a thread reply.
func (s *Server) chatPostMessage(form url.Values) map[string]any {
	channel, ok := s.resolveChannel(form.Get("channel"))
	if !ok {
		return slackError("channel_not_found")
	}
	m := &Message{
		Channel:   channel,
		ThreadTS:  form.Get("thread_ts"),
		Text:      form.Get("text"),
		Broadcast: isTrue(form.Get("reply_broadcast")),
	}
	if code := s.fillContent(m, form); code != "" {
		return slackError(code)
	}
	if m.Text == "" && len(m.Blocks) == 0 {
		return slackError("no_text")
	}
	m.TS = s.nextTS()
	s.messages[channel] = append(s.messages[channel], m)
	return map[string]any{"ok": true, "channel": channel, "ts": m.TS, "message": messageJSON(m, true)}
}

// chatUpdate replaces the text, blocks and metadata of a message.
func (s *Server) chatUpdate(form url.Values) map[string]any {
	channel, ok := s.resolveChannel(form.Get("channel"))
	if !ok {
		return slackError("channel_not_found")
	}
	m := s.find(channel, form.Get("ts"))
	if m == nil {
		return slackError("message_not_found")
	}
	updated := *m
	if form.Has("text") {
		updated.Text = form.Get("text")
	}
	if code := s.fillContent(&updated, form); code != "" {
		return slackError(code)
	}
	updated.Updated++
	*m = updated
	return map[string]any{"ok": true, "channel": channel, "ts": m.TS, "text": m.Text, "message": messageJSON(m, true)}
}

// chatPostEphemeral shows a message to one user.
func (s *Server) chatPostEphemeral(form url.Values) map[string]any {
	channel, ok := s.resolveChannel(form.Get("channel"))
	if !ok {
		return slackError("channel_not_found")
	}
	if form.Get("user") == "" {
		return slackError("user_not_in_channel")
	}
	m := &Message{Channel: channel, Text: form.Get("text"), Ephemeral: true, User: form.Get("user"), ThreadTS: form.Get("thread_ts")}
	if code := s.fillContent(m, form); code != "" {
		return slackError(code)
	}
	if m.Text == "" && len(m.Blocks) == 0 {
		return slackError("no_text")
	}
	m.TS = s.nextTS()
	s.messages[channel] = append(s.messages[channel], m)
	return map[string]any{"ok": true, "message_ts": m.TS}
}

// fillContent sets m's blocks and metadata from form, when given, and
// returns Slack's error code for invalid ones.
func (s *Server) fillContent(m *Message, form url.Values) string {
	if utf8.RuneCountInString(form.Get("text")) > maxTextLen {
		return "msg_too_long"
	}
	if form.Has("blocks") {
		raw := json.RawMessage(form.Get("blocks"))
		if code := validateBlocks(raw); code != "" {
			return code
		}
		m.Blocks = raw
	}
	if form.Has("metadata") {
		var meta map[string]any
		if err := json.Unmarshal([]byte(form.Get("metadata")), &meta); err != nil {
			return "invalid_metadata_format"
		}
		if _, ok := meta["event_type"].(string); !ok {
			return "invalid_metadata_format"
		}
		m.Metadata = meta
	}
	return ""
}

// find returns the non-ephemeral message ts of channel.
func (s *Server) find(channel, ts string) *Message {
	for _, m := range s.messages[channel] {
		if m.TS == ts && !m.Ephemeral {
			return m
		}
	}
	return nil
}

// conversationsHistory lists a channel's top-level messages, newest first.
func (s *Server) conversationsHistory(form url.Values) map[string]any {
	channel, ok := s.resolveChannel(form.Get("channel"))
	if !ok {
		return slackError("channel_not_found")
	}
	var msgs []*Message
	for _, m := range s.messages[channel] {
		topLevel := m.ThreadTS == "" || m.ThreadTS == m.TS || m.Broadcast
		if !m.Ephemeral && topLevel && inRange(m.TS, form) {
			msgs = append(msgs, m)
		}
	}
	slices.Reverse(msgs)
	return page(msgs, form)
}

// conversationsReplies lists a thread: its parent, then the replies oldest
// first.
func (s *Server) conversationsReplies(form url.Values) map[string]any {
	channel, ok := s.resolveChannel(form.Get("channel"))
	if !ok {
		return slackError("channel_not_found")
	}
	ts := form.Get("ts")
	parent := s.find(channel, ts)
	if parent == nil {
		return slackError("thread_not_found")
	}
	msgs := []*Message{parent}
	for _, m := range s.messages[channel] {
		if !m.Ephemeral && m.ThreadTS == ts && m.TS != ts && inRange(m.TS, form) {
			msgs = append(msgs, m)
		}
	}
	return page(msgs, form)
}

// conversationsList lists the channels set with SetChannel.
func (s *Server) conversationsList(url.Values) map[string]any {
	names := make([]string, 0, len(s.channels))
	for name := range s.channels {
		names = append(names, name)
	}
	slices.Sort(names)
	chans := make([]map[string]any, 0, len(names))
	for _, name := range names {
		chans = append(chans, map[string]any{"id": s.channels[name], "name": name, "is_channel": true, "is_member": true})
	}
	return map[string]any{"ok": true, "channels": chans, "response_metadata": map[string]any{"next_cursor": ""}}
}

// inRange reports whether ts is within the request's oldest and latest.
func inRange(ts string, form url.Values) bool {
	inclusive := isTrue(form.Get("inclusive"))
	if oldest := form.Get("oldest"); oldest != "" {
		if c := compareTS(ts, oldest); c < 0 || (c == 0 && !inclusive) {
			return false
		}
	}
	if latest := form.Get("latest"); latest != "" {
		if c := compareTS(ts, latest); c > 0 || (c == 0 && !inclusive) {
			return false
		}
	}
	return true
}

// page answers one page of msgs after the request's cursor, with metadata
// only when include_all_metadata is set.
func page(msgs []*Message, form url.Values) map[string]any {
	limit, _ := strconv.Atoi(form.Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	start, _ := strconv.Atoi(strings.TrimPrefix(form.Get("cursor"), "offset:"))
	start = min(max(start, 0), len(msgs))
	end := min(start+limit, len(msgs))
	withMeta := isTrue(form.Get("include_all_metadata"))
	out := make([]map[string]any, 0, end-start)
	for _, m := range msgs[start:end] {
		out = append(out, messageJSON(m, withMeta))
	}
	next := ""
	if end < len(msgs) {
		next = "offset:" + strconv.Itoa(end)
	}
	return map[string]any{
		"ok": true, "messages": out, "has_more": next != "",
		"response_metadata": map[string]any{"next_cursor": next},
	}
}

// usergroupsUsersList lists a user group's members.
func (s *Server) usergroupsUsersList(form url.Values) map[string]any {
	members, ok := s.groups[form.Get("usergroup")]
	if !ok {
		return slackError("no_such_subteam")
	}
	return map[string]any{"ok": true, "users": append([]string{}, members...)}
}

// usersInfo describes a user.
func (s *Server) usersInfo(form url.Values) map[string]any {
	u, ok := s.users[form.Get("user")]
	if !ok {
		return slackError("user_not_found")
	}
	return map[string]any{"ok": true, "user": map[string]any{
		"id": u.ID, "team_id": u.Team, "name": u.Name, "real_name": u.Name,
		"profile": map[string]any{"email": u.Email, "real_name": u.Name, "display_name": u.Name},
	}}
}

// usersLookupByEmail finds a member by e-mail, as Slack does (ignoring
// case).
func (s *Server) usersLookupByEmail(form url.Values) map[string]any {
	for _, u := range s.users {
		if u.Email != "" && strings.EqualFold(u.Email, form.Get("email")) {
			return s.usersInfo(url.Values{"user": {u.ID}})
		}
	}
	return slackError("users_not_found")
}

// authTest describes the bot.
func (s *Server) authTest(url.Values) map[string]any {
	return map[string]any{
		"ok": true, "url": "https://" + TeamName + ".slack.com/", "team": TeamName, "user": "soar",
		"team_id": TeamID, "user_id": BotUserID, "bot_id": BotID,
	}
}

// messageJSON renders m as Slack's message object.
func messageJSON(m *Message, withMeta bool) map[string]any {
	out := map[string]any{
		"type": "message", "ts": m.TS, "text": m.Text,
		"user": BotUserID, "bot_id": BotID, "app_id": AppID, "team": TeamID,
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	}
	if len(m.Blocks) > 0 {
		out["blocks"] = m.Blocks
	}
	if withMeta && m.Metadata != nil {
		out["metadata"] = m.Metadata
	}
	if m.Updated > 0 {
		out["edited"] = map[string]any{"user": BotUserID, "ts": m.TS}
	}
	return out
}

// compareTS compares Slack timestamps as numbers.
func compareTS(a, b string) int {
	as, af := splitTS(a)
	bs, bf := splitTS(b)
	switch {
	case as != bs:
		return cmpInt(as, bs)
	default:
		return cmpInt(af, bf)
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// splitTS splits a timestamp into seconds and microseconds.
func splitTS(ts string) (sec, frac int64) {
	s, f, _ := strings.Cut(ts, ".")
	sec, _ = strconv.ParseInt(s, 10, 64)
	frac, _ = strconv.ParseInt((f + "000000")[:6], 10, 64)
	return sec, frac
}

// isTrue reads Slack's boolean parameters: "1" or "true".
func isTrue(v string) bool { return v == "1" || strings.EqualFold(v, "true") }
