package tickets

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// JiraConfig configures the Jira provider. Its secrets never appear in
// errors.
type JiraConfig struct {
	// URL is the site, e.g. https://example.atlassian.net or
	// https://jira.example.com (with the context path, if any).
	URL string
	// Cloud selects Jira Cloud: REST v3, descriptions and comments in
	// Atlassian Document Format, Basic auth with Email and APIToken. False
	// means Jira Data Center: REST v2, wiki markup, Bearer PAT.
	Cloud bool
	// Email and APIToken authenticate to Jira Cloud.
	Email, APIToken string
	// PAT is a Data Center personal access token.
	PAT string
	// Project is the project key, e.g. SEC.
	Project string
	// IssueType is the new issues' type; default "Task".
	IssueType string
	// Priorities maps alert severities (lower case) to Jira priority names.
	// When set it replaces the default (critical→Highest, high and
	// error→High, warning→Medium, notice→Low, info, informational and
	// debug→Lowest), so that a site without those names can map only what
	// it has; a severity it lacks leaves the project's default priority.
	Priorities map[string]string
	// NoPriority sends no priority at all, for projects whose create
	// screen has no Priority field (Jira then refuses any).
	NoPriority bool
	// ResolveTransition is the name of the workflow transition that
	// resolves an issue; default "Done". Case does not matter.
	ResolveTransition string
	// HTTPClient sends the requests; default: a client with a 30s timeout.
	HTTPClient *http.Client
}

// Jira limits.
const (
	jiraSummaryMax = 255 // characters of a summary
	// jiraBodyMax keeps descriptions and comments under Jira's 32767
	// characters per text field, with room for the incident line.
	jiraBodyMax = 30000
)

// defaultPriorities maps alert severities to Jira's default priority names.
var defaultPriorities = map[string]string{
	"emergency": "Highest", "alert": "Highest", "critical": "Highest",
	"high": "High", "error": "High",
	"warning": "Medium",
	"notice":  "Low",
	"info":    "Lowest", "informational": "Lowest", "debug": "Lowest",
}

// jira is the Provider for Jira Cloud and Data Center.
type jira struct {
	cfg  JiraConfig
	base string // cfg.URL without a trailing slash
	api  string // base + "/rest/api/3" (Cloud) or "/rest/api/2"
	hdr  http.Header
	ep   endpoint
}

// NewJira returns the Jira provider for cfg. It checks the configuration
// but does not contact Jira. Its errors never contain a secret.
//
// Find searches with JQL, and Jira's search index can lag a few seconds
// behind a create: an Open retried within seconds of a create whose answer
// was lost may not see that issue yet and open a second one. Temporal's
// retry backoff normally leaves enough time.
func NewJira(cfg JiraConfig) (Provider, error) {
	base, err := siteURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	j := &jira{base: base, ep: endpoint{provider: "jira", client: httpClient(cfg.HTTPClient)}}
	j.hdr = http.Header{"Accept": {"application/json"}}
	switch {
	case cfg.Cloud && (cfg.Email == "" || cfg.APIToken == ""):
		return nil, errors.New("tickets: jira: Jira Cloud needs the account's e-mail (--jira-email) and an API token (SOAR_JIRA_API_TOKEN)")
	case cfg.Cloud:
		basic := base64.StdEncoding.EncodeToString([]byte(cfg.Email + ":" + cfg.APIToken))
		j.hdr.Set("Authorization", "Basic "+basic)
		j.api = base + "/rest/api/3"
		j.ep.redact = redactor{cfg.APIToken, basic}
	case cfg.PAT == "":
		return nil, errors.New("tickets: jira: Jira Data Center needs a personal access token (SOAR_JIRA_PAT)")
	default:
		j.hdr.Set("Authorization", "Bearer "+cfg.PAT)
		j.api = base + "/rest/api/2"
		j.ep.redact = redactor{cfg.PAT}
	}
	if strings.TrimSpace(cfg.Project) == "" {
		return nil, errors.New("tickets: jira: the project key (--jira-project) is required, e.g. SEC")
	}
	cfg.Project = strings.TrimSpace(cfg.Project)
	cfg.IssueType = orDefault(cfg.IssueType, "Task")
	cfg.ResolveTransition = orDefault(cfg.ResolveTransition, "Done")
	cfg.Priorities = lowerKeys(orDefaults(cfg.Priorities, defaultPriorities))
	j.cfg = cfg
	return j, nil
}

// siteURL checks a configured site URL and returns it without a trailing
// slash. Errors do not repeat the URL: it might hold a password.
func siteURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("tickets: jira: the Jira URL (--jira-url) is required, e.g. https://example.atlassian.net")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return "", errors.New("tickets: jira: the Jira URL must be an http(s) URL such as https://example.atlassian.net")
	case u.User != nil:
		return "", errors.New("tickets: jira: the Jira URL must not hold credentials; configure the API token or PAT instead")
	case u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("tickets: jira: the Jira URL must not have a query or fragment; give the site's base URL")
	}
	return strings.TrimRight(raw, "/"), nil
}

// Name returns "jira".
func (j *jira) Name() string { return "jira" }

// Find returns the oldest issue of the project labelled with the incident's
// label, or nil. See NewJira for the search index's lag.
func (j *jira) Find(ctx context.Context, incidentID string) (*Ticket, error) {
	const op = "find"
	if err := checkIncident("jira", op, incidentID); err != nil {
		return nil, err
	}
	q := url.Values{
		"jql":        {fmt.Sprintf("project = %s AND labels = %s ORDER BY created ASC", jqlString(j.cfg.Project), jqlString(IncidentLabel(incidentID)))},
		"maxResults": {"1"},
		"fields":     {"key"},
	}
	path := "/search"
	if j.cfg.Cloud {
		path = "/search/jql" // /search was removed from Jira Cloud in 2025
		q.Set("fields", "key,status")
	}
	var res struct {
		Issues []struct{ ID, Key string }
		IsLast *bool // Cloud
		Total  *int  // Data Center
	}
	if err := j.call(ctx, op, http.MethodGet, path+"?"+q.Encode(), nil, &res, j.hint(op, "")); err != nil {
		return nil, err
	}
	if res.Issues == nil && res.IsLast == nil && res.Total == nil {
		// JSON that is not a search result (a proxy's): taking it for
		// "no issue" would open a duplicate.
		return nil, badResponse("jira", op, http.StatusOK, j.notJSONHint())
	}
	if len(res.Issues) == 0 {
		return nil, nil
	}
	t := j.ticket(res.Issues[0].ID, res.Issues[0].Key)
	return &t, nil
}

// jqlString quotes s as a JQL string.
func jqlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Create opens an issue for c in the project. It is not idempotent: use Open.
func (j *jira) Create(ctx context.Context, c Content) (Ticket, error) {
	const op = "create"
	if err := checkIncident("jira", op, c.IncidentID); err != nil {
		return Ticket{}, err
	}
	fields, err := j.fields(c)
	if err != nil {
		return Ticket{}, err
	}
	var res struct{ ID, Key string }
	if err := j.call(ctx, op, http.MethodPost, "/issue", map[string]any{"fields": fields}, &res, j.hint(op, "")); err != nil {
		return Ticket{}, err
	}
	if res.Key == "" {
		return Ticket{}, badResponse("jira", op, http.StatusCreated, j.notJSONHint())
	}
	return j.ticket(res.ID, res.Key), nil
}

// fields returns the fields of the new issue for c: soar's own, then the
// playbook's Fields, which may not replace soar's (the label is how Find
// finds the issue again).
func (j *jira) fields(c Content) (map[string]any, error) {
	f := map[string]any{
		"project":     map[string]string{"key": j.cfg.Project},
		"issuetype":   map[string]string{"name": j.cfg.IssueType},
		"summary":     title(c, jiraSummaryMax),
		"description": j.body(c.Body, []Block{incidentLine(c.IncidentID)}),
		"labels":      jiraLabels(c),
	}
	if p := j.cfg.Priorities[strings.ToLower(strings.TrimSpace(c.Severity))]; p != "" && !j.cfg.NoPriority {
		f["priority"] = map[string]string{"name": p}
	}
	if len(c.Components) > 0 {
		comps := make([]map[string]string, 0, len(c.Components))
		for _, name := range c.Components {
			comps = append(comps, map[string]string{"name": name})
		}
		f["components"] = comps
	}
	for k, v := range c.Fields {
		if _, taken := f[k]; taken {
			return nil, &Error{Provider: "jira", Op: "create", Hint: fmt.Sprintf("the Jira field %q is set by soar itself; remove it from the step's fields", k)}
		}
		f[k] = v
	}
	return f, nil
}

// jiraLabels returns the incident's label and then c.Labels, deduplicated,
// with whitespace (which Jira labels cannot hold) replaced by '-'.
func jiraLabels(c Content) []string {
	labels := []string{IncidentLabel(c.IncidentID)}
	seen := map[string]bool{labels[0]: true}
	for _, l := range c.Labels {
		l = cut(strings.Join(strings.Fields(plain(l)), "-"), 255)
		if l != "" && !seen[l] {
			seen[l] = true
			labels = append(labels, l)
		}
	}
	return labels
}

// body renders blocks and tail for a description or comment: ADF on Cloud,
// wiki markup on Data Center.
func (j *jira) body(blocks, tail []Block) any {
	if j.cfg.Cloud {
		return renderADF(blocks, tail, jiraBodyMax)
	}
	return renderWiki(blocks, tail, jiraBodyMax)
}

// Comment adds body to t. A retry after a lost answer may comment twice.
func (j *jira) Comment(ctx context.Context, t Ticket, incidentID string, body []Block) error {
	const op = "comment"
	if err := checkTicket("jira", op, t); err != nil {
		return err
	}
	if !hasText(body) {
		return &Error{Provider: "jira", Op: op, Hint: "the comment is empty; give the step a message"}
	}
	return j.comment(ctx, op, t.Key, body)
}

// comment posts body as a comment of issue key.
func (j *jira) comment(ctx context.Context, op, key string, body []Block) error {
	in := map[string]any{"body": j.body(body, nil)}
	return j.call(ctx, op, http.MethodPost, "/issue/"+url.PathEscape(key)+"/comment", in, nil, j.hint(op, key))
}

// Resolve moves t through the ResolveTransition and then comments body
// (when not empty). An issue that is already in a done status is left as it
// is, so resolving twice is not an error; but a retry after a lost comment
// answer may comment twice.
func (j *jira) Resolve(ctx context.Context, t Ticket, incidentID string, body []Block) error {
	const op = "resolve"
	if err := checkTicket("jira", op, t); err != nil {
		return err
	}
	if err := j.transition(ctx, t.Key); err != nil {
		return err
	}
	if !hasText(body) {
		return nil
	}
	return j.comment(ctx, op, t.Key, body)
}

// transition resolves issue key: it looks up the issue's available
// transitions and takes the one named ResolveTransition. When there is none
// and the issue is already done, there is nothing to do.
func (j *jira) transition(ctx context.Context, key string) error {
	const op = "resolve"
	path := "/issue/" + url.PathEscape(key) + "/transitions"
	var res struct {
		Transitions []struct{ ID, Name string }
	}
	if err := j.call(ctx, op, http.MethodGet, path, nil, &res, j.hint(op, key)); err != nil {
		return err
	}
	var names []string
	for _, tr := range res.Transitions {
		if strings.EqualFold(strings.TrimSpace(tr.Name), strings.TrimSpace(j.cfg.ResolveTransition)) {
			in := map[string]any{"transition": map[string]string{"id": tr.ID}}
			return j.call(ctx, op, http.MethodPost, path, in, nil, j.hint(op, key))
		}
		names = append(names, fmt.Sprintf("%q", tr.Name))
	}
	done, err := j.done(ctx, key)
	if err != nil || done {
		return err
	}
	available := "none"
	if len(names) > 0 {
		available = strings.Join(names, ", ")
	}
	return &Error{Provider: "jira", Op: op, Hint: fmt.Sprintf("issue %s has no transition named %q from its current status (available: %s); configure one of those as the resolve transition (--jira-resolve-transition)", key, j.cfg.ResolveTransition, available)}
}

// done reports whether issue key's status is in the "done" category.
func (j *jira) done(ctx context.Context, key string) (bool, error) {
	const op = "resolve"
	var res struct {
		Fields struct {
			Status struct {
				StatusCategory struct{ Key string }
			}
		}
	}
	path := "/issue/" + url.PathEscape(key) + "?fields=status"
	if err := j.call(ctx, op, http.MethodGet, path, nil, &res, j.hint(op, key)); err != nil {
		return false, err
	}
	return res.Fields.Status.StatusCategory.Key == "done", nil
}

// call sends one request to the REST API at path (relative to /rest/api/N)
// and decodes the JSON answer into out when out is not nil.
func (j *jira) call(ctx context.Context, op, method, path string, in, out any, h hint) error {
	a, err := j.ep.send(ctx, op, method, j.api+path, j.hdr, in, h)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(a.body, out); err != nil {
		return badResponse("jira", op, a.status, j.notJSONHint())
	}
	return nil
}

// ticket returns the Ticket of issue id/key.
func (j *jira) ticket(id, key string) Ticket {
	return Ticket{Provider: "jira", ID: id, Key: key, URL: j.base + "/browse/" + key}
}

// notJSONHint is the hint when a 2xx answer is not Jira's JSON.
func (j *jira) notJSONHint() string {
	return "Jira's answer was not its REST API's JSON: check that the Jira URL " + j.base + " is the site's base URL and that no single sign-on proxy intercepts API calls"
}

// hint returns what to tell the operator when operation op (on issue key,
// when set) fails with an HTTP status retrying cannot fix.
func (j *jira) hint(op, key string) hint {
	return func(status int, header http.Header) string {
		switch status {
		case http.StatusUnauthorized:
			return j.credentialsHint()
		case http.StatusForbidden:
			if strings.Contains(header.Get("X-Seraph-LoginReason"), "DENIED") {
				return j.credentialsHint() + "; Jira now also wants a CAPTCHA after failed logins: log in once in a browser as that account"
			}
			return j.permissionHint(op, key)
		case http.StatusNotFound:
			if key != "" {
				return fmt.Sprintf("issue %s was not found: it was deleted or moved, or the account cannot see it", key)
			}
			return fmt.Sprintf("project %s or the Jira URL %s was not found (or the account cannot see the project): check the project key and the URL (with Data Center's context path, if any)", j.cfg.Project, j.base)
		case http.StatusBadRequest, http.StatusUnprocessableEntity:
			return j.refusedHint(op)
		}
		return fmt.Sprintf("Jira answered HTTP %d, which soar does not expect; check the Jira URL %s", status, j.base)
	}
}

// credentialsHint says which credentials to check.
func (j *jira) credentialsHint() string {
	if j.cfg.Cloud {
		return "Jira rejected the credentials: check SOAR_JIRA_API_TOKEN and the e-mail it belongs to (--jira-email); tokens are made at https://id.atlassian.com/manage-profile/security/api-tokens"
	}
	return "Jira rejected the personal access token: check SOAR_JIRA_PAT (it may have expired or been revoked)"
}

// permissionHint names the Jira permission op needs.
func (j *jira) permissionHint(op, key string) string {
	switch op {
	case "find":
		return fmt.Sprintf("the account lacks permission to browse project %s (Browse Projects)", j.cfg.Project)
	case "create":
		return fmt.Sprintf("the account lacks permission to create issues in project %s (Create Issues)", j.cfg.Project)
	case "comment":
		return fmt.Sprintf("the account lacks permission to comment on %s (Add Comments)", key)
	}
	return fmt.Sprintf("the account lacks permission to resolve %s (Transition Issues, Add Comments)", key)
}

// refusedHint says what to check when Jira refuses a request as invalid; the
// Error's Message holds Jira's field errors.
func (j *jira) refusedHint(op string) string {
	switch op {
	case "find":
		return fmt.Sprintf("Jira refused the search: check the project key %s", j.cfg.Project)
	case "create":
		return fmt.Sprintf("Jira refused the new issue: check the issue type %q, the priorities, the components and the custom fields against project %s (the message names the field)", j.cfg.IssueType, j.cfg.Project)
	case "comment":
		return "Jira refused the comment (see the message)"
	}
	return fmt.Sprintf("Jira refused to resolve the issue: the %q transition may need fields on its screen that soar does not fill (the message names them); configure a transition without a screen", j.cfg.ResolveTransition)
}

// orDefault returns s without surrounding spaces, or def when that is empty.
func orDefault(s, def string) string {
	if s = strings.TrimSpace(s); s != "" {
		return s
	}
	return def
}

// orDefaults returns m, or def when m is empty.
func orDefaults(m, def map[string]string) map[string]string {
	if len(m) > 0 {
		return m
	}
	return def
}

// lowerKeys returns a copy of m with lower-case keys, as alert severities
// are compared in lower case.
func lowerKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(strings.TrimSpace(k))] = v
	}
	return out
}
