package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	// signatureWindow is how far a request's timestamp may be from now, as
	// Slack recommends.
	signatureWindow = 5 * time.Minute
	// replayMemory is how long after its timestamp a request's signature is
	// remembered: past the window, so a replay is stale before it is
	// forgotten.
	replayMemory = signatureWindow + time.Minute
)

// verify checks Slack's v0 request signature and returns why the request is
// refused, or "" when it is authentic and new.
//
// It computes the HMAC itself instead of using goslack.NewSecretsVerifier,
// which checks the timestamp against time.Now: the window must follow the
// configured clock. The comparison is constant-time (hmac.Equal).
func (h *Interactions) verify(header http.Header, body []byte) string {
	sig := header.Get("X-Slack-Signature")
	tsText := header.Get("X-Slack-Request-Timestamp")
	if sig == "" || tsText == "" {
		return "missing signature"
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return "bad timestamp"
	}
	now, sent := h.now(), time.Unix(ts, 0)
	switch {
	case now.Sub(sent) > signatureWindow:
		return "stale timestamp"
	case sent.Sub(now) > signatureWindow:
		return "future timestamp"
	}
	if !validSignature(h.secret, tsText, body, sig) {
		return "forged signature"
	}
	fresh, err := h.replays.add(strings.ToLower(sig), now, sent.Add(replayMemory))
	switch {
	case err != nil:
		return "too many requests to remember for replay protection"
	case !fresh:
		return "replayed request"
	}
	return ""
}

// validSignature reports whether sig ("v0=<hex>") is
// HMAC-SHA256(secret, "v0:<timestamp>:<body>").
func validSignature(secret []byte, timestamp string, body []byte, sig string) bool {
	hexSig, ok := strings.CutPrefix(sig, "v0=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	return hmac.Equal(got, requestMAC(secret, timestamp, body))
}

// requestMAC is Slack's v0 request MAC.
func requestMAC(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("v0:" + timestamp + ":"))
	m.Write(body)
	return m.Sum(nil)
}
