package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/console"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// idpUsers are the identity provider's people: password, e-mail, groups.
var idpUsers = map[string]struct {
	password, email string
	groups          []string
}{
	"alice": {"alice-password", "alice@example.com", []string{"secops"}},
	"bob":   {"bob-password", "bob@example.com", []string{"secops", "staff"}},
	"dave":  {"dave-password", "dave@example.com", []string{"staff"}},
}

type idpUserStore struct{}

func (idpUserStore) GetUserByID(id string) *storage.User { return idpUser(id) }
func (idpUserStore) GetUserByUsername(name string) *storage.User {
	return idpUser(name)
}
func (idpUserStore) ExampleClientID() string { return "" }

func idpUser(name string) *storage.User {
	u, ok := idpUsers[name]
	if !ok {
		return nil
	}
	return &storage.User{ID: name, Username: name, Password: u.password, FirstName: name, Email: u.email, EmailVerified: true, PreferredLanguage: language.English}
}

// idpStorage is zitadel/oidc's example storage, whose ID tokens also carry
// the person's e-mail and groups.
type idpStorage struct{ *storage.Storage }

func (s idpStorage) SetUserinfoFromRequest(_ context.Context, ui *zoidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	u, ok := idpUsers[req.GetSubject()]
	if !ok {
		return fmt.Errorf("no user %s", req.GetSubject())
	}
	ui.Email, ui.EmailVerified = u.email, true
	ui.AppendClaims("groups", u.groups)
	return nil
}

// startIDP runs an OpenID Connect provider (zitadel/oidc's op package with
// its example login page and storage) on 127.0.0.1, with the console as a
// confidential client that must use PKCE.
func startIDP(t *testing.T, redirect string) (issuer, clientID, secret string) {
	t.Helper()
	slog.SetDefault(slog.New(slog.DiscardHandler)) // the example logs every request
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer = "http://" + l.Addr().String()
	clientID, secret = "soar-console", "console-client-secret"
	storage.RegisterClients(storage.WebClient(clientID, secret, redirect))
	router := exampleop.SetupServer(issuer, idpStorage{storage.NewStorage(idpUserStore{})}, nil, false, op.WithAllowInsecure())
	srv := httptest.NewUnstartedServer(router)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return issuer, clientID, secret
}

// TestConsoleOIDCSignIn signs two approvers in to the console through a real
// OpenID Connect provider (authorization code with PKCE), in headless
// Chromium, across two replicas of the console: each approves, the quorum of two contains the pod; someone whose
// groups map to no approver group is refused every page; a forged or replayed
// callback signs nobody in.
func TestConsoleOIDCSignIn(t *testing.T) {
	ctx := context.Background()
	tc := temporalClient(t)
	_, _, js := testenv.NATS(t)
	const ns = "console-oidc"
	dir := t.TempDir()
	pb := `name: e2e-console-oidc
match: alert.rule == "e2e console oidc"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: ask
    approval: {approvers: ["S0SECOPS"], quorum: 2, timeout: 30m}
  - id: contain
    action: kubernetes.quarantine
`
	if err := os.WriteFile(filepath.Join(dir, "console.yaml"), []byte(pb), 0o600); err != nil {
		t.Fatal(err)
	}
	startSoar(t, js, tc, dir, dispatch.Config{})
	testenv.Pod(t, kubeCS, ns, "web-1")

	// The console's address must be known before the provider registers
	// its callback.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	issuer, clientID, secret := startIDP(t, base+"/console/auth/callback")
	// Two replicas sharing SOAR_CONSOLE_SESSION_KEY, as the Helm chart runs
	// serve, behind a balancer without sticky sessions that sends every
	// post and the provider's callback to the second: a sign-in starts on
	// one and ends on the other, and every form one renders posts to the
	// other.
	key := []byte("e2e-console-key-of-at-least-32-bytes")
	var replicas [2]http.Handler
	var served [2]atomic.Int64
	for i := range replicas {
		auth, err := console.NewOIDC(ctx, console.OIDCConfig{
			Issuer: issuer, ClientID: clientID, ClientSecret: secret, RedirectURL: base + "/console/auth/callback",
			GroupMap: map[string][]string{"secops": {"S0SECOPS"}}, SessionKey: key, Log: testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		c, err := console.New(console.Config{
			Temporal: tc, Namespace: "default", Service: soarService(t, tc), Auth: auth,
			Evidence: evidence.NewLocal(evidenceDir(t)), Key: key, Log: testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		hs := httpserver.New(metrics.New().Registry)
		c.Register(hs)
		replicas[i] = hs.Handler()
	}
	balancer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := 0
		if r.Method == http.MethodPost || r.URL.Path == "/console/auth/callback" {
			i = 1
		}
		served[i].Add(1)
		replicas[i].ServeHTTP(w, r)
	})
	t.Cleanup(func() {
		if served[0].Load() == 0 || served[1].Load() == 0 {
			t.Errorf("the replicas served %d and %d requests: the test did not cross them", served[0].Load(), served[1].Load())
		}
	})
	srv := httptest.NewUnstartedServer(balancer)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)

	if _, err := js.Publish(ctx, "alerts.e2e", fmt.Appendf(nil, `{"id":"oidc-1","source":"e2e","rule":"e2e console oidc","severity":"critical","kubernetes":{"namespace":%q,"pod":"web-1"}}`, ns)); err != nil {
		t.Fatal(err)
	}
	id := playbooks.IncidentID("e2e-console-oidc", ns+"/web-1")
	waitStatus(ctx, t, tc, id, workflows.StatusAwaitingApproval)
	page := base + "/console/incidents/" + url.PathEscape(id)

	bctx := browser(t)
	signIn := func(user string) context.Context {
		t.Helper()
		b := signInAs(t, bctx, page, user, `#me`)
		if me := text(t, b, `#me`); me != "user:"+idpUsers[user].email {
			t.Fatalf("%s is signed in as %q", user, me)
		}
		return b
	}

	alice := signIn("alice")
	browse(t, alice, "alice approves", chromedp.Click(css(`#approval-ask button.approve`)), chromedp.WaitVisible(css(`#flash`)))
	if f := text(t, alice, `#flash`); !strings.Contains(f, "1 of 2 approvals so far") {
		t.Errorf("alice's approval: %q", f)
	}
	browse(t, alice, "alice signs out", chromedp.Click(css(`#logout`)), chromedp.WaitVisible(css(`#back`)))
	if f := text(t, alice, `#flash`); f != "You are signed out." {
		t.Errorf("signing out: %q", f)
	}
	browse(t, alice, "alice is asked to sign in again", chromedp.Navigate(page), chromedp.WaitVisible(css(`#username`)))

	dave := signInAs(t, bctx, page, "dave", `#flash-error`)
	if f := text(t, dave, `#flash-error`); !strings.Contains(f, "user:dave@example.com is in no approver group and no viewers group") {
		t.Errorf("dave: %q", f)
	}

	bob := signIn("bob")
	browse(t, bob, "bob approves", chromedp.Click(css(`#approval-ask button.approve`)), chromedp.WaitVisible(css(`#flash`)))
	if f := text(t, bob, `#flash`); !strings.Contains(f, "the step is approved") {
		t.Errorf("bob's approval: %q", f)
	}
	testenv.Eventually(t, 30*time.Second, "the pod is contained", func() error { return quarantined(ctx, ns, "web-1") })
	st, err := incidentState(ctx, tc, id)
	if err != nil {
		t.Fatal(err)
	}
	var voters []string
	for _, v := range st.Approvals[0].Votes {
		voters = append(voters, v.User+"/"+v.Source+"/"+v.Via)
	}
	if got := strings.Join(voters, " "); got != "user:alice@example.com/console/S0SECOPS user:bob@example.com/console/S0SECOPS" {
		t.Errorf("votes %s", got)
	}

	// A callback this browser did not start, and one with a forged state,
	// sign nobody in.
	for _, q := range []string{"code=x&state=y", "code=x&state=y&error=access_denied"} {
		resp, err := http.Get(base + "/console/auth/callback?" + q)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || len(resp.Cookies()) != 1 || resp.Cookies()[0].Name != "soar_oidc" {
			t.Errorf("callback ?%s: %s, cookies %v; want 400 and no session", q, resp.Status, resp.Cookies())
		}
	}
	// A session cookie soar did not sign is nobody's.
	req, err := http.NewRequest(http.MethodGet, page, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "soar_session", Value: "eyJ1IjoibWFsbG9yeSIsImciOlsiUzBTRUNPUFMiXSwieCI6IjIwOTktMDEtMDFUMDA6MDA6MDBaIn0.forged"})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/auth/login") {
		t.Errorf("a forged session: %s to %q, want a redirect to the sign-in", resp.Status, resp.Header.Get("Location"))
	}
}

// signInAs opens page in a new browser profile, which sends it to the
// provider's login page, signs in there as user and waits for the console
// to show until on page (the callback's redirect back to the page asked for
// is checked by safeNext's unit test).
func signInAs(t *testing.T, bctx context.Context, page, user, until string) context.Context {
	t.Helper()
	b := person(t, bctx, "", "")
	browse(t, b, user+" signs in",
		chromedp.Navigate(page),
		chromedp.WaitVisible(css(`#username`)),
		chromedp.SetValue(css(`#username`), user),
		chromedp.SetValue(css(`#password`), idpUsers[user].password),
		chromedp.Click(css(`button[type=submit]`)),
		chromedp.WaitVisible(css(until)),
	)
	return b
}
