package playbooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/parser/operator"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/soar-dev/soar/alert"
)

// Explanation says why a playbook matched an alert or not: the result Set.Match
// reaches for the playbook, and the value of every sub-expression of its match
// and incidentKey expressions. Build it with Explain; print it with WriteText
// or encoding/json.
type Explanation struct {
	Playbook string `json:"playbook"`
	File     string `json:"file"`
	AlertID  string `json:"alertID"`
	Rule     string `json:"rule"`

	// Matched says whether Set.Match returns a match of this playbook for
	// the alert. Key and IncidentID are set when it does.
	Matched    bool   `json:"matched"`
	Key        string `json:"key,omitempty"`
	IncidentID string `json:"incidentID,omitempty"`
	// Err is the *MatchError that Set.Match reports for this playbook and
	// alert, and Error its text; the playbook is then skipped for the alert.
	Err   error  `json:"-"`
	Error string `json:"error,omitempty"`

	// Match explains the match expression.
	Match ExprExplanation `json:"match"`
	// IncidentKey explains the incidentKey expression. It is nil when the
	// match expression was not true, because Set.Match then does not
	// evaluate it either.
	IncidentKey *ExprExplanation `json:"incidentKey,omitempty"`
}

// ExprExplanation explains one expression of a playbook.
type ExprExplanation struct {
	// Source is the expression as written in the playbook.
	Source string `json:"source"`
	// Result is the expression's result as Set.Match uses it, printed as
	// Subexpr.Text prints values; it is empty when Error is set.
	Result string `json:"result,omitempty"`
	// Error is why Set.Match rejected the expression's result, such as a
	// run-time error or an empty incident key.
	Error string `json:"error,omitempty"`
	// Tree is the expression itself, with its sub-expressions as children.
	Tree *Subexpr `json:"tree"`
}

// Outcome says what happened to a sub-expression when its expression ran.
type Outcome string

// Outcomes of a sub-expression.
const (
	// Evaluated means the sub-expression ran and gave Subexpr.Value.
	Evaluated Outcome = "evaluated"
	// Failed means the sub-expression failed with Subexpr.Error, and the
	// whole expression failed with it: expr has no way to catch an error.
	Failed Outcome = "failed"
	// NotEvaluated means the sub-expression did not run; Subexpr.Reason
	// says why.
	NotEvaluated Outcome = "not-evaluated"
)

// Reasons for NotEvaluated.
const (
	// ReasonShortCircuit: an earlier operand of &&, || or ?? decided the
	// result.
	ReasonShortCircuit = "short-circuit"
	// ReasonBranchNotTaken: the other branch of a conditional ran.
	ReasonBranchNotTaken = "branch not taken"
	// ReasonEarlierFailure: evaluation stopped at an earlier failure.
	ReasonEarlierFailure = "evaluation stopped at an earlier error"

	// reasonUnknown: an earlier operand could not be compiled on its own,
	// which every sub-expression of a loaded playbook should.
	reasonUnknown = "unknown: an earlier operand could not be evaluated on its own"
)

// Subexpr is one sub-expression and what it evaluated to. Literals and the
// severity names are left out: their values are what they say. Member
// accesses such as alert.k8s.pod are one sub-expression, not three. Its JSON
// form is described at MarshalJSON.
type Subexpr struct {
	// Expr is the sub-expression as expr prints it back from its syntax
	// tree: spacing and parentheses are normalised, and "not in" reads
	// "not (… in …)".
	Expr string
	// Connective is the operator that joins an operand of a chain of && or
	// || to the operands before it ("&&", "||", "and", "or"), or
	// "let NAME =" for the value of a variable; it is empty otherwise.
	Connective string
	Outcome    Outcome
	// Value is the result when Outcome is Evaluated. JSON carries it as
	// "value" when encoding/json can encode it, and always as Text.
	Value any
	// Text prints Value: strings Go-quoted, severities by name, lists and
	// maps in expr's literal syntax.
	Text string
	// Type is Value's Go type, such as "string", "int64" or
	// "alert.Severity".
	Type string
	// Error is the run-time error when Outcome is Failed.
	Error string
	// Reason says why the sub-expression was not evaluated.
	Reason string
	// Children are the sub-expressions, in evaluation order (left to
	// right). An operand of a chain of && or || is a direct child of the
	// chain, however the chain nests in the syntax tree.
	Children []*Subexpr
}

// MarshalJSON encodes s with its value as "value" next to "text", when
// encoding/json can encode the value (NaN, for one, it cannot).
func (s *Subexpr) MarshalJSON() ([]byte, error) {
	out := struct {
		Expr       string          `json:"expr"`
		Connective string          `json:"connective,omitempty"`
		Outcome    Outcome         `json:"outcome"`
		Value      json.RawMessage `json:"value,omitempty"`
		Text       string          `json:"text,omitempty"`
		Type       string          `json:"type,omitempty"`
		Error      string          `json:"error,omitempty"`
		Reason     string          `json:"reason,omitempty"`
		Children   []*Subexpr      `json:"children,omitempty"`
	}{
		Expr: s.Expr, Connective: s.Connective, Outcome: s.Outcome,
		Text: s.Text, Type: s.Type, Error: s.Error, Reason: s.Reason, Children: s.Children,
	}
	if s.Outcome == Evaluated {
		if b, err := marshalJSON(s.Value); err == nil {
			out.Value = b
		}
	}
	return marshalJSON(out)
}

// marshalJSON is json.Marshal without HTML escaping: expressions are full of
// && and <, which would otherwise read \u0026\u0026 and \u003c.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Explain evaluates p's match expression against alert a and, when it is
// true, p's incidentKey expression, and reports the value of every
// sub-expression. Sub-expressions are evaluated as the dispatcher evaluates
// the whole (same compile options, so the severity operators and disabled
// builtins behave the same, and the same environment, NewEnv(a,
// Incident{})), each on its own, in the order expr evaluates them. An operand
// that && or || or ?? skips, or a branch a conditional does not take, is
// reported as not evaluated, and so is everything after a run-time error.
//
// Run-time errors in the expressions are part of the explanation, never an
// error of Explain. Explain returns an error only when p was not loaded with
// Load. It has no side effects and is deterministic.
func Explain(p *Playbook, a alert.Alert) (*Explanation, error) {
	if p == nil || p.matchProgram == nil || p.incidentKeyProgram == nil {
		return nil, errors.New("explain: playbook was not loaded with playbooks.Load")
	}
	env := NewEnv(a, Incident{})
	x := &explainer{env: &env}
	var m vm.VM
	key, matched, err := p.evaluate(&m, &env, native{})

	e := &Explanation{
		Playbook: p.Name,
		File:     p.File,
		AlertID:  a.ID,
		Rule:     a.Rule,
		Matched:  matched,
		Err:      err,
		Match:    ExprExplanation{Source: p.Match},
	}
	if matched {
		e.Key, e.IncidentID = key, ClusterIncidentID(a.Cluster, p.Name, key)
	}
	if err != nil {
		e.Error = err.Error()
	}

	// Set.Match's error says which expression failed; the match
	// expression was true if the incident key failed.
	failed, reason := "", ""
	var me *MatchError
	if errors.As(err, &me) {
		failed, reason = me.Field, me.Err.Error()
	} else if err != nil {
		failed, reason = "match", err.Error()
	}
	matchTrue := matched || failed == "incidentKey"

	if e.Match.Tree, err = x.tree(p.Match); err != nil {
		return nil, fmt.Errorf("explain playbook %q: match: %w", p.Name, newExprError(err, true))
	}
	if failed == "match" {
		e.Match.Error = reason
	} else {
		e.Match.Result = strconv.FormatBool(matchTrue)
	}
	if !matchTrue {
		return e, nil
	}

	ik := &ExprExplanation{Source: p.IncidentKey}
	if ik.Tree, err = x.tree(p.IncidentKey); err != nil {
		return nil, fmt.Errorf("explain playbook %q: incidentKey: %w", p.Name, newExprError(err, true))
	}
	if failed == "incidentKey" {
		ik.Error = reason
	} else {
		ik.Result = strconv.Quote(key)
	}
	e.IncidentKey = ik
	return e, nil
}

// explainer evaluates the sub-expressions of one expression.
type explainer struct {
	env *Env
	m   vm.VM
	// lets are the variables declared around the current node, outermost
	// first, so that a sub-expression that uses one compiles on its own.
	lets []binding
	// stopped is set when a sub-expression fails: expr stops there, so
	// nothing after it runs.
	stopped bool
}

type binding struct{ name, value string }

// tree parses src and explains its root.
func (x *explainer) tree(src string) (*Subexpr, error) {
	// The parser needs no configuration: soar's compile options affect
	// only the checker and the compiler, except for disabled builtins,
	// which a loaded playbook cannot contain.
	t, err := parser.Parse(src)
	if err != nil {
		return nil, err
	}
	x.lets, x.stopped = nil, false
	return x.explain(t.Node, ""), nil
}

// explain evaluates n after its children, as expr's compiled program does,
// and returns it with its children.
func (x *explainer) explain(n ast.Node, connective string) *Subexpr {
	n = unchain(n)
	s := &Subexpr{Expr: n.String(), Connective: connective}
	if x.stopped {
		return s.notEvaluated(ReasonEarlierFailure)
	}

	switch n := n.(type) {
	case *ast.BinaryNode:
		switch {
		case operator.IsBoolean(n.Operator):
			x.chain(s, n)
		case n.Operator == "??":
			left := x.child(s, n.Left, "")
			if v, ok := valueOf(n.Left, left); ok && !runtime.IsNil(v) {
				x.skip(s, n.Right, "", ReasonShortCircuit)
			} else {
				x.child(s, n.Right, "")
			}
		default:
			x.child(s, n.Left, "")
			x.child(s, n.Right, "")
		}
	case *ast.UnaryNode:
		x.child(s, n.Node, "")
	case *ast.MemberNode:
		if !isPath(n.Node) {
			x.child(s, n.Node, "")
		}
		x.child(s, n.Property, "")
	case *ast.SliceNode:
		if !isPath(n.Node) {
			x.child(s, n.Node, "")
		}
		x.child(s, n.From, "")
		x.child(s, n.To, "")
	case *ast.CallNode:
		// A method's receiver is evaluated first; the callee itself is a
		// name, not a value worth showing.
		if m, ok := unchain(n.Callee).(*ast.MemberNode); ok && !isPath(m.Node) {
			x.child(s, m.Node, "")
		}
		for _, arg := range n.Arguments {
			x.child(s, arg, "")
		}
	case *ast.BuiltinNode:
		for _, arg := range n.Arguments {
			// A predicate runs once per element, with # bound to it, so it
			// has no value of its own; the builtin's value says what it did.
			if _, ok := arg.(*ast.PredicateNode); !ok {
				x.child(s, arg, "")
			}
		}
	case *ast.ConditionalNode:
		cond := x.child(s, n.Cond, "")
		v, ok := valueOf(n.Cond, cond)
		switch {
		case !ok:
			// The condition failed, so nothing more runs, or it could not
			// be evaluated on its own, so which branch ran is unknown.
			x.child(s, n.Exp1, "")
			x.child(s, n.Exp2, "")
		case v == true:
			x.child(s, n.Exp1, "")
			x.skip(s, n.Exp2, "", ReasonBranchNotTaken)
		case v == false:
			x.skip(s, n.Exp1, "", ReasonBranchNotTaken)
			x.child(s, n.Exp2, "")
		default:
			// A condition that is not a bool fails the conditional.
			x.skip(s, n.Exp1, "", ReasonEarlierFailure)
			x.skip(s, n.Exp2, "", ReasonEarlierFailure)
		}
	case *ast.ArrayNode:
		for _, el := range n.Nodes {
			x.child(s, el, "")
		}
	case *ast.MapNode:
		for _, pair := range n.Pairs {
			if p, ok := pair.(*ast.PairNode); ok {
				x.child(s, p.Key, "")
				x.child(s, p.Value, "")
			}
		}
	case *ast.SequenceNode:
		for _, el := range n.Nodes {
			x.child(s, el, "")
		}
	case *ast.VariableDeclaratorNode:
		x.child(s, n.Value, "let "+n.Name+" =")
		x.lets = append(x.lets, binding{n.Name, n.Value.String()})
		x.child(s, n.Expr, "")
		x.lets = x.lets[:len(x.lets)-1]
	}

	x.evaluate(s, n)
	return s
}

// chain explains a chain of && or || (or and, or): its operands become
// children of s in order, and the operands after the one that decides the
// result are short-circuited.
func (x *explainer) chain(s *Subexpr, n *ast.BinaryNode) {
	and := n.Operator == "&&" || n.Operator == "and"
	type operand struct {
		node       ast.Node
		connective string
	}
	var operands []operand
	var flatten func(n ast.Node, connective string)
	flatten = func(node ast.Node, connective string) {
		b, ok := node.(*ast.BinaryNode)
		if ok && operator.IsBoolean(b.Operator) && (b.Operator == "&&" || b.Operator == "and") == and {
			flatten(b.Left, connective)
			flatten(b.Right, b.Operator)
			return
		}
		operands = append(operands, operand{node, connective})
	}
	flatten(n, "")

	decided := ""
	for _, op := range operands {
		var c *Subexpr
		if decided != "" {
			c = x.skip(s, op.node, op.connective, decided)
		} else {
			c = x.child(s, op.node, op.connective)
		}
		if c != nil && wrap(op.node, n.Operator) {
			c.Expr = "(" + c.Expr + ")"
		}
		if decided != "" {
			continue
		}
		v, ok := valueOf(op.node, c)
		switch {
		case c != nil && c.Outcome == NotEvaluated:
			// The operand could not be evaluated on its own, so whether the
			// rest ran is unknown.
			decided = reasonUnknown
		case !ok:
			// The operand failed, which stops everything after it.
		case v == !and:
			decided = ReasonShortCircuit
		case v != and:
			// Not a bool: expr fails when it tests the operand.
			decided = ReasonEarlierFailure
		}
	}
}

// valueOf returns the value of n, explained as s: s's value if it was
// evaluated, or the value of a literal, which has no Subexpr.
func valueOf(n ast.Node, s *Subexpr) (any, bool) {
	if s != nil {
		return s.Value, s.Outcome == Evaluated
	}
	switch n := n.(type) {
	case *ast.NilNode:
		return nil, true
	case *ast.BoolNode:
		return n.Value, true
	case *ast.StringNode:
		return n.Value, true
	case *ast.IntegerNode:
		return n.Value, true
	case *ast.FloatNode:
		return n.Value, true
	}
	return nil, false
}

// wrap reports whether operand needs parentheses to read as one operand of a
// chain of op.
func wrap(operand ast.Node, op string) bool {
	switch n := operand.(type) {
	case *ast.BinaryNode:
		return operator.Binary[n.Operator].Precedence < operator.Binary[op].Precedence
	case *ast.ConditionalNode, *ast.VariableDeclaratorNode, *ast.SequenceNode:
		return true
	}
	return false
}

// child explains n as the next child of s and returns it, or returns nil
// when n is not worth a line of its own.
func (x *explainer) child(s *Subexpr, n ast.Node, connective string) *Subexpr {
	if n == nil || constant(n) {
		return nil
	}
	c := x.explain(n, connective)
	s.Children = append(s.Children, c)
	return c
}

// skip records n as a child of s that did not run and returns it, or returns
// nil when n is not worth a line of its own.
func (x *explainer) skip(s *Subexpr, n ast.Node, connective, reason string) *Subexpr {
	if n == nil || constant(n) {
		return nil
	}
	c := (&Subexpr{Expr: unchain(n).String(), Connective: connective}).notEvaluated(reason)
	s.Children = append(s.Children, c)
	return c
}

func (s *Subexpr) notEvaluated(reason string) *Subexpr {
	s.Outcome, s.Reason = NotEvaluated, reason
	return s
}

// evaluate compiles n on its own, inside the variables declared around it,
// and runs it.
func (x *explainer) evaluate(s *Subexpr, n ast.Node) {
	var src strings.Builder
	for _, b := range x.lets {
		fmt.Fprintf(&src, "let %s = %s; ", b.name, b.value)
	}
	src.WriteString(n.String())
	program, err := compile(src.String(), resultAny)
	if err != nil {
		// Every sub-expression of an expression that compiled should
		// compile; if one does not, say so rather than guess.
		s.notEvaluated("cannot be evaluated on its own: " + message(err))
		return
	}
	out, err := evaluate(&x.m, program, x.env)
	if err != nil {
		s.Outcome, s.Error = Failed, message(err)
		x.stopped = true
		return
	}
	s.Outcome, s.Value = Evaluated, out
	s.Text, s.Type = display(out), typeName(out)
}

// message returns an expr error's message without expr's source snippet and
// without a position, which would point into the sub-expression's own text.
func message(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		return fe.Message
	}
	return err.Error()
}

// unchain returns the node inside an optional chain (a?.b): the chain prints
// and evaluates the same.
func unchain(n ast.Node) ast.Node {
	if c, ok := n.(*ast.ChainNode); ok {
		return c.Node
	}
	return n
}

// isPath reports whether n is a name or a member access with constant
// properties, such as alert.k8s.pod or alert.fields["fd.rport"]: such a node
// is shown whole, not part by part.
func isPath(n ast.Node) bool {
	switch n := unchain(n).(type) {
	case *ast.IdentifierNode:
		return true
	case *ast.MemberNode:
		return !n.Method && constant(n.Property) && isPath(n.Node)
	}
	return false
}

// constant reports whether n's value is evident from its text: a literal, a
// list or map of literals, or a severity name.
func constant(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.NilNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode,
		*ast.StringNode, *ast.BytesNode, *ast.ConstantNode:
		return true
	case *ast.UnaryNode:
		return (n.Operator == "-" || n.Operator == "+") && constant(n.Node)
	case *ast.ArrayNode:
		return !slices.ContainsFunc(n.Nodes, func(n ast.Node) bool { return !constant(n) })
	case *ast.MapNode:
		return !slices.ContainsFunc(n.Pairs, func(n ast.Node) bool { return !constant(n) })
	case *ast.PairNode:
		return constant(n.Key) && constant(n.Value)
	case *ast.BinaryNode:
		// A range of literals, as in alert.fields["fd.rport"] in 3000..4000.
		return n.Operator == ".." && constant(n.Left) && constant(n.Right)
	case *ast.IdentifierNode:
		return isSeverityName(n.Value)
	}
	return false
}

// isSeverityName reports whether name is one of the capitalised severity
// names of Env, such as Warning.
func isSeverityName(name string) bool {
	if name == "" || !unicode.IsUpper(rune(name[0])) {
		return false
	}
	s, err := alert.ParseSeverity(name)
	return err == nil && s.String() == strings.ToLower(name)
}

// maxElements is how many elements of a list or map display prints; a range
// such as 1..100000 would otherwise print a page of numbers.
const maxElements = 50

// display prints an expression's value for people: strings Go-quoted,
// severities by name, times in RFC 3339, lists and maps in expr's literal
// syntax with map keys sorted, structs by their expression field names.
func display(v any) string {
	var b strings.Builder
	formatValue(&b, reflect.ValueOf(v))
	return b.String()
}

func formatValue(b *strings.Builder, v reflect.Value) {
	if !v.IsValid() {
		b.WriteString("nil")
		return
	}
	if v.CanInterface() {
		switch x := v.Interface().(type) {
		case alert.Severity:
			b.WriteString(x.String())
			return
		case time.Time:
			b.WriteString(x.Format(time.RFC3339Nano))
			return
		case time.Duration:
			b.WriteString(x.String())
			return
		case json.Number:
			b.WriteString(x.String())
			return
		}
	}
	switch v.Kind() {
	case reflect.String:
		b.WriteString(strconv.Quote(v.String()))
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			b.WriteString("nil")
			return
		}
		formatValue(b, v.Elem())
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			b.WriteString("[]")
			return
		}
		b.WriteByte('[')
		for i := range min(v.Len(), maxElements) {
			if i > 0 {
				b.WriteString(", ")
			}
			formatValue(b, v.Index(i))
		}
		writeMore(b, v.Len())
		b.WriteByte(']')
	case reflect.Map:
		type entry struct{ key, value string }
		entries := make([]entry, 0, v.Len())
		for it := v.MapRange(); it.Next(); {
			entries = append(entries, entry{display(it.Key().Interface()), display(it.Value().Interface())})
		}
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
		b.WriteByte('{')
		for i, e := range entries[:min(len(entries), maxElements)] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(e.key + ": " + e.value)
		}
		writeMore(b, len(entries))
		b.WriteByte('}')
	case reflect.Struct:
		t := v.Type()
		b.WriteByte('{')
		first := true
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if !first {
				b.WriteString(", ")
			}
			first = false
			name := f.Tag.Get("expr")
			if name == "" {
				name = f.Name
			}
			b.WriteString(name + ": ")
			formatValue(b, v.Field(i))
		}
		b.WriteByte('}')
	default:
		if v.CanInterface() {
			fmt.Fprint(b, v.Interface())
		} else {
			b.WriteString(v.String())
		}
	}
}

// writeMore says how many of n elements display left out.
func writeMore(b *strings.Builder, n int) {
	if n > maxElements {
		fmt.Fprintf(b, ", … %d more", n-maxElements)
	}
}

func typeName(v any) string {
	if v == nil {
		return "nil"
	}
	return reflect.TypeOf(v).String()
}

// WriteText prints e for people: the playbook, the alert, then each
// expression's result followed by its sub-expressions, indented by depth,
// each with its value. A chain of && or || at the top of an expression is
// shown as its operands, prefixed by the operator that joins them.
func (e *Explanation) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "playbook %s (%s)\n", e.Playbook, e.File)
	// Both come from the alert, so they are quoted: a hostile alert must not
	// write control characters to a terminal.
	fmt.Fprintf(tw, "alert %q (rule %q)\n", e.AlertID, e.Rule)
	writeExpr(tw, "match", &e.Match)
	if e.IncidentKey != nil {
		writeExpr(tw, "incidentKey", e.IncidentKey)
	} else if e.Match.Error == "" {
		fmt.Fprintln(tw, "incidentKey: not evaluated (match is false)")
	}
	switch {
	case e.Matched:
		fmt.Fprintf(tw, "result: matched, incident %s\n", e.IncidentID)
	case e.Err != nil:
		fmt.Fprintf(tw, "result: error, the dispatcher skips this playbook for this alert: %s\n", e.Error)
	default:
		fmt.Fprintln(tw, "result: not matched")
	}
	return tw.Flush()
}

func writeExpr(w io.Writer, name string, x *ExprExplanation) {
	if x.Error != "" {
		fmt.Fprintf(w, "%s: error: %s\n", name, x.Error)
	} else {
		fmt.Fprintf(w, "%s: %s\n", name, x.Result)
	}
	if x.Tree == nil {
		return
	}
	// The header already gives the result of a top-level chain, and its
	// operands read better than its whole text again.
	if isChain(x.Tree) {
		for _, c := range x.Tree.Children {
			writeSubexpr(w, c, 1)
		}
		return
	}
	writeSubexpr(w, x.Tree, 1)
}

// isChain reports whether s is a chain of && or ||: only a chain's operands
// carry those connectives.
func isChain(s *Subexpr) bool {
	for _, c := range s.Children {
		if c.Connective == "&&" || c.Connective == "||" || c.Connective == "and" || c.Connective == "or" {
			return true
		}
	}
	return false
}

func writeSubexpr(w io.Writer, s *Subexpr, depth int) {
	text := s.Expr
	if s.Connective != "" {
		text = s.Connective + " " + text
	}
	fmt.Fprintf(w, "%s%s\t%s\n", strings.Repeat("  ", depth), text, describe(s))
	for _, c := range s.Children {
		writeSubexpr(w, c, depth+1)
	}
}

// describe prints a sub-expression's outcome.
func describe(s *Subexpr) string {
	switch s.Outcome {
	case Evaluated:
		return s.Text
	case Failed:
		if slices.ContainsFunc(s.Children, func(c *Subexpr) bool { return c.Outcome == Failed }) {
			return "error (in a sub-expression)"
		}
		return "error: " + s.Error
	}
	return "not evaluated (" + s.Reason + ")"
}
