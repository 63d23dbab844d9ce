package playbooks

import (
	"reflect"
	"strings"

	"github.com/expr-lang/expr/ast"

	"github.com/soar-dev/soar/alert"
)

// The rule index skips the playbooks whose rule cannot match (see
// pinnedRules). The same argument skips more of them without running their
// match expressions: most expressions open with comparisons of plain alert
// fields that Go can evaluate directly, such as
//
//	alert.rule == "Terminal shell in container" && alert.severity >= Warning && ...
//
// A fact is such a comparison: a part of an expression that gives a bool
// without an error for every alert, and whose value Go computes exactly as
// expr does. newFact recognises these, by the same kind of reading of the
// checked and optimised syntax tree as pinnedRules:
//
//   - true and false;
//   - ==, !=, startsWith, endsWith and contains between string fields of
//     the alert (alert.source, alert.k8s.namespace, …) and string
//     constants, in either order: expr runs them as Go's ==, !=,
//     strings.HasPrefix, HasSuffix and Contains on the two strings;
//   - a string field in an array of string constants: expr's optimiser
//     turns the array into a constant set and looks the string up in it,
//     or, for an empty array, compares the string with each element (none);
//   - ==, !=, <, <=, > and >= between alert.severity and the severity names
//     (Warning, …), in any combination: == and != are expr's equality on two
//     alert.Severity values, the others the severityOperators, which compare
//     the two ints;
//   - not (also written !) of a fact, and && and || of two facts: on values
//     that cannot fail, short-circuit evaluation only skips work, so they
//     are Go's !, && and ||. not in is not of in.
//
// Nothing else is a fact: fields of other types, alert.fields (whose values
// have types only known at run time), calls, predicates, let, ?:, optional
// chaining. Every fact cannot fail, so cannotFail is "is a fact".
//
// A match expression C1 && C2 && … && Cn, whatever its parentheses, runs its
// operands from left to right and stops at the first that is false or
// fails. If C1 … Ck are all facts and one of them is false for an alert, the
// expression is false without an error for that alert: every operand
// before the first false one is a fact that is true, so none fails and the
// false one ends the evaluation. Skipping the playbook then gives exactly
// what running it would, as with the rule index. So Set.Match first
// evaluates the leading facts of each playbook (see leadingFacts) in Go, and
// runs the compiled expression, all of it, only when they hold. When the
// whole expression is a fact, the facts are its value and it does not run
// at all: a fact gives what expr gives, without an error.

// fact is the Go form of a fact: it returns the value the expression it was
// made from has for an alert.
type fact func(a *alert.Alert) bool

// newFact returns the Go form of n if n is a fact (see above).
func newFact(n ast.Node) (fact, bool) {
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(*alert.Alert) bool { return v }, true
	case *ast.UnaryNode:
		if n.Operator != "not" && n.Operator != "!" {
			return nil, false
		}
		f, ok := newFact(n.Node)
		if !ok {
			return nil, false
		}
		return func(a *alert.Alert) bool { return !f(a) }, true
	case *ast.BinaryNode:
		return binaryFact(n)
	case *ast.CallNode:
		return severityFact(n)
	}
	return nil, false
}

// binaryFact is newFact for a binary operator.
func binaryFact(n *ast.BinaryNode) (fact, bool) {
	switch n.Operator {
	case "&&", "and", "||", "or":
		left, ok := newFact(n.Left)
		if !ok {
			return nil, false
		}
		right, ok := newFact(n.Right)
		if !ok {
			return nil, false
		}
		if n.Operator == "&&" || n.Operator == "and" {
			return func(a *alert.Alert) bool { return left(a) && right(a) }, true
		}
		return func(a *alert.Alert) bool { return left(a) || right(a) }, true
	case "in":
		field, ok := stringOperand(n.Left)
		if !ok {
			return nil, false
		}
		set, ok := stringConstants(n.Right)
		if !ok {
			return nil, false
		}
		members := make(map[string]struct{}, len(set))
		for _, s := range set {
			members[s] = struct{}{}
		}
		return func(a *alert.Alert) bool {
			_, ok := members[field(a)]
			return ok
		}, true
	case "==", "!=":
		if f, ok := stringFact(n); ok {
			return f, true
		}
		return severityComparison(n.Operator, n.Left, n.Right)
	case "startsWith", "endsWith", "contains":
		return stringFact(n)
	}
	return nil, false
}

// stringFact is newFact for ==, !=, startsWith, endsWith and contains
// between two strings, each a field of the alert or a constant.
func stringFact(n *ast.BinaryNode) (fact, bool) {
	left, ok := stringOperand(n.Left)
	if !ok {
		return nil, false
	}
	right, ok := stringOperand(n.Right)
	if !ok {
		return nil, false
	}
	var compare func(a, b string) bool
	switch n.Operator {
	case "==":
		compare = func(a, b string) bool { return a == b }
	case "!=":
		compare = func(a, b string) bool { return a != b }
	case "startsWith":
		compare = strings.HasPrefix
	case "endsWith":
		compare = strings.HasSuffix
	case "contains":
		compare = strings.Contains
	default:
		return nil, false
	}
	return func(a *alert.Alert) bool { return compare(left(a), right(a)) }, true
}

// stringOperand returns how to read n from an alert if n is a string
// constant or a string field of the alert that alertStrings knows.
func stringOperand(n ast.Node) (func(*alert.Alert) string, bool) {
	if s, ok := n.(*ast.StringNode); ok {
		v := s.Value
		return func(*alert.Alert) string { return v }, true
	}
	if !isAlertString(n) {
		return nil, false
	}
	read, ok := alertStrings[alertPath(n.(*ast.MemberNode))]
	return read, ok
}

// alertPath returns the path of a field that isAlertField accepts, as
// expressions name it after "alert.": "rule", "k8s.namespace".
func alertPath(m *ast.MemberNode) string {
	name := m.Property.(*ast.StringNode).Value
	if base, ok := m.Node.(*ast.MemberNode); ok {
		return alertPath(base) + "." + name
	}
	return name
}

// alertStrings reads the string fields of an alert by their paths in
// expressions. A string field missing here is no fact, which is safe;
// TestAlertStrings checks that every entry reads what expr reads.
var alertStrings = map[string]func(*alert.Alert) string{
	"id":            func(a *alert.Alert) string { return a.ID },
	"source":        func(a *alert.Alert) string { return a.Source },
	"rule":          func(a *alert.Alert) string { return a.Rule },
	"summary":       func(a *alert.Alert) string { return a.Summary },
	"hostname":      func(a *alert.Alert) string { return a.Hostname },
	"format":        func(a *alert.Alert) string { return a.Format },
	"cluster":       func(a *alert.Alert) string { return a.Cluster },
	"k8s.namespace": func(a *alert.Alert) string { return a.Kubernetes.Namespace },
	"k8s.pod":       func(a *alert.Alert) string { return a.Kubernetes.Pod },
	"k8s.container": func(a *alert.Alert) string { return a.Kubernetes.Container },
	"k8s.node":      func(a *alert.Alert) string { return a.Kubernetes.Node },
	"k8s.podUID":    func(a *alert.Alert) string { return a.Kubernetes.PodUID },
}

// severityFact is newFact for a call of one of the severityOperators, which
// is what the checker makes of <, <=, > and >= between severities.
func severityFact(n *ast.CallNode) (fact, bool) {
	callee, ok := n.Callee.(*ast.IdentifierNode)
	if !ok || len(n.Arguments) != 2 {
		return nil, false
	}
	operator, ok := severityOperatorNames[callee.Value]
	if !ok {
		return nil, false
	}
	return severityComparison(operator, n.Arguments[0], n.Arguments[1])
}

// severityOperatorNames maps the functions of severityOperators to their
// operators.
var severityOperatorNames = map[string]string{
	"$severityLess":           "<",
	"$severityLessOrEqual":    "<=",
	"$severityGreater":        ">",
	"$severityGreaterOrEqual": ">=",
}

// severityComparison returns the fact that left operator right is, if both
// are severity operands.
func severityComparison(operator string, left, right ast.Node) (fact, bool) {
	l, ok := severityOperand(left)
	if !ok {
		return nil, false
	}
	r, ok := severityOperand(right)
	if !ok {
		return nil, false
	}
	var compare func(a, b alert.Severity) bool
	switch operator {
	case "==":
		compare = func(a, b alert.Severity) bool { return a == b }
	case "!=":
		compare = func(a, b alert.Severity) bool { return a != b }
	case "<":
		compare = func(a, b alert.Severity) bool { return a < b }
	case "<=":
		compare = func(a, b alert.Severity) bool { return a <= b }
	case ">":
		compare = func(a, b alert.Severity) bool { return a > b }
	case ">=":
		compare = func(a, b alert.Severity) bool { return a >= b }
	default:
		return nil, false
	}
	return func(a *alert.Alert) bool { return compare(l(a), r(a)) }, true
}

// severityOperand returns how to read n from an alert if n is
// alert.severity or one of the severity names of Env. The names are fields
// of the environment, not expr constants, so they reach here as
// identifiers; newFact never looks inside let or predicates, so an
// identifier is the environment's.
func severityOperand(n ast.Node) (func(*alert.Alert) alert.Severity, bool) {
	severityType := reflect.TypeFor[alert.Severity]()
	switch n := n.(type) {
	case *ast.IdentifierNode:
		v, ok := severityNames[n.Value]
		if !ok || n.Type() != severityType {
			return nil, false
		}
		return func(*alert.Alert) alert.Severity { return v }, true
	case *ast.MemberNode:
		if n.Type() != severityType || !isAlertField(n) || alertPath(n) != "severity" || !isAlert(n.Node) {
			return nil, false
		}
		return func(a *alert.Alert) alert.Severity { return a.Severity }, true
	}
	return nil, false
}

// severityNames are the values Env.setSeverities gives the severity names;
// TestSeverityNames checks that expr sees the same.
var severityNames = map[string]alert.Severity{
	"Debug":         alert.SeverityDebug,
	"Informational": alert.SeverityInformational,
	"Notice":        alert.SeverityNotice,
	"Warning":       alert.SeverityWarning,
	"Error":         alert.SeverityError,
	"Critical":      alert.SeverityCritical,
	"Alert":         alert.SeverityAlert,
	"Emergency":     alert.SeverityEmergency,
}

// leadingFacts returns the conjunction of the facts that a match expression
// n starts with, as the comment above defines them, and false when it
// starts with none. Set.Match skips a playbook, as false without an error,
// for an alert the conjunction is false for.
func leadingFacts(n ast.Node) (fact, bool) {
	var facts []fact
	for _, c := range conjuncts(n) {
		f, ok := newFact(c)
		if !ok {
			break
		}
		facts = append(facts, f)
	}
	switch len(facts) {
	case 0:
		return nil, false
	case 1:
		return facts[0], true
	}
	return func(a *alert.Alert) bool {
		for _, f := range facts {
			if !f(a) {
				return false
			}
		}
		return true
	}, true
}

// conjuncts returns the operands of the && (or and) at the root of n, from
// left to right and whatever the parentheses, in the order expr evaluates
// them: A, B and C for (A && B) && C and for A && (B && C). An n that is
// not && is its own only operand.
func conjuncts(n ast.Node) []ast.Node {
	b, ok := n.(*ast.BinaryNode)
	if !ok || b.Operator != "&&" && b.Operator != "and" {
		return []ast.Node{n}
	}
	return append(conjuncts(b.Left), conjuncts(b.Right)...)
}

// newNativeKey returns how to compute the incident key expression n in Go,
// if n is a string constant, a string field of the alert, or + of such, as
// in alert.k8s.namespace + "/" + alert.k8s.pod. expr's + on two strings is
// Go's, and none of these can fail, so the key is exactly what expr gives,
// without boxing every field and every partial sum into an interface.
func newNativeKey(n ast.Node) (func(*alert.Alert) string, bool) {
	parts, ok := concatenated(n)
	if !ok {
		return nil, false
	}
	if len(parts) == 1 {
		return parts[0], true
	}
	return func(a *alert.Alert) string {
		size := 0
		for _, part := range parts {
			size += len(part(a))
		}
		var b strings.Builder
		b.Grow(size)
		for _, part := range parts {
			b.WriteString(part(a))
		}
		return b.String()
	}, true
}

// concatenated returns the operands, from left to right, of the string
// concatenation n, if each is a string constant or string field of the
// alert (see stringOperand).
func concatenated(n ast.Node) ([]func(*alert.Alert) string, bool) {
	if b, ok := n.(*ast.BinaryNode); ok && b.Operator == "+" {
		left, ok := concatenated(b.Left)
		if !ok {
			return nil, false
		}
		right, ok := concatenated(b.Right)
		if !ok {
			return nil, false
		}
		return append(left, right...), true
	}
	part, ok := stringOperand(n)
	if !ok {
		return nil, false
	}
	return []func(*alert.Alert) string{part}, true
}
