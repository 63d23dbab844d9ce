package incidents

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/soar-dev/soar/workflows"
)

// MinTokenLength is the shortest API token accepted: 32 characters, as
// `openssl rand -hex 16` prints.
const MinTokenLength = 32

// Tokens maps API token names to tokens. A vote cast with a token is
// recorded as "api:<name>", which playbooks list among approvers.
type Tokens map[string]string

// People maps API token names to the Slack user (U…, W…) each token
// belongs to: that person's votes count once toward a quorum, whether cast
// in Slack or with the token.
type People map[string]string

// slackUser matches a Slack user ID.
var slackUser = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)

// ParseTokens reads "name:token" entries, or "name:token:U…" to say which
// Slack user holds the token, one per line or separated by commas; blank
// lines and lines starting with # are skipped. The error never quotes a
// token.
func ParseTokens(s string) (Tokens, People, error) {
	t, people := Tokens{}, People{}
	for i, entry := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == ',' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" || strings.HasPrefix(entry, "#") {
			continue
		}
		name, tok, ok := strings.Cut(entry, ":")
		name, tok = strings.TrimSpace(name), strings.TrimSpace(tok)
		if rest, person, found := strings.Cut(tok, ":"); found && slackUser.MatchString(strings.TrimSpace(person)) {
			tok = strings.TrimSpace(rest)
			people[name] = strings.TrimSpace(person)
		}
		switch {
		case !ok || name == "" || strings.ContainsAny(name, " \t"):
			return nil, nil, fmt.Errorf("API token entry %d: want name:token or name:token:<Slack user ID>", i+1)
		case len(tok) < MinTokenLength:
			return nil, nil, fmt.Errorf("API token %q: shorter than %d characters", name, MinTokenLength)
		case t[name] != "":
			return nil, nil, fmt.Errorf("API token %q: listed twice", name)
		}
		t[name] = tok
	}
	return t, people, nil
}

// identify returns the name of the token in an "Authorization: Bearer"
// header, comparing against every token in constant time.
func (t Tokens) identify(header string) (string, bool) {
	got, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || got == "" {
		return "", false
	}
	// Comparing hashes gives every comparison the same length.
	sum := sha256.Sum256([]byte(got))
	found := ""
	for name, tok := range t {
		want := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
			found = name
		}
	}
	return found, found != ""
}

// VoteRequest is the body of POST /api/v1/incidents/{id}/votes.
type VoteRequest struct {
	// Step is the approval step; empty means the only open one.
	Step    string `json:"step"`
	Approve *bool  `json:"approve"`
	Comment string `json:"comment"`
	// PlanHash names the plan the voter approves (the approval's planHash,
	// as soar incident show and Slack show it); an approval of a plan with
	// a destructive action needs it.
	PlanHash string `json:"planHash"`
}

// VoteResponse answers a recorded vote.
type VoteResponse struct {
	Approval workflows.ApprovalState `json:"approval"`
	Message  string                  `json:"message"`
}

type apiError struct {
	Error string `json:"error"`
}

// StopBody is the body of POST /api/v1/incidents/{id}/close and …/release.
type StopBody struct {
	Reason string `json:"reason"`
}

// StopResponse answers a close or release.
type StopResponse struct {
	Message string `json:"message"`
}

// API serves what people do to incidents, for 'soar approve', 'soar
// incident close|release' and for when Slack is down:
//
//	POST /api/v1/incidents/{id}/votes    {"step": "ask", "approve": true, "planHash": "…", "comment": "…"}
//	POST /api/v1/incidents/{id}/close    {"reason": "…"}
//	POST /api/v1/incidents/{id}/release  {"reason": "…"}
//
// with "Authorization: Bearer <token>". Answers: 200 with the approval or a
// message, 400 for a bad body, 401 without a valid token, 409 with the
// reason when the incident refused the request, 502 when Temporal could
// not be reached.
type API struct {
	Service *Service
	Tokens  Tokens
	// People says which Slack user holds a token, when known.
	People People

	limitMu sync.Mutex
	limits  map[string]*rate.Limiter
}

// Each token may make TokenBurst requests at once and TokenRate a second
// after that; more get 429. People vote, close and release a few times a
// minute; a leaked or runaway client cannot hammer Temporal through soar.
const (
	TokenRate  = 2
	TokenBurst = 20
)

// allow spends one request of the token name's budget.
func (a *API) allow(name string) bool {
	a.limitMu.Lock()
	defer a.limitMu.Unlock()
	if a.limits == nil {
		a.limits = map[string]*rate.Limiter{}
	}
	l, ok := a.limits[name]
	if !ok {
		l = rate.NewLimiter(TokenRate, TokenBurst)
		a.limits[name] = l
	}
	return l.Allow()
}

// Register mounts the API on mux.
func (a *API) Register(mux interface {
	Handle(pattern string, h http.Handler)
}) {
	mux.Handle("POST /api/v1/incidents/{id}/votes", http.HandlerFunc(a.vote))
	mux.Handle("POST /api/v1/incidents/{id}/close", a.stop(false))
	mux.Handle("POST /api/v1/incidents/{id}/release", a.stop(true))
}

// maxBody bounds a request body.
const maxBody = 64 << 10

// authenticate returns the name of the request's token, or answers 401.
func (a *API) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	name, ok := a.Tokens.identify(r.Header.Get("Authorization"))
	if !ok {
		a.Service.Log.Warn().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Msg("API request refused: no valid token")
		w.Header().Set("WWW-Authenticate", `Bearer realm="soar"`)
		writeJSON(w, http.StatusUnauthorized, apiError{"a valid API token is needed: Authorization: Bearer <token>"})
		return "", false
	}
	if !a.allow(name) {
		a.Service.Log.Warn().Str("token", name).Str("path", r.URL.Path).Msg("API request refused: the token's rate limit")
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, apiError{fmt.Sprintf("too many requests with token %s: at most %d at once and %d a second", name, TokenBurst, TokenRate)})
		return "", false
	}
	return name, true
}

// decode reads a JSON body of at most maxBody bytes with no unknown
// fields, or answers 400 with want.
func decode(w http.ResponseWriter, r *http.Request, v any, want string) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"the body must be JSON: " + want + ": " + err.Error()})
		return false
	}
	return true
}

func (a *API) stop(release bool) http.Handler {
	verb := "closed"
	if release {
		verb = "released"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		var body StopBody
		if !decode(w, r, &body, `{"reason": "…"}`) {
			return
		}
		incident := r.PathValue("id")
		ctx, cancel := context.WithTimeout(r.Context(), VoteTimeout)
		defer cancel()
		_, err := a.Service.Stop(ctx, incident, workflows.StopRequest{Release: release, Reason: body.Reason, By: "api:" + name})
		if a.failed(w, err) {
			return
		}
		writeJSON(w, http.StatusOK, StopResponse{Message: fmt.Sprintf("incident %s will be %s", incident, verb)})
	})
}

// failed answers a refusal with 409 and any other error with 502.
func (a *API) failed(w http.ResponseWriter, err error) bool {
	var refused *Refused
	switch {
	case errors.As(err, &refused):
		writeJSON(w, http.StatusConflict, apiError{refused.Reason})
	case err != nil:
		writeJSON(w, http.StatusBadGateway, apiError{err.Error()})
	default:
		return false
	}
	return true
}

func (a *API) vote(w http.ResponseWriter, r *http.Request) {
	name, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	var req VoteRequest
	const want = `{"step": "…", "approve": true|false, "planHash": "…", "comment": "…"}`
	if !decode(w, r, &req, want) {
		return
	}
	if req.Approve == nil {
		writeJSON(w, http.StatusBadRequest, apiError{"the body must be JSON: " + want + ": approve is missing"})
		return
	}
	incident := r.PathValue("id")
	d := workflows.Decision{
		Step: req.Step, User: "api:" + name, Name: name, Approve: *req.Approve, Comment: req.Comment, Source: workflows.SourceAPI,
		PlanHash: req.PlanHash, Person: a.People[name],
	}
	ctx, cancel := context.WithTimeout(r.Context(), VoteTimeout)
	defer cancel()
	st, err := a.Service.Vote(ctx, incident, d)
	if a.failed(w, err) {
		return
	}
	writeJSON(w, http.StatusOK, VoteResponse{Approval: st, Message: Confirmation(incident, d, st)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// VoteTimeout bounds one vote through the API or the CLI.
const VoteTimeout = 30 * time.Second
