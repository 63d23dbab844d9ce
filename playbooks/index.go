package playbooks

import (
	"reflect"
	"slices"

	"github.com/expr-lang/expr/ast"

	"github.com/soar-dev/soar/alert"
)

// Most playbooks answer one detection rule and say so in their match
// expression, as the shipped library does:
//
//	alert.rule == "Terminal shell in container" && alert.k8s.pod != ""
//
// so Set.Match runs only the match expressions that can be true for the
// alert's rule: those of the playbooks pinned to that rule and those of the
// playbooks that are not pinned to any.
//
// A playbook is pinned to the set of rules R when its match expression is
// false, without an error, for every alert whose rule is not in R. Skipping
// it for such an alert is then exact: running it would have given neither a
// match nor a *MatchError, and its incident key and severity only run after
// a match. pinnedRules proves that from the expression by these rules, where
// R(E) is the set of rules E is pinned to:
//
//   - alert.rule == "X" and "X" == alert.rule are pinned to {X}, and
//     alert.rule in ["X", "Y"] (an array of string constants) to {X, Y}.
//   - A || B is pinned to R(A) ∪ R(B) when both sides are pinned: for any
//     other rule A is false without an error, so B runs, and it is false
//     without an error too. When either side is not pinned, A || B is not.
//   - A && B is pinned to R(A) when A is pinned: for any other rule A is
//     false, and && short-circuits from left to right, so B never runs and
//     cannot fail. When A cannot fail at all (see cannotFail), A && B is
//     also pinned to R(A) ∩ R(B) when both sides are pinned, and to R(B)
//     when only B is: for a rule outside R(B), A is false, or true and then
//     B is false without an error. Without that condition a pinned B is no
//     help, because A says nothing about rules inside R(A): there it may
//     fail, and that *MatchError must be reported.
//   - Nothing else is pinned: not (which turns false into true), ?:,
//     function and builtin calls, predicates, let, optional chaining (?.),
//     other operators, and comparisons of anything but alert.rule.
//
// The rules read the syntax tree that the program was compiled from, after
// expr's checker and optimiser, so what they prove is about the code that
// runs: for example the optimiser folds "x && false" into "false", which
// no longer fails where x would, and turns alert.rule in ["X", "Y"] into a
// lookup in a constant set, which pinnedRules reads too. The && rules rely
// on short-circuit evaluation, which compile never disables.

// pinnedRules returns the sorted rules that the match expression n is
// pinned to, and whether it is pinned (see the rules above). A pinned
// expression with no rules is false for every alert.
func pinnedRules(n ast.Node) (rules []string, pinned bool) {
	switch n := n.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "==":
			if isAlertRule(n.Left) {
				if s, ok := n.Right.(*ast.StringNode); ok {
					return []string{s.Value}, true
				}
			}
			if isAlertRule(n.Right) {
				if s, ok := n.Left.(*ast.StringNode); ok {
					return []string{s.Value}, true
				}
			}
		case "in":
			if isAlertRule(n.Left) {
				return stringConstants(n.Right)
			}
		case "||", "or":
			left, ok := pinnedRules(n.Left)
			if !ok {
				return nil, false
			}
			right, ok := pinnedRules(n.Right)
			if !ok {
				return nil, false
			}
			return union(left, right), true
		case "&&", "and":
			left, leftPinned := pinnedRules(n.Left)
			right, rightPinned := pinnedRules(n.Right)
			switch {
			case leftPinned && rightPinned && cannotFail(n.Left):
				return intersection(left, right), true
			case leftPinned:
				return left, true
			case rightPinned && cannotFail(n.Left):
				return right, true
			}
		}
	}
	return nil, false
}

// cannotFail reports whether evaluating n always gives a bool without an
// error, whatever the alert: whether n is a fact (see newFact), such as
// true, alert.source == "x", alert.k8s.namespace in ["a", "b"],
// alert.severity >= Warning, and not, && and || of those. Anything else may
// fail as far as cannotFail knows: alert.fields values have types only
// known at run time, calls may return errors, and so on.
func cannotFail(n ast.Node) bool {
	_, ok := newFact(n)
	return ok
}

// isAlertRule reports whether n reads alert.rule.
func isAlertRule(n ast.Node) bool {
	if !isAlertString(n) {
		return false
	}
	m := n.(*ast.MemberNode)
	return isAlert(m.Node) && m.Property.(*ast.StringNode).Value == "rule"
}

// isAlertString reports whether n reads a string field of the alert, such
// as alert.rule or alert.k8s.namespace, which cannot fail. The types are
// the checker's, so a field whose type changes stops counting here instead
// of making a proof wrong: for example in (the optimiser's lookup in a set
// of strings) panics on a needle of a named string type.
func isAlertString(n ast.Node) bool {
	m, ok := n.(*ast.MemberNode)
	return ok && m.Type() == reflect.TypeFor[string]() && isAlertField(m)
}

// isAlertField reports whether m is a plain field access (a.b or a["b"],
// without ?. and not a method) on the alert or on one of its struct fields.
func isAlertField(m *ast.MemberNode) bool {
	if m.Optional || m.Method {
		return false
	}
	if _, ok := m.Property.(*ast.StringNode); !ok {
		return false
	}
	if isAlert(m.Node) {
		return true
	}
	base, ok := m.Node.(*ast.MemberNode)
	return ok && base.Type().Kind() == reflect.Struct && isAlertField(base)
}

// isAlert reports whether n is the environment's alert. expr refuses to
// let a variable redeclare it, and pinnedRules never looks inside
// predicates; the type is checked all the same.
func isAlert(n ast.Node) bool {
	id, ok := n.(*ast.IdentifierNode)
	return ok && id.Value == "alert" && id.Type() == reflect.TypeFor[alert.Alert]()
}

// stringConstants returns the sorted, distinct strings of the right operand
// of in, if it is an array of string constants: an array literal as the
// parser writes it, or the constant set expr's optimiser replaces it with.
func stringConstants(n ast.Node) ([]string, bool) {
	var out []string
	switch n := n.(type) {
	case *ast.ArrayNode:
		for _, e := range n.Nodes {
			s, ok := e.(*ast.StringNode)
			if !ok {
				return nil, false
			}
			out = append(out, s.Value)
		}
	case *ast.ConstantNode:
		set, ok := n.Value.(map[string]struct{})
		if !ok {
			return nil, false
		}
		for s := range set {
			out = append(out, s)
		}
	default:
		return nil, false
	}
	slices.Sort(out)
	return slices.Compact(out), true
}

// union returns the sorted rules in a or b, which are sorted.
func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// intersection returns the sorted rules in both a and b, which are sorted.
func intersection(a, b []string) []string {
	var out []string
	for _, s := range a {
		if _, ok := slices.BinarySearch(b, s); ok {
			out = append(out, s)
		}
	}
	return out
}

// ruleIndex says which playbooks of a Set can match an alert with a given
// rule: those pinned to the rule and those not pinned. It holds positions in
// the Set's playbooks, in ascending order, so that Set.Match can merge the
// two lists into name order.
type ruleIndex struct {
	// byRule lists the playbooks pinned to each rule. A playbook pinned to
	// several rules is in several lists, and one pinned to none in none.
	byRule map[string][]int
	// unpinned lists the playbooks that every alert must run.
	unpinned []int
}

// newRuleIndex indexes playbooks, which are sorted by name.
func newRuleIndex(playbooks []*Playbook) ruleIndex {
	x := ruleIndex{byRule: make(map[string][]int)}
	for i, p := range playbooks {
		var (
			rules  []string
			pinned bool
		)
		if p.matchProgram != nil {
			rules, pinned = pinnedRules(p.matchProgram.Node())
		}
		if !pinned {
			x.unpinned = append(x.unpinned, i)
			continue
		}
		for _, r := range rules {
			x.byRule[r] = append(x.byRule[r], i)
		}
	}
	return x
}
