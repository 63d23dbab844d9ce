package tickets_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/soar-dev/soar/connectors/tickets"
)

// newGitHub returns a provider for the fake, changed by mods.
func newGitHub(t *testing.T, g *fakeGitHub, mods ...func(*tickets.GitHubConfig)) tickets.Provider {
	t.Helper()
	cfg := tickets.GitHubConfig{Owner: "acme", Repo: "secops", Token: githubToken, APIURL: g.URL + "/", Labels: []string{"security"}}
	for _, m := range mods {
		m(&cfg)
	}
	p, err := tickets.NewGitHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// assertGitHubHeaders checks a request's credentials.
func assertGitHubHeaders(t *testing.T, r request) {
	t.Helper()
	if got := r.Header.Get("Authorization"); got != "Bearer "+githubToken {
		t.Errorf("%s %s: Authorization %q", r.Method, r.Path, got)
	}
}

func TestGitHubSendsWhatTheRESTDocsDescribe(t *testing.T) {
	ctx := context.Background()
	g := newFakeGitHub(t)
	p := newGitHub(t, g)
	c := sampleContent()
	label := tickets.IncidentLabel(c.IncidentID)

	found, err := p.Find(ctx, c.IncidentID)
	if err != nil || found != nil {
		t.Fatalf("Find before create = %v, %v; want nil, nil", found, err)
	}
	reqs := g.requests()
	assertRequest(t, reqs[0], http.MethodGet, "/repos/acme/secops/issues", url.Values{
		"labels": {label}, "state": {"all"}, "sort": {"created"}, "direction": {"asc"}, "per_page": {"1"},
	})
	assertGitHubHeaders(t, reqs[0])

	g.reset()
	tk, err := p.Create(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	want := tickets.Ticket{Provider: "github", ID: "1347", Key: "acme/secops#1347", URL: "https://github.com/acme/secops/issues/1347"}
	if tk != want {
		t.Errorf("Create = %+v, want %+v", tk, want)
	}
	reqs = g.requests()
	assertRequest(t, reqs[0], http.MethodPost, "/repos/acme/secops/issues", url.Values{})
	assertGitHubHeaders(t, reqs[0])
	assertGolden(t, "github/create-issue-request.json", reqs[0].Body)

	found, err = p.Find(ctx, c.IncidentID)
	if err != nil || found == nil || *found != want {
		t.Errorf("Find after create = %+v, %v; want %+v", found, err, want)
	}

	g.reset()
	if err := p.Comment(ctx, tk, c.IncidentID, sampleComment()); err != nil {
		t.Fatal(err)
	}
	reqs = g.requests()
	assertRequest(t, reqs[0], http.MethodPost, "/repos/acme/secops/issues/1347/comments", url.Values{})
	assertGitHubHeaders(t, reqs[0])
	assertGolden(t, "github/comment-request.json", reqs[0].Body)

	for attempt := range 2 { // resolving a closed issue succeeds too
		g.reset()
		if err := p.Resolve(ctx, tk, c.IncidentID, sampleResolution()); err != nil {
			t.Fatalf("Resolve #%d: %v", attempt+1, err)
		}
		reqs = g.requests()
		if len(reqs) != 2 {
			t.Fatalf("Resolve sent %d requests, want 2 (comment, close)", len(reqs))
		}
		assertRequest(t, reqs[0], http.MethodPost, "/repos/acme/secops/issues/1347/comments", url.Values{})
		assertGolden(t, "github/resolve-comment-request.json", reqs[0].Body)
		assertRequest(t, reqs[1], http.MethodPatch, "/repos/acme/secops/issues/1347", url.Values{})
		assertGolden(t, "github/close-request.json", reqs[1].Body)
		assertGitHubHeaders(t, reqs[1])
	}
	if is := g.all()[0]; is.state != "closed" || is.stateReason != "completed" {
		t.Errorf("issue state %s (%s), want closed (completed)", is.state, is.stateReason)
	}
}

func TestGitHubFindSkipsPullRequests(t *testing.T) {
	g := newFakeGitHub(t)
	g.add(&ghIssue{labels: []string{tickets.IncidentLabel("inc-1")}, state: "open", pullRequest: true})
	found, err := newGitHub(t, g).Find(context.Background(), "inc-1")
	if err != nil || found != nil {
		t.Errorf("Find = %+v, %v; want nil: a pull request is not a ticket", found, err)
	}
}

func TestGitHubCreateFailsWhenGitHubDropsTheLabels(t *testing.T) {
	g := newFakeGitHub(t)
	g.dropLabels = true
	tk, err := newGitHub(t, g).Create(context.Background(), sampleContent())
	te := asError(t, err)
	if tk.Key != "acme/secops#1347" {
		t.Errorf("ticket %+v: want the issue that was created", tk)
	}
	if te.Retryable || !strings.Contains(te.Hint, "write") || !strings.Contains(te.Hint, tickets.IncidentLabel("inc-2024-0042")) {
		t.Errorf("error %v: want a non-retryable error naming the access and the label", err)
	}
}

func TestGitHubErrorsSayWhatToFix(t *testing.T) {
	reset := strconv.FormatInt(time.Now().Add(60*time.Second).Unix(), 10)
	tests := []struct {
		name       string
		cfg        func(*tickets.GitHubConfig)
		fail       *canned
		status     int
		retryable  bool
		retryAfter [2]time.Duration
		hint, msg  []string
	}{
		{
			name:   "bad credentials",
			cfg:    func(c *tickets.GitHubConfig) { c.Token = githubToken + "-old" },
			status: 401,
			hint:   []string{"check SOAR_GITHUB_TOKEN"},
			msg:    []string{"Bad credentials"},
		},
		{
			name:   "repository not found",
			cfg:    func(c *tickets.GitHubConfig) { c.Repo = "nope" },
			status: 404,
			hint:   []string{"repository acme/nope was not found"},
		},
		{
			name:   "validation failed",
			fail:   &canned{status: 422, body: "github/validation-422-response.json"},
			status: 422,
			hint:   []string{"assignees must be able to see acme/secops"},
			msg:    []string{"Validation Failed; Issue assignees invalid"},
		},
		{
			name:   "no permission",
			fail:   &canned{status: 403, body: `{"message":"Resource not accessible by personal access token","status":"403"}`},
			status: 403,
			hint:   []string{"lacks permission to open issues with labels in acme/secops"},
			msg:    []string{"Resource not accessible"},
		},
		{
			name: "primary rate limit",
			fail: &canned{status: 403, body: "github/rate-limit-403-response.json", header: map[string]string{
				"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "X-RateLimit-Used": "5000", "X-RateLimit-Reset": reset,
			}},
			status:     403,
			retryable:  true,
			retryAfter: [2]time.Duration{55 * time.Second, 61 * time.Second},
			msg:        []string{"API rate limit exceeded"},
		},
		{
			name:       "secondary rate limit",
			fail:       &canned{status: 403, body: "github/secondary-rate-limit-403-response.json", header: map[string]string{"Retry-After": "30"}},
			status:     403,
			retryable:  true,
			retryAfter: [2]time.Duration{30 * time.Second, 30 * time.Second},
		},
		{
			name:       "429 with Retry-After",
			fail:       &canned{status: 429, body: `{"message":"Too many requests"}`, header: map[string]string{"Retry-After": "5"}},
			status:     429,
			retryable:  true,
			retryAfter: [2]time.Duration{5 * time.Second, 5 * time.Second},
		},
		{
			name:      "bad gateway",
			fail:      &canned{status: 502, body: `{"message":"Server Error"}`},
			status:    502,
			retryable: true,
		},
		{
			name:      "no answer",
			fail:      &canned{drop: true},
			retryable: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGitHub(t)
			var mods []func(*tickets.GitHubConfig)
			if tc.cfg != nil {
				mods = append(mods, tc.cfg)
			}
			p := newGitHub(t, g, mods...)
			if tc.fail != nil {
				c := *tc.fail
				if strings.HasSuffix(c.body, ".json") {
					c.body = string(readTestdata(t, c.body))
				}
				g.failNext("POST /repos/{owner}/{repo}/issues", c)
			}
			_, err := p.Create(context.Background(), sampleContent())
			te := asError(t, err)
			if te.Provider != "github" || te.Op != "create" || te.Status != tc.status || te.Retryable != tc.retryable {
				t.Errorf("error %+v: want status %d, retryable %v", te, tc.status, tc.retryable)
			}
			if te.RetryAfter < tc.retryAfter[0] || te.RetryAfter > tc.retryAfter[1] {
				t.Errorf("RetryAfter %s, want %s..%s", te.RetryAfter, tc.retryAfter[0], tc.retryAfter[1])
			}
			if tc.retryable != (te.Hint == "") {
				t.Errorf("hint %q: want one exactly when not retryable", te.Hint)
			}
			for _, h := range tc.hint {
				if !strings.Contains(te.Hint, h) || !strings.Contains(err.Error(), h) {
					t.Errorf("error %q: want the hint %q", err, h)
				}
			}
			for _, m := range tc.msg {
				if !strings.Contains(te.Message, m) {
					t.Errorf("message %q: want %q", te.Message, m)
				}
			}
			if n := g.count(http.MethodPost, "/repos/acme/"+map[bool]string{true: "nope", false: "secops"}[tc.name == "repository not found"]+"/issues"); n != 1 {
				t.Errorf("%d create requests, want exactly 1 (no retries inside go-github)", n)
			}
		})
	}
}

func TestGitHubAfterARateLimitTheNextAttemptIsSent(t *testing.T) {
	// go-github would otherwise remember the limit and fail the next
	// attempt without sending it; Temporal already waited RetryAfter.
	g := newFakeGitHub(t)
	p := newGitHub(t, g)
	reset := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	g.failNext("POST /repos/{owner}/{repo}/issues", canned{status: 403, body: string(readTestdata(t, "github/rate-limit-403-response.json")),
		header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}})
	if _, err := p.Create(context.Background(), sampleContent()); !asError(t, err).Retryable {
		t.Fatalf("error %v: want retryable", err)
	}
	if _, err := p.Create(context.Background(), sampleContent()); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	if n := g.count(http.MethodPost, "/repos/acme/secops/issues"); n != 2 {
		t.Errorf("%d create requests, want 2", n)
	}
}

func TestGitHubRefusesIncompleteOrUnsafeConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  tickets.GitHubConfig
		want string
	}{
		{"no repository", tickets.GitHubConfig{Owner: "acme", Token: githubToken}, "owner and name are required"},
		{"owner/repo in one field", tickets.GitHubConfig{Owner: "acme/secops", Repo: "secops", Token: githubToken}, "owner and name are required"},
		{"no token", tickets.GitHubConfig{Owner: "acme", Repo: "secops"}, "SOAR_GITHUB_TOKEN"},
		{"long label", tickets.GitHubConfig{Owner: "acme", Repo: "secops", Token: githubToken, Labels: []string{strings.Repeat("x", 51)}}, "longer than GitHub's 50 characters"},
		{"credentials in the API URL", tickets.GitHubConfig{Owner: "acme", Repo: "secops", Token: githubToken, APIURL: "https://x:" + githubToken + "@ghe.example.com/api/v3/"}, "must not hold credentials"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tickets.NewGitHub(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewGitHub error %v, want %q", err, tc.want)
			}
			assertNoSecret(t, err)
		})
	}
}
