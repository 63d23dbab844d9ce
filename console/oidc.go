package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
)

// OIDCConfig configures sign-in through an OpenID Connect provider.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL (discovery is at
	// <Issuer>/.well-known/openid-configuration).
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is the console's callback as the browser reaches it:
	// https://<host>/console/auth/callback.
	RedirectURL string
	// Scopes default to openid, email, profile and groups.
	Scopes []string
	// UserClaim names the ID token's claim that becomes the login
	// (user:<value>); GroupsClaim the claim listing the person's groups.
	UserClaim, GroupsClaim string
	// GroupMap and Viewers are as in Proxy.
	GroupMap map[string][]string
	Viewers  []string
	// SessionKey signs the session cookies (at least 32 bytes); nil draws
	// one at random, so that a restart signs everyone out.
	SessionKey []byte
	// SessionTTL bounds a session; default 8 hours.
	SessionTTL time.Duration
	// HTTPClient reaches the provider; nil means http.DefaultClient.
	HTTPClient *http.Client
	Log        zerolog.Logger
}

// OIDC signs people in with the authorization-code flow and PKCE (S256),
// verifies the ID token's signature, issuer, audience, expiry and nonce,
// and keeps who they are in a signed, HttpOnly session cookie.
type OIDC struct {
	cfg      OIDCConfig
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

const (
	sessionCookie = "soar_session"
	loginCookie   = "soar_oidc"
	// loginTTL bounds the time between leaving for the provider and
	// coming back.
	loginTTL = 10 * time.Minute
	// Paths of the sign-in.
	loginPath    = "/console/auth/login"
	callbackPath = "/console/auth/callback"
	logoutPath   = "/console/auth/logout"
)

// DiscoveryError is NewOIDC failing to read the provider's discovery
// document: the provider may be down or still starting, where every other
// error of NewOIDC is the configuration's.
type DiscoveryError struct {
	Issuer string
	Err    error
}

func (e *DiscoveryError) Error() string { return fmt.Sprintf("OIDC provider %s: %v", e.Issuer, e.Err) }
func (e *DiscoveryError) Unwrap() error { return e.Err }

// NewOIDC discovers the provider; a provider it cannot read is a
// *DiscoveryError.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	switch {
	case cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "":
		return nil, errors.New("OIDC sign-in needs an issuer, a client ID and the console's redirect URL")
	case cfg.SessionKey != nil && len(cfg.SessionKey) < MinKeyBytes:
		return nil, fmt.Errorf("the console's session key must be at least %d bytes", MinKeyBytes)
	}
	if u, err := url.Parse(cfg.RedirectURL); err != nil || u.Path != callbackPath {
		return nil, fmt.Errorf("the redirect URL %q must end in %s", cfg.RedirectURL, callbackPath)
	}
	if cfg.SessionKey == nil {
		cfg.SessionKey = make([]byte, 32)
		if _, err := rand.Read(cfg.SessionKey); err != nil {
			return nil, err
		}
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "email", "profile", "groups"}
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = "email"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	}
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, &DiscoveryError{Issuer: cfg.Issuer, Err: err}
	}
	return &OIDC{
		cfg: cfg,
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Endpoint: p.Endpoint(), Scopes: cfg.Scopes,
		},
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
	}, nil
}

// Describe implements Authenticator.
func (o *OIDC) Describe() string { return "OIDC provider " + o.cfg.Issuer }

// session is what the session cookie holds.
type session struct {
	User  string `json:"u"`
	Email string `json:"e,omitempty"`
	// Verified says the provider vouched for Email (email_verified).
	Verified bool      `json:"ev,omitempty"`
	Groups   []string  `json:"g,omitempty"`
	Viewer   bool      `json:"v,omitempty"`
	Expires  time.Time `json:"x"`
}

// loginState is what the login cookie holds while the browser is at the
// provider.
type loginState struct {
	State    string    `json:"s"`
	Verifier string    `json:"c"`
	Nonce    string    `json:"n"`
	Next     string    `json:"r"`
	Expires  time.Time `json:"x"`
}

// Identify implements Authenticator: the signed-in person of the request's
// session cookie, or nil.
func (o *OIDC) Identify(r *http.Request) (*Identity, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, nil
	}
	var s session
	if !o.open(ck.Value, &s) || time.Now().After(s.Expires) {
		return nil, nil
	}
	return &Identity{User: "user:" + s.User, Name: s.User, Email: s.Email, EmailVerified: s.Verified, Groups: s.Groups, Viewer: s.Viewer, Method: "oidc"}, nil
}

// LoginURL is where a browser that is not signed in goes.
func (o *OIDC) LoginURL(r *http.Request) string {
	return loginPath + "?next=" + url.QueryEscape(r.URL.RequestURI())
}

// register mounts the sign-in's own paths.
func (o *OIDC) register(mux interface {
	Handle(pattern string, h http.Handler)
}, wrap func(http.Handler) http.Handler) {
	mux.Handle("GET "+loginPath, wrap(http.HandlerFunc(o.login)))
	mux.Handle("GET "+callbackPath, wrap(http.HandlerFunc(o.callback)))
}

func (o *OIDC) login(w http.ResponseWriter, r *http.Request) {
	st := loginState{
		State: random(), Verifier: oauth2.GenerateVerifier(), Nonce: random(),
		Next: safeNext(r.URL.Query().Get("next")), Expires: time.Now().Add(loginTTL),
	}
	http.SetCookie(w, &http.Cookie{
		Name: loginCookie, Value: o.seal(st), Path: "/console/auth/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: secureRequest(r), MaxAge: int(loginTTL.Seconds()),
	})
	http.Redirect(w, r, o.oauth.AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce)), http.StatusFound)
}

// errSignIn is what a person is told when a sign-in fails; the log says why.
var errSignIn = errors.New("the sign-in did not complete: start again from the console")

func (o *OIDC) callback(w http.ResponseWriter, r *http.Request) {
	s, err := o.finish(r)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/console/auth/", MaxAge: -1, HttpOnly: true, Secure: secureRequest(r)})
	if err != nil {
		o.cfg.Log.Warn().Err(err).Str("remote", r.RemoteAddr).Msg("console sign-in refused")
		http.Error(w, errSignIn.Error(), http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: o.seal(s.session), Path: "/console/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: secureRequest(r), MaxAge: int(o.cfg.SessionTTL.Seconds()),
	})
	o.cfg.Log.Info().Str("user", "user:"+s.User).Strs("groups", s.Groups).Bool("viewer", s.Viewer).Msg("console sign-in")
	http.Redirect(w, r, s.next, http.StatusSeeOther)
}

type signedIn struct {
	session
	next string
}

// finish checks the provider's answer against the login cookie, redeems
// the code with the PKCE verifier and verifies the ID token.
func (o *OIDC) finish(r *http.Request) (*signedIn, error) {
	ck, err := r.Cookie(loginCookie)
	if err != nil {
		return nil, errors.New("no sign-in is in progress in this browser")
	}
	var st loginState
	switch q := r.URL.Query(); {
	case !o.open(ck.Value, &st):
		return nil, errors.New("the sign-in cookie is not the console's")
	case time.Now().After(st.Expires):
		return nil, errors.New("the sign-in took longer than 10 minutes")
	case q.Get("error") != "":
		return nil, fmt.Errorf("the provider refused: %.200s %.200s", q.Get("error"), q.Get("error_description"))
	case !hmac.Equal([]byte(q.Get("state")), []byte(st.State)):
		return nil, errors.New("the state does not match the sign-in this browser started")
	}
	ctx := r.Context()
	if o.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, o.cfg.HTTPClient)
	}
	tok, err := o.oauth.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return nil, fmt.Errorf("redeem the code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("the provider sent no ID token")
	}
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("verify the ID token: %w", err)
	}
	if !hmac.Equal([]byte(idt.Nonce), []byte(st.Nonce)) {
		return nil, errors.New("the ID token's nonce is not this sign-in's")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("read the ID token's claims: %w", err)
	}
	user, _ := claims[o.cfg.UserClaim].(string)
	if user == "" || !validLogin(user) {
		return nil, fmt.Errorf("the ID token's %s claim is missing or not a usable login", o.cfg.UserClaim)
	}
	if verified, ok := claims["email_verified"].(bool); o.cfg.UserClaim == "email" && ok && !verified {
		return nil, fmt.Errorf("the e-mail %s is not verified by the provider", user)
	}
	email, _ := claims["email"].(string)
	verified, _ := claims["email_verified"].(bool)
	s := session{User: user, Email: email, Verified: email != "" && verified, Expires: time.Now().Add(o.cfg.SessionTTL)}
	s.Groups, s.Viewer = mapGroups(o.cfg.GroupMap, o.cfg.Viewers, stringsOf(claims[o.cfg.GroupsClaim]))
	return &signedIn{session: s, next: st.Next}, nil
}

// logout ends the session.
func (o *OIDC) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/console/", MaxAge: -1, HttpOnly: true, Secure: secureRequest(r)})
}

// seal signs v as a cookie value: base64url(JSON) "." base64url(HMAC).
func (o *OIDC) seal(v any) string {
	b, _ := json.Marshal(v)
	p := base64.RawURLEncoding.EncodeToString(b)
	return p + "." + o.mac(p)
}

// open checks a sealed value's signature and decodes it into v.
func (o *OIDC) open(s string, v any) bool {
	p, sig, ok := strings.Cut(s, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(o.mac(p))) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(p)
	return err == nil && json.Unmarshal(b, v) == nil
}

func (o *OIDC) mac(p string) string {
	m := hmac.New(sha256.New, o.cfg.SessionKey)
	m.Write([]byte(p))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// safeNext keeps a return path inside the console: never another site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/console/"
	}
	return next
}

// stringsOf reads a groups claim: a list of strings, or one string.
func stringsOf(v any) []string {
	switch g := v.(type) {
	case string:
		return []string{g}
	case []any:
		out := make([]string, 0, len(g))
		for _, e := range g {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
