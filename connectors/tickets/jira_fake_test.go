package tickets_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// jiraIssue is an issue of fakeJira.
type jiraIssue struct {
	id, key string
	labels  []string
	fields  map[string]any
	done    bool
}

// fakeJira implements the Jira REST endpoints soar uses, Cloud (v3) or Data
// Center (v2), answering with the shapes of testdata/jira-cloud or
// testdata/jira-dc.
type fakeJira struct {
	*fake
	cloud  bool
	prefix string // "/rest/api/3" or "/rest/api/2"
	dir    string // testdata directory
	auth   string // the Authorization header it accepts

	tmpl   map[string]map[string]any // response templates by file name
	mu     sync.Mutex
	issues []*jiraIssue
}

// jqlPattern parses the JQL soar sends.
var jqlPattern = regexp.MustCompile(`^project = "([^"]*)" AND labels = "([^"]*)" ORDER BY created ASC$`)

// newFakeJira starts a fake Jira Cloud (cloud) or Data Center with project
// SEC.
func newFakeJira(t *testing.T, cloud bool) *fakeJira {
	j := &fakeJira{fake: newFake(t), cloud: cloud, tmpl: map[string]map[string]any{}}
	search := "/search"
	if cloud {
		j.prefix, j.dir, search = "/rest/api/3", "jira-cloud", "/search/jql"
		j.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(jiraEmail+":"+jiraAPIToken))
	} else {
		j.prefix, j.dir = "/rest/api/2", "jira-dc"
		j.auth = "Bearer " + jiraPAT
	}
	for _, name := range []string{"search-response.json", "create-response.json", "comment-response.json", "transitions-response.json", "issue-status-response.json"} {
		j.tmpl[name] = template(t, j.dir+"/"+name)
	}
	j.mux.HandleFunc("GET "+j.prefix+search, j.authed(j.search))
	j.mux.HandleFunc("POST "+j.prefix+"/issue", j.authed(j.create))
	j.mux.HandleFunc("POST "+j.prefix+"/issue/{key}/comment", j.authed(j.withIssue(j.comment)))
	j.mux.HandleFunc("GET "+j.prefix+"/issue/{key}/transitions", j.authed(j.withIssue(j.transitions)))
	j.mux.HandleFunc("POST "+j.prefix+"/issue/{key}/transitions", j.authed(j.withIssue(j.transition)))
	j.mux.HandleFunc("GET "+j.prefix+"/issue/{key}", j.authed(j.withIssue(j.status)))
	return j
}

// authed answers 401 unless the request carries the right credentials, as
// Jira does (with a plain-text body).
func (j *fakeJira) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != j.auth {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, "Client must be authenticated to access this resource.")
			return
		}
		h(w, r)
	}
}

// withIssue resolves {key} or answers Jira's 404.
func (j *fakeJira) withIssue(h func(http.ResponseWriter, *http.Request, *jiraIssue)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		j.mu.Lock()
		defer j.mu.Unlock()
		for _, is := range j.issues {
			if is.key == r.PathValue("key") {
				h(w, r, is)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]any{"errorMessages": []string{"Issue does not exist or you do not have permission to see it."}, "errors": map[string]any{}})
	}
}

// issueJSON fills the template's first issue in with is.
func (j *fakeJira) issueJSON(proto map[string]any, is *jiraIssue) map[string]any {
	out := clone(proto)
	out["id"], out["key"] = is.id, is.key
	out["self"] = j.URL + j.prefix + "/issue/" + is.id
	return out
}

func (j *fakeJira) search(w http.ResponseWriter, r *http.Request) {
	m := jqlPattern.FindStringSubmatch(r.URL.Query().Get("jql"))
	if m == nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{"Error in the JQL Query"}, "errors": map[string]any{}})
		return
	}
	if m[1] != "SEC" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{fmt.Sprintf("The value '%s' does not exist for the field 'project'.", m[1])}, "errors": map[string]any{}})
		return
	}
	tmpl := clone(j.tmpl["search-response.json"])
	proto := tmpl["issues"].([]any)[0].(map[string]any)
	issues := []any{}
	j.mu.Lock()
	for _, is := range j.issues {
		if contains(is.labels, m[2]) && len(issues) < 1 {
			issues = append(issues, j.issueJSON(proto, is))
		}
	}
	j.mu.Unlock()
	tmpl["issues"] = issues
	if !j.cloud {
		tmpl["total"] = len(issues)
	}
	writeJSON(w, http.StatusOK, tmpl)
}

func (j *fakeJira) create(w http.ResponseWriter, r *http.Request) {
	var in struct{ Fields map[string]any }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{"Unexpected character"}, "errors": map[string]any{}})
		return
	}
	if p, _ := in.Fields["project"].(map[string]any); p["key"] != "SEC" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": map[string]any{"project": "valid project is required"}})
		return
	}
	j.mu.Lock()
	n := len(j.issues)
	is := &jiraIssue{id: fmt.Sprint(10000 + n), key: fmt.Sprintf("SEC-%d", 24+n), fields: in.Fields}
	for _, l := range in.Fields["labels"].([]any) {
		is.labels = append(is.labels, l.(string))
	}
	j.issues = append(j.issues, is)
	j.mu.Unlock()
	writeJSON(w, http.StatusCreated, j.issueJSON(j.tmpl["create-response.json"], is))
}

func (j *fakeJira) comment(w http.ResponseWriter, r *http.Request, is *jiraIssue) {
	writeJSON(w, http.StatusCreated, j.tmpl["comment-response.json"])
}

func (j *fakeJira) transitions(w http.ResponseWriter, r *http.Request, is *jiraIssue) {
	out := clone(j.tmpl["transitions-response.json"])
	var available []any
	for _, tr := range out["transitions"].([]any) {
		if !is.done || transitionCategory(tr) != "done" {
			available = append(available, tr)
		}
	}
	out["transitions"] = available
	writeJSON(w, http.StatusOK, out)
}

func (j *fakeJira) transition(w http.ResponseWriter, r *http.Request, is *jiraIssue) {
	var in struct{ Transition struct{ ID string } }
	if !readJSON(w, r, &in) {
		return
	}
	for _, tr := range j.tmpl["transitions-response.json"]["transitions"].([]any) {
		if tr.(map[string]any)["id"] == in.Transition.ID {
			is.done = transitionCategory(tr) == "done"
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{"Transition id '" + in.Transition.ID + "' is not valid for this issue."}, "errors": map[string]any{}})
}

func (j *fakeJira) status(w http.ResponseWriter, r *http.Request, is *jiraIssue) {
	out := j.issueJSON(j.tmpl["issue-status-response.json"], is)
	status := out["fields"].(map[string]any)["status"].(map[string]any)
	if !is.done {
		status["name"] = "In Progress"
		status["statusCategory"].(map[string]any)["key"] = "indeterminate"
	}
	writeJSON(w, http.StatusOK, out)
}

// add stores an issue as if someone had created it.
func (j *fakeJira) add(is *jiraIssue) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.issues = append(j.issues, is)
}

// all returns the issues.
func (j *fakeJira) all() []*jiraIssue {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slicesClone(j.issues)
}

// transitionCategory returns a transition's target status category.
func transitionCategory(tr any) string {
	to := tr.(map[string]any)["to"].(map[string]any)
	return to["statusCategory"].(map[string]any)["key"].(string)
}

// clone deep-copies a decoded JSON object.
func clone(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // m was decoded from JSON, so it encodes
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// contains reports whether list holds s.
func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
