package slack

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	goslack "github.com/slack-go/slack"
)

// CacheTTL is how long GroupMembers and User answers are reused. Approver
// checks run on every click; five minutes keeps them within Slack's rate
// limits while a membership change still takes effect within one approval.
const CacheTTL = 5 * time.Minute

// metadataEventType is the event_type of the message metadata soar attaches
// to its messages.
const metadataEventType = "soar_incident"

// findPageLimit and findMaxPages bound how much history Find reads: 1000
// messages since the first attempt is far more than an incident thread holds.
const (
	findPageLimit = 200
	findMaxPages  = 5
)

// Config configures the Web API client. Secrets are never logged and never
// appear in error messages.
type Config struct {
	// BotToken is the soar app's bot token (xoxb-...).
	BotToken string
	// APIURL is the Web API base URL, ending in "/"; default
	// "https://slack.com/api/". Tests point it at fakeslack.
	APIURL string
	// HTTPClient sends the requests; default: a client with a 30s timeout.
	HTTPClient *http.Client
}

// Client calls the Slack Web API for soar. It is safe for concurrent use.
// It never retries or sleeps by itself: a failed call returns an *Error at
// once and the caller (Temporal) decides when to try again.
type Client struct {
	api      *goslack.Client
	token    string
	groups   *ttlCache[[]string]
	users    *ttlCache[User]
	channels *ttlCache[string] // channel name -> ID
}

// New returns a client for cfg. It does not contact Slack; use AuthTest for
// that.
func New(cfg Config) *Client {
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = goslack.APIURL
	}
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	// slack-go retries nothing unless OptionRetry is given; it is not, so a
	// 429 comes straight back with its Retry-After.
	api := goslack.New(cfg.BotToken,
		goslack.OptionAPIURL(apiURL),
		goslack.OptionHTTPClient(httpClient),
	)
	return &Client{
		api:      api,
		token:    cfg.BotToken,
		groups:   newTTLCache[[]string](CacheTTL, time.Now),
		users:    newTTLCache[User](CacheTTL, time.Now),
		channels: newTTLCache[string](CacheTTL, time.Now),
	}
}

// MessageRef locates a posted message.
type MessageRef struct {
	// Channel is the channel ID as Slack returned it.
	Channel string `json:"channel"`
	// TS is the message's timestamp, its ID within the channel.
	TS string `json:"ts"`
}

// Metadata is attached to every message soar posts (Slack message metadata
// with event_type "soar_incident" and event_payload {"incident", "kind",
// "key"}), so that a retried post can find the message an earlier attempt
// posted instead of posting twice.
type Metadata struct{ Incident, Kind, Key string }

// isZero reports whether no metadata was set.
func (m Metadata) isZero() bool { return m == Metadata{} }

// slackMetadata renders m as Slack message metadata.
func (m Metadata) slackMetadata() goslack.SlackMetadata {
	return goslack.SlackMetadata{
		EventType: metadataEventType,
		EventPayload: map[string]any{
			"incident": m.Incident,
			"kind":     m.Kind,
			"key":      m.Key,
		},
	}
}

// matches reports whether a message's metadata is m.
func (m Metadata) matches(sm goslack.SlackMetadata) bool {
	if sm.EventType != metadataEventType {
		return false
	}
	str := func(k string) string { s, _ := sm.EventPayload[k].(string); return s }
	return str("incident") == m.Incident && str("kind") == m.Kind && str("key") == m.Key
}

// Message is a message soar posts or updates.
type Message struct {
	// Text is the notification and fallback text, already escaped by the
	// builder that made it.
	Text string
	// Blocks is the Block Kit layout.
	Blocks []goslack.Block
	// Metadata identifies the message for Find.
	Metadata Metadata
	// Broadcast also shows a thread reply in the channel (reply_broadcast).
	Broadcast bool
}

// options returns the chat.postMessage / chat.update options common to m.
// Link and media unfurling stay off: alert content may hold URLs, and Slack
// would fetch them.
func (m Message) options() []goslack.MsgOption {
	opts := []goslack.MsgOption{
		goslack.MsgOptionText(m.Text, false),
		goslack.MsgOptionDisableLinkUnfurl(),
		goslack.MsgOptionDisableMediaUnfurl(),
	}
	if !m.Metadata.isZero() {
		opts = append(opts, goslack.MsgOptionMetadata(m.Metadata.slackMetadata()))
	}
	return opts
}

// Post posts m to channel (an ID or #name), in the thread threadTS when it is
// set. It is not idempotent: a retry after an ambiguous failure (a timeout)
// may post twice, so callers first look for an earlier attempt's message with
// Find.
func (c *Client) Post(ctx context.Context, channel, threadTS string, m Message) (MessageRef, error) {
	const method = "chat.postMessage"
	opts := m.options()
	if len(m.Blocks) > 0 {
		opts = append(opts, goslack.MsgOptionBlocks(m.Blocks...))
	}
	if threadTS != "" {
		opts = append(opts, goslack.MsgOptionTS(threadTS))
		if m.Broadcast {
			opts = append(opts, goslack.MsgOptionBroadcast())
		}
	}
	ch, ts, err := c.api.PostMessageContext(ctx, channel, opts...)
	if err != nil {
		return MessageRef{}, classify(method, c.token, err)
	}
	if !isChannelID(channel) {
		c.channels.put(channelName(channel), ch)
	}
	return MessageRef{Channel: ch, TS: ts}, nil
}

// Update replaces the text, blocks and metadata of the message ref. It is
// idempotent.
func (c *Client) Update(ctx context.Context, ref MessageRef, m Message) error {
	const method = "chat.update"
	// An empty block list is sent as [] so that blocks of the old version
	// do not survive the update.
	opts := append(m.options(), goslack.MsgOptionBlocks(m.Blocks...))
	if _, _, _, err := c.api.UpdateMessageContext(ctx, ref.Channel, ref.TS, opts...); err != nil {
		return classify(method, c.token, err)
	}
	return nil
}

// Find returns the newest message in channel posted since since whose
// metadata is meta: in the thread threadTS (conversations.replies) when it is
// set, else in the channel (conversations.history). ok is false when there is
// none. It only reads (at most 1000 messages since since), so it is safe to
// call on every retry.
//
// The history methods need a channel ID. A #name is resolved from this
// client's earlier posts to it or else through conversations.list, which
// needs the channels:read (and, for private channels, groups:read) scope;
// configuring channel IDs avoids that.
func (c *Client) Find(ctx context.Context, channel, threadTS string, meta Metadata, since time.Time) (ref MessageRef, ok bool, err error) {
	channel, err = c.channelID(ctx, channel)
	if err != nil {
		return MessageRef{}, false, err
	}
	oldest := formatTS(since)
	var newest string
	consider := func(msgs []goslack.Message) {
		for _, m := range msgs {
			if meta.matches(m.Metadata) && tsLess(oldest, m.Timestamp, true) && (newest == "" || tsLess(newest, m.Timestamp, false)) {
				newest = m.Timestamp
			}
		}
	}
	if threadTS != "" {
		err = c.findInThread(ctx, channel, threadTS, oldest, consider)
	} else {
		err = c.findInHistory(ctx, channel, oldest, consider)
	}
	if err != nil || newest == "" {
		return MessageRef{}, false, err
	}
	return MessageRef{Channel: channel, TS: newest}, true, nil
}

// findInThread pages through conversations.replies, handing each page to
// consider.
func (c *Client) findInThread(ctx context.Context, channel, threadTS, oldest string, consider func([]goslack.Message)) error {
	params := &goslack.GetConversationRepliesParameters{
		ChannelID: channel, Timestamp: threadTS, Oldest: oldest,
		Inclusive: true, Limit: findPageLimit, IncludeAllMetadata: true,
	}
	for range findMaxPages {
		msgs, _, next, err := c.api.GetConversationRepliesContext(ctx, params)
		if err != nil {
			return classify("conversations.replies", c.token, err)
		}
		consider(msgs)
		if next == "" {
			return nil
		}
		params.Cursor = next
	}
	return nil
}

// findInHistory pages through conversations.history, handing each page to
// consider.
func (c *Client) findInHistory(ctx context.Context, channel, oldest string, consider func([]goslack.Message)) error {
	params := &goslack.GetConversationHistoryParameters{
		ChannelID: channel, Oldest: oldest,
		Inclusive: true, Limit: findPageLimit, IncludeAllMetadata: true,
	}
	for range findMaxPages {
		resp, err := c.api.GetConversationHistoryContext(ctx, params)
		if err != nil {
			return classify("conversations.history", c.token, err)
		}
		consider(resp.Messages)
		if !resp.HasMore || resp.ResponseMetaData.NextCursor == "" {
			return nil
		}
		params.Cursor = resp.ResponseMetaData.NextCursor
	}
	return nil
}

// channelID returns the ID of channel, which is an ID or a (#)name.
func (c *Client) channelID(ctx context.Context, channel string) (string, error) {
	if isChannelID(channel) {
		return channel, nil
	}
	name := channelName(channel)
	if id, ok := c.channels.get(name); ok {
		return id, nil
	}
	params := &goslack.GetConversationsParameters{
		Types: []string{"public_channel", "private_channel"}, ExcludeArchived: true, Limit: 1000,
	}
	for range channelListMaxPages {
		chans, next, err := c.api.GetConversationsContext(ctx, params)
		if err != nil {
			return "", classify("conversations.list", c.token, err)
		}
		for _, ch := range chans {
			if ch.Name == name {
				c.channels.put(name, ch.ID)
				return ch.ID, nil
			}
		}
		if next == "" {
			break
		}
		params.Cursor = next
	}
	return "", &Error{Method: "conversations.list", Code: "channel_not_found", Hint: hints["channel_not_found"]}
}

// channelListMaxPages bounds the name lookup to 20000 channels.
const channelListMaxPages = 20

// isChannelID reports whether channel is a conversation ID (C..., G...,
// D...) rather than a name: names are lower case.
func isChannelID(channel string) bool { return isSlackID(channel, "CGD") }

// channelName strips the # of a channel name.
func channelName(channel string) string { return strings.TrimPrefix(channel, "#") }

// PostEphemeral shows text (mrkdwn, escaped by the caller) to user only, in
// channel. Slack does not keep ephemeral messages, so there is nothing to
// find on a retry; a retry may show it twice.
func (c *Client) PostEphemeral(ctx context.Context, channel, user, text string) error {
	const method = "chat.postEphemeral"
	if _, err := c.api.PostEphemeralContext(ctx, channel, user, goslack.MsgOptionText(text, false)); err != nil {
		return classify(method, c.token, err)
	}
	return nil
}

// GroupMembers lists the member IDs of the user group (S...) through
// usergroups.users.list. Answers are cached for CacheTTL; the caller may keep
// the returned slice.
func (c *Client) GroupMembers(ctx context.Context, group string) ([]string, error) {
	if members, ok := c.groups.get(group); ok {
		return slices.Clone(members), nil
	}
	members, err := c.api.GetUserGroupMembersContext(ctx, group)
	if err != nil {
		return nil, classify("usergroups.users.list", c.token, err)
	}
	c.groups.put(group, slices.Clone(members))
	return members, nil
}

// User is what soar needs to know about a Slack user.
type User struct {
	// ID is the user ID (U... or W...).
	ID string
	// Name is the user's handle.
	Name string
	// Email needs the users:read.email scope; "" without it.
	Email string
	// Team is the user's team (workspace) ID.
	Team string
}

// User returns the user id through users.info. Answers are cached for
// CacheTTL.
func (c *Client) User(ctx context.Context, id string) (User, error) {
	if u, ok := c.users.get(id); ok {
		return u, nil
	}
	su, err := c.api.GetUserInfoContext(ctx, id)
	if err != nil {
		return User{}, classify("users.info", c.token, err)
	}
	u := userOf(su)
	c.users.put(id, u)
	return u, nil
}

func userOf(su *goslack.User) User {
	return User{ID: su.ID, Name: su.Name, Email: su.Profile.Email, Team: su.TeamID}
}

// UserByEmail returns the member whose e-mail is email, through
// users.lookupByEmail (scope users:read.email). A found member is cached for
// CacheTTL; Slack's users_not_found is an *Error with that Code.
func (c *Client) UserByEmail(ctx context.Context, email string) (User, error) {
	key := "email:" + strings.ToLower(email)
	if u, ok := c.users.get(key); ok {
		return u, nil
	}
	su, err := c.api.GetUserByEmailContext(ctx, email)
	if err != nil {
		return User{}, classify("users.lookupByEmail", c.token, err)
	}
	u := userOf(su)
	c.users.put(key, u)
	return u, nil
}

// AuthTest checks the token with auth.test, for readiness checks, and returns
// the team ID and the bot's user ID.
func (c *Client) AuthTest(ctx context.Context) (team, user string, err error) {
	resp, err := c.api.AuthTestContext(ctx)
	if err != nil {
		return "", "", classify("auth.test", c.token, err)
	}
	return resp.TeamID, resp.UserID, nil
}

// formatTS renders t as a Slack timestamp ("1700000000.000100"), rounded
// down to the microsecond so that a message posted at t is not after it.
func formatTS(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	us := t.UnixMicro()
	return strconv.FormatInt(us/1e6, 10) + "." + leftPad(strconv.FormatInt(us%1e6, 10), 6)
}

// leftPad pads s with zeros to n characters.
func leftPad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return strings.Repeat("0", n-len(s)) + s
}

// tsLess reports whether Slack timestamp a is before b (or equal, with
// orEqual). An empty a is before everything. Timestamps are compared as
// numbers: seconds, then the fraction.
func tsLess(a, b string, orEqual bool) bool {
	if a == "" {
		return true
	}
	as, af := splitTS(a)
	bs, bf := splitTS(b)
	if as != bs {
		return as < bs
	}
	if orEqual {
		return af <= bf
	}
	return af < bf
}

// splitTS splits a Slack timestamp into seconds and microseconds; garbage
// yields zeros.
func splitTS(ts string) (sec, frac int64) {
	s, f, _ := strings.Cut(ts, ".")
	sec, _ = strconv.ParseInt(s, 10, 64)
	f = (f + "000000")[:6]
	frac, _ = strconv.ParseInt(f, 10, 64)
	return sec, frac
}
