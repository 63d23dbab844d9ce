package console

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/html"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/slack"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// hostile is what an attacker puts in every string an alert carries.
const hostile = `<script>alert(1)</script><img src=x onerror=alert(2)> <!channel> <https://evil.example|click> *bold* " onmouseover="x`

func TestFilterQueryRefusesWhatCouldEscapeTheQuery(t *testing.T) {
	for _, f := range []Filter{
		{Namespace: "x' OR 'a' = 'a"},
		{Playbook: `a"b`},
		{Text: "a') OR (WorkflowId != '"},
		{Status: "closed' OR 1=1"},
		{Severity: "Critical'"},
		{Status: "contained"}, // an outcome, not a lifecycle
		{Outcome: "denied' OR 'a' = 'a"},
		{Namespace: strings.Repeat("a", 300)},
		{Cluster: "prod' OR 'a' = 'a"},
	} {
		if q, err := f.Query(); err == nil {
			t.Errorf("%+v: query %q, want an error", f, q)
		}
	}
	q, err := Filter{Status: "open", Outcome: "contained", Severity: "Critical", Namespace: "payments", Playbook: "terminal-shell", Text: "web-"}.Query()
	if err != nil {
		t.Fatal(err)
	}
	// Incidents recorded before the lifecycle and the outcome were split
	// hold the outcome in SoarStatus: open ones are found by it too.
	want := "SoarStatus IN ('open', 'contained', 'degraded', 'failed', 'planned', 'released') AND (SoarOutcome = 'contained' OR SoarStatus = 'contained') AND SoarSeverity = 'critical' AND SoarNamespace = 'payments' AND SoarPlaybook = 'terminal-shell' AND (WorkflowId STARTS_WITH 'web-' OR SoarPod STARTS_WITH 'web-')"
	if q != want {
		t.Errorf("query\n got %s\nwant %s", q, want)
	}
	for f, want := range map[Filter]string{
		{Outcome: "denied"}:           "SoarOutcome = 'denied'",
		{Status: "closed"}:            "SoarStatus = 'closed'",
		{Status: "awaiting_approval"}: "SoarStatus = 'awaiting_approval'",
		{Cluster: "prod-eu"}:          "SoarCluster = 'prod-eu'",
	} {
		if q, err := f.Query(); err != nil || q != want {
			t.Errorf("%+v: query %q (%v), want %q", f, q, err, want)
		}
	}
}

func TestLocalSignsInOnLoopbackOnly(t *testing.T) {
	l := Local{User: "api:alice", Name: "alice"}
	for _, tc := range []struct {
		remote, host string
		ok           bool
	}{
		{"127.0.0.1:5555", "127.0.0.1:8080", true},
		{"127.0.0.1:5555", "localhost:8080", true},
		{"[::1]:5555", "[::1]:8080", true},
		{"10.0.0.7:5555", "127.0.0.1:8080", false},
		// A DNS-rebinding page reaches the loopback port under its own name.
		{"127.0.0.1:5555", "evil.example:8080", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/console/", nil)
		r.RemoteAddr, r.Host = tc.remote, tc.host
		id, err := l.Identify(r)
		if tc.ok != (err == nil) || (tc.ok && id.User != "api:alice") {
			t.Errorf("remote %s host %s: identity %+v, error %v; want ok=%v", tc.remote, tc.host, id, err, tc.ok)
		}
	}
}

func TestProxyHeadersCountFromTheProxyOnly(t *testing.T) {
	p := Proxy{
		From:       []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
		UserHeader: DefaultUserHeader, EmailHeader: DefaultEmailHeader, GroupsHeader: DefaultGroupsHeader,
		GroupMap: map[string][]string{"secops": {"S0SECOPS"}, "oncall": {"S0ONCALL"}},
		Viewers:  []string{"auditors"},
	}
	req := func(remote, user, groups string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/console/", nil)
		r.RemoteAddr = remote
		r.Header.Set(DefaultUserHeader, user)
		r.Header.Set(DefaultGroupsHeader, groups)
		return r
	}
	if _, err := p.Identify(req("192.168.1.5:1000", "mallory", "secops")); err == nil {
		t.Error("headers from outside the proxy's addresses were believed")
	}
	id, err := p.Identify(req("10.1.2.3:1000", "alice", "oncall, secops,other"))
	if err != nil || id.User != "user:alice" || strings.Join(id.Groups, ",") != "S0ONCALL,S0SECOPS" || id.Viewer {
		t.Errorf("alice: %+v, %v", id, err)
	}
	id, err = p.Identify(req("10.1.2.3:1000", "aud", "auditors"))
	if err != nil || !id.Viewer || len(id.Groups) != 0 {
		t.Errorf("auditor: %+v, %v", id, err)
	}
	if id, err := p.Identify(req("10.1.2.3:1000", "", "secops")); id != nil || err != nil {
		t.Errorf("no user header: %+v, %v; want not signed in", id, err)
	}
	if _, err := p.Identify(req("10.1.2.3:1000", `a"><script>`, "")); err == nil {
		t.Error("a user name with markup was accepted")
	}
}

func TestParseGroupMap(t *testing.T) {
	m, err := ParseGroupMap("secops=S0SECOPS, secops=S0IR ,oncall=S0ONCALL")
	if err != nil || len(m["secops"]) != 2 || m["oncall"][0] != "S0ONCALL" {
		t.Errorf("%v %v", m, err)
	}
	for _, bad := range []string{"secops", "secops=U0ALICE", "=S0X", "a=s0lower"} {
		if _, err := ParseGroupMap(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParsePeople(t *testing.T) {
	m, err := ParsePeople(" alice=U0ALICE,user:bob=W0BOB, alice=U0ALICE")
	if err != nil || m["user:alice"] != "U0ALICE" || m["user:bob"] != "W0BOB" || len(m) != 2 {
		t.Errorf("%v %v", m, err)
	}
	for _, bad := range []string{"alice", "alice=S0SECOPS", "=U0X", "a=u0lower", "alice=U0A,alice=U0B"} {
		if _, err := ParsePeople(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// directory is a Slack directory for the console's person lookup.
type directory struct {
	byEmail map[string]string
	err     error
}

func (d directory) GroupMembers(context.Context, string) ([]string, error) { return nil, nil }
func (d directory) User(context.Context, string) (slack.User, error)       { return slack.User{}, nil }
func (d directory) UserByEmail(_ context.Context, email string) (slack.User, error) {
	if d.err != nil {
		return slack.User{}, d.err
	}
	id, ok := d.byEmail[email]
	if !ok {
		return slack.User{}, &slack.Error{Method: "users.lookupByEmail", Code: "users_not_found"}
	}
	return slack.User{ID: id, Email: email}, nil
}

// A console vote carries the Slack user behind it: from --console-people,
// else found by verified e-mail; a lookup that fails refuses the vote.
func TestConsoleVotesCarryTheirSlackPerson(t *testing.T) {
	ctx := context.Background()
	svc := &incidents.Service{Slack: directory{byEmail: map[string]string{"bob@example.com": "U0BOB", "eve@example.com": "U0EVE"}}}
	c, err := New(Config{Auth: Local{User: "api:me"}, Service: svc, People: map[string]string{"user:alice": "U0ALICE"}, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		me   Identity
		want string
	}{
		{Identity{User: "user:alice", Email: "alice@example.com", EmailVerified: true}, "U0ALICE"},
		{Identity{User: "user:bob", Email: "bob@example.com", EmailVerified: true}, "U0BOB"},
		{Identity{User: "user:eve", Email: "eve@example.com"}, ""}, // not verified: not believed
		{Identity{User: "user:carol", Email: "carol@example.com", EmailVerified: true}, ""},
	} {
		if got, err := c.person(ctx, &tc.me); err != nil || got != tc.want {
			t.Errorf("%s: person %q, %v; want %q", tc.me.User, got, err, tc.want)
		}
	}
	svc.Slack = directory{err: &slack.Error{Method: "users.lookupByEmail", Code: "missing_scope"}}
	if _, err := c.person(ctx, &Identity{User: "user:bob", Email: "bob@example.com", EmailVerified: true}); err == nil || !strings.Contains(err.Error(), "users:read.email") {
		t.Errorf("a failed lookup: %v, want the vote refused, naming the scope", err)
	}
}

func TestCSRFTokenIsBoundToTheBrowserAndThePerson(t *testing.T) {
	c, err := newCSRF(nil)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := &Identity{User: "user:alice"}, &Identity{User: "user:bob"}
	w := httptest.NewRecorder()
	tok := c.token(w, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/console/", nil), alice)
	cookie := w.Result().Cookies()[0]
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict", cookie)
	}
	post := func(token string, withCookie bool) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/console/incidents/x/vote", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if withCookie {
			r.AddCookie(cookie)
		}
		return r
	}
	if !c.check(post(tok, true), alice) {
		t.Error("the page's own token was refused")
	}
	if c.check(post(tok, false), alice) {
		t.Error("a token without its browser's cookie was accepted")
	}
	if c.check(post(tok, true), bob) {
		t.Error("alice's token was accepted for bob")
	}
	if c.check(post("", true), alice) {
		t.Error("a post without a token was accepted")
	}
	// Away from loopback the cookie is Secure.
	w = httptest.NewRecorder()
	c.token(w, httptest.NewRequest(http.MethodGet, "http://soar.example/console/", nil), alice)
	if !w.Result().Cookies()[0].Secure {
		t.Error("the cookie is not Secure on a non-loopback host")
	}
}

func hostileState(now time.Time) *workflows.IncidentState {
	a := &alert.Alert{
		ID: hostile, Rule: hostile, Summary: hostile, Source: "syscall", Severity: alert.SeverityCritical, Time: now.Add(-time.Minute),
		Hostname: hostile, Tags: []string{hostile}, Fields: map[string]any{hostile: hostile},
		Kubernetes: alert.Kubernetes{Namespace: hostile, Pod: hostile, Container: hostile},
	}
	return &workflows.IncidentState{
		IncidentID: "p/ns/pod", Playbook: "p", PlaybookVersion: "0123456789abcdef", Status: workflows.StatusAwaitingApproval,
		FirstAlert: a, LatestAlert: a, AlertCount: 3, OpenedAt: now.Add(-time.Minute), LastAlertAt: now,
		Steps: []workflows.StepResult{{
			ID: "contain", Action: "kubernetes.quarantine", Status: workflows.StepSucceeded,
			Params: map[string]any{"pod": hostile}, Output: map[string]any{"note": hostile},
			StartedAt: now.Add(-50 * time.Second), FinishedAt: now.Add(-49 * time.Second),
		}, {
			ID: "evidence", Action: "kubernetes.snapshot", Status: workflows.StepSucceeded,
			Output:    map[string]any{"location": "file:///e/p/manifest.json", "sha256": "ab12", "artifacts": float64(7)},
			StartedAt: now.Add(-48 * time.Second), FinishedAt: now.Add(-47 * time.Second),
		}},
		Approvals: []*workflows.ApprovalState{{
			Step: "ask", Approvers: []string{"S0SECOPS", "user:bob"}, Quorum: 2, Message: hostile,
			OpenedAt: now.Add(-45 * time.Second), Deadline: now.Add(time.Hour), PlanHash: "c0ffee123456",
			Plan:  []workflows.PlannedAction{{Step: "delete", Action: "kubernetes.delete", Destructive: true, Params: map[string]any{"pod": hostile}}},
			Votes: []workflows.Vote{{User: "user:alice", Approve: true, Source: workflows.SourceConsole, Comment: hostile, At: now.Add(-10 * time.Second), Via: "S0SECOPS"}},
		}},
	}
}

// TestPagesRenderAlertContentAsText renders every page with an incident
// whose every alert-derived string is markup, and checks that none of it
// reaches the page as markup.
func TestPagesRenderAlertContentAsText(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	c, err := New(Config{Auth: Local{User: "api:me", Name: "me"}, Log: zerolog.Nop(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	st := hostileState(now)
	tl := Timeline(st)
	me := &Identity{User: "api:me", Method: "local"}
	sum := incidents.Summary{ID: "p/" + hostile, Playbook: hostile, Status: workflows.StatusAwaitingApproval, Severity: hostile, Namespace: hostile, Pod: hostile, Running: true, OpenedAt: now}
	pages := map[string]*view{
		"incident.html": {Title: "Incident", Me: me, CSRF: "tok", Data: incidentData{
			Detail: &incidents.Detail{Summary: sum, State: st}, Timeline: tl, Running: true, Open: st.Approvals,
			Pinned:   &playbooks.Spec{Name: "p", Version: "v", Source: "name: p\n# " + hostile},
			Evidence: []evidenceView{{Ref: *tl[3].Evidence, Error: hostile}},
		}},
		"list.html":      {Title: "Incidents", Me: me, Data: listData{Rows: rowsOf([]incidents.Summary{sum}, now), Statuses: statuses, Outcomes: outcomes}},
		"approvals.html": {Title: "Approvals", Me: me, CSRF: "tok", Data: approvalsData{Pending: []pending{{Incident: sum, Approval: st.Approvals[0], Remaining: []string{"S0SECOPS", "user:bob"}}}}},
		"error.html":     {Title: hostile, Me: me, FlashError: hostile},
	}
	ends := map[string]string{"incident.html": "# &lt;script&gt;alert(1)", "list.html": "The list refreshes", "approvals.html": "Approve plan c0ffee123456", "error.html": "Back to the incidents"}
	for page, v := range pages {
		var b strings.Builder
		if err := c.tmpl[page].ExecuteTemplate(&b, "layout", v); err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		body := b.String()
		if !strings.Contains(body, ends[page]) {
			t.Errorf("%s: the page lacks %q", page, ends[page])
		}
		for _, bad := range []string{"<script>alert", "<img src=x", `" onmouseover="x`, "<!channel>", "<https://evil"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: the page holds %q as markup", page, bad)
			}
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s: the hostile text is not shown escaped", page)
		}
	}
}

func TestTimelineOrdersTheIncident(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	st := hostileState(now)
	st.ClosedAt, st.CloseReason = now.Add(time.Second), "false positive (by user:alice (console))"
	var kinds []string
	for _, e := range Timeline(st) {
		kinds = append(kinds, e.Kind+":"+e.Status)
	}
	want := "opened: alert: step:succeeded step:succeeded approval:pending vote:approved alert: closed:"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("timeline\n got %s\nwant %s", got, want)
	}
	tl := Timeline(st)
	if tl[2].Duration != time.Second || !strings.Contains(tl[2].Params, hostile[:8]) {
		t.Errorf("step entry: %+v", tl[2])
	}
	if ev := tl[3].Evidence; ev == nil || ev.SHA256 != "ab12" || ev.Artifacts != 7 {
		t.Errorf("evidence of the snapshot step: %+v", ev)
	}
}

func TestTimelineCountsAlertsPerIntervalAndShowsDownloads(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	st := hostileState(now)
	st.Intervals = &workflows.Intervals{Start: now.Add(-time.Minute), Width: time.Minute, Counts: []int{2, 0, 1}}
	tl := Timeline(st)
	ev := []evidenceView{{Ref: *evidenceOf(&st.Steps[1]), Downloads: []evidence.Access{{At: now.Add(30 * time.Second), User: "user:alice", Name: "pod.json"}}}}
	var lines []string
	for _, e := range withDownloads(tl, ev) {
		if e.Kind == "alerts" || e.Kind == "download" {
			lines = append(lines, e.At.Format(time.TimeOnly)+" "+e.Title)
		}
	}
	want := []string{
		"09:59:00 2 alerts joined between 09:59:00 and 10:00:00",
		"10:01:00 1 alert joined between 10:01:00 and 10:02:00",
		"10:00:30 user:alice downloaded pod.json from step evidence's evidence",
	}
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		t.Errorf("timeline\n got %q\nwant %q", lines, want)
	}
}

// TestViewersMayNotCloseOrRelease posts a close, with a valid token, as a
// member of a viewers group only: refused before anything reaches Temporal
// (this console has none).
func TestViewersMayNotCloseOrRelease(t *testing.T) {
	c, err := New(Config{
		Auth: Proxy{From: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, UserHeader: DefaultUserHeader, GroupsHeader: DefaultGroupsHeader, Viewers: []string{"auditors"}},
		Log:  zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	for _, verb := range []string{"close", "release"} {
		form := url.Values{"csrf": {c.csrf.sign(strings.Repeat("n", 43), "user:aud")}, "reason": {"x"}, "confirm": {"yes"}}
		r := httptest.NewRequest(http.MethodPost, "/console/incidents/p%2Fx/"+verb, strings.NewReader(form.Encode()))
		r.RemoteAddr = "127.0.0.1:5000"
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set(DefaultUserHeader, "aud")
		r.Header.Set(DefaultGroupsHeader, "auditors")
		r.AddCookie(&http.Cookie{Name: csrfCookie, Value: strings.Repeat("n", 43)})
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "may view incidents and vote where an approval names them, but not close or release") {
			t.Errorf("%s by a viewer: %d\n%s", verb, w.Code, w.Body.String())
		}
	}
}

// TestRowsAreTextWhateverTheyHold parses the list's rows (written without
// html/template, for speed) back as a browser would: whatever the values
// hold, the markup is the rows' own and every value comes back as text or
// as an attribute's value, unchanged.
func TestRowsAreTextWhateverTheyHold(t *testing.T) {
	evil := hostile + ` ' " & </td></tr><tr><td> <a href="javascript:alert(3)">`
	r := row{
		ID: "p/" + evil, Status: evil, Outcome: evil, Severity: evil, Playbook: evil, Version: evil, Target: evil,
		URL: incidentURL("p/" + evil), Opened: evil, OpenedAgo: evil, Closed: evil, ClosedAgo: evil,
		Alerts: evil, LastAlert: evil, LastAlertAgo: evil,
	}
	doc, err := html.Parse(strings.NewReader("<table><tbody>" + string(rows([]row{r, r})) + "</tbody></table>"))
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	var texts []string
	attrs := map[string][]string{}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		switch n.Type {
		case html.ElementNode:
			tags = append(tags, n.Data)
			for _, a := range n.Attr {
				attrs[n.Data+"."+a.Key] = append(attrs[n.Data+"."+a.Key], a.Val)
			}
		case html.TextNode:
			if strings.TrimSpace(n.Data) != "" {
				texts = append(texts, strings.TrimSpace(n.Data))
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	one := "tr td span span td span td td span td td td span td td span td a"
	if got := strings.Join(tags, " "); got != "html head body table tbody "+one+" "+one {
		t.Errorf("elements %s, want two rows of %s", got, one)
	}
	for key, vals := range attrs {
		switch key {
		case "span.class", "span.title", "td.title", "td.class", "a.href":
		default:
			t.Errorf("attribute %s=%q: the values made markup", key, vals)
		}
	}
	if got := attrs["a.href"]; len(got) != 2 || got[0] != r.URL || !strings.HasPrefix(got[0], "/console/incidents/") {
		t.Errorf("links %q, want %q", got, r.URL)
	}
	if got := attrs["td.title"]; len(got) != 2 || got[0] != evil {
		t.Errorf("opened title %q, want the value unchanged", got)
	}
	if got := attrs["span.class"]; len(got) < 3 || got[0] != "badge st-"+evil || got[1] != "dim" || got[2] != "badge st-"+evil {
		t.Errorf("badge class %q", got)
	}
	want := strings.TrimSpace(evil)
	for _, s := range texts {
		if s != want && s != "ended" && s != "p/"+want {
			t.Errorf("text %q is neither a value nor the rows' own", s)
		}
	}
	if len(texts) != 2*12 {
		t.Errorf("%d texts, want 12 a row: %q", len(texts), texts)
	}
}

// TestCSRFTokensOfASharedKey: consoles given the same key (replicas of
// serve with SOAR_CONSOLE_SESSION_KEY) accept each other's tokens; others
// do not, and neither does a console that drew its own. The token is not a
// MAC under the shared key itself, which also signs sessions.
func TestCSRFTokensOfASharedKey(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a, errA := newCSRF(key)
	b, errB := newCSRF(slices.Clone(key))
	other, errO := newCSRF([]byte("fedcba9876543210fedcba9876543210"))
	drawn, errD := newCSRF(nil)
	if err := errors.Join(errA, errB, errO, errD); err != nil {
		t.Fatal(err)
	}
	alice := &Identity{User: "user:alice"}
	w := httptest.NewRecorder()
	tok := a.token(w, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/console/", nil), alice)
	post := httptest.NewRequest(http.MethodPost, "/console/incidents/x/vote", strings.NewReader(url.Values{"csrf": {tok}}.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	post.AddCookie(w.Result().Cookies()[0])
	if !b.check(post, alice) {
		t.Error("a replica with the same key refused the token")
	}
	if other.check(post, alice) || drawn.check(post, alice) {
		t.Error("a console with another key accepted the token")
	}
	if bytes.Equal(a.key, key) || bytes.Equal(a.key, other.key) {
		t.Error("the CSRF key is the shared key itself, or does not depend on it")
	}
	if _, err := newCSRF(key[:31]); err == nil {
		t.Error("a 31-byte key was accepted")
	}
}
