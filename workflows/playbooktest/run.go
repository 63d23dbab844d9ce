// Package playbooktest runs playbook authors' tests: next to foo.yaml, a
// foo_test.yaml lists cases, each an alert and what must come of it (whether
// the playbook matches, the incident key and severity, the steps that run
// with their resolved parameters, the approvals requested and the incident's
// status). Run evaluates the match as the dispatcher does and runs the real
// Respond workflow in Temporal's in-process test environment with every
// action simulated, so it needs no cluster, no Temporal server and no NATS:
// only the soar binary. It reports like go test.
package playbooktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/playbooks"
)

// Options configures Run.
type Options struct {
	// Run, when not nil, selects the cases whose "<playbook>/<case name>"
	// it matches.
	Run *regexp.Regexp
	// Verbose prints what every case observed, not only the failing ones.
	Verbose bool
	// Playbooks are the options the playbooks load with: the ones the
	// dispatcher uses (cmd/soar/app.PlaybookOptions), so that a playbook the
	// dispatcher refuses fails its tests too.
	Playbooks playbooks.LoadOptions
	// Actions are the worker's actions, every one a simulated step may run,
	// inverses included (cmd/soar/app.SimulatedActions).
	Actions []Action
}

// Action is what the runner knows of one of the worker's actions: its name,
// and the output fields a simulated run returns, with their types as the
// action catalogue gives them (string, bool, int, map, list).
type Action struct {
	Name   string
	Output []Field
}

// Field is one output field of an Action.
type Field struct{ Name, Type string }

// Result counts what Run did in one directory.
type Result struct {
	// Cases is the number of cases run; Failed of them failed.
	Cases, Failed int
	// Problems counts problems in files: every playbook load error and
	// every problem in a test file. A test file with problems runs no case.
	Problems int
	// NoTestFiles is true when the directory has playbooks but no test
	// files.
	NoTestFiles bool
}

// OK reports whether every case passed and no file had a problem.
func (r Result) OK() bool { return r.Failed == 0 && r.Problems == 0 }

// Run runs the tests of the playbooks in dir and writes a report to w in
// the form of go test: "=== RUN" and "--- PASS:" or "--- FAIL:" for each
// case, the reasons of a failure as "FILE:LINE: message" lines, and a last
// line "ok  \tDIR\tN cases", "FAIL\tDIR\t..." or "?   \tDIR\t[no test
// files]".
//
// The playbooks are loaded as the dispatcher loads them; if any has a
// problem, Run reports every problem and runs no case, because the
// dispatcher would not start either. Run returns an error only when ctx is
// done or w fails; everything about the playbooks and the tests is in the
// report and the Result. It only reads dir.
func Run(ctx context.Context, w io.Writer, dir string, opts Options) (Result, error) {
	r := &runner{w: &errWriter{w: w}, dir: dir, opts: opts}
	res, err := r.run(ctx)
	if err == nil {
		err = r.w.err
	}
	return res, err
}

type runner struct {
	w    *errWriter
	dir  string
	opts Options
	res  Result
}

// testFile is a test file and the playbook it tests.
type testFile struct {
	file     *File
	playbook *playbooks.Playbook
}

func (r *runner) run(ctx context.Context) (Result, error) {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		r.printf("%v\n", err)
		r.res.Problems++
		r.printf("FAIL\t%s [load failed]\n", r.dir)
		return r.res, nil
	}
	set, err := playbooks.LoadDir(r.dir, r.opts.Playbooks)
	loaded := r.reportLoad(err)

	var files []testFile
	for _, e := range entries {
		if e.IsDir() || !isTestFile(e.Name()) {
			continue
		}
		if tf, ok := r.parse(filepath.Join(r.dir, e.Name()), set); ok {
			files = append(files, tf)
		}
	}
	switch {
	case !loaded:
		r.printf("FAIL\t%s [load failed]\n", r.dir)
		return r.res, nil
	case len(files) == 0 && r.res.Problems == 0:
		r.res.NoTestFiles = true
		r.printf("?   \t%s\t[no test files]\n", r.dir)
		return r.res, nil
	}

	for _, tf := range files {
		for i := range tf.file.Cases {
			c := &tf.file.Cases[i]
			name := tf.playbook.Name + "/" + c.Name
			if r.opts.Run != nil && !r.opts.Run.MatchString(name) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return r.res, err
			}
			r.runCase(name, tf, set, c)
		}
	}
	if r.res.OK() {
		r.printf("ok  \t%s\t%s\n", r.dir, plural(r.res.Cases, "case"))
		return r.res, nil
	}
	summary := fmt.Sprintf("%s, %d failed", plural(r.res.Cases, "case"), r.res.Failed)
	if r.res.Problems > 0 {
		summary += ", " + plural(r.res.Problems, "problem") + " in test files"
	}
	r.printf("FAIL\t%s\t%s\n", r.dir, summary)
	return r.res, nil
}

// reportLoad prints the playbook load errors, if any, and reports whether
// the playbooks loaded.
func (r *runner) reportLoad(err error) bool {
	var le *playbooks.LoadErrors
	switch {
	case err == nil:
		return true
	case errors.As(err, &le):
		for _, e := range le.Errs {
			r.printf("%v\n", e)
		}
		r.res.Problems += len(le.Errs)
	default:
		r.printf("%v\n", err)
		r.res.Problems++
	}
	return false
}

// parse reads and decodes one test file and finds its playbook, printing
// any problem. Without a set (the playbooks did not load) it only checks the
// file.
func (r *runner) parse(path string, set *playbooks.Set) (testFile, bool) {
	fail := func(err error) (testFile, bool) {
		var le *playbooks.LoadErrors
		if errors.As(err, &le) {
			for _, e := range le.Errs {
				r.printf("%v\n", e)
			}
			r.res.Problems += len(le.Errs)
		} else {
			r.printf("%v\n", err)
			r.res.Problems++
		}
		return testFile{}, false
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return fail(err)
	}
	f, err := ParseFile(path, src)
	if err != nil {
		return fail(err)
	}
	if set == nil {
		return testFile{}, false
	}
	pb := playbookFor(set, path)
	if pb == nil {
		base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), "_test")
		return fail(fmt.Errorf("%s: no playbook file %s.yaml or %s.yml next to this test file", path, base, base))
	}
	return testFile{file: f, playbook: pb}, true
}

// playbookFor returns the playbook that the test file at path tests: the
// one loaded from the file of the same name without _test, as .yaml or
// .yml.
func playbookFor(set *playbooks.Set, path string) *playbooks.Playbook {
	base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), "_test")
	for _, pb := range set.Playbooks() {
		name := filepath.Base(pb.File)
		if name == base+".yaml" || name == base+".yml" {
			return pb
		}
	}
	return nil
}

// isTestFile reports whether name is an author test file: the names the
// playbook loader leaves out for that purpose, hidden files excepted.
func isTestFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	return strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml")
}

// failure is one failed expectation, at a line of the test file.
type failure struct {
	line int
	msg  string
}

// outcome is what a case observed.
type outcome struct {
	matched  bool
	match    playbooks.Match
	incident *incident
}

func (r *runner) runCase(name string, tf testFile, set *playbooks.Set, c *Case) {
	r.printf("=== RUN   %s\n", name)
	start := time.Now()
	o, failures := check(tf, set, c, r.opts.Actions)
	elapsed := time.Since(start)
	r.res.Cases++
	verdict := "PASS"
	if len(failures) > 0 {
		verdict = "FAIL"
		r.res.Failed++
	}
	r.printf("--- %s: %s (%.2fs)\n", verdict, name, elapsed.Seconds())
	file := filepath.Base(tf.file.Path)
	for _, f := range failures {
		r.printf("    %s:%d: %s\n", file, f.line, f.msg)
	}
	if o != nil && (len(failures) > 0 || r.opts.Verbose) {
		r.printf("%s", indent(observed(o), "    "))
	}
}

// check runs case c against the playbook of tf and returns what it observed
// (nil when it could not get as far as matching) and every failed
// expectation.
func check(tf testFile, set *playbooks.Set, c *Case, actions []Action) (*outcome, []failure) {
	pb := tf.playbook
	var fails []failure
	failf := func(line int, format string, args ...any) {
		fails = append(fails, failure{line: line, msg: fmt.Sprintf(format, args...)})
	}
	badDecisions := false
	for step, line := range c.DecisionLines {
		if !hasApprovalStep(pb, step) {
			failf(line, "decisions.%s: playbook %s has no approval step %q", step, pb.Name, step)
			badDecisions = true
		}
	}
	a, err := readAlert(tf.file.Path, c)
	if err != nil {
		failf(c.AlertLine, "%v", err)
		return nil, sortFailures(fails)
	}

	o := &outcome{}
	e := c.Expect
	matches, errs := set.Match(a)
	for _, err := range errs {
		var me *playbooks.MatchError
		if errors.As(err, &me) && me.Playbook == pb.Name {
			failf(e.LineOf("match"), "%s failed on the alert: %v (the dispatcher would skip this playbook for it and count an error)", me.Field, me.Err)
			return nil, sortFailures(fails)
		}
	}
	for _, m := range matches {
		if m.Playbook.Name == pb.Name {
			o.matched, o.match = true, m
		}
	}
	if o.matched != e.Match {
		failf(e.LineOf("match"), "match: got %v, want %v", o.matched, e.Match)
		return o, sortFailures(fails)
	}
	if !o.matched {
		return o, sortFailures(fails)
	}
	if e.IncidentKey != nil && *e.IncidentKey != o.match.IncidentKey {
		failf(e.LineOf("incidentKey"), "incidentKey: got %q, want %q", o.match.IncidentKey, *e.IncidentKey)
	}
	if e.Severity != nil && *e.Severity != o.match.Severity {
		failf(e.LineOf("severity"), "severity: got %s, want %s", o.match.Severity, *e.Severity)
	}
	if badDecisions {
		// The author meant another step: simulating would only add noise.
		return o, sortFailures(fails)
	}

	o.incident = simulate(o.match, a, c, actions)
	for _, p := range o.incident.problems {
		failf(c.Line, "%s", p)
	}
	if o.incident.delivered < c.Repeat {
		failf(c.Line, "repeat: the incident closed after its %s window before alert %d of %d arrived; in production that alert would open a new incident",
			pb.Window, o.incident.delivered+1, c.Repeat)
	}
	if st := o.incident.state; st != nil {
		fails = append(fails, checkState(e, st, o.incident.statusAfterSteps(), o.incident.outcome)...)
	}
	return o, sortFailures(fails)
}

func hasApprovalStep(pb *playbooks.Playbook, id string) bool {
	for _, s := range pb.Steps {
		if s.ID == id && s.Kind == playbooks.KindApproval {
			return true
		}
	}
	return false
}

// readAlert reads and decodes the case's alert as the dispatcher would.
func readAlert(testPath string, c *Case) (alert.Alert, error) {
	data := []byte(c.AlertJSON)
	what := "alertJSON"
	if c.AlertFile != "" {
		path := c.AlertFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(testPath), path)
		}
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return alert.Alert{}, fmt.Errorf("alert: %w", err)
		}
		what = "alert " + c.AlertFile
	}
	a, err := alert.Decode(data, alert.Limits{})
	if err != nil {
		var de *alert.DecodeError
		if errors.As(err, &de) && de.Err != nil {
			return alert.Alert{}, fmt.Errorf("%s: not an alert soar can decode (%s): %w", what, de.Reason, de.Err)
		}
		return alert.Alert{}, fmt.Errorf("%s: %w", what, err)
	}
	return a, nil
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(strings.TrimRight(s, "\n"), "\n")
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(prefix)
		b.WriteString(l)
	}
	b.WriteString("\n")
	return b.String()
}

func (r *runner) printf(format string, args ...any) {
	fmt.Fprintf(r.w, format, args...)
}

// errWriter remembers the first write error, so that printing stays simple
// and Run still reports a broken output.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
