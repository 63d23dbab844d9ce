package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v93/github"
)

// GitHubConfig configures the GitHub Issues provider. The token never
// appears in errors.
type GitHubConfig struct {
	// Owner and Repo name the repository the issues go to.
	Owner, Repo string
	// Token is a fine-grained token with Issues: write on the repository
	// (or a classic token with the repo scope) of an account with at least
	// write (push) access, which GitHub requires to create labels.
	Token string
	// APIURL is the REST API's base URL; default https://api.github.com/.
	// GitHub Enterprise Server: https://github.example.com/api/v3/.
	APIURL string
	// Labels are added to every issue.
	Labels []string
	// HTTPClient sends the requests; default: a client with a 30s timeout.
	// It is copied, not changed.
	HTTPClient *http.Client
}

// GitHub limits.
const (
	githubLabelMax = 50    // characters of a label name
	githubTitleMax = 256   // characters of a title
	githubBodyMax  = 60000 // bytes of a body; GitHub takes 65536 characters
)

// gitHub is the Provider for GitHub Issues, through go-github.
type gitHub struct {
	owner, repo string
	labels      []string
	api         *github.Client
	apiURL      string
	redact      redactor
}

// NewGitHub returns the GitHub Issues provider for cfg. It checks the
// configuration but does not contact GitHub. Its errors never contain the
// token.
//
// Each issue carries IncidentLabel as a label. GitHub creates a label that
// does not exist yet when an issue is created with it, provided the token's
// account has push (write) access; without that access GitHub refuses the
// new label with 403, or drops existing labels silently. Create checks that
// the label came back on the issue, because Find relies on it.
//
// go-github neither retries nor sleeps: soar sets no
// SleepUntilPrimaryRateLimitResetWhenRateLimited, and it disables go-github's
// own rate-limit bookkeeping, which would otherwise fail later calls before
// they are sent; Temporal honours Error.RetryAfter instead.
func NewGitHub(cfg GitHubConfig) (Provider, error) {
	switch {
	case !validRepoPart(cfg.Owner) || !validRepoPart(cfg.Repo):
		return nil, errors.New("tickets: github: the repository's owner and name are required (--github-repo owner/repo)")
	case cfg.Token == "":
		return nil, errors.New("tickets: github: a token is required (SOAR_GITHUB_TOKEN)")
	}
	labels, err := githubLabels(cfg.Labels)
	if err != nil {
		return nil, fmt.Errorf("tickets: github: %w", err)
	}
	g := &gitHub{owner: cfg.Owner, repo: cfg.Repo, labels: labels, apiURL: "https://api.github.com/", redact: redactor{cfg.Token}}
	opts := []github.ClientOptionsFunc{
		github.WithHTTPClient(httpClient(cfg.HTTPClient)),
		github.WithAuthToken(cfg.Token),
		github.WithDisableRateLimitCheck(),
		github.WithUserAgent("soar"),
	}
	if cfg.APIURL != "" {
		if err := checkAPIURL(cfg.APIURL); err != nil {
			return nil, err
		}
		g.apiURL = cfg.APIURL
		opts = append(opts, github.WithURLs(&cfg.APIURL, nil))
	}
	if g.api, err = github.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("tickets: github: %s", g.redact.clean(err.Error()))
	}
	return g, nil
}

// validRepoPart reports whether s can be a repository owner or name.
func validRepoPart(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/ \t\n#?")
}

// checkAPIURL checks a configured API URL. Errors do not repeat it: it
// might hold a password.
func checkAPIURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return errors.New("tickets: github: the API URL must be an http(s) URL such as https://github.example.com/api/v3/")
	case u.User != nil:
		return errors.New("tickets: github: the API URL must not hold credentials; configure the token instead")
	}
	return nil
}

// githubLabels trims and deduplicates labels, refusing names longer than
// GitHub allows (it would refuse every issue with them).
func githubLabels(labels []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, l := range labels {
		l = oneLine(l)
		switch {
		case l == "" || seen[l]:
			continue
		case len([]rune(l)) > githubLabelMax:
			return nil, fmt.Errorf("the label %q is longer than GitHub's %d characters", l, githubLabelMax)
		}
		seen[l] = true
		out = append(out, l)
	}
	return out, nil
}

// Name returns "github".
func (g *gitHub) Name() string { return "github" }

// Find returns the oldest issue (open or closed) of the repository that
// carries the incident's label, or nil. It lists issues by label rather than
// searching, because GitHub's search index lags behind a create.
func (g *gitHub) Find(ctx context.Context, incidentID string) (*Ticket, error) {
	const op = "find"
	if err := checkIncident("github", op, incidentID); err != nil {
		return nil, err
	}
	opts := &github.IssueListByRepoOptions{
		State:       "all",
		Labels:      []string{IncidentLabel(incidentID)},
		Sort:        "created",
		Direction:   "asc",
		ListOptions: github.ListOptions{PerPage: 1},
	}
	issues, _, err := g.api.Issues.ListByRepo(ctx, g.owner, g.repo, opts)
	if err != nil {
		return nil, g.fail(op, 0, err)
	}
	// The issues API also lists pull requests; one with soar's label is
	// not the incident's ticket.
	if len(issues) == 0 || issues[0].IsPullRequest() {
		return nil, nil
	}
	t, err := g.ticket(op, issues[0])
	return &t, err
}

// Create opens an issue for c. It is not idempotent: use Open. When GitHub
// created the issue but dropped its labels, it returns the ticket and a
// non-retryable *Error: a retry could not find the issue and would open
// another.
func (g *gitHub) Create(ctx context.Context, c Content) (Ticket, error) {
	const op = "create"
	if err := checkIncident("github", op, c.IncidentID); err != nil {
		return Ticket{}, err
	}
	label := IncidentLabel(c.IncidentID)
	labels, err := githubLabels(append(append([]string{label}, g.labels...), c.Labels...))
	if err != nil {
		return Ticket{}, &Error{Provider: "github", Op: op, Hint: err.Error() + "; shorten it in the playbook"}
	}
	req := github.CreateIssueRequest{
		Title:     breakReferences(title(c, githubTitleMax)),
		Body:      new(renderMarkdown(c.Body, []Block{incidentLine(c.IncidentID)}, githubBodyMax)),
		Labels:    labels,
		Assignees: logins(c.Assignees),
	}
	issue, _, err := g.api.Issues.Create(ctx, g.owner, g.repo, req)
	if err != nil {
		return Ticket{}, g.fail(op, 0, err)
	}
	t, err := g.ticket(op, issue)
	if err != nil {
		return Ticket{}, err
	}
	if !hasLabel(issue.Labels, label) {
		return t, &Error{Provider: "github", Op: op, Status: http.StatusCreated, Hint: fmt.Sprintf(
			"GitHub opened %s but dropped its labels, as it does when the token's account lacks push (write) access to %s/%s; soar finds an incident's issue by the label %s, so grant that access and add the label to %s by hand, or a retry opens a second issue",
			t.Key, g.owner, g.repo, label, t.Key)}
	}
	return t, nil
}

// logins trims assignees and the '@' people tend to write before logins.
func logins(assignees []string) []string {
	var out []string
	for _, a := range assignees {
		if a = strings.TrimPrefix(strings.TrimSpace(a), "@"); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// hasLabel reports whether labels holds name.
func hasLabel(labels []*github.Label, name string) bool {
	for _, l := range labels {
		if strings.EqualFold(l.GetName(), name) {
			return true
		}
	}
	return false
}

// Comment adds body to t. A retry after a lost answer may comment twice.
func (g *gitHub) Comment(ctx context.Context, t Ticket, incidentID string, body []Block) error {
	const op = "comment"
	n, err := g.number(op, t)
	if err != nil {
		return err
	}
	if !hasText(body) {
		return &Error{Provider: "github", Op: op, Hint: "the comment is empty; give the step a message"}
	}
	return g.comment(ctx, op, n, body)
}

// comment posts body on issue n.
func (g *gitHub) comment(ctx context.Context, op string, n int, body []Block) error {
	req := github.IssueCommentRequest{Body: renderMarkdown(body, nil, githubBodyMax)}
	if _, _, err := g.api.Issues.CreateComment(ctx, g.owner, g.repo, n, req); err != nil {
		return g.fail(op, n, err)
	}
	return nil
}

// Resolve comments body (when not empty) on t, then closes it as completed.
// Closing a closed issue succeeds, so resolving twice is not an error; but a
// retry after the close failed comments again.
func (g *gitHub) Resolve(ctx context.Context, t Ticket, incidentID string, body []Block) error {
	const op = "resolve"
	n, err := g.number(op, t)
	if err != nil {
		return err
	}
	if hasText(body) {
		if err := g.comment(ctx, op, n, body); err != nil {
			return err
		}
	}
	req := github.UpdateIssueRequest{State: new("closed"), StateReason: new("completed")}
	if _, _, err := g.api.Issues.Update(ctx, g.owner, g.repo, n, req); err != nil {
		return g.fail(op, n, err)
	}
	return nil
}

// number returns the issue number of t: its ID, or the number after '#' in
// its key.
func (g *gitHub) number(op string, t Ticket) (int, error) {
	if err := checkTicket("github", op, t); err != nil {
		return 0, err
	}
	s := t.ID
	if s == "" {
		_, s, _ = strings.Cut(t.Key, "#")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, &Error{Provider: "github", Op: op, Hint: fmt.Sprintf("ticket %s has no issue number; pass the ticket that ticket.open returned", t.Key)}
	}
	return n, nil
}

// ticket returns the Ticket of issue.
func (g *gitHub) ticket(op string, issue *github.Issue) (Ticket, error) {
	if issue.GetNumber() <= 0 {
		return Ticket{}, badResponse("github", op, http.StatusOK, g.notJSONHint())
	}
	n := issue.GetNumber()
	return Ticket{Provider: "github", ID: strconv.Itoa(n), Key: fmt.Sprintf("%s/%s#%d", g.owner, g.repo, n), URL: issue.GetHTMLURL()}, nil
}

// fail classifies what go-github returned for operation op (on issue n, when
// not 0) as an *Error.
func (g *gitHub) fail(op string, n int, err error) *Error {
	var (
		rate     *github.RateLimitError
		abuse    *github.AbuseRateLimitError
		twoFA    *github.TwoFactorAuthError
		resp     *github.ErrorResponse
		accepted *github.AcceptedError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &rate):
		e := g.rateLimited(op, rate.Response, rate.Message)
		e.RetryAfter = max(e.RetryAfter, time.Until(rate.Rate.Reset.Time).Round(time.Second))
		return e
	case errors.As(err, &abuse):
		e := g.rateLimited(op, abuse.Response, abuse.Message)
		e.RetryAfter = max(e.RetryAfter, abuse.GetRetryAfter())
		return e
	case errors.As(err, &twoFA):
		return g.status(op, n, (*github.ErrorResponse)(twoFA))
	case errors.As(err, &resp):
		return g.status(op, n, resp)
	case errors.As(err, &accepted):
		return &Error{Provider: "github", Op: op, Status: http.StatusAccepted, Retryable: true, Message: "GitHub is still processing the request"}
	case errors.As(err, &syntax), errors.As(err, &typ):
		return badResponse("github", op, http.StatusOK, g.notJSONHint())
	}
	return networkError("github", op, err, g.redact)
}

// rateLimited builds the retryable Error of a rate-limited answer.
func (g *gitHub) rateLimited(op string, resp *http.Response, message string) *Error {
	e := &Error{Provider: "github", Op: op, Status: http.StatusTooManyRequests, Retryable: true, Message: g.redact.clean(message)}
	if resp != nil {
		e.Status = resp.StatusCode
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return e
}

// status builds the Error of an error answer. GitHub also signals rate
// limits with a 403 and a Retry-After that go-github does not always
// recognise; those are retryable.
func (g *gitHub) status(op string, n int, r *github.ErrorResponse) *Error {
	if r.Response == nil {
		return &Error{Provider: "github", Op: op, Retryable: true, Message: g.redact.clean(r.Message)}
	}
	status, header := r.Response.StatusCode, r.Response.Header
	if status == http.StatusForbidden && (header.Get("Retry-After") != "" || header.Get("X-RateLimit-Remaining") == "0") {
		return g.rateLimited(op, r.Response, r.Message)
	}
	parts := []string{r.Message}
	for _, fe := range r.Errors {
		if fe.Message != "" {
			parts = append(parts, fe.Message)
		} else {
			parts = append(parts, strings.TrimSpace(fe.Resource+" "+fe.Field+" "+fe.Code))
		}
	}
	return statusError("github", op, status, header, strings.Join(parts, "; "), g.redact, g.hint(op, n))
}

// notJSONHint is the hint when a 2xx answer is not GitHub's JSON.
func (g *gitHub) notJSONHint() string {
	return "GitHub's answer was not its REST API's JSON: check that the API URL " + g.apiURL + " is the REST API's base URL (GitHub Enterprise Server: https://HOST/api/v3/)"
}

// hint returns what to tell the operator when operation op (on issue n, when
// not 0) fails with an HTTP status retrying cannot fix.
func (g *gitHub) hint(op string, n int) hint {
	repo := g.owner + "/" + g.repo
	issue := fmt.Sprintf("%s#%d", repo, n)
	return func(status int, _ http.Header) string {
		switch status {
		case http.StatusUnauthorized:
			return "GitHub rejected the token: check SOAR_GITHUB_TOKEN (it may have expired or been revoked)"
		case http.StatusForbidden:
			switch op {
			case "find":
				return fmt.Sprintf("the token lacks permission to read the issues of %s (fine-grained: Issues: read; organisations with SAML single sign-on must authorise the token)", repo)
			case "create":
				return fmt.Sprintf("the token lacks permission to open issues with labels in %s: it needs Issues: write (classic: the repo scope) and an account with write (push) access to the repository", repo)
			}
			return fmt.Sprintf("the token lacks permission to comment on and close %s (fine-grained: Issues: write)", issue)
		case http.StatusNotFound:
			if n != 0 {
				return fmt.Sprintf("issue %s was not found: it was deleted or transferred, or the token cannot see it", issue)
			}
			return fmt.Sprintf("repository %s was not found, or the token cannot see it (GitHub answers 404 for private repositories a token may not read): check the owner, the repository and the token's repository access", repo)
		case http.StatusGone:
			return fmt.Sprintf("issues are disabled in %s; enable them in the repository's settings or configure another repository", repo)
		case http.StatusBadRequest, http.StatusUnprocessableEntity:
			if op == "create" {
				return fmt.Sprintf("GitHub refused the issue (the message names the field): labels have at most 50 characters, and assignees must be able to see %s", repo)
			}
			return "GitHub refused the request (see the message)"
		}
		return fmt.Sprintf("GitHub answered HTTP %d, which soar does not expect; check the API URL %s", status, g.apiURL)
	}
}
