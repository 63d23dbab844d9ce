package tickets_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// ghIssue is an issue of fakeGitHub.
type ghIssue struct {
	number             int
	title, body        string
	labels, assignees  []string
	state, stateReason string
	comments           int
	pullRequest        bool
}

// fakeGitHub implements the GitHub REST endpoints soar uses for repository
// acme/secops, answering with the shapes of testdata/github.
type fakeGitHub struct {
	*fake
	owner, repo string
	issueTmpl   map[string]any
	commentTmpl map[string]any
	// GitHub's answers to a bad token and to a repository it does not show.
	badCredentials, notFound map[string]any

	mu         sync.Mutex
	issues     []*ghIssue
	dropLabels bool // as GitHub does for accounts without push access
}

// newFakeGitHub starts a fake GitHub with repository acme/secops.
func newFakeGitHub(t *testing.T) *fakeGitHub {
	g := &fakeGitHub{
		fake:           newFake(t),
		owner:          "acme",
		repo:           "secops",
		issueTmpl:      template(t, "github/create-issue-response.json"),
		commentTmpl:    template(t, "github/comment-response.json"),
		badCredentials: template(t, "github/bad-credentials-401-response.json"),
		notFound:       template(t, "github/not-found-404-response.json"),
	}
	g.mux.HandleFunc("GET /repos/{owner}/{repo}/issues", g.authed(g.list))
	g.mux.HandleFunc("POST /repos/{owner}/{repo}/issues", g.authed(g.create))
	g.mux.HandleFunc("POST /repos/{owner}/{repo}/issues/{n}/comments", g.authed(g.withIssue(g.comment)))
	g.mux.HandleFunc("PATCH /repos/{owner}/{repo}/issues/{n}", g.authed(g.withIssue(g.update)))
	return g
}

// authed answers 401 without the token and 404 for another repository.
func (g *fakeGitHub) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer "+githubToken:
			writeJSON(w, http.StatusUnauthorized, g.badCredentials)
		case r.PathValue("owner") != g.owner || r.PathValue("repo") != g.repo:
			writeJSON(w, http.StatusNotFound, g.notFound)
		default:
			h(w, r)
		}
	}
}

// withIssue resolves {n} or answers 404.
func (g *fakeGitHub) withIssue(h func(http.ResponseWriter, *http.Request, *ghIssue)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, is := range g.issues {
			if strconv.Itoa(is.number) == r.PathValue("n") {
				h(w, r, is)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found", "status": "404"})
	}
}

// issueJSON fills the issue template in with is.
func (g *fakeGitHub) issueJSON(is *ghIssue) map[string]any {
	out := clone(g.issueTmpl)
	api := fmt.Sprintf("%s/repos/%s/%s/issues/%d", g.URL, g.owner, g.repo, is.number)
	out["number"], out["title"], out["body"], out["state"] = is.number, is.title, is.body, is.state
	out["url"], out["comments_url"] = api, api+"/comments"
	out["html_url"] = fmt.Sprintf("https://github.com/%s/%s/issues/%d", g.owner, g.repo, is.number)
	out["comments"] = is.comments
	if is.stateReason != "" {
		out["state_reason"] = is.stateReason
	}
	labelTmpl := g.issueTmpl["labels"].([]any)[0].(map[string]any)
	labels := []any{}
	for _, name := range is.labels {
		l := clone(labelTmpl)
		l["name"], l["default"] = name, false
		labels = append(labels, l)
	}
	out["labels"] = labels
	if is.pullRequest {
		out["pull_request"] = map[string]any{"url": api}
	}
	return out
}

func (g *fakeGitHub) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	want := strings.Split(q.Get("labels"), ",")
	perPage, _ := strconv.Atoi(q.Get("per_page"))
	g.mu.Lock()
	defer g.mu.Unlock()
	issues := slicesClone(g.issues)
	if q.Get("direction") != "asc" {
		slices.Reverse(issues)
	}
	out := []any{}
	for _, is := range issues {
		if (q.Get("state") == "all" || q.Get("state") == is.state) && allIn(want, is.labels) && (perPage == 0 || len(out) < perPage) {
			out = append(out, g.issueJSON(is))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *fakeGitHub) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Title, Body       string
		Labels, Assignees []string
	}
	if !readJSON(w, r, &in) {
		return
	}
	g.mu.Lock()
	is := &ghIssue{number: 1347 + len(g.issues), title: in.Title, body: in.Body, labels: in.Labels, assignees: in.Assignees, state: "open"}
	if g.dropLabels {
		is.labels = nil
	}
	g.issues = append(g.issues, is)
	out := g.issueJSON(is)
	g.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

func (g *fakeGitHub) comment(w http.ResponseWriter, r *http.Request, is *ghIssue) {
	var in struct{ Body string }
	if !readJSON(w, r, &in) {
		return
	}
	is.comments++
	out := clone(g.commentTmpl)
	out["body"] = in.Body
	writeJSON(w, http.StatusCreated, out)
}

func (g *fakeGitHub) update(w http.ResponseWriter, r *http.Request, is *ghIssue) {
	var in struct {
		State       string `json:"state"`
		StateReason string `json:"state_reason"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	if in.State != "" {
		is.state = in.State
	}
	if in.StateReason != "" {
		is.stateReason = in.StateReason
	}
	writeJSON(w, http.StatusOK, g.issueJSON(is))
}

// add stores an issue as if someone had created it.
func (g *fakeGitHub) add(is *ghIssue) {
	g.mu.Lock()
	defer g.mu.Unlock()
	is.number = 1347 + len(g.issues)
	g.issues = append(g.issues, is)
}

// all returns the issues.
func (g *fakeGitHub) all() []*ghIssue {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slicesClone(g.issues)
}

// allIn reports whether every label of want is in have.
func allIn(want, have []string) bool {
	for _, w := range want {
		if w != "" && !contains(have, w) {
			return false
		}
	}
	return true
}
