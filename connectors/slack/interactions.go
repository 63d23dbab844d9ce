package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/rs/zerolog"
	goslack "github.com/slack-go/slack"
)

const (
	// maxInteractionBody bounds a request body, read before its signature
	// can be checked. A block_actions payload echoes the clicked message,
	// whose blocks Slack bounds (50 blocks of at most 3,000 characters);
	// soar's approval messages stay far below that.
	maxInteractionBody = 256 << 10
	// maxUnverifiedReads bounds the bodies read at once before their
	// signature is checked: with maxInteractionBody, at most 16 MiB held
	// for requests nobody has authenticated. Others are answered 503 at
	// once; Slack retries.
	maxUnverifiedReads = 64
	// defaultDecideTimeout bounds a vote when the config sets none.
	defaultDecideTimeout = 30 * time.Second
	// replyTimeout bounds the ephemeral reply to a clicker.
	replyTimeout = 10 * time.Second
	// seenMax bounds the replay and envelope memories: far more clicks than
	// people make in six minutes.
	seenMax = 10000
	// ClickBurst clicks from one Slack user are taken at once, and ClickRate
	// a second after that; more are dropped, unanswered, so that a script
	// clicking with someone's Slack session can neither flood Temporal with
	// votes nor make soar flood Slack with replies. The API's per-token
	// limit has the same numbers.
	ClickBurst = 20
	ClickRate  = 2
	// rejectLogBurst rejections for one reason are logged at once and
	// rejectLogRate a second after that; the others are counted into the
	// next line's "suppressed", so a flood of forged requests cannot flood
	// the log, nor hide a rejection for another reason.
	rejectLogBurst = 20
	rejectLogRate  = 5
)

// Click is a vote cast with an approval button.
type Click struct {
	// Incident, Step, Approve and PlanHash come from the signed button value.
	Incident, Step string
	Approve        bool
	PlanHash       string
	// User, UserName and Team identify the clicker: Slack's user ID, handle
	// and team ID.
	User, UserName, Team string
	// Channel and MessageTS locate the approval message clicked.
	Channel, MessageTS string
	// Via is how the click arrived: "http" or "socket".
	Via string
}

// decision names a vote in logs.
func (c Click) decision() string {
	if c.Approve {
		return "approve"
	}
	return "deny"
}

// Decider records a vote (a Temporal Update, elsewhere). It returns a
// confirmation for the clicker, or an error whose message is the reason the
// vote was refused, shown to the clicker. Both are shown escaped, as plain
// text. ctx carries the DecideTimeout; a Decider that runs past it is
// reported to the clicker as not recorded.
type Decider interface {
	Decide(ctx context.Context, c Click) (string, error)
}

// InteractionsConfig configures Interactions.
type InteractionsConfig struct {
	// SigningSecret is the Slack app's signing secret; ServeHTTP needs it.
	SigningSecret string
	// Signer verifies button values; required.
	Signer *Signer
	// Decider records votes; required.
	Decider Decider
	// Client posts the ephemeral replies to clickers (chat.postEphemeral);
	// when nil, replies are only logged.
	Client *Client
	// Log receives one line per vote and per rejected request.
	Log zerolog.Logger
	// Now is the clock for the request timestamp window and button expiry;
	// default time.Now.
	Now func() time.Time
	// DecideTimeout bounds each vote; default 30s.
	DecideTimeout time.Duration
	// Team is the Slack workspace (team ID, T…) whose clicks count; a
	// click from another workspace, say one the app was also installed in,
	// is refused. When empty, Workspace is asked once, on the first click.
	Team string
	// Workspace returns the app's own workspace (auth.test); when it fails
	// the click is refused and the next one asks again.
	Workspace func(ctx context.Context) (string, error)
	// AppID, when set, is the Slack app (A…) whose clicks count.
	AppID string
}

// Interactions turns approval button clicks into votes. Clicks arrive over
// HTTP (ServeHTTP) or Socket Mode (RunSocketMode); both are acknowledged at
// once and the vote runs in the background, so Slack's 3-second deadline
// holds however slow the Decider is.
type Interactions struct {
	secret    []byte
	signer    *Signer
	decider   Decider
	client    *Client
	log       zerolog.Logger
	now       func() time.Time
	timeout   time.Duration
	replays   *seenSet
	envelopes *seenSet
	wg        sync.WaitGroup
	// reading holds a token per body being read and verified.
	reading chan struct{}
	// clickers limits each Slack user's clicks.
	clickers *limits
	// rejectLog paces rejection log lines, per reason.
	rejectLog *logPace

	teamMu    sync.Mutex
	team      string
	workspace func(ctx context.Context) (string, error)
	appID     string
}

// NewInteractions checks cfg and returns the handler. A missing
// SigningSecret is allowed for Socket Mode only: ServeHTTP then refuses
// every request.
func NewInteractions(cfg InteractionsConfig) (*Interactions, error) {
	if cfg.Signer == nil {
		return nil, errors.New("slack: interactions need a Signer to verify button values")
	}
	if cfg.Decider == nil {
		return nil, errors.New("slack: interactions need a Decider to record votes")
	}
	h := &Interactions{
		secret:    []byte(cfg.SigningSecret),
		signer:    cfg.Signer,
		decider:   cfg.Decider,
		client:    cfg.Client,
		log:       cfg.Log,
		now:       cfg.Now,
		timeout:   cfg.DecideTimeout,
		replays:   newSeenSet(seenMax),
		envelopes: newSeenSet(seenMax),
		reading:   make(chan struct{}, maxUnverifiedReads),
		clickers:  newLimits(ClickRate, ClickBurst),
		rejectLog: newLogPace(rejectLogRate, rejectLogBurst),
		team:      cfg.Team,
		workspace: cfg.Workspace,
		appID:     cfg.AppID,
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.timeout <= 0 {
		h.timeout = defaultDecideTimeout
	}
	return h, nil
}

// ServeHTTP handles POST /slack/interactions (mount it at that path, as the
// Slack app's Interactivity Request URL). It verifies Slack's signature and
// refuses a request replayed within the timestamp window (401), answers 200
// with an empty body as soon as the payload parses, and processes the click
// in the background.
func (h *Interactions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, r, http.StatusMethodNotAllowed, "wrong method")
		return
	}
	if len(h.secret) == 0 {
		h.log.Error().Msg("slack interaction refused: no Slack signing secret is configured; set it (from the Slack app's Basic Information page) to receive clicks over HTTP")
		http.Error(w, "not configured", http.StatusInternalServerError)
		return
	}
	select {
	case h.reading <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "1")
		h.reject(w, r, http.StatusServiceUnavailable, "too many unverified requests at once")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInteractionBody))
	<-h.reading
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.reject(w, r, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		h.reject(w, r, http.StatusBadRequest, "unreadable body")
		return
	}
	if reason := h.verify(r.Header, body); reason != "" {
		h.reject(w, r, http.StatusUnauthorized, reason)
		return
	}
	cb, err := parseInteraction(body)
	if err != nil {
		h.reject(w, r, http.StatusBadRequest, "unparseable payload")
		return
	}
	h.Handle(r.Context(), cb, "http")
	w.WriteHeader(http.StatusOK)
}

// reject answers status and logs why, without the request's body or
// signature. Past rejectLogRate a second the line is skipped and counted in
// the next one's "suppressed".
func (h *Interactions) reject(w http.ResponseWriter, r *http.Request, status int, reason string) {
	if log, ok := h.rejectLog.allow(reason); ok {
		h.log.Warn().Str("reason", reason).Int("status", status).Str("remote_addr", r.RemoteAddr).
			Func(log).Msg("slack interaction rejected")
	}
	http.Error(w, http.StatusText(status), status)
}

// parseInteraction decodes the form body's payload field.
func parseInteraction(body []byte) (goslack.InteractionCallback, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return goslack.InteractionCallback{}, err
	}
	payload := form.Get("payload")
	if payload == "" {
		return goslack.InteractionCallback{}, errors.New("slack: the interaction has no payload")
	}
	var cb goslack.InteractionCallback
	if err := cb.UnmarshalJSON([]byte(payload)); err != nil {
		return goslack.InteractionCallback{}, err
	}
	return cb, nil
}

// Handle processes one verified interaction payload; ServeHTTP and Socket
// Mode share it. Only block_actions clicks on soar_approve and soar_deny are
// votes; anything else is ignored. It returns at once: the vote and the reply
// to the clicker run in the background (see Wait), detached from ctx's
// cancellation.
func (h *Interactions) Handle(ctx context.Context, cb goslack.InteractionCallback, via string) {
	log := h.log.With().Str("via", via).Str("user", cb.User.ID).Logger()
	if cb.Type != goslack.InteractionTypeBlockActions {
		log.Debug().Str("type", string(cb.Type)).Msg("slack interaction ignored: not a button click")
		return
	}
	action := voteAction(cb)
	if action == nil {
		log.Debug().Msg("slack interaction ignored: not an approval button")
		return
	}
	click := clickFrom(cb, via)
	if why := h.foreign(ctx, cb); why != "" {
		// Not a reply: the clicker is not in the workspace soar answers.
		log.Warn().Str("reason", why).Str("team", click.Team).Str("app", cb.APIAppID).Msg("slack vote refused")
		return
	}
	if !h.clickers.allow(click.Team+"/"+click.User, h.now()) {
		// Not a reply either: answering every dropped click would turn a
		// flood of clicks into a flood of posts to Slack.
		reason := fmt.Sprintf("more than %d clicks at once or %d a second from this user", ClickBurst, ClickRate)
		if suppressed, ok := h.rejectLog.allow(reason); ok {
			log.Warn().Str("reason", reason).Func(suppressed).Msg("slack vote refused")
		}
		return
	}
	v, err := h.signer.Verify(action.Value)
	if err == nil && v.Approve != (action.ActionID == ActionApprove) {
		err = fmt.Errorf("%w: the %s button carries the other vote", ErrBadButton, action.ActionID)
	}
	if err != nil {
		log.Warn().Str("reason", "tampered button value").Str("action_id", action.ActionID).Str("channel", click.Channel).
			Msg("slack vote refused")
		h.background(ctx, func(ctx context.Context) {
			h.reply(ctx, click, "This button is not valid; use the Approve and Deny buttons of the approval message.")
		})
		return
	}
	click.Incident, click.Step, click.Approve, click.PlanHash = v.Incident, v.Step, v.Approve, v.PlanHash
	log = log.With().Str("incident_id", click.Incident).Str("step", click.Step).Str("decision", click.decision()).Logger()
	if h.now().After(v.Expires) {
		log.Warn().Str("reason", "expired button").Time("expired_at", v.Expires).Msg("slack vote refused")
		h.background(ctx, func(ctx context.Context) {
			h.reply(ctx, click, "This approval expired at "+slackDate(v.Expires)+"; your vote was not recorded.")
		})
		return
	}
	h.background(ctx, func(ctx context.Context) { h.decide(ctx, log, click) })
}

// foreign says why a click does not come from soar's own Slack app in its
// own workspace; "" when it does. Slack signs every workspace's requests
// with the app's one signing secret, so the signature alone does not tell.
func (h *Interactions) foreign(ctx context.Context, cb goslack.InteractionCallback) string {
	if h.appID != "" && cb.APIAppID != h.appID {
		return fmt.Sprintf("a click for Slack app %q, not %q", cb.APIAppID, h.appID)
	}
	team, err := h.ownTeam(ctx)
	if err != nil {
		return "soar could not read its own Slack workspace to compare: " + err.Error()
	}
	if team == "" || cb.Team.ID == team || cb.User.TeamID == team {
		return ""
	}
	return fmt.Sprintf("a click from Slack workspace %q, not %q", cb.Team.ID, team)
}

// ownTeam returns the configured workspace, or asks Workspace once.
func (h *Interactions) ownTeam(ctx context.Context) (string, error) {
	h.teamMu.Lock()
	defer h.teamMu.Unlock()
	if h.team != "" || h.workspace == nil {
		return h.team, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	team, err := h.workspace(ctx)
	if err != nil {
		return "", err
	}
	if team == "" {
		return "", errors.New("auth.test named no workspace")
	}
	h.team = team
	return team, nil
}

// voteAction returns the click's approval button action, or nil.
func voteAction(cb goslack.InteractionCallback) *goslack.BlockAction {
	for _, a := range cb.ActionCallback.BlockActions {
		if a != nil && (a.ActionID == ActionApprove || a.ActionID == ActionDeny) {
			return a
		}
	}
	return nil
}

// clickFrom fills in who clicked where.
func clickFrom(cb goslack.InteractionCallback, via string) Click {
	c := Click{
		User:      cb.User.ID,
		UserName:  cb.User.Username,
		Team:      cb.Team.ID,
		Channel:   cb.Container.ChannelID,
		MessageTS: cb.Container.MessageTs,
		Via:       via,
	}
	if c.UserName == "" {
		c.UserName = cb.User.Name
	}
	if c.Team == "" {
		c.Team = cb.User.TeamID
	}
	if c.Channel == "" {
		c.Channel = cb.Channel.ID
	}
	if c.MessageTS == "" {
		c.MessageTS = cb.Message.Timestamp
	}
	return c
}

// background runs f in a goroutine that Wait waits for, with ctx's values
// but not its cancellation: an HTTP request's context ends when the handler
// returns.
func (h *Interactions) background(ctx context.Context, f func(context.Context)) {
	ctx = context.WithoutCancel(ctx)
	h.wg.Go(func() { f(ctx) })
}

// decide records the vote and tells the clicker what became of it.
func (h *Interactions) decide(ctx context.Context, log zerolog.Logger, click Click) {
	dctx, cancel := context.WithTimeout(ctx, h.timeout)
	confirmation, err := h.decider.Decide(dctx, click)
	cancel()
	if err != nil {
		reason := err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			reason = fmt.Sprintf("soar did not record it within %s; check the approval message and vote again if your vote is not shown", h.timeout)
		}
		log.Warn().Str("reason", reason).Msg("slack vote refused")
		h.reply(ctx, click, "Your vote was not recorded: "+Escape(reason))
		return
	}
	log.Info().Msg("slack vote recorded")
	if confirmation == "" {
		confirmation = "Your vote (" + click.decision() + ") was recorded."
	}
	h.reply(ctx, click, Escape(confirmation))
}

// reply shows text to the clicker only. Without a client, or when the post
// fails, the text is logged instead: the vote itself is unaffected.
func (h *Interactions) reply(ctx context.Context, click Click, text string) {
	if h.client == nil || click.Channel == "" || click.User == "" {
		h.log.Info().Str("user", click.User).Str("channel", click.Channel).Str("reply", text).Msg("slack reply not posted: no client or no channel")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, replyTimeout)
	defer cancel()
	if err := h.client.PostEphemeral(ctx, click.Channel, click.User, text); err != nil {
		h.log.Warn().Err(err).Str("user", click.User).Str("channel", click.Channel).Str("reply", text).
			Msg("slack reply to the clicker failed")
	}
}

// Wait blocks until every background vote and reply has finished. Call it
// after ServeHTTP and RunSocketMode have stopped taking clicks (tests,
// shutdown).
func (h *Interactions) Wait() { h.wg.Wait() }
