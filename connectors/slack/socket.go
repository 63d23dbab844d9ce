package slack

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	goslack "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

const (
	// envelopeMemory is how long an envelope ID is remembered: Slack
	// redelivers an unacknowledged envelope within minutes.
	envelopeMemory = 30 * time.Minute
	// Backoff between runs of the Socket Mode client when it gives up.
	socketBackoffMin = time.Second
	socketBackoffMax = time.Minute
)

// socketAuthCodes are apps.connections.open errors that no retry fixes.
var socketAuthCodes = map[string]bool{
	"invalid_auth":     true,
	"not_authed":       true,
	"account_inactive": true,
	"token_revoked":    true,
	"token_expired":    true,
}

// RunSocketMode receives clicks over Slack's Socket Mode until ctx ends. It
// opens a connection with the app-level token (xapp-..., connections:write)
// through apps.connections.open at apiURL (the same base URL as
// Config.APIURL; "" for Slack's), acknowledges each envelope at once, drops
// envelopes delivered twice, and hands interactive ones to Handle. It
// reconnects after a dropped connection or Slack's "disconnect" message, and
// keeps retrying, with backoff, when reconnecting fails. It returns nil when
// ctx ends, and an *Error only when Slack refuses the token.
func (h *Interactions) RunSocketMode(ctx context.Context, appToken, apiURL string) error {
	if apiURL == "" {
		apiURL = goslack.APIURL
	}
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	api := goslack.New("",
		goslack.OptionAppLevelToken(appToken),
		goslack.OptionAPIURL(apiURL),
		goslack.OptionHTTPClient(&http.Client{Timeout: 30 * time.Second}),
	)
	smc := socketmode.New(api)

	ctx, cancel := context.WithCancel(ctx)
	var consumer sync.WaitGroup
	consumer.Go(func() { h.consumeSocketEvents(ctx, smc) })
	defer func() {
		cancel()
		consumer.Wait()
	}()

	backoff := socketBackoffMin
	for {
		started := time.Now()
		err := smc.RunContext(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if e := socketAuthError(err, appToken); e != nil {
			h.log.Error().Err(e).Msg("slack socket mode stopped")
			return e
		}
		if time.Since(started) > socketBackoffMax {
			backoff = socketBackoffMin
		}
		h.log.Warn().Err(err).Dur("retry_in", backoff).Msg("slack socket mode connection failed; retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, socketBackoffMax)
	}
}

// socketAuthError returns an *Error when err means Slack refused the
// app-level token, else nil.
func socketAuthError(err error, token string) *Error {
	var slackErr goslack.SlackErrorResponse
	if !errors.As(err, &slackErr) || !socketAuthCodes[slackErr.Err] {
		return nil
	}
	e := classify("apps.connections.open", token, err)
	e.Hint = "Slack refused the app-level token; configure an xapp- token with the connections:write scope (the app's Basic Information page, App-Level Tokens) and turn on Socket Mode for the app"
	return e
}

// consumeSocketEvents handles the Socket Mode client's events until ctx ends.
// The client blocks when nobody reads them.
func (h *Interactions) consumeSocketEvents(ctx context.Context, smc *socketmode.Client) {
	for {
		select {
		case <-ctx.Done():
			return
		case evt := <-smc.Events:
			h.socketEvent(ctx, smc, evt)
		}
	}
}

// socketEvent logs the connection's life and acknowledges, deduplicates and
// handles envelopes.
func (h *Interactions) socketEvent(ctx context.Context, smc *socketmode.Client, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		h.log.Debug().Msg("slack socket mode connecting")
	case socketmode.EventTypeConnected:
		h.log.Info().Msg("slack socket mode connected")
	case socketmode.EventTypeHello:
		h.log.Debug().Msg("slack socket mode hello")
	case socketmode.EventTypeConnectionError:
		if ce, ok := evt.Data.(*goslack.ConnectionErrorEvent); ok {
			h.log.Warn().Err(ce.ErrorObj).Dur("retry_in", ce.Backoff).Msg("slack socket mode connection failed; retrying")
		}
	case socketmode.EventTypeInvalidAuth:
		h.log.Error().Msg("slack socket mode: Slack refused the app-level token")
	case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorBadMessage, socketmode.EventTypeErrorWriteFailed:
		h.log.Warn().Str("event", string(evt.Type)).Msg("slack socket mode message failed")
	case socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI, socketmode.EventTypeSlashCommand:
		h.envelope(ctx, smc, evt)
	default:
		h.log.Debug().Str("event", string(evt.Type)).Msg("slack socket mode event ignored")
	}
}

// envelope acknowledges a Slack envelope at once, and hands an interactive
// one to Handle unless it was delivered before.
func (h *Interactions) envelope(ctx context.Context, smc *socketmode.Client, evt socketmode.Event) {
	if evt.Request == nil || evt.Request.EnvelopeID == "" {
		return
	}
	id := evt.Request.EnvelopeID
	if err := smc.AckCtx(ctx, id, nil); err != nil {
		h.log.Warn().Err(err).Str("envelope_id", id).Msg("slack socket mode ack failed")
	}
	if evt.Type != socketmode.EventTypeInteractive {
		h.log.Debug().Str("event", string(evt.Type)).Msg("slack socket mode envelope ignored")
		return
	}
	now := h.now()
	if fresh, err := h.envelopes.add(id, now, now.Add(envelopeMemory)); err == nil && !fresh {
		h.log.Debug().Str("envelope_id", id).Msg("slack socket mode envelope delivered again; ignored")
		return
	}
	cb, ok := evt.Data.(goslack.InteractionCallback)
	if !ok {
		return
	}
	h.Handle(ctx, cb, "socket")
}
