package fakeslack

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// Signature returns Slack's v0 request signature of body sent at ts:
// "v0=" + hex(HMAC-SHA256(secret, "v0:<unix ts>:<body>")).
func Signature(secret string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + strconv.FormatInt(ts.Unix(), 10) + ":"))
	m.Write(body)
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

// SignedRequest returns a POST of body to url signed as Slack signs
// interaction requests (X-Slack-Request-Timestamp, X-Slack-Signature). It
// can be sent with an http.Client or handed to a handler directly.
func SignedRequest(t testing.TB, url, secret string, ts time.Time, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("fakeslack: signed request: %v", err)
	}
	req.RemoteAddr = "192.0.2.1:1234"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("X-Slack-Signature", Signature(secret, ts, body))
	return req
}

// ClickPayload returns the block_actions payload Slack sends when user
// clicks the button actionID, carrying value, on the message messageTS in
// channel. Socket Mode delivers it as is; HTTP as ClickBody.
func ClickPayload(user User, channel, messageTS, actionID, value string) map[string]any {
	team := user.Team
	if team == "" {
		team = TeamID
	}
	actionTS := strconv.FormatFloat(float64(time.Now().UnixMicro())/1e6, 'f', 6, 64)
	return map[string]any{
		"type":       "block_actions",
		"user":       map[string]any{"id": user.ID, "username": user.Name, "name": user.Name, "team_id": team},
		"api_app_id": AppID,
		"token":      "verification-token-is-deprecated",
		"container": map[string]any{
			"type": "message", "message_ts": messageTS, "channel_id": channel, "is_ephemeral": false,
		},
		"trigger_id":            "1234567890.123456.fakeslacktrigger",
		"team":                  map[string]any{"id": team, "domain": TeamName},
		"is_enterprise_install": false,
		"channel":               map[string]any{"id": channel, "name": "fake-channel"},
		"message":               map[string]any{"type": "message", "ts": messageTS, "user": BotUserID, "bot_id": BotID},
		"response_url":          "https://hooks.slack.com/actions/" + team + "/1/fake",
		"actions": []map[string]any{{
			"action_id": actionID,
			"block_id":  "soar_approval_actions",
			"value":     value,
			"type":      "button",
			"action_ts": actionTS,
			"text":      map[string]any{"type": "plain_text", "text": "button", "emoji": true},
		}},
		"state": map[string]any{"values": map[string]any{}},
	}
}

// ClickBody is the HTTP body Slack posts for the click ClickPayload
// describes: "payload=" and the URL-encoded JSON.
func ClickBody(t testing.TB, user User, channel, messageTS, actionID, value string) []byte {
	t.Helper()
	js, err := json.Marshal(ClickPayload(user, channel, messageTS, actionID, value))
	if err != nil {
		t.Fatalf("fakeslack: marshal click: %v", err)
	}
	return []byte("payload=" + url.QueryEscape(string(js)))
}
