package tickets_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/soar-dev/soar/connectors/tickets"
)

// newJira returns a provider for the fake, changed by mods.
func newJira(t *testing.T, j *fakeJira, mods ...func(*tickets.JiraConfig)) tickets.Provider {
	t.Helper()
	cfg := tickets.JiraConfig{URL: j.URL, Cloud: j.cloud, Project: "SEC"}
	if j.cloud {
		cfg.Email, cfg.APIToken = jiraEmail, jiraAPIToken
	} else {
		cfg.PAT = jiraPAT
	}
	for _, m := range mods {
		m(&cfg)
	}
	p, err := tickets.NewJira(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// jiraVariants runs f for Jira Cloud and Data Center.
func jiraVariants(t *testing.T, f func(t *testing.T, j *fakeJira)) {
	for _, cloud := range []bool{true, false} {
		name := "data center"
		if cloud {
			name = "cloud"
		}
		t.Run(name, func(t *testing.T) { f(t, newFakeJira(t, cloud)) })
	}
}

// assertJiraHeaders checks a request's credentials and content types.
func assertJiraHeaders(t *testing.T, j *fakeJira, r request) {
	t.Helper()
	if got := r.Header.Get("Authorization"); got != j.auth {
		t.Errorf("%s %s: Authorization %q, want %q", r.Method, r.Path, got, j.auth)
	}
	if got := r.Header.Get("Accept"); got != "application/json" {
		t.Errorf("%s %s: Accept %q", r.Method, r.Path, got)
	}
	if r.Method == http.MethodPost && r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s %s: Content-Type %q", r.Method, r.Path, r.Header.Get("Content-Type"))
	}
}

func TestJiraSendsWhatTheRESTReferenceDescribes(t *testing.T) {
	jiraVariants(t, func(t *testing.T, j *fakeJira) {
		ctx := context.Background()
		p := newJira(t, j)
		c := sampleContent()
		label := tickets.IncidentLabel(c.IncidentID)

		searchPath, fields := j.prefix+"/search", "key"
		if j.cloud {
			searchPath, fields = j.prefix+"/search/jql", "key,status"
		}
		wantQuery := url.Values{
			"jql":        {`project = "SEC" AND labels = "` + label + `" ORDER BY created ASC`},
			"maxResults": {"1"},
			"fields":     {fields},
		}
		found, err := p.Find(ctx, c.IncidentID)
		if err != nil || found != nil {
			t.Fatalf("Find before create = %v, %v; want nil, nil", found, err)
		}
		reqs := j.requests()
		assertRequest(t, reqs[0], http.MethodGet, searchPath, wantQuery)
		assertJiraHeaders(t, j, reqs[0])

		j.reset()
		tk, err := p.Create(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		want := tickets.Ticket{Provider: "jira", ID: "10000", Key: "SEC-24", URL: j.URL + "/browse/SEC-24"}
		if tk != want {
			t.Errorf("Create = %+v, want %+v", tk, want)
		}
		reqs = j.requests()
		assertRequest(t, reqs[0], http.MethodPost, j.prefix+"/issue", url.Values{})
		assertJiraHeaders(t, j, reqs[0])
		assertGolden(t, j.dir+"/create-request.json", reqs[0].Body)

		found, err = p.Find(ctx, c.IncidentID)
		if err != nil || found == nil || *found != want {
			t.Errorf("Find after create = %+v, %v; want %+v", found, err, want)
		}

		j.reset()
		if err := p.Comment(ctx, tk, c.IncidentID, sampleComment()); err != nil {
			t.Fatal(err)
		}
		reqs = j.requests()
		assertRequest(t, reqs[0], http.MethodPost, j.prefix+"/issue/SEC-24/comment", url.Values{})
		assertJiraHeaders(t, j, reqs[0])
		assertGolden(t, j.dir+"/comment-request.json", reqs[0].Body)

		j.reset()
		if err := p.Resolve(ctx, tk, c.IncidentID, sampleResolution()); err != nil {
			t.Fatal(err)
		}
		reqs = j.requests()
		if len(reqs) != 3 {
			t.Fatalf("Resolve sent %d requests, want 3 (transitions, transition, comment)", len(reqs))
		}
		assertRequest(t, reqs[0], http.MethodGet, j.prefix+"/issue/SEC-24/transitions", url.Values{})
		assertRequest(t, reqs[1], http.MethodPost, j.prefix+"/issue/SEC-24/transitions", url.Values{})
		assertGolden(t, j.dir+"/transition-request.json", reqs[1].Body)
		assertRequest(t, reqs[2], http.MethodPost, j.prefix+"/issue/SEC-24/comment", url.Values{})
		assertGolden(t, j.dir+"/resolve-comment-request.json", reqs[2].Body)
		for _, r := range reqs {
			assertJiraHeaders(t, j, r)
		}

		// Resolving a resolved issue: no Done transition any more, the
		// status says done, and the final comment still goes out.
		j.reset()
		if err := p.Resolve(ctx, tk, c.IncidentID, sampleResolution()); err != nil {
			t.Fatalf("Resolve of a resolved issue: %v", err)
		}
		reqs = j.requests()
		if len(reqs) != 3 {
			t.Fatalf("second Resolve sent %d requests, want 3 (transitions, status, comment)", len(reqs))
		}
		assertRequest(t, reqs[1], http.MethodGet, j.prefix+"/issue/SEC-24", url.Values{"fields": {"status"}})
		assertRequest(t, reqs[2], http.MethodPost, j.prefix+"/issue/SEC-24/comment", url.Values{})
	})
}

func TestJiraResolveWithoutTheTransitionListsTheAvailableOnes(t *testing.T) {
	jiraVariants(t, func(t *testing.T, j *fakeJira) {
		p := newJira(t, j, func(c *tickets.JiraConfig) { c.ResolveTransition = "Close Issue" })
		tk, err := p.Create(context.Background(), sampleContent())
		if err != nil {
			t.Fatal(err)
		}
		err = p.Resolve(context.Background(), tk, "inc-2024-0042", sampleResolution())
		te := asError(t, err)
		if te.Retryable || !strings.Contains(te.Hint, `"Close Issue"`) || !strings.Contains(te.Hint, `"To Do", "In Progress", "Done"`) {
			t.Errorf("error %v: want a non-retryable error listing the transitions", err)
		}
		if n := j.count(http.MethodPost, j.prefix+"/issue/SEC-24/comment"); n != 0 {
			t.Errorf("%d comments on an issue that was not resolved", n)
		}
	})
}

func TestJiraErrorsSayWhatToFix(t *testing.T) {
	soon := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		cfg        func(*tickets.JiraConfig)
		fail       *canned
		status     int
		retryable  bool
		retryAfter [2]time.Duration // inclusive range
		hint, msg  []string         // substrings
		cloudHint  string
		centerHint string
	}{
		{
			name:       "bad credentials",
			cfg:        func(c *tickets.JiraConfig) { c.APIToken, c.PAT = jiraAPIToken+"-old", jiraPAT+"-old" },
			status:     401,
			msg:        []string{"Client must be authenticated"},
			cloudHint:  "check SOAR_JIRA_API_TOKEN and the e-mail it belongs to (--jira-email)",
			centerHint: "check SOAR_JIRA_PAT",
		},
		{
			name:   "project not found",
			fail:   &canned{status: 404, body: "project-404-response.json"},
			status: 404,
			hint:   []string{"project SEC or the Jira URL", "was not found"},
			msg:    []string{"No project could be found with key 'NOPE'."},
		},
		{
			name:   "field errors",
			fail:   &canned{status: 400, body: "create-error-400-response.json"},
			status: 400,
			hint:   []string{`check the issue type "Task"`, "project SEC"},
			msg:    []string{"customfield_10010: Field 'customfield_10010' cannot be set", "priority: Priority name 'Highest' is not valid"},
		},
		{
			name:   "no permission",
			fail:   &canned{status: 403, body: `{"errorMessages":["You do not have permission to create issues in this project."],"errors":{}}`},
			status: 403,
			hint:   []string{"lacks permission to create issues in project SEC"},
		},
		{
			name:       "rate limited",
			fail:       &canned{status: 429, header: map[string]string{"Retry-After": "7"}},
			status:     429,
			retryable:  true,
			retryAfter: [2]time.Duration{7 * time.Second, 7 * time.Second},
		},
		{
			name:       "unavailable until an HTTP date",
			fail:       &canned{status: 503, header: map[string]string{"Retry-After": soon}},
			status:     503,
			retryable:  true,
			retryAfter: [2]time.Duration{28 * time.Second, 31 * time.Second},
		},
		{
			name:      "server error",
			fail:      &canned{status: 500, body: `{"errorMessages":["Internal server error"],"errors":{}}`},
			status:    500,
			retryable: true,
			msg:       []string{"Internal server error"},
		},
		{
			name:   "a login page instead of JSON",
			fail:   &canned{status: 200, header: map[string]string{"Content-Type": "text/html"}, body: "<html><body>Log in</body></html>"},
			status: 200,
			hint:   []string{"single sign-on proxy"},
		},
		{
			name:      "no answer",
			fail:      &canned{drop: true},
			retryable: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			jiraVariants(t, func(t *testing.T, j *fakeJira) {
				var mods []func(*tickets.JiraConfig)
				if tc.cfg != nil {
					mods = append(mods, tc.cfg)
				}
				p := newJira(t, j, mods...)
				if tc.fail != nil {
					c := *tc.fail
					if strings.HasSuffix(c.body, ".json") {
						c.body = string(readTestdata(t, j.dir+"/"+c.body))
					}
					j.failNext("POST "+j.prefix+"/issue", c)
				}
				_, err := p.Create(context.Background(), sampleContent())
				te := asError(t, err)
				if te.Provider != "jira" || te.Op != "create" || te.Status != tc.status || te.Retryable != tc.retryable {
					t.Errorf("error %+v: want status %d, retryable %v", te, tc.status, tc.retryable)
				}
				if te.RetryAfter < tc.retryAfter[0] || te.RetryAfter > tc.retryAfter[1] {
					t.Errorf("RetryAfter %s, want %s..%s", te.RetryAfter, tc.retryAfter[0], tc.retryAfter[1])
				}
				if tc.retryable != (te.Hint == "") {
					t.Errorf("hint %q: want one exactly when not retryable", te.Hint)
				}
				hints := tc.hint
				if j.cloud && tc.cloudHint != "" {
					hints = append(hints, tc.cloudHint)
				} else if !j.cloud && tc.centerHint != "" {
					hints = append(hints, tc.centerHint)
				}
				for _, h := range hints {
					if !strings.Contains(te.Hint, h) || !strings.Contains(err.Error(), h) {
						t.Errorf("error %q: want the hint %q", err, h)
					}
				}
				for _, m := range tc.msg {
					if !strings.Contains(te.Message, m) || !strings.Contains(err.Error(), m) {
						t.Errorf("error %q: want the message %q", err, m)
					}
				}
				if n := j.count(http.MethodPost, j.prefix+"/issue"); n != 1 {
					t.Errorf("%d create requests, want exactly 1 (no retries inside the provider)", n)
				}
			})
		})
	}
}

func TestJiraConfigErrorsNeverHoldSecrets(t *testing.T) {
	tests := []struct {
		name string
		cfg  tickets.JiraConfig
		want string
	}{
		{"no URL", tickets.JiraConfig{Project: "SEC", PAT: jiraPAT}, "the Jira URL (--jira-url) is required"},
		{"credentials in the URL", tickets.JiraConfig{URL: "https://bot:" + jiraAPIToken + "@example.atlassian.net", Project: "SEC", PAT: jiraPAT}, "must not hold credentials"},
		{"cloud without e-mail", tickets.JiraConfig{URL: "https://example.atlassian.net", Cloud: true, APIToken: jiraAPIToken, Project: "SEC"}, "--jira-email"},
		{"data center without PAT", tickets.JiraConfig{URL: "https://jira.example.com", Project: "SEC"}, "SOAR_JIRA_PAT"},
		{"no project", tickets.JiraConfig{URL: "https://jira.example.com", PAT: jiraPAT}, "project key (--jira-project) is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tickets.NewJira(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewJira error %v, want %q", err, tc.want)
			}
			assertNoSecret(t, err)
		})
	}
}

func TestJiraPrioritiesFollowSeverity(t *testing.T) {
	tests := []struct {
		severity   string
		priorities map[string]string
		want       any
	}{
		{"critical", nil, map[string]any{"name": "Highest"}},
		{"error", nil, map[string]any{"name": "High"}},
		{"Warning", nil, map[string]any{"name": "Medium"}},
		{"informational", nil, map[string]any{"name": "Lowest"}},
		{"unknown", nil, nil},
		{"critical", map[string]string{"Critical": "P1"}, map[string]any{"name": "P1"}},
		{"warning", map[string]string{"critical": "P1"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.severity, func(t *testing.T) {
			j := newFakeJira(t, false)
			p := newJira(t, j, func(c *tickets.JiraConfig) { c.Priorities = tc.priorities })
			c := sampleContent()
			c.Severity = tc.severity
			if _, err := p.Create(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			if got := j.all()[0].fields["priority"]; !equalJSON(got, tc.want) {
				t.Errorf("priority %v, want %v", got, tc.want)
			}
		})
	}
}

func TestJiraRefusesFieldsThatWouldHideTheIncidentLabel(t *testing.T) {
	j := newFakeJira(t, true)
	p := newJira(t, j)
	c := sampleContent()
	c.Fields = map[string]any{"labels": []string{"mine"}}
	te := asError(t, func() error { _, err := p.Create(context.Background(), c); return err }())
	if te.Retryable || !strings.Contains(te.Hint, `"labels" is set by soar`) {
		t.Errorf("error %+v", te)
	}
	if len(j.requests()) != 0 {
		t.Errorf("sent %d requests for a refused create", len(j.requests()))
	}
}

func TestJiraFindTellsNoneFromNotUnderstood(t *testing.T) {
	tests := []struct {
		name    string
		answer  string
		wantErr bool
	}{
		{"no issues", `{"isLast":true}`, false},
		{"empty list", `{"issues":[],"isLast":true}`, false},
		{"json that is no search result", `{"status":"ok"}`, true},
		{"html", `<html>Log in</html>`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := newFakeJira(t, true)
			j.failNext("GET /rest/api/3/search/jql", canned{status: 200, body: tc.answer})
			found, err := newJira(t, j).Find(context.Background(), "inc-1")
			if tc.wantErr {
				if te := asError(t, err); te.Retryable || !strings.Contains(te.Hint, "single sign-on") {
					t.Errorf("error %+v", te)
				}
				return
			}
			if err != nil || found != nil {
				t.Errorf("Find = %v, %v; want nil, nil", found, err)
			}
		})
	}
}
