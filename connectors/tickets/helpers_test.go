package tickets_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soar-dev/soar/connectors/tickets"
)

// update rewrites the golden request files from what the providers send:
// go test ./connectors/tickets/ -update, then review the diff.
var update = flag.Bool("update", false, "rewrite testdata/*/*-request.json")

// Credentials of the tests. None of them may ever show up in an error.
const (
	jiraEmail    = "soar-bot@example.com"
	jiraAPIToken = "ATATT3xFfGF0-jira-api-token-never-shown"
	jiraPAT      = "NjQ2MzA4ODc5-jira-pat-never-shown"
	githubToken  = "github_pat_11AAAA-github-token-never-shown"
	hookSecret   = "whsec-0123456789abcdef-webhook-secret-never-shown"
)

// secrets are the values no error may contain.
var secrets = []string{jiraAPIToken, jiraPAT, githubToken, hookSecret}

// request is one request a fake server received.
type request struct {
	Method, Path string
	Query        url.Values
	Header       http.Header
	Body         []byte
}

// canned is an answer a fake gives instead of (or after) doing the work.
type canned struct {
	status int
	header map[string]string
	body   string
	// after runs the real handler first and throws its answer away: the
	// server did the work but the client never learns it.
	after bool
	// drop closes the connection instead of answering.
	drop bool
	// delay waits before answering (or until the client gives up).
	delay time.Duration
}

// fake is an httptest server that records every request and can answer
// some with canned failures.
type fake struct {
	t      *testing.T
	URL    string
	mux    *http.ServeMux
	mu     sync.Mutex
	reqs   []request
	canned map[string][]canned // by route pattern, e.g. "POST /rest/api/3/issue"
}

// newFake starts a fake whose routes are registered on its mux.
func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{t: t, mux: http.NewServeMux(), canned: map[string][]canned{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// failNext makes the next request of route pattern get c.
func (f *fake) failNext(pattern string, c canned) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.canned[pattern] = append(f.canned[pattern], c)
}

// requests returns the requests received so far.
func (f *fake) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slicesClone(f.reqs)
}

// count returns how many requests route pattern received.
func (f *fake) count(method, path string) int {
	n := 0
	for _, r := range f.requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// reset forgets the recorded requests.
func (f *fake) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = nil
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	_, pattern := f.mux.Handler(r)
	f.mu.Lock()
	f.reqs = append(f.reqs, request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
	c, ok := pop(f.canned, pattern)
	f.mu.Unlock()
	if !ok {
		f.mux.ServeHTTP(w, r)
		return
	}
	if c.after {
		f.mux.ServeHTTP(httptest.NewRecorder(), r)
	}
	select {
	case <-time.After(c.delay):
	case <-r.Context().Done():
		return
	}
	if c.drop {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			f.t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.Close() // the dropped connection is the point
		return
	}
	for k, v := range c.header {
		w.Header().Set(k, v)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(c.status)
	_, _ = io.WriteString(w, c.body) // a client that hung up sees it on its side
}

// pop removes and returns the first canned answer of pattern.
func pop(m map[string][]canned, pattern string) (canned, bool) {
	q := m[pattern]
	if len(q) == 0 {
		return canned{}, false
	}
	m[pattern] = q[1:]
	return q[0], true
}

// slicesClone copies s.
func slicesClone[T any](s []T) []T { return append([]T(nil), s...) }

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a client that hung up sees it on its side
}

// readJSON decodes the request's JSON body into v. When the body does not
// decode it answers 400, as GitHub and Jira do, and returns false.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		http.Error(w, "the request body is not JSON: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// readTestdata returns testdata/name.
func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// template returns testdata/name decoded, to be filled in by a fake.
func template(t *testing.T, name string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readTestdata(t, name), &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// assertGolden compares the JSON body got with testdata/name after
// normalising both (decoded, so key order and spacing do not matter).
func assertGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	var g any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: the request body is not JSON: %v\n%s", name, err, got)
	}
	pretty, _ := json.MarshalIndent(g, "", "  ")
	// Zero-width characters are what the escaping inserts; spell them out
	// so that a reviewer of the golden file sees them.
	pretty = bytes.ReplaceAll(pretty, []byte("\u200d"), []byte(`\u200d`))
	pretty = bytes.ReplaceAll(pretty, []byte("\u200b"), []byte(`\u200b`))
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, append(pretty, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	var want any
	if err := json.Unmarshal(readTestdata(t, name), &want); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("%s: the request body differs from the golden file (run with -update and review the diff); got:\n%s", name, pretty)
	}
}

// assertRequest checks a request's method, path and query.
func assertRequest(t *testing.T, r request, method, path string, query url.Values) {
	t.Helper()
	if r.Method != method || r.Path != path {
		t.Errorf("request %s %s, want %s %s", r.Method, r.Path, method, path)
	}
	if query != nil && !reflect.DeepEqual(r.Query, query) {
		t.Errorf("%s %s query %v, want %v", r.Method, r.Path, r.Query, query)
	}
}

// asError returns err's *tickets.Error, failing the test when there is none
// or when its text holds a secret.
func asError(t *testing.T, err error) *tickets.Error {
	t.Helper()
	var te *tickets.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *tickets.Error", err, err)
	}
	assertNoSecret(t, err)
	return te
}

// assertNoSecret fails when any rendering of err holds a credential.
func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, text := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("error %q holds a credential", text)
			}
		}
	}
}

// sampleContent is the content of the golden tests' ticket.
func sampleContent() tickets.Content {
	return tickets.Content{
		IncidentID: "inc-2024-0042",
		Title:      "Crypto miner in pod payments/api-7f9c",
		Body: []tickets.Block{
			{Heading: "What happened"},
			{Text: "Falco saw xmrig start in payments/api-7f9c.\nThe pod was quarantined."},
			{Items: []string{"rule: Detect crypto miners", "node: ip-10-0-3-17"}},
			{Code: "/usr/bin/xmrig --url pool.example:3333"},
			{Link: &tickets.Link{Text: "Incident in soar", URL: "https://soar.example.com/incidents/inc-2024-0042"}},
		},
		Severity:   "critical",
		Labels:     []string{"falco", "crypto mining"},
		Components: []string{"Payments"},
		Assignees:  []string{"octocat"},
		Fields:     map[string]any{"customfield_10010": "SOC"},
	}
}

// sampleComment is the body of the golden tests' comments.
func sampleComment() []tickets.Block {
	return []tickets.Block{{Text: "Approved by @alice: the pod was deleted."}}
}

// sampleResolution is the body of the golden tests' final comments.
func sampleResolution() []tickets.Block {
	return []tickets.Block{{Heading: "Resolved"}, {Text: "All steps succeeded."}}
}

// equalJSON compares two values as JSON.
func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
