package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/connectors/slack"
	"github.com/soar-dev/soar/console"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/internal/testenv/fakeslack"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// chromium finds Debian's Chromium (make chromium installs it) or the one
// SOAR_CHROMIUM names.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SOAR_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the console's browser tests need Chromium: run 'make chromium' (Debian's chromium package) or set SOAR_CHROMIUM")
	return ""
}

// browser starts a headless Chromium for the test. Background networking is
// off: this machine reaches no outside host, and Chromium's attempts only
// slow it down. Its TMPDIR is the test's, which the test removes: Chromium
// puts its singleton socket there and left one directory in /tmp per start.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Env("TMPDIR="+t.TempDir()),
		chromedp.NoSandbox, // tests run as root here; the page is the test's own
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// person is one browser profile (its own cookies) whose every request
// carries the identity headers an authenticating proxy would add (none when
// user is empty).
func person(t *testing.T, bctx context.Context, user, groups string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancelT)
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil || user == "" {
			return err
		}
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{
			console.DefaultUserHeader: user, console.DefaultGroupsHeader: groups, console.DefaultEmailHeader: user + "@example.com",
		}})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// hostileText is what the test's attacker writes into every string of its
// alert: markup that would run script, and Slack's markup.
const hostileText = `<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> <!channel> <https://evil.example|click here>`

// TestConsoleInTheBrowser drives the console in headless Chromium as three
// people behind an identity proxy: the incident list, an incident created by
// a real alert (whose every string is hostile markup) with its timeline and
// evidence hashes, the approvals inbox, a vote from someone who is not an
// approver, a double vote, a forged cross-site post, two approvals making the
// quorum, the pod contained in the API server, and a close.
func TestConsoleInTheBrowser(t *testing.T) {
	ctx := context.Background()
	tc := temporalClient(t)
	_, _, js := testenv.NATS(t)
	const ns = "console"
	dir := t.TempDir()
	pb := `name: e2e-console
match: alert.rule == "e2e console"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: evidence
    action: kubernetes.snapshot
  - id: ask
    approval: {approvers: ["S0SECOPS"], quorum: 2, timeout: 30m, message: "Contain the pod?"}
  - id: contain
    action: kubernetes.quarantine
`
	if err := os.WriteFile(filepath.Join(dir, "console.yaml"), []byte(pb), 0o600); err != nil {
		t.Fatal(err)
	}
	startSoar(t, js, tc, dir, dispatch.Config{})
	testenv.Pod(t, kubeCS, ns, "web-1")

	// The console, behind a "proxy" at 127.0.0.1: this test. Its soar
	// talks to Slack, where bob@example.com is U0BOB.
	fs := fakeslack.New(t)
	fs.SetUser(fakeslack.User{ID: "U0BOB", Name: "bob", Email: "bob@example.com", Team: fakeslack.TeamID})
	svc := soarService(t, tc)
	svc.Slack = slack.New(slack.Config{BotToken: "xoxb-console", APIURL: fs.URL})
	c, err := console.New(console.Config{
		Temporal: tc, Namespace: "default", Service: svc,
		Auth: console.Proxy{
			From:       []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			UserHeader: console.DefaultUserHeader, EmailHeader: console.DefaultEmailHeader, GroupsHeader: console.DefaultGroupsHeader,
			GroupMap: map[string][]string{"secops": {"S0SECOPS"}, "oncall": {"S0ONCALL"}},
		},
		People:             map[string]string{"user:alice": "U0ALICE"},
		Evidence:           evidence.NewLocal(evidenceDir(t)),
		DownloadsPerMinute: consoleDownloadsPerMinute,
		Log:                testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httpserver.New(metrics.New().Registry)
	c.Register(hs)
	srv := httptest.NewServer(hs.Handler())
	t.Cleanup(srv.Close)

	hostile := fmt.Sprintf("%q", hostileText)
	msg := fmt.Sprintf(`{"id":"console-1","source":"e2e","rule":"e2e console","severity":"critical","summary":%s,"hostname":%s,"tags":[%s],
		"kubernetes":{"namespace":%q,"pod":"web-1","container":%s},"fields":{"proc.cmdline":%s,%s:"x"}}`,
		hostile, hostile, hostile, ns, hostile, hostile, hostile)
	if _, err := js.Publish(ctx, "alerts.e2e", []byte(msg)); err != nil {
		t.Fatal(err)
	}
	id := playbooks.IncidentID("e2e-console", ns+"/web-1")
	var hash, manifestSHA string
	testenv.Eventually(t, 30*time.Second, "the approval opens", func() error {
		st, err := incidentState(ctx, tc, id)
		if err != nil {
			return err
		}
		if st.Status != workflows.StatusAwaitingApproval || len(st.Approvals) == 0 {
			return fmt.Errorf("status %s, no approval yet", st.Status)
		}
		hash = st.Approvals[0].PlanHash
		manifestSHA, _ = st.Steps[0].Output["sha256"].(string)
		return nil
	})
	// The list and the inbox read Temporal's visibility, which follows the
	// workflow's search attributes a moment later.
	testenv.Eventually(t, 30*time.Second, "visibility lists the incident awaiting approval", func() error {
		rows, err := incidents.List(ctx, tc, "default", "SoarStatus = 'awaiting_approval' AND WorkflowId = '"+id+"'", 1)
		if err == nil && len(rows) == 0 {
			err = errors.New("not yet")
		}
		return err
	})
	page := srv.URL + "/console/incidents/" + url.PathEscape(id)
	bctx := browser(t)
	alice := person(t, bctx, "alice", "secops")
	browse(t, alice, "the list", chromedp.Navigate(srv.URL+"/console/"), chromedp.WaitVisible(css(`#rows a[href="/console/incidents/`+id+`"]`)))
	shoot(t, alice, "console-list")
	if rows := get(t, alice, "rows", chromedp.Evaluate[int](`document.querySelectorAll("#rows tr").length`)); rows < 1 {
		t.Fatalf("the list shows %d rows", rows)
	}
	// The row's alert count, as the incident published it while its
	// approval waits.
	if n := get(t, alice, "the alert count", chromedp.Evaluate[string](`document.querySelector('#rows a[href="/console/incidents/`+id+`"]').closest("tr").querySelector("td.num").textContent`)); n != "1" {
		t.Errorf("the list's alert count for the incident is %q, want 1", n)
	}
	browse(t, alice, "the incident", chromedp.Click(css(`#rows a[href="/console/incidents/`+id+`"]`)), chromedp.WaitVisible(css(`#timeline`)))
	shoot(t, alice, "console-incident")
	scripts := get(t, alice, "scripts", chromedp.Evaluate[int](`document.querySelectorAll("script").length`))
	imgs := get(t, alice, "images", chromedp.Evaluate[int](`document.querySelectorAll("img").length`))
	pwned := get(t, alice, "pwned", chromedp.Evaluate[bool](`window.__pwned !== undefined`))
	if scripts != 1 || imgs != 0 || pwned {
		t.Errorf("the alert's markup became the page's: %d scripts (want htmx's 1), %d images, script ran: %v", scripts, imgs, pwned)
	}
	body := get(t, alice, "the page's text", chromedp.Evaluate[string](`document.body.textContent`))
	for _, want := range []string{hostileText, "Step evidence (kubernetes.snapshot) succeeded", "Approval ask requested: 2 of S0SECOPS, plan " + hash, manifestSHA, "Every artifact matches its SHA-256.", "pod.json", "name: e2e-console"} {
		if !strings.Contains(body, want) {
			t.Errorf("the incident page lacks %q", want)
		}
	}

	mine := `#inbox section[id="approval-` + id + `-ask"]`
	browse(t, alice, "the inbox", chromedp.Navigate(srv.URL+"/console/approvals"), chromedp.WaitVisible(css(mine)))
	shoot(t, alice, "console-approvals")
	if q := text(t, alice, mine+` .quorum`); q != "0 of 2" {
		t.Errorf("the inbox says %q before any vote", q)
	}
	browse(t, alice, "alice approves",
		chromedp.SetValue(css(mine+` input[name=comment]`), "seen the shell: contain"),
		chromedp.Click(css(mine+` button.approve`)),
		chromedp.WaitVisible(css(`#flash`)),
	)
	if f := text(t, alice, `#flash`); !strings.Contains(f, "1 of 2 approvals so far") {
		t.Errorf("alice's approval: %q", f)
	}
	browse(t, alice, "the inbox again", chromedp.Navigate(srv.URL+"/console/approvals"), chromedp.WaitVisible(css(mine)))
	if q := text(t, alice, mine+` .quorum`); q != "1 of 2" {
		t.Errorf("after one approval the inbox says %q", q)
	}
	browse(t, alice, "alice votes twice", chromedp.Navigate(page), chromedp.Click(css(`#approval-ask button.approve`)), chromedp.WaitVisible(css(`#flash-error`)))
	if f := text(t, alice, `#flash-error`); !strings.Contains(f, `user:alice has already voted on step "ask"`) {
		t.Errorf("alice's second vote: %q", f)
	}

	// alice is U0ALICE in Slack (--console-people): her vote from Slack,
	// as serve takes it once Slack verified the click, is her second.
	_, err = soarService(t, tc).Vote(ctx, id, workflows.Decision{Step: "ask", User: "U0ALICE", Approve: true, Source: workflows.SourceSlack, Person: "U0ALICE", Groups: []string{"S0SECOPS"}, PlanHash: hash})
	var refused *incidents.Refused
	if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "who has already voted on step \"ask\" as user:alice: one person counts once") {
		t.Errorf("alice's Slack vote after her console vote: %v", err)
	}

	carol := person(t, bctx, "carol", "oncall")
	browse(t, carol, "carol votes", chromedp.Navigate(page), chromedp.Click(css(`#approval-ask button.approve`)), chromedp.WaitVisible(css(`#flash-error`)))
	if f := text(t, carol, `#flash-error`); !strings.Contains(f, `user:carol is not an approver of step "ask" (approvers: S0SECOPS)`) {
		t.Errorf("carol's vote: %q", f)
	}

	// A page of another origin that alice visits posts a vote to the
	// console: her browser carries her identity, but not the console's
	// token, and says the post is cross-origin.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/vote"><input name="decision" value="approve"><input name="step" value="ask"><input name="plan" value="%s"><button id="win">You won a prize</button></form>`, page, hash)
	}))
	t.Cleanup(evil.Close)
	browse(t, alice, "a cross-site post", chromedp.Navigate(evil.URL), chromedp.Click(css(`#win`)), chromedp.WaitVisible(css(`#flash-error`)))
	if f := text(t, alice, `#flash-error`); !strings.Contains(f, "cross-origin requests may not change anything") {
		t.Errorf("the cross-site post: %q", f)
	}
	// And a post without the token, from a client that is no browser.
	form := url.Values{"decision": {"approve"}, "step": {"ask"}, "plan": {hash}}
	req, err := http.NewRequest(http.MethodPost, page+"/vote", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(console.DefaultUserHeader, "bob")
	req.Header.Set(console.DefaultGroupsHeader, "secops")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a post without the CSRF token: %s, want 403", resp.Status)
	}
	if st, err := incidentState(ctx, tc, id); err != nil || len(st.Approvals[0].Votes) != 1 {
		t.Fatalf("after the refused votes the approval holds %+v (%v), want alice's vote only", st.Approvals, err)
	}

	bob := person(t, bctx, "bob", "secops")
	browse(t, bob, "bob approves", chromedp.Navigate(page), chromedp.Click(css(`#approval-ask button.approve`)), chromedp.WaitVisible(css(`#flash`)))
	if f := text(t, bob, `#flash`); !strings.Contains(f, "the step is approved") {
		t.Errorf("bob's vote: %q", f)
	}
	testenv.Eventually(t, 30*time.Second, "the pod is contained", func() error { return quarantined(ctx, ns, "web-1") })
	waitStatus(ctx, t, tc, id, workflows.StatusContained)
	// The list filters on the lifecycle and the outcome (Temporal's
	// visibility answers the query the filter makes).
	browse(t, bob, "open and contained incidents", chromedp.Navigate(srv.URL+"/console/?status=open&outcome=contained"),
		chromedp.WaitVisible(css(`#rows a[href="/console/incidents/`+id+`"]`)))
	browse(t, bob, "the timeline", chromedp.Navigate(page), chromedp.WaitVisible(css(`#timeline`)))
	shoot(t, bob, "console-timeline")
	body = get(t, bob, "the timeline", chromedp.Evaluate[string](`document.getElementById("timeline").textContent`))
	for _, want := range []string{"user:alice approved step ask (console) as a member of S0SECOPS", "seen the shell: contain", "user:bob approved step ask (console) as a member of S0SECOPS, Slack user U0BOB", "Approval ask approved", "Step contain (kubernetes.quarantine) succeeded"} {
		if !strings.Contains(body, want) {
			t.Errorf("the timeline lacks %q:\n%s", want, body)
		}
	}
	browse(t, bob, "bob closes the incident",
		chromedp.SetValue(css(`form.stop[action$="/close"] input[name=reason]`), "contained and investigated"),
		chromedp.Click(css(`form.stop[action$="/close"] input[name=confirm]`)),
		chromedp.Click(css(`form.stop[action$="/close"] button`)),
		chromedp.WaitVisible(css(`#flash`)),
	)
	if f := text(t, bob, `#flash`); f != "The incident will be closed." {
		t.Errorf("close: %q", f)
	}
	testenv.Eventually(t, 30*time.Second, "the incident closes", func() error {
		if err := chromedp.Do(bob, chromedp.Navigate(page), chromedp.WaitVisible(css(`#status`))); err != nil {
			return err
		}
		s, err := chromedp.Run(bob, chromedp.Text(css(`#status`)))
		if err != nil {
			return err
		}
		if s != workflows.StatusClosed {
			return fmt.Errorf("status %q", s)
		}
		return nil
	})
	body = get(t, bob, "the timeline", chromedp.Evaluate[string](`document.getElementById("timeline").textContent`))
	if !strings.Contains(body, "contained and investigated (by user:bob (console))") || !regexp.MustCompile(`1 alert joined between \d\d:\d\d:00 and`).MatchString(body) {
		t.Errorf("the timeline does not show the close and its reason, or the alerts per interval:\n%s", body)
	}
	if o := text(t, bob, `#outcome`); o != workflows.OutcomeContained {
		t.Errorf("closed, the incident's outcome is %q, want contained", o)
	}
	checkEvidenceDownloads(t, page, manifestSHA, manifestPath(t, ctx, tc, id))
}

// manifestPath is where the incident's snapshot stored its manifest.
func manifestPath(t *testing.T, ctx context.Context, tc client.Client, id string) string {
	t.Helper()
	st, err := incidentState(ctx, tc, id)
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := st.Steps[0].Output["location"].(string)
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "file" {
		t.Fatalf("the snapshot's location %q", loc)
	}
	return u.Path
}

// checkEvidenceDownloads downloads an artifact through the console (it is
// the stored one), then changes the stored file: the console then refuses
// the download and its page says the bundle does not verify.
func checkEvidenceDownloads(t *testing.T, page, manifestSHA, manifest string) {
	t.Helper()
	fetchAs := func(user, url string) (int, []byte, http.Header) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(console.DefaultUserHeader, user)
		req.Header.Set(console.DefaultGroupsHeader, "secops")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b, resp.Header
	}
	fetch := func(url string) (int, []byte) {
		status, b, _ := fetchAs("alice", url)
		return status, b
	}
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(raw)); got != manifestSHA {
		t.Fatalf("manifest on disk %s, the incident recorded %s", got, manifestSHA)
	}
	var m evidence.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var pod evidence.Entry
	for _, e := range m.Artifacts {
		if e.Name == "pod.json" {
			pod = e
		}
	}
	// Every download is recorded beside the bundle before it is served: one
	// that cannot be recorded (here the record's directory is a file) is
	// refused.
	access := filepath.Join(filepath.Dir(manifest), evidence.AccessDir)
	if err := os.WriteFile(access, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if status, b := fetch(page + "/evidence/evidence/pod.json"); status != http.StatusServiceUnavailable || !strings.Contains(string(b), "could not be, so it is not served") {
		t.Errorf("a download that cannot be recorded: %d\n%s", status, b)
	}
	if err := os.Remove(access); err != nil {
		t.Fatal(err)
	}
	status, b := fetch(page + "/evidence/evidence/pod.json")
	if status != http.StatusOK || fmt.Sprintf("%x", sha256.Sum256(b)) != pod.SHA256 {
		t.Fatalf("download of pod.json: %d, SHA-256 %x, the manifest says %s", status, sha256.Sum256(b), pod.SHA256)
	}
	if status, _ := fetch(page + "/evidence/evidence/..%2fmanifest.json"); status != http.StatusNotFound {
		t.Errorf("a name outside the manifest: %d, want 404", status)
	}
	if _, b := fetch(page); !strings.Contains(string(b), "user:alice downloaded pod.json from step evidence&#39;s evidence") {
		t.Errorf("the incident's timeline does not show alice's download:\n%s", b)
	}
	checkDownloadsPaced(t, page+"/evidence/evidence/pod.json", access, fetchAs)

	stored := filepath.Join(filepath.Dir(manifest), filepath.FromSlash(pod.Key))
	if err := os.WriteFile(stored, append(b, ' '), 0o600); err != nil {
		t.Fatal(err)
	}
	// alice's downloads are used up (checkDownloadsPaced); carol asks.
	if status, b, _ := fetchAs("carol", page+"/evidence/evidence/pod.json"); status != http.StatusBadGateway || !strings.Contains(string(b), "pod.json") {
		t.Errorf("download of a changed artifact: %d\n%s", status, b)
	}
	if _, b := fetch(page); !strings.Contains(string(b), "evidence: tampered") || !strings.Contains(string(b), "manifest.json: pod.json: ") || strings.Contains(string(b), "Every artifact matches its SHA-256.") {
		t.Errorf("after a change to pod.json the incident page does not say the bundle fails to verify:\n%s", b)
	}
}

// consoleDownloadsPerMinute is the console's download limit in
// TestConsoleInTheBrowser: small, so that the test reaches it.
const consoleDownloadsPerMinute = 6

// checkDownloadsPaced: alice, who has made three downloads, gets what is
// left of her bucket, then 429 with Retry-After; what was refused is not
// recorded beside the bundle; carol, another person, still downloads.
func checkDownloadsPaced(t *testing.T, url, access string, fetchAs func(user, url string) (int, []byte, http.Header)) {
	t.Helper()
	records := func() int {
		entries, err := os.ReadDir(access)
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	before, served := records(), 0
	for {
		status, b, h := fetchAs("alice", url)
		if status == http.StatusTooManyRequests {
			if secs, err := strconv.Atoi(h.Get("Retry-After")); err != nil || secs < 1 || secs > 60/consoleDownloadsPerMinute {
				t.Errorf("Retry-After %q, want 1 to %d seconds", h.Get("Retry-After"), 60/consoleDownloadsPerMinute)
			}
			if want := fmt.Sprintf("more than %d downloads of evidence within a minute", consoleDownloadsPerMinute); !strings.Contains(string(b), want) {
				t.Errorf("the refusal does not say why:\n%s", b)
			}
			break
		}
		if status != http.StatusOK {
			t.Fatalf("download %d: %d\n%s", served+1, status, b)
		}
		if served++; served > consoleDownloadsPerMinute {
			t.Fatalf("alice downloaded %d times in a row, the limit is %d a minute", served, consoleDownloadsPerMinute)
		}
	}
	// Three of her six went before; a slow machine may have refilled one.
	if served < consoleDownloadsPerMinute-3 {
		t.Errorf("alice was refused after %d more downloads, want %d", served, consoleDownloadsPerMinute-3)
	}
	if got := records(); got != before+served {
		t.Errorf("%d downloads recorded after %d were served, %d before", got, served, before)
	}
	if status, b, _ := fetchAs("carol", url); status != http.StatusOK {
		t.Errorf("carol, refused because of alice's downloads: %d\n%s", status, b)
	}
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// shoot saves a screenshot of the page as name.png in the folder
// SOAR_CONSOLE_SCREENSHOTS names (docs/console.md's come from here).
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("SOAR_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := get(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o600); err != nil {
		t.Fatal(err)
	}
}

// text is the visible text of the first element sel selects ("" when
// none does). It reads the page's current document, whatever navigation
// came before.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, "the text of "+sel, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ""`, sel)))
}

// get runs a browser action that returns a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("%s: %v%s", what, err, whereIs(ctx))
	}
	return v
}

// browse runs browser steps, failing the test with what was being done.
func browse(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatalf("%s: %v%s", what, err, whereIs(ctx))
	}
}

// whereIs says where the browser is and what it shows.
func whereIs(ctx context.Context) string {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(dctx, chromedp.Location())
	body, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return fmt.Sprintf("\nthe browser is at %s, showing:\n%s", loc, body)
}
