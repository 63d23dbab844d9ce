package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// Identity is who is at the keyboard, as the console's sign-in established
// it.
type Identity struct {
	// User is the identity votes are cast as and approver lists name:
	// "api:<name>" for soar dev's local user (the same identity as its
	// 'soar approve'), "user:<login>" for people signed in through an
	// identity proxy.
	User string
	// Name and Email are shown, and let the validator rule out the
	// requester of an approval.
	Name, Email string
	// EmailVerified says Email is vouched for: the OIDC provider's
	// email_verified claim, or the trusted proxy's header (oauth2-proxy
	// passes verified addresses only). Only a verified e-mail finds the
	// person's Slack user (Config.People has the other way).
	EmailVerified bool
	// Groups are the approver groups (Slack user-group IDs, S…) that the
	// person's identity-provider groups map to (Config.GroupMap).
	Groups []string
	// Viewer says the person may look but not act: they hold no approver
	// group and are in a viewers group.
	Viewer bool
	// Method says how they signed in: "local" or "proxy".
	Method string
}

// Authenticator tells who sent a request. It returns an error, which the
// person reads, when the request may not be served at all.
type Authenticator interface {
	Identify(r *http.Request) (*Identity, error)
	// Describe says how people sign in, for logs and banners.
	Describe() string
}

// Local signs in the operating-system user who runs soar dev, without a
// password, on a loopback listener only: a request must come from a
// loopback address and name a loopback host (which a DNS-rebinding page
// cannot). Anyone who can open a connection to the loopback port acts as
// that user; soar dev is for one person's machine.
type Local struct {
	// User is the identity votes are cast as (soar dev: "api:<os user>").
	User string
	// Name is what the console shows.
	Name string
}

// Identify implements Authenticator.
func (l Local) Identify(r *http.Request) (*Identity, error) {
	if !loopbackAddr(r.RemoteAddr) {
		return nil, errors.New("the console signs in its local user on loopback connections only")
	}
	if !loopbackHost(r.Host) {
		return nil, fmt.Errorf("the console answers to localhost, 127.0.0.1 and [::1] only, not to %q", r.Host)
	}
	return &Identity{User: l.User, Name: l.Name, Method: "local"}, nil
}

// Describe implements Authenticator.
func (l Local) Describe() string { return "local user " + l.Name + " on loopback, no password" }

func loopbackAddr(hostport string) bool {
	ap, err := netip.ParseAddrPort(hostport)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// Proxy trusts the identity headers of an authenticating proxy in front of
// soar (oauth2-proxy's X-Forwarded-User, -Email and -Groups), from the
// proxy's addresses only: a request from anywhere else is refused, so
// nobody can name themselves by sending the headers directly.
type Proxy struct {
	// From lists the proxy's addresses.
	From []netip.Prefix
	// UserHeader, EmailHeader and GroupsHeader name the headers; the groups
	// header holds a comma-separated list.
	UserHeader, EmailHeader, GroupsHeader string
	// GroupMap maps identity-provider groups to approver groups.
	GroupMap map[string][]string
	// Viewers are identity-provider groups whose members may view
	// without holding an approver group.
	Viewers []string
}

// Defaults of Proxy's headers: oauth2-proxy's.
const (
	DefaultUserHeader   = "X-Forwarded-User"
	DefaultEmailHeader  = "X-Forwarded-Email"
	DefaultGroupsHeader = "X-Forwarded-Groups"
)

// Identify implements Authenticator.
func (p Proxy) Identify(r *http.Request) (*Identity, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !slices.ContainsFunc(p.From, func(pf netip.Prefix) bool { return pf.Contains(ap.Addr().Unmap()) }) {
		return nil, errors.New("the console is reached through its identity proxy only")
	}
	user := strings.TrimSpace(r.Header.Get(p.UserHeader))
	if user == "" {
		return nil, nil
	}
	if !validLogin(user) {
		return nil, errors.New("the identity proxy sent a user name the console does not accept")
	}
	id := &Identity{User: "user:" + user, Name: user, Email: strings.TrimSpace(r.Header.Get(p.EmailHeader)), Method: "proxy"}
	id.EmailVerified = id.Email != ""
	id.Groups, id.Viewer = mapGroups(p.GroupMap, p.Viewers, strings.Split(r.Header.Get(p.GroupsHeader), ","))
	return id, nil
}

// mapGroups maps the identity provider's groups to approver groups, and
// says whether a person with none of those is a viewer.
func mapGroups(m map[string][]string, viewers, raw []string) (approver []string, viewer bool) {
	for _, g := range raw {
		g = strings.TrimSpace(g)
		for _, a := range m[g] {
			if !slices.Contains(approver, a) {
				approver = append(approver, a)
			}
		}
		viewer = viewer || slices.Contains(viewers, g)
	}
	slices.Sort(approver)
	return approver, viewer && len(approver) == 0
}

// Describe implements Authenticator.
func (p Proxy) Describe() string {
	from := make([]string, len(p.From))
	for i, pf := range p.From {
		from[i] = pf.String()
	}
	return fmt.Sprintf("identity proxy at %s (%s)", strings.Join(from, ", "), p.UserHeader)
}

// validLogin bounds what a user name may hold: it becomes part of an
// approver identity and is shown everywhere.
func validLogin(s string) bool {
	if len(s) > 128 {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || strings.ContainsRune(`"'<>\`, c) {
			return false
		}
	}
	return true
}

// ParseGroupMap reads "idp-group=S0GROUP" entries, separated by commas.
// Only Slack user-group IDs may be mapped to: a group stands for many
// people, never for one approver.
func ParseGroupMap(s string) (map[string][]string, error) {
	m := map[string][]string{}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		from, to, ok := strings.Cut(entry, "=")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || from == "" || !userGroupID(to) {
			return nil, fmt.Errorf("group map entry %q: want <identity-provider group>=<Slack user-group ID, S…>", entry)
		}
		m[from] = append(m[from], to)
	}
	return m, nil
}

// ParsePeople parses --console-people: login=U…,… (a person's login as the
// console names them, user:<login>, and their Slack user ID). It returns
// the map Config.People takes.
func ParsePeople(s string) (map[string]string, error) {
	m := map[string]string{}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		login, id, ok := strings.Cut(entry, "=")
		login, id = strings.TrimPrefix(strings.TrimSpace(login), "user:"), strings.TrimSpace(id)
		if !ok || login == "" || !slackUserID(id) {
			return nil, fmt.Errorf("people entry %q: want <login>=<Slack user ID, U… or W…>", entry)
		}
		if prev, dup := m["user:"+login]; dup && prev != id {
			return nil, fmt.Errorf("people entry %q: %s is %s already", entry, login, prev)
		}
		m["user:"+login] = id
	}
	return m, nil
}

func slackUserID(s string) bool {
	return len(s) >= 2 && (s[0] == 'U' || s[0] == 'W') && upperAlnum(s[1:])
}

func upperAlnum(s string) bool {
	for _, c := range s {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func userGroupID(s string) bool {
	return len(s) >= 2 && s[0] == 'S' && upperAlnum(s[1:])
}

// csrf issues and checks the tokens that every form posting to the console
// carries: an HMAC of a random per-browser value (kept in a cookie that
// only the console's pages send) and the signed-in identity. A page of
// another site can neither read the cookie nor compute the token; Go's
// CrossOriginProtection refuses its cross-site posts before that.
type csrf struct{ key []byte }

const csrfCookie = "soar_csrf"

// newCSRF returns the tokens of a console: keyed by shared (Config.Key)
// when it is set, else by a key drawn now.
func newCSRF(shared []byte) (*csrf, error) {
	if shared != nil {
		if len(shared) < MinKeyBytes {
			return nil, fmt.Errorf("console: the shared key must be at least %d bytes, not %d", MinKeyBytes, len(shared))
		}
		// Its own key, derived: a CSRF token is never a MAC under the key
		// that signs sessions.
		m := hmac.New(sha256.New, shared)
		m.Write([]byte("soar console csrf v1"))
		return &csrf{key: m.Sum(nil)}, nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return &csrf{key: k}, nil
}

// token returns the token for the identity, setting the browser's random
// value first when it has none.
func (c *csrf) token(w http.ResponseWriter, r *http.Request, id *Identity) string {
	nonce := ""
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) == 43 {
		nonce = ck.Value
	} else {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		nonce = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{
			Name: csrfCookie, Value: nonce, Path: "/console/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: secureRequest(r),
		})
	}
	return c.sign(nonce, id.User)
}

func (c *csrf) sign(nonce, user string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(nonce))
	m.Write([]byte{0})
	m.Write([]byte(user))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// check reports whether the posted form carries the identity's token.
func (c *csrf) check(r *http.Request, id *Identity) bool {
	ck, err := r.Cookie(csrfCookie)
	if err != nil || ck.Value == "" {
		return false
	}
	got := r.PostFormValue("csrf")
	return hmac.Equal([]byte(got), []byte(c.sign(ck.Value, id.User)))
}

// secureRequest reports whether the console's cookies must be Secure:
// everywhere but on a loopback host (soar dev's plain-HTTP listener).
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || !loopbackHost(r.Host)
}
