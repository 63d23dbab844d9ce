// Package console is the analysts' web console: the incident list, each
// incident's timeline and evidence, and the inbox of pending approvals, with
// Approve, Deny, Close and Release. It is served by 'soar serve' and 'soar
// dev' on their HTTP port under /console/, rendered on the server with
// html/template from templates embedded in the binary; htmx (embedded too)
// refreshes the lists in place. It reaches nothing on the network but
// Temporal and the evidence store.
//
// Every state change goes through incidents.Service, the same Temporal
// Updates and validators as Slack and the CLI, as the person the
// Authenticator identified. Everything an alert carries is data: the
// templates escape it, and the Content-Security-Policy lets the page run
// only the console's own script.
package console

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the console needs.
type Config struct {
	Temporal  client.Client
	Namespace string
	// Service casts votes and closes and releases incidents.
	Service *incidents.Service
	// Auth identifies the person behind each request.
	Auth Authenticator
	// People maps console identities (user:<login>) to the Slack user each
	// one is (ParsePeople): their votes carry it as the person behind
	// them, so that a person who votes in Slack and in the console counts
	// once.
	People map[string]string
	// Evidence reads the bundles snapshot steps stored; nil when this
	// process has no evidence store (the console then shows the
	// manifest's location and digest only).
	Evidence evidence.Store
	Log      zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// DownloadsPerMinute is how many evidence downloads one person may
	// start a minute, and at once (downloadLimits): 0 means
	// DefaultDownloadsPerMinute, a negative number no limit.
	DownloadsPerMinute int
	// Key, when set, is a secret every replica of the console shares (at
	// least MinKeyBytes; soar serve's SOAR_CONSOLE_SESSION_KEY, which also
	// signs OIDC sessions). The forms' CSRF key is derived from it, so that
	// a page one replica served posts to another, and to the same one after
	// a restart. Nil: each process draws a key of its own.
	Key []byte
}

// MinKeyBytes is the shortest Config.Key (and OIDCConfig.SessionKey).
const MinKeyBytes = 32

// Console serves the pages.
type Console struct {
	cfg       Config
	tmpl      map[string]*template.Template
	csrf      *csrf
	downloads *downloadLimits
}

// PageSize is how many incidents one page of the list shows.
const PageSize = 50

// inboxLimit bounds the incidents the approvals inbox asks for their
// approvals at once.
const inboxLimit = 200

// New parses the templates.
func New(cfg Config) (*Console, error) {
	if cfg.Auth == nil {
		return nil, errors.New("console: no authenticator: configure a sign-in")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DownloadsPerMinute == 0 {
		cfg.DownloadsPerMinute = DefaultDownloadsPerMinute
	}
	c := &Console{cfg: cfg, tmpl: map[string]*template.Template{}, downloads: newDownloadLimits(cfg.DownloadsPerMinute)}
	var err error
	if c.csrf, err = newCSRF(cfg.Key); err != nil {
		return nil, err
	}
	funcs := template.FuncMap{
		"ago":      func(t time.Time) string { return ago(cfg.Now(), t) },
		"left":     func(t time.Time) string { return left(cfg.Now(), t) },
		"stamp":    stamp,
		"rows":     rows,
		"duration": func(d time.Duration) string { return roundDuration(d).String() },
		"short":    short,
		"join":     strings.Join,
		"incident": incidentURL,
		"evidence": func(id, step, name string) string {
			return "/console/incidents/" + url.PathEscape(id) + "/evidence/" + url.PathEscape(step) + "/" + escapeName(name)
		},
		"json": indentAny,
		"voteForm": func(incident string, a *workflows.ApprovalState, csrf string) voteForm {
			return voteForm{Incident: incident, Approval: a, CSRF: csrf}
		},
	}
	for _, page := range []string{"list.html", "incident.html", "approvals.html", "error.html"} {
		t, err := template.New(page).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+page)
		if err != nil {
			return nil, fmt.Errorf("console: %s: %w", page, err)
		}
		c.tmpl[page] = t
	}
	return c, nil
}

// Register mounts the console under /console/ on mux.
func (c *Console) Register(mux interface {
	Handle(pattern string, h http.Handler)
}) {
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /console/static/", c.headers(http.StripPrefix("/console/static/", http.FileServerFS(static)), true))
	mux.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusSeeOther))
	mux.Handle("GET /console/{$}", c.page(c.list))
	mux.Handle("GET /console/approvals", c.page(c.approvals))
	mux.Handle("GET /console/incidents/{id}", c.page(c.incident))
	mux.Handle("GET /console/incidents/{id}/evidence/{step}/{name...}", c.page(c.download))
	mux.Handle("POST /console/incidents/{id}/vote", c.action(c.vote))
	mux.Handle("POST /console/incidents/{id}/close", c.action(c.stop(false)))
	mux.Handle("POST /console/incidents/{id}/release", c.action(c.stop(true)))
	if o, ok := c.cfg.Auth.(*OIDC); ok {
		o.register(mux, func(h http.Handler) http.Handler { return c.headers(h, false) })
		// Signing out shows a page rather than redirecting to the sign-in:
		// the Content-Security-Policy's form-action 'self' forbids a form's
		// redirects to leave for the provider.
		mux.Handle("POST "+logoutPath, c.action(func(w http.ResponseWriter, r *http.Request, v *view) (string, int) {
			o.logout(w, r)
			c.cfg.Log.Info().Str("user", v.Me.User).Msg("console sign-out")
			v.Title, v.Me, v.Flash = "Signed out", nil, "You are signed out."
			return "error.html", http.StatusOK
		}))
	}
}

// csp lets the page load only the console's own script, style and images,
// talk only to the console, and be framed by nobody.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// headers sets the security headers of every answer.
func (c *Console) headers(h http.Handler, cacheable bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		if !cacheable {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

// view is what every page's layout shows.
type view struct {
	Title string
	Me    *Identity
	CSRF  string
	// Nav is the page's section: incidents or approvals.
	Nav string
	// Flash is a message for the person: what their action did.
	Flash, FlashError string
	Data              any
}

// voteForm is what the Approve and Deny form needs.
type voteForm struct {
	Incident string
	Approval *workflows.ApprovalState
	CSRF     string
}

type handler func(w http.ResponseWriter, r *http.Request, v *view) (page string, status int)

// who identifies the request's person, or answers why not.
func (c *Console) who(w http.ResponseWriter, r *http.Request) *Identity {
	id, err := c.cfg.Auth.Identify(r)
	if l, ok := c.cfg.Auth.(interface{ LoginURL(*http.Request) string }); ok && err == nil && id == nil && r.Method == http.MethodGet {
		http.Redirect(w, r, l.LoginURL(r), http.StatusSeeOther)
		return nil
	}
	if err == nil && id == nil {
		err = errors.New("you are not signed in")
	}
	if err != nil {
		c.cfg.Log.Warn().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Str("reason", err.Error()).Msg("console request refused")
		c.render(w, http.StatusUnauthorized, "error.html", &view{Title: "Not signed in", FlashError: err.Error()})
		return nil
	}
	// Anyone signed in may sign out.
	if id.Method != "local" && len(id.Groups) == 0 && !id.Viewer && r.URL.Path != logoutPath {
		c.cfg.Log.Warn().Str("user", id.User).Str("path", r.URL.Path).Msg("console request refused: neither an approver group nor a viewers group")
		c.render(w, http.StatusForbidden, "error.html", &view{Title: "Not allowed", Me: id, CSRF: c.csrf.token(w, r, id),
			FlashError: id.User + " is in no approver group and no viewers group of this console"})
		return nil
	}
	return id
}

// page serves a GET page to anyone the console lets view.
func (c *Console) page(h handler) http.Handler {
	return c.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := c.who(w, r)
		if id == nil {
			return
		}
		v := &view{Me: id, CSRF: c.csrf.token(w, r, id)}
		page, status := h(w, r, v)
		if page != "" {
			c.render(w, status, page, v)
		}
	}), false)
}

// action serves a POST that changes state: cross-site requests are refused
// (Sec-Fetch-Site, Origin), then requests without the person's CSRF token.
func (c *Console) action(h handler) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := c.who(w, r)
		if id == nil {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil || !c.csrf.check(r, id) {
			c.cfg.Log.Warn().Str("user", id.User).Str("path", r.URL.Path).Msg("console action refused: no valid CSRF token")
			c.render(w, http.StatusForbidden, "error.html", &view{Title: "Refused", Me: id,
				FlashError: "this form is stale or did not come from the console: reload the page and try again"})
			return
		}
		v := &view{Me: id, CSRF: c.csrf.token(w, r, id)}
		page, status := h(w, r, v)
		if page != "" {
			c.render(w, status, page, v)
		}
	})
	cross := http.NewCrossOriginProtection()
	cross.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.cfg.Log.Warn().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Msg("console action refused: cross-origin request")
		c.render(w, http.StatusForbidden, "error.html", &view{Title: "Refused", FlashError: "cross-origin requests may not change anything"})
	}))
	return c.headers(cross.Handler(inner), false)
}

func (c *Console) render(w http.ResponseWriter, status int, page string, v *view) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := c.tmpl[page].ExecuteTemplate(w, "layout", v); err != nil {
		c.cfg.Log.Error().Err(err).Str("page", page).Msg("console page did not render")
	}
}

// failure shows an error page.
func failure(v *view, status int, title string, err error) (string, int) {
	v.Title, v.FlashError = title, err.Error()
	return "error.html", status
}

// ----- the incident list

// Filter is the list's filter, from the page's query string.
type Filter struct {
	Status, Outcome, Severity, Namespace, Playbook, Text string
	// Cluster is the incidents' cluster (docs/multi-cluster.md).
	Cluster string
}

// Values that may be searched for: what the search attributes hold, and
// nothing that could end a quoted string of Temporal's query language.
var (
	safeValue = regexp.MustCompile(`^[A-Za-z0-9._:/@-]{1,253}$`)
	statuses  = workflows.Lifecycles
	outcomes  = workflows.Outcomes
)

// legacyStatuses finds incidents recorded before the lifecycle and the
// outcome were split, which hold their outcome in SoarStatus.
func legacyStatuses(lifecycle, outcome string) []string {
	var out []string
	for _, s := range []string{
		workflows.StatusContained, workflows.StatusDegraded, workflows.StatusFailed, workflows.StatusPlanned, workflows.StatusReleased,
	} {
		if l, o := workflows.Split(s); l == lifecycle || o == outcome {
			out = append(out, s)
		}
	}
	return out
}

// anyOf is the visibility clause "attr is one of values".
func anyOf(attr string, values ...string) string {
	if len(values) == 1 {
		return attr + " = '" + values[0] + "'"
	}
	return attr + " IN ('" + strings.Join(values, "', '") + "')"
}

// Query turns the filter into a Temporal visibility query; an error names
// the field that holds what cannot be searched for.
func (f Filter) Query() (string, error) {
	var parts []string
	eq := func(field, attr, v string) error {
		if v == "" {
			return nil
		}
		if !safeValue.MatchString(v) {
			return fmt.Errorf("%s may hold letters, digits and . _ : / @ - only", field)
		}
		parts = append(parts, attr+" = '"+v+"'")
		return nil
	}
	if f.Status != "" && !slices.Contains(statuses, f.Status) {
		return "", fmt.Errorf("status must be one of %s", strings.Join(statuses, ", "))
	}
	if f.Outcome != "" && !slices.Contains(outcomes, f.Outcome) {
		return "", fmt.Errorf("outcome must be one of %s", strings.Join(outcomes, ", "))
	}
	if f.Status != "" {
		parts = append(parts, anyOf(workflows.SearchStatus.GetName(), append([]string{f.Status}, legacyStatuses(f.Status, "")...)...))
	}
	if f.Outcome != "" {
		clause := anyOf(workflows.SearchOutcome.GetName(), f.Outcome)
		if legacy := legacyStatuses("", f.Outcome); len(legacy) > 0 {
			clause = "(" + clause + " OR " + anyOf(workflows.SearchStatus.GetName(), legacy...) + ")"
		}
		parts = append(parts, clause)
	}
	if f.Severity != "" {
		sev, err := alert.ParseSeverity(f.Severity)
		if err != nil {
			return "", fmt.Errorf("severity: %w", err)
		}
		f.Severity = sev.String() // as the search attribute holds it
	}
	for _, e := range []struct{ field, attr, v string }{
		{"severity", workflows.SearchSeverity.GetName(), f.Severity},
		{"namespace", workflows.SearchNamespace.GetName(), f.Namespace},
		{"playbook", workflows.SearchPlaybook.GetName(), f.Playbook},
		{"cluster", workflows.SearchCluster.GetName(), f.Cluster},
	} {
		if err := eq(e.field, e.attr, e.v); err != nil {
			return "", err
		}
	}
	if f.Text != "" {
		if !safeValue.MatchString(f.Text) {
			return "", errors.New("the search may hold letters, digits and . _ : / @ - only")
		}
		parts = append(parts, "(WorkflowId STARTS_WITH '"+f.Text+"' OR "+workflows.SearchPod.GetName()+" STARTS_WITH '"+f.Text+"')")
	}
	return strings.Join(parts, " AND "), nil
}

type listData struct {
	Filter    Filter
	Statuses  []string
	Outcomes  []string
	Rows      []row
	Next      string
	NextURL   string
	Refresh   string
	Generated time.Time
}

// row is one incident of the list with what it shows formatted once: a
// template action costs reflection and an escaper call, and the list may
// hold many rows.
type row struct {
	ID, Status, Outcome, Severity, Playbook, Version, Target, URL string
	Alerts, LastAlert, LastAlertAgo                               string
	Opened, OpenedAgo, Closed, ClosedAgo                          string
	Running                                                       bool
}

// target is where an incident acts: its cluster, when it has one, and
// namespace/pod.
func target(s incidents.Summary) string {
	t := s.Namespace + "/" + s.Pod
	if s.Cluster != "" {
		t = s.Cluster + ": " + t
	}
	return t
}

func rowsOf(sums []incidents.Summary, now time.Time) []row {
	out := make([]row, len(sums))
	for i, s := range sums {
		out[i] = row{
			ID: s.ID, Status: s.Status, Outcome: s.Outcome, Severity: s.Severity, Playbook: s.Playbook, Version: short(s.PlaybookVersion),
			Target: target(s), URL: incidentURL(s.ID), Opened: stamp(s.OpenedAt), OpenedAgo: ago(now, s.OpenedAt), Running: s.Running,
		}
		if !s.ClosedAt.IsZero() {
			out[i].Closed, out[i].ClosedAgo = stamp(s.ClosedAt), ago(now, s.ClosedAt)
		}
		if s.AlertCount > 0 {
			out[i].Alerts = strconv.Itoa(s.AlertCount)
		}
		if !s.LastAlertAt.IsZero() {
			out[i].LastAlert, out[i].LastAlertAgo = stamp(s.LastAlertAt), ago(now, s.LastAlertAt)
		}
	}
	return out
}

// rows renders the list's rows: html/template spends some 30 µs of
// reflection and escaper calls on each row, which a list of thousands feels
// (BenchmarkRenderList), so the rows are written here instead. Every value
// goes through html.EscapeString and lands only in text or in a
// double-quoted attribute, where that escaping is complete; the one URL is
// incidentURL's (a fixed path and a path-escaped ID), never a value's own.
// TestRowsAreTextWhateverTheyHold parses the output back.
func rows(rs []row) template.HTML {
	var b strings.Builder
	b.Grow(len(rs) * 600)
	text := func(parts ...string) {
		for i, p := range parts {
			if i%2 == 0 {
				b.WriteString(p) // markup: constants only
			} else {
				b.WriteString(html.EscapeString(p))
			}
		}
	}
	for _, r := range rs {
		text(`<tr><td><span class="badge st-`, r.Status, `">`, r.Status, `</span>`)
		if !r.Running {
			b.WriteString(` <span class="dim">ended</span>`)
		}
		b.WriteString(`</td><td>`)
		if r.Outcome != "" {
			text(`<span class="badge st-`, r.Outcome, `">`, r.Outcome, `</span>`)
		}
		text(`</td><td>`, r.Severity, `</td><td>`, r.Playbook, ` <span class="dim">`, r.Version, `</span></td><td>`, r.Target,
			`</td><td class="num">`, r.Alerts, `</td><td>`)
		if r.LastAlert != "" {
			text(`<span title="`, r.LastAlert, `">`, r.LastAlertAgo, `</span>`)
		}
		text(`</td><td title="`, r.Opened, `">`, r.OpenedAgo, `</td><td>`)
		if r.Closed != "" {
			text(`<span title="`, r.Closed, `">`, r.ClosedAgo, `</span>`)
		}
		text(`</td><td><a href="`, r.URL, `">`, r.ID, "</a></td></tr>\n")
	}
	return template.HTML(b.String()) //nolint:gosec // every value is escaped above, in text and quoted attributes only
}

func incidentURL(id string) string { return "/console/incidents/" + url.PathEscape(id) }

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") }

func (c *Console) list(_ http.ResponseWriter, r *http.Request, v *view) (string, int) {
	v.Title, v.Nav = "Incidents", "incidents"
	q := r.URL.Query()
	f := Filter{Status: q.Get("status"), Outcome: q.Get("outcome"), Severity: q.Get("severity"), Namespace: q.Get("namespace"), Playbook: q.Get("playbook"), Cluster: q.Get("cluster"), Text: strings.TrimSpace(q.Get("q"))}
	query, err := f.Query()
	if err != nil {
		v.Data = listData{Filter: f, Statuses: statuses, Outcomes: outcomes}
		v.FlashError = err.Error()
		return "list.html", http.StatusBadRequest
	}
	var token []byte
	if p := q.Get("page"); p != "" {
		if len(p) > 4096 {
			return failure(v, http.StatusBadRequest, "Bad page", errors.New("the page token is too long"))
		}
		if token, err = base64.RawURLEncoding.DecodeString(p); err != nil {
			return failure(v, http.StatusBadRequest, "Bad page", errors.New("the page token does not decode"))
		}
	}
	rows, next, err := incidents.Page(r.Context(), c.cfg.Temporal, c.cfg.Namespace, query, PageSize, token)
	if err != nil {
		c.cfg.Log.Error().Err(err).Msg("console: list incidents")
		return failure(v, http.StatusBadGateway, "Temporal did not answer", err)
	}
	d := listData{Filter: f, Statuses: statuses, Outcomes: outcomes, Rows: rowsOf(rows, c.cfg.Now()), Refresh: r.URL.RequestURI(), Generated: c.cfg.Now()}
	if len(next) > 0 {
		nq := r.URL.Query()
		nq.Set("page", base64.RawURLEncoding.EncodeToString(next))
		d.NextURL = "/console/?" + nq.Encode()
	}
	v.Data = d
	return "list.html", http.StatusOK
}

// ----- one incident

type incidentData struct {
	Detail   *incidents.Detail
	Timeline []Entry
	Pinned   *playbooks.Spec
	// PinnedError says why the pinned playbook could not be read.
	PinnedError string
	Evidence    []evidenceView
	Open        []*workflows.ApprovalState
	Running     bool
	Alert       *alert.Alert
}

type evidenceView struct {
	Ref      EvidenceRef
	Manifest *evidence.Manifest
	// Error is why the bundle could not be read or verified.
	Error string
	// Downloads are the downloads recorded beside the bundle, oldest first;
	// MoreDownloads says there are more than maxDownloads.
	Downloads     []evidence.Access
	MoreDownloads bool
}

// maxDownloads bounds the downloads of a bundle that one incident page
// reads and shows.
const maxDownloads = 100

func (c *Console) incident(_ http.ResponseWriter, r *http.Request, v *view) (string, int) {
	return c.showIncident(r.Context(), r.PathValue("id"), v)
}

func (c *Console) showIncident(ctx context.Context, id string, v *view) (string, int) {
	v.Nav = "incidents"
	d, err := incidents.Show(ctx, c.cfg.Temporal, c.cfg.Namespace, id)
	if errors.Is(err, incidents.ErrNotFound) {
		return failure(v, http.StatusNotFound, "No such incident", err)
	}
	if err != nil {
		return failure(v, http.StatusBadGateway, "Temporal did not answer", err)
	}
	v.Title = "Incident " + id
	data := incidentData{Detail: d, Running: d.Running}
	if d.State != nil {
		tl := Timeline(d.State)
		data.Evidence = c.evidence(ctx, tl)
		data.Timeline = withDownloads(tl, data.Evidence)
		data.Alert = d.State.FirstAlert
		for _, a := range d.State.Approvals {
			if a.Outcome == "" && d.Running {
				data.Open = append(data.Open, a)
			}
		}
	}
	if data.Pinned, err = incidents.Pinned(ctx, c.cfg.Temporal, c.cfg.Namespace, id); err != nil {
		data.PinnedError = err.Error()
	}
	v.Data = data
	return "incident.html", http.StatusOK
}

// evidence reads and verifies every bundle the timeline's steps stored.
func (c *Console) evidence(ctx context.Context, tl []Entry) []evidenceView {
	var out []evidenceView
	for _, e := range tl {
		if e.Evidence != nil {
			out = append(out, c.bundle(ctx, *e.Evidence))
		}
	}
	return out
}

// bundle reads the bundle at ref from the store, checks every digest, and
// reads the record of its downloads.
func (c *Console) bundle(ctx context.Context, ref EvidenceRef) evidenceView {
	ev := evidenceView{Ref: ref}
	if c.cfg.Evidence == nil {
		ev.Error = "this soar has no evidence store configured: the manifest's own digest is shown, its artifacts are not"
		return ev
	}
	key, err := c.bundleKey(ref)
	if err != nil {
		ev.Error = err.Error()
		return ev
	}
	var problems []string
	m, err := evidence.Verify(ctx, c.cfg.Evidence, key, ref.SHA256)
	if m.Incident != "" {
		ev.Manifest = &m // shown with the mismatches, when some artifacts do not verify
	}
	if err != nil {
		problems = append(problems, err.Error())
	}
	if ev.Downloads, ev.MoreDownloads, err = evidence.Accesses(ctx, c.cfg.Evidence, key, maxDownloads); err != nil {
		problems = append(problems, "the record of its downloads could not be read: "+err.Error())
	}
	ev.Error = strings.Join(problems, "; ")
	return ev
}

// bundleKey is the key of ref's manifest in this soar's evidence store.
func (c *Console) bundleKey(ref EvidenceRef) (string, error) {
	key, ok := strings.CutPrefix(ref.Location, c.cfg.Evidence.Location(""))
	if !ok {
		return "", fmt.Errorf("the bundle is at %s, outside this soar's evidence store (%s)", ref.Location, c.cfg.Evidence.Location(""))
	}
	return key, nil
}

// download serves one artifact of a step's bundle, after checking the
// manifest's digest against the one the incident recorded and the
// artifact's against the manifest, and records who took it beside the
// bundle (and in the log).
func (c *Console) download(w http.ResponseWriter, r *http.Request, v *view) (string, int) {
	id, step, name := r.PathValue("id"), r.PathValue("step"), r.PathValue("name")
	if c.cfg.Evidence == nil {
		return failure(v, http.StatusNotFound, "No evidence store", errors.New("this soar has no evidence store configured"))
	}
	// Before any work: a refused download costs neither Temporal nor the store.
	if ok, wait, warn := c.downloads.allow(v.Me.User, c.cfg.Now()); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		if warn {
			c.cfg.Log.Warn().Str("user", v.Me.User).Str("incident_id", id).Str("step", step).Str("artifact", name).Int("per_minute", c.cfg.DownloadsPerMinute).
				Msg("console: evidence downloads refused for a while: this person started more than the limit (logged once a minute per person)")
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return failure(v, http.StatusTooManyRequests, "Too many downloads",
			fmt.Errorf("you started more than %d downloads of evidence within a minute: try again in %d s", c.cfg.DownloadsPerMinute, secs))
	}
	d, err := incidents.Show(r.Context(), c.cfg.Temporal, c.cfg.Namespace, id)
	switch {
	case errors.Is(err, incidents.ErrNotFound):
		return failure(v, http.StatusNotFound, "No such incident", err)
	case err != nil:
		return failure(v, http.StatusBadGateway, "Temporal did not answer", err)
	case d.State == nil:
		return failure(v, http.StatusNotFound, "No evidence", fmt.Errorf("incident %s recorded no state", id))
	}
	var ref *EvidenceRef
	for i := range d.State.Steps {
		if d.State.Steps[i].ID == step {
			ref = evidenceOf(&d.State.Steps[i])
		}
	}
	if ref == nil {
		return failure(v, http.StatusNotFound, "No evidence", fmt.Errorf("step %s of incident %s stored no evidence", step, id))
	}
	// Nothing is served unless the manifest has the digest the incident
	// recorded and the artifact the manifest's.
	key, err := c.bundleKey(*ref)
	if err != nil {
		return failure(v, http.StatusBadGateway, "Evidence not served", err)
	}
	data, err := evidence.ReadVerified(r.Context(), c.cfg.Evidence, key, ref.SHA256, name)
	switch {
	case errors.Is(err, evidence.ErrNotFound):
		return failure(v, http.StatusNotFound, "No such artifact", err)
	case err != nil:
		return failure(v, http.StatusBadGateway, "Evidence not served", err)
	}
	// The download is recorded beside the bundle before it is served; one
	// that cannot be recorded is not served.
	sum := sha256.Sum256(data)
	access := evidence.Access{At: c.cfg.Now(), User: v.Me.User, Name: name, SHA256: hex.EncodeToString(sum[:]), Size: len(data), Via: workflows.SourceConsole}
	if err := evidence.RecordAccess(r.Context(), c.cfg.Evidence, key, access); err != nil {
		c.cfg.Log.Error().Err(err).Str("incident_id", id).Str("step", step).Str("artifact", name).Str("user", v.Me.User).Msg("console: evidence download not recorded, so not served")
		return failure(v, http.StatusServiceUnavailable, "Download not recorded", fmt.Errorf("every download of evidence is recorded, and this one could not be, so it is not served: %w", err))
	}
	c.cfg.Log.Info().Str("incident_id", id).Str("step", step).Str("artifact", name).Str("user", v.Me.User).
		Int("bytes", len(data)).Str("sha256", access.SHA256).Msg("evidence downloaded from the console")
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", "attachment; filename="+strconv.Quote(path.Base(name)))
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(data)
	return "", 0
}

// ----- the approvals inbox

type pending struct {
	Incident incidents.Summary
	Approval *workflows.ApprovalState
	// Remaining lists the approvers who have not voted.
	Remaining []string
}

type approvalsData struct {
	Pending []pending
	// Errors lists incidents whose approvals could not be read.
	Errors  []string
	Refresh string
	// Truncated says more incidents await approval than the inbox read.
	Truncated bool
}

func (c *Console) approvals(_ http.ResponseWriter, r *http.Request, v *view) (string, int) {
	v.Title, v.Nav = "Approvals", "approvals"
	ctx := r.Context()
	rows, next, err := incidents.Page(ctx, c.cfg.Temporal, c.cfg.Namespace,
		workflows.SearchStatus.GetName()+" = '"+workflows.StatusAwaitingApproval+"' AND ExecutionStatus = 'Running'", inboxLimit, nil)
	if err != nil {
		return failure(v, http.StatusBadGateway, "Temporal did not answer", err)
	}
	d := approvalsData{Refresh: "/console/approvals", Truncated: len(next) > 0}
	states := make([]*workflows.IncidentState, len(rows))
	errs := make([]error, len(rows))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, row := range rows {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			states[i], errs[i] = c.cfg.Service.Approvals(ctx, row.ID)
		})
	}
	wg.Wait()
	for i, row := range rows {
		if errs[i] != nil {
			d.Errors = append(d.Errors, errs[i].Error())
			continue
		}
		for _, a := range states[i].Approvals {
			if a.Outcome != "" {
				continue
			}
			p := pending{Incident: row, Approval: a}
			for _, who := range a.Approvers {
				if !slices.ContainsFunc(a.Votes, func(vt workflows.Vote) bool { return vt.User == who || vt.Via == who }) || playbooks.IsUserGroup(who) {
					p.Remaining = append(p.Remaining, who)
				}
			}
			d.Pending = append(d.Pending, p)
		}
	}
	slices.SortFunc(d.Pending, func(a, b pending) int { return a.Approval.Deadline.Compare(b.Approval.Deadline) })
	v.Data = d
	return "approvals.html", http.StatusOK
}

// ----- actions

func (c *Console) vote(_ http.ResponseWriter, r *http.Request, v *view) (string, int) {
	id := r.PathValue("id")
	choice := r.PostFormValue("decision")
	if choice != "approve" && choice != "deny" {
		return failure(v, http.StatusBadRequest, "Bad vote", errors.New("the vote must be approve or deny"))
	}
	comment := strings.TrimSpace(r.PostFormValue("comment"))
	if len(comment) > 1000 {
		return failure(v, http.StatusBadRequest, "Bad vote", errors.New("the comment is longer than 1000 characters"))
	}
	d := workflows.Decision{
		Step: r.PostFormValue("step"), User: v.Me.User, Name: v.Me.Name, Email: v.Me.Email, Groups: v.Me.Groups,
		Approve: choice == "approve", Comment: comment, Source: workflows.SourceConsole, PlanHash: r.PostFormValue("plan"),
	}
	ctx, cancel := context.WithTimeout(r.Context(), incidents.VoteTimeout)
	defer cancel()
	var err error
	if d.Person, err = c.person(ctx, v.Me); err != nil {
		v.FlashError = "Your vote was not recorded: " + err.Error()
		return c.after(r.Context(), id, v)
	}
	st, err := c.cfg.Service.Vote(ctx, id, d)
	var refused *incidents.Refused
	switch {
	case errors.As(err, &refused):
		v.FlashError = "Your vote was refused: " + refused.Reason
	case err != nil:
		v.FlashError = "Your vote was not recorded: " + err.Error()
	default:
		v.Flash = incidents.Confirmation(id, d, st)
	}
	return c.after(r.Context(), id, v)
}

// person is the Slack user behind me, so that their Slack and console
// votes count once: from Config.People, else found by their verified
// e-mail when this soar talks to Slack. "" when they have none. A lookup
// that fails for another reason than "no such member" refuses the vote
// rather than let the same person count twice.
func (c *Console) person(ctx context.Context, me *Identity) (string, error) {
	if p := c.cfg.People[me.User]; p != "" {
		return p, nil
	}
	if c.cfg.Service == nil || !me.EmailVerified || me.Email == "" {
		return "", nil
	}
	p, err := c.cfg.Service.SlackUserByEmail(ctx, me.Email)
	if err != nil {
		c.cfg.Log.Warn().Err(err).Str("user", me.User).Msg("console: could not find a voter's Slack user")
		return "", fmt.Errorf("%w (or list people in --console-people)", err)
	}
	return p, nil
}

// after shows the incident after an action: 409 when the action was
// refused or failed.
func (c *Console) after(ctx context.Context, id string, v *view) (string, int) {
	page, status := c.showIncident(ctx, id, v)
	if v.FlashError != "" && status == http.StatusOK {
		status = http.StatusConflict
	}
	return page, status
}

func (c *Console) stop(release bool) handler {
	return func(_ http.ResponseWriter, r *http.Request, v *view) (string, int) {
		id := r.PathValue("id")
		if v.Me.Viewer {
			// A viewer's vote is the approval's validator to judge (a
			// playbook may name them as user:<login>); closing and
			// releasing are for responders.
			return failure(v, http.StatusForbidden, "Not allowed", fmt.Errorf("%s may view incidents and vote where an approval names them, but not close or release", v.Me.User))
		}
		reason := strings.TrimSpace(r.PostFormValue("reason"))
		verb := "close"
		if release {
			verb = "release"
		}
		switch {
		case reason == "":
			v.FlashError = "a " + verb + " needs a reason"
		case len(reason) > 500:
			v.FlashError = "the reason is longer than 500 characters"
		case r.PostFormValue("confirm") != "yes":
			v.FlashError = "tick the confirmation to " + verb + " the incident"
		}
		if v.FlashError != "" {
			page, _ := c.showIncident(r.Context(), id, v)
			return page, http.StatusBadRequest
		}
		ctx, cancel := context.WithTimeout(r.Context(), incidents.VoteTimeout)
		defer cancel()
		_, err := c.cfg.Service.Stop(ctx, id, workflows.StopRequest{Release: release, Reason: reason, By: v.Me.User + " (console)"})
		var refused *incidents.Refused
		switch {
		case errors.As(err, &refused):
			v.FlashError = "Refused: " + refused.Reason
		case err != nil:
			v.FlashError = "Not done: " + err.Error()
		case release:
			v.Flash = "The incident will be released: what its actions did is undone, newest first, then it closes."
		default:
			v.Flash = "The incident will be closed."
		}
		return c.after(r.Context(), id, v)
	}
}

// escapeName escapes each segment of an artifact's slash path.
func escapeName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
