package playbooks

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/expr-lang/expr/vm"

	"github.com/soar-dev/soar/alert"
)

func TestPinnedRules(t *testing.T) {
	tests := []struct {
		match string
		// rules is nil when the expression must not be pinned.
		rules []string
	}{
		// Pinned forms.
		{`alert.rule == "X"`, []string{"X"}},
		{`"X" == alert.rule`, []string{"X"}},
		{`alert["rule"] == "X"`, []string{"X"}},
		{`alert.rule == ""`, []string{""}},
		{`alert.rule in ["Y", "X", "Y"]`, []string{"X", "Y"}},
		{`alert.rule in ["X"]`, []string{"X"}},
		{`alert.rule in []`, []string{}},
		{`alert.rule == "X" && alert.k8s.namespace != "" && alert.k8s.pod != ""`, []string{"X"}},
		{`alert.rule == "X" and alert.k8s.pod != ""`, []string{"X"}},
		{`(alert.rule == "X")`, []string{"X"}},
		// The right operand may fail, but never runs for another rule.
		{`alert.rule == "X" && alert.fields["n"] > 3`, []string{"X"}},
		{`alert.rule == "X" && not (alert.k8s.namespace startsWith "kube-")`, []string{"X"}},
		{`alert.rule in ["X", "Y"] && alert.severity >= Warning`, []string{"X", "Y"}},
		// A left operand that cannot fail lets the right one pin.
		{`alert.source == "s" && alert.rule == "X"`, []string{"X"}},
		{`"s" != alert.source && alert.rule == "X"`, []string{"X"}},
		{`alert.k8s.namespace not in ["kube-system"] && alert.rule == "X"`, []string{"X"}},
		{`(alert.hostname == "h" || alert.k8s.pod != "") && alert.rule == "X"`, []string{"X"}},
		{`alert.severity >= Warning && alert.rule == "X"`, []string{"X"}},
		{`Critical != alert.severity && alert.rule == "X"`, []string{"X"}},
		{`alert.k8s.namespace startsWith "prod-" && alert.rule == "X"`, []string{"X"}},
		{`alert.rule in ["X", "Y"] && alert.rule in ["Y", "Z"]`, []string{"Y"}},
		{`alert.rule == "X" && alert.rule == "Y"`, []string{}},
		// The left operand may fail inside its own rules, so the right one
		// does not narrow them.
		{`(alert.rule in ["X", "Y"] && alert.fields["n"] > 3) && alert.rule == "Y"`, []string{"X", "Y"}},
		{`alert.rule == "X" || alert.rule == "Y"`, []string{"X", "Y"}},
		{`alert.rule == "X" or alert.rule in ["Y", "X"]`, []string{"X", "Y"}},
		{`(alert.rule == "X" && alert.fields["n"] > 3) || (alert.rule == "Y" && alert.k8s.pod != "")`, []string{"X", "Y"}},
		// The optimiser folds constants away.
		{`alert.rule == "X" && true`, []string{"X"}},
		{`true && alert.rule == "X"`, []string{"X"}},
		{`"a" == "a" && alert.rule == "X"`, []string{"X"}},

		// Not pinned.
		{`true`, nil},
		{`false`, nil},
		{`alert.rule != "X"`, nil},
		{`not (alert.rule == "X")`, nil},
		{`!(alert.rule == "X")`, nil},
		{`alert.rule not in ["X"]`, nil},
		{`alert.rule startsWith "X"`, nil},
		{`alert.rule matches "^X$"`, nil},
		{`lower(alert.rule) == "x"`, nil},
		{`alert.rule == alert.source`, nil},
		{`alert.rule == "X" + "Y" + alert.source`, nil},
		{`alert.rule in ["X", 1]`, nil},
		{`alert.rule in alert.tags`, nil},
		{`alert.rule == "X" ? true : false`, nil},
		{`alert?.rule == "X"`, nil},
		{`let r = alert.rule; r == "X"`, nil},
		{`let a = alert; a.rule == "X"`, nil},
		{`latest.rule == "X"`, nil},
		{`alert.source == "s"`, nil},
		{`alert.rule == "X" || alert.k8s.pod != ""`, nil},
		{`alert.k8s.pod != "" || alert.rule == "X"`, nil},
		{`alert.rule == "X" || alert.fields["n"] > 3`, nil},
		// The left operand may fail for any rule.
		{`alert.fields["n"] > 3 && alert.rule == "X"`, nil},
		{`alert.fields["s"] == "x" && alert.rule == "X"`, nil},
		{`"T1059" in alert.tags && alert.rule == "X"`, nil},
		{`incident.key == "" && alert.rule == "X"`, nil},
		{`any(alert.tags, # == "x") && alert.rule == "X"`, nil},
		{`all(["X"], alert.rule == #)`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.match, func(t *testing.T) {
			program, err := compile(tt.match, resultBool)
			if err != nil {
				t.Fatal(err)
			}
			rules, pinned := pinnedRules(program.Node())
			switch {
			case tt.rules == nil && pinned:
				t.Errorf("pinned to %q, want not pinned", rules)
			case tt.rules != nil && !pinned:
				t.Errorf("not pinned, want pinned to %q", tt.rules)
			case pinned && !slices.Equal(rules, tt.rules):
				t.Errorf("pinned to %q, want %q", rules, tt.rules)
			}
		})
	}
}

// matchResult prints what Match returned, to compare two calls.
func matchResult(matches []Match, errs []error) string {
	var b strings.Builder
	for _, m := range matches {
		fmt.Fprintf(&b, "match %s %q %v\n", m.Playbook.Name, m.IncidentKey, m.Severity)
	}
	for _, err := range errs {
		fmt.Fprintf(&b, "error %T %v\n", err, err)
	}
	return b.String()
}

// checkMatchAll fails t unless set.Match(a) gives what running every
// playbook gives, and returns how many playbooks the index skipped.
func checkMatchAll(t *testing.T, set *Set, a alert.Alert, context string) (skipped int) {
	t.Helper()
	got := matchResult(set.Match(a))
	want := matchResult(matchAll(set, a))
	if got != want {
		t.Fatalf("%s\nalert rule %q: Match gives\n%s\nrunning every playbook gives\n%s", context, a.Rule, got, want)
	}
	return len(set.playbooks) - len(set.index.byRule[a.Rule]) - len(set.index.unpinned)
}

// matchAll is Set.Match without the index: it runs every playbook.
func matchAll(set *Set, a alert.Alert) ([]Match, []error) {
	all := make([]int, len(set.playbooks))
	for i := range all {
		all[i] = i
	}
	return set.match(a, nil, all, nil)
}

// TestMatchIndexLibrary checks that the index changes nothing for the
// shipped library, on the Falco alerts and on variants with every rule the
// library knows, with rules it does not, and with no rule.
func TestMatchIndexLibrary(t *testing.T) {
	set := mustLoad(t, "library", LoadOptions{})
	if len(set.index.unpinned) == len(set.playbooks) {
		t.Fatal("no shipped playbook is pinned to a rule: the test checks nothing")
	}
	rules := []string{"", "Some other rule", "terminal shell in container"}
	for _, p := range set.playbooks {
		r, _ := pinnedRules(p.matchProgram.Node())
		rules = append(rules, r...)
	}
	alerts := []alert.Alert{terminalShellAlert(), cryptoMinerAlert()}
	for _, r := range rules {
		withRule := func(a *alert.Alert) { a.Rule = r }
		alerts = append(alerts,
			terminalShellAlert(withRule),
			terminalShellAlert(withRule, withPod("", "")),
			terminalShellAlert(withRule, withPod("kube-system", "etcd-0")),
			terminalShellAlert(withRule, func(a *alert.Alert) { a.Source = "custom-detector" }),
			cryptoMinerAlert(withRule),
		)
	}
	skipped := 0
	for _, a := range alerts {
		skipped += checkMatchAll(t, set, a, "library")
	}
	if skipped == 0 {
		t.Error("the index skipped no playbook")
	}
}

// TestMatchIndexRandom checks on random playbooks and alerts that Match
// gives what running every playbook's whole match expression gives, and
// what this rests on: an expression cannotFail accepts never fails, one
// pinned to rules is false without an error for every other rule, a fact
// has the value expr gives it, an expression whose leading facts are
// false is false without an error, and an incident key computed in Go is
// the one expr computes.
func TestMatchIndexRandom(t *testing.T) {
	iterations := 400
	if testing.Short() {
		iterations = 50
	}
	var skipped, pinned, failures, factSkips, nativeKeys int
	for seed := range uint64(iterations) {
		r := rand.New(rand.NewPCG(seed, 0x5eed))
		g := exprGen{r: r}

		n := 1 + r.IntN(12)
		files := fstest.MapFS{}
		var lines []string
		for i, id := range r.Perm(n) {
			p := benchPlaybook{
				name:        fmt.Sprintf("p-%02d", id),
				match:       g.bool(3),
				incidentKey: g.key(),
			}
			if r.IntN(3) == 0 {
				// An expression that is all facts, which checkFacts
				// compares with expr on every alert.
				p.match = g.facts(3)
			}
			if r.IntN(3) == 0 {
				p.severity = g.pick(`alert.fields["sev"]`, `alert.severity >= Warning ? Critical : Notice`)
			}
			files[p.name+".yaml"] = &fstest.MapFile{Data: []byte(p.yaml())}
			lines = append(lines, fmt.Sprintf("%d %s: %s", i, p.name, p.match))
		}
		set, err := Load(files, LoadOptions{})
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, strings.Join(lines, "\n"))
		}
		context := fmt.Sprintf("seed %d, playbooks:\n%s", seed, strings.Join(lines, "\n"))

		alerts := make([]alert.Alert, 24)
		for i := range alerts {
			alerts[i] = g.alert()
		}
		for _, p := range set.playbooks {
			factSkips += checkFacts(t, p, alerts, seed)
			nativeKeys += checkNativeKey(t, p, alerts, seed)
			if _, ok := pinnedRules(p.matchProgram.Node()); ok {
				pinned++
			}
		}
		for _, a := range alerts {
			skipped += checkMatchAll(t, set, a, context)
			_, errs := set.Match(a)
			failures += len(errs)
		}
	}
	t.Logf("%d playbooks pinned, %d skipped, %d errors, %d false leading facts, %d native keys", pinned, skipped, failures, factSkips, nativeKeys)
	// The generator must exercise what the test is about.
	if skipped == 0 || pinned == 0 || failures == 0 || factSkips == 0 || nativeKeys == 0 {
		t.Errorf("%d playbooks pinned, %d skipped, %d errors, %d false leading facts, %d native keys: the generator misses cases", pinned, skipped, failures, factSkips, nativeKeys)
	}
}

// checkFacts checks the facts the index and the leading facts rest on for
// p's match expression on alerts, and returns for how many alerts the
// leading facts were false.
func checkFacts(t *testing.T, p *Playbook, alerts []alert.Alert, seed uint64) (falseLeads int) {
	t.Helper()
	root := p.matchProgram.Node()
	rules, pinned := pinnedRules(root)
	never := cannotFail(root)
	whole, isFact := newFact(root)
	lead, hasLead := leadingFacts(root)
	var m vm.VM
	for _, a := range alerts {
		env := NewEnv(a, Incident{})
		out, err := evaluate(&m, p.matchProgram, &env)
		if never && err != nil {
			t.Fatalf("seed %d: %s: cannotFail, but it fails for %s: %v", seed, p.Match, describeAlert(a), err)
		}
		if pinned && !slices.Contains(rules, a.Rule) && (err != nil || out != false) {
			t.Fatalf("seed %d: %s: pinned to %q, but for rule %q it gives %v, %v", seed, p.Match, rules, a.Rule, out, err)
		}
		if isFact && (err != nil || out != whole(&a)) {
			t.Fatalf("seed %d: %s: a fact that is %v for %s, but expr gives %v, %v", seed, p.Match, whole(&a), describeAlert(a), out, err)
		}
		if hasLead && !lead(&a) {
			falseLeads++
			if err != nil || out != false {
				t.Fatalf("seed %d: %s: leading facts false for %s, but expr gives %v, %v", seed, p.Match, describeAlert(a), out, err)
			}
		}
	}
	return falseLeads
}

// checkNativeKey checks that the Go form of p's incident key, if it has
// one, gives what expr gives on every alert, and returns 1 if it has one.
func checkNativeKey(t *testing.T, p *Playbook, alerts []alert.Alert, seed uint64) int {
	t.Helper()
	key, ok := newNativeKey(p.incidentKeyProgram.Node())
	if !ok {
		return 0
	}
	var m vm.VM
	for _, a := range alerts {
		env := NewEnv(a, Incident{})
		out, err := evaluate(&m, p.incidentKeyProgram, &env)
		if err != nil || out != key(&a) {
			t.Fatalf("seed %d: %s: Go gives %q for %s, expr %v, %v", seed, p.IncidentKey, key(&a), describeAlert(a), out, err)
		}
	}
	return 1
}

// describeAlert prints the fields of a that facts read, for failures.
func describeAlert(a alert.Alert) string {
	return fmt.Sprintf("rule %q source %q hostname %q namespace %q pod %q severity %d",
		a.Rule, a.Source, a.Hostname, a.Kubernetes.Namespace, a.Kubernetes.Pod, a.Severity)
}

// exprGen generates match expressions and alerts over a few rules, so that
// alerts often have the rules that expressions pin.
type exprGen struct {
	r *rand.Rand
}

// rules are the rules of generated expressions and alerts. Alerts also get
// a rule no expression names, and no rule.
var genRules = []string{"R1", "R2", "R3", "r1"}

func (g exprGen) pick(choices ...string) string {
	return choices[g.r.IntN(len(choices))]
}

func (g exprGen) rule() string {
	return genRules[g.r.IntN(len(genRules))]
}

// rules returns an array literal of up to three rules.
func (g exprGen) rules() string {
	quoted := make([]string, g.r.IntN(4))
	for i := range quoted {
		quoted[i] = fmt.Sprintf("%q", g.rule())
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// bool returns a boolean expression with at most depth levels of
// operators, mixing the pinned forms with others, some of which fail on
// some alerts.
func (g exprGen) bool(depth int) string {
	if depth > 0 && g.r.IntN(3) > 0 {
		a, b := g.bool(depth-1), g.bool(depth-1)
		switch g.r.IntN(9) {
		case 0, 1, 2:
			return a + " && " + b
		case 3, 4:
			return a + " || " + b
		case 5:
			return "(" + a + " && " + b + ")"
		case 6:
			return "(" + a + " || " + b + ")"
		case 7:
			return "!(" + a + ")"
		default:
			return "not (" + a + ")"
		}
	}
	// Half of the leaves are the facts of newFact, which Match evaluates in
	// Go; the other half are the forms above.
	if g.r.IntN(2) == 0 {
		return g.fact()
	}
	switch g.r.IntN(19) {
	case 0, 1, 2:
		return fmt.Sprintf(`alert.rule == %q`, g.rule())
	case 3:
		return fmt.Sprintf(`%q == alert.rule`, g.rule())
	case 4, 5:
		return `alert.rule in ` + g.rules()
	case 6:
		return fmt.Sprintf(`alert.rule != %q`, g.rule())
	case 7:
		return fmt.Sprintf(`alert.rule startsWith %q`, g.rule()[:1])
	case 8:
		return fmt.Sprintf(`lower(alert.rule) == %q`, strings.ToLower(g.rule()))
	case 9:
		return g.pick(`alert.source == "falco"`, `"custom" != alert.source`, `alert.k8s.namespace in ["a", "b"]`, `alert.k8s.pod != ""`)
	case 10:
		// Fails when n is missing or a string.
		return g.pick(`alert.fields["n"] > 3`, `alert.fields["n"] <= 3`)
	case 11:
		// Fails when b is not a bool.
		return g.pick(`alert.fields["b"]`, `not alert.fields["b"]`)
	case 12:
		return g.pick(`alert.fields["s"] == "x"`, `alert.fields["s"] in ["x", "y"]`)
	case 13:
		return g.pick(`alert.severity >= Warning`, `alert.severity < Error`)
	case 14:
		return g.pick(`"T1" in alert.tags`, `any(alert.tags, # startsWith "T")`)
	case 15:
		return g.pick(`true`, `false`)
	case 16:
		return fmt.Sprintf(`alert.rule == %q ? alert.k8s.pod != "" : alert.fields["b"]`, g.rule())
	case 17:
		return fmt.Sprintf(`(let r = alert.rule; r == %q)`, g.rule())
	default:
		return `alert.rule matches "^R[12]"`
	}
}

// facts returns &&, || and not of facts, with at most depth levels of
// operators: a fact as a whole.
func (g exprGen) facts(depth int) string {
	if depth == 0 || g.r.IntN(3) == 0 {
		return g.fact()
	}
	a, b := g.facts(depth-1), g.facts(depth-1)
	return g.pick("("+a+" && "+b+")", "("+a+" || "+b+")", "not ("+a+")", "!("+a+")", a+" and "+b)
}

// key returns an incident key expression: one of the concatenations of
// string fields and constants that Match computes in Go, which may be
// empty, or a field of any type, which expr computes.
func (g exprGen) key() string {
	return g.pick(
		`alert.k8s.pod`,
		`alert.hostname`,
		`alert.rule + "/" + alert.k8s.pod`,
		`alert.k8s.namespace + "/" + alert.k8s.pod + "/" + alert.source`,
		`"k-" + alert.source`,
		`alert.source + (alert.hostname + alert.k8s.namespace)`,
		`alert.fields["k"]`,
		`alert.fields["k"] + "/" + alert.k8s.pod`,
	)
}

// genStrings are the constants facts compare string fields with: the
// values alerts have, prefixes, suffixes and parts of them, and "".
var genStrings = []string{"", "a", "b", "c", "falco", "fal", "co", "custom", "pod-1", "pod", "-", "-1", "R1", "h", "worker-2", "er"}

// genSeverities are the severities facts compare with.
var genSeverities = []string{"alert.severity", "Debug", "Informational", "Notice", "Warning", "Error", "Critical", "Alert", "Emergency"}

// fact returns a comparison of a string field or the severity that newFact
// evaluates in Go.
func (g exprGen) fact() string {
	field := g.pick("alert.source", "alert.k8s.namespace", "alert.hostname", "alert.k8s.pod", "alert.rule", `alert["source"]`)
	constant := fmt.Sprintf("%q", genStrings[g.r.IntN(len(genStrings))])
	switch g.r.IntN(6) {
	case 0, 1:
		op := g.pick("==", "!=", "startsWith", "endsWith", "contains")
		left, right := field, g.pick(constant, constant, field, `alert.k8s.pod`)
		if g.r.IntN(2) == 0 {
			left, right = right, left
		}
		return fmt.Sprintf("%s %s %s", left, op, right)
	case 2:
		quoted := make([]string, g.r.IntN(4))
		for i := range quoted {
			quoted[i] = fmt.Sprintf("%q", genStrings[g.r.IntN(len(genStrings))])
		}
		return fmt.Sprintf("%s %s [%s]", field, g.pick("in", "not in"), strings.Join(quoted, ", "))
	case 3, 4:
		left, right := "alert.severity", genSeverities[g.r.IntN(len(genSeverities))]
		if g.r.IntN(3) == 0 {
			left, right = right, left
		}
		return fmt.Sprintf("%s %s %s", left, g.pick("==", "!=", "<", "<=", ">", ">="), right)
	default:
		return g.pick(`true`, `false`, `alert.k8s.namespace != ""`, `alert.source == ""`)
	}
}

// alert returns an alert with a rule from genRules, another rule or none,
// the string fields facts read set to values facts compare with or empty,
// any severity, and fields of the types the expressions expect, or
// others, or none.
func (g exprGen) alert() alert.Alert {
	a := terminalShellAlert()
	a.Rule = g.pick(append(slices.Clone(genRules), "R9", "")...)
	a.Source = g.pick("falco", "custom", "")
	a.Hostname = g.pick("h", "worker-2", "")
	a.Severity = alert.Severity(g.r.IntN(int(alert.SeverityEmergency) + 1))
	a.Kubernetes.Namespace = g.pick("a", "c", "", "b")
	a.Kubernetes.Pod = g.pick("pod-1", "")
	a.Tags = [][]string{nil, {"T1"}, {"x", "T2"}}[g.r.IntN(3)]
	a.Fields = map[string]any{}
	values := []any{nil, int64(2), int64(7), "7", true, false, "x", ""}
	for _, k := range []string{"n", "b", "s", "k", "sev"} {
		if v := values[g.r.IntN(len(values))]; v != nil {
			a.Fields[k] = v
		}
	}
	if g.r.IntN(4) == 0 {
		a.Fields["sev"] = alert.SeverityError
	}
	return a
}
