package playbooks

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/soar-dev/soar/alert"
)

// Limits on expressions. Playbooks are reviewed code, but a limit turns a
// mistake (or a hostile pull request) into a load error instead of a slow
// dispatcher or a stuck workflow.
const (
	// maxNodes bounds the size of one expression's syntax tree. Real
	// conditions have a few dozen nodes.
	maxNodes = 2000
	// memoryBudget bounds what one evaluation may allocate, in the units
	// expr's VM counts: elements of the ranges, arrays and maps it builds.
	// expr's default is ten times larger; alerts have tens of fields, not
	// tens of thousands.
	memoryBudget = 100_000
)

// resultKind is what an expression must produce.
type resultKind int

const (
	resultAny resultKind = iota
	resultBool
	resultString
	resultSeverity
)

// disabledBuiltins returns the expr builtins that playbooks may not call.
// Expressions run in the dispatcher and, through EvalParams, in Temporal
// workflow code, where the same input must always give the same result, and
// alert redeliveries must match the same way on every replica.
func disabledBuiltins() []string {
	return []string{"now", "date", "timezone", "keys", "values", "toPairs", "repeat"}
}

// disabledReason says why a builtin is disabled, for the load error.
func disabledReason(name string) (string, bool) {
	switch name {
	case "now":
		return "it reads the clock", true
	case "date":
		// expr can only disable date() as a whole, and every form of it
		// depends on the machine: time.Parse gives a parsed zone
		// abbreviation or offset the machine's local location when they
		// coincide, and date(s, layout, tz) loads the machine's time zone
		// database, which differs between hosts and releases.
		return "its result depends on the time zone settings of the machine", true
	case "timezone":
		return "it reads the machine's time zone database", true
	case "keys", "values", "toPairs":
		return "its result follows Go's random map iteration order", true
	case "repeat":
		// Found by the security review: repeat(repeat("x", 99999), 1e6)
		// asks for 100 GB and ends the process.
		return "it allocates its whole result before the memory budget sees it, so one call can exhaust the process's memory", true
	}
	return "", false
}

// compile compiles one playbook expression with every safety option. It is
// deterministic: the same source always gives an equivalent program.
func compile(src string, kind resultKind) (*vm.Program, error) {
	opts := []expr.Option{
		expr.Env(Env{}),
		expr.MaxNodes(maxNodes),
	}
	for _, name := range disabledBuiltins() {
		opts = append(opts, expr.DisableBuiltin(name))
	}
	opts = append(opts, severityOperators()...)
	switch kind {
	case resultBool:
		opts = append(opts, expr.AsBool())
	case resultString:
		opts = append(opts, expr.AsKind(reflect.String))
	}
	program, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, explainDisabled(err)
	}
	if err := refuseLocalTime(program.Node(), src); err != nil {
		return nil, err
	}
	if err := refuseNestedPredicates(program.Node(), src); err != nil {
		return nil, err
	}
	// expr.AsKind would refuse a named int type, so a severity is checked
	// here: a Severity, or a value whose type is only known at run time
	// (Match checks those).
	if kind == resultSeverity {
		if t := program.Node().Type(); t != nil && t.Kind() != reflect.Interface && t != reflect.TypeFor[alert.Severity]() {
			return nil, fmt.Errorf("expected a severity such as Warning or Critical, but got %s", t)
		}
	}
	return program, nil
}

// localTimeVisitor finds the first call of a time's Local method.
type localTimeVisitor struct{ found ast.Node }

func (v *localTimeVisitor) Visit(n *ast.Node) {
	m, ok := (*n).(*ast.MemberNode)
	if !ok || v.found != nil {
		return
	}
	if p, ok := m.Property.(*ast.StringNode); ok && p.Value == "Local" && m.Node.Type() == reflect.TypeFor[time.Time]() {
		v.found = m
	}
}

// refuseLocalTime refuses t.Local() on any time (now, alert.time): it
// converts to the time zone of the machine running the expression, so the
// same incident would decide differently on two workers, and a workflow
// replayed elsewhere would take another path. Times in playbooks are UTC.
func refuseLocalTime(n ast.Node, src string) error {
	v := &localTimeVisitor{}
	ast.Walk(&n, v)
	return refuseAt(v.found, src, "Local() is not available in playbooks: it depends on the time zone of the machine that runs the expression; times in playbooks are UTC")
}

// refuseAt is a load error with message msg at node found of the
// expression src, or nil when found is nil.
func refuseAt(found ast.Node, src, msg string) error {
	if found == nil {
		return nil
	}
	e := &file.Error{Location: found.Location(), Message: msg}
	return e.Bind(file.NewSource(src))
}

// predicateVisitor finds the first predicate (the body of any, all, filter,
// map, count, sortBy, reduce…) that holds another one.
type predicateVisitor struct{ found ast.Node }

func (v *predicateVisitor) Visit(n *ast.Node) {
	p, ok := (*n).(*ast.PredicateNode)
	if !ok || v.found != nil {
		return
	}
	inner := &predicateVisitor{}
	body := p.Node
	ast.Walk(&body, innerPredicate{inner})
	if inner.found != nil {
		v.found = inner.found
	}
}

// innerPredicate records the first predicate it visits.
type innerPredicate struct{ v *predicateVisitor }

func (i innerPredicate) Visit(n *ast.Node) {
	if _, ok := (*n).(*ast.PredicateNode); ok && i.v.found == nil {
		i.v.found = *n
	}
}

// refuseNestedPredicates bounds an expression's running time: the memory
// budget bounds every list an expression builds, and a predicate runs once
// per element, so a predicate inside another one multiplies (the security
// review's any(a, {any(a, {any(a, …)})}) over 1..300 runs for hours). Without
// nesting, an expression's work is at most its node count times the longest
// list.
func refuseNestedPredicates(n ast.Node, src string) error {
	v := &predicateVisitor{}
	ast.Walk(&n, v)
	return refuseAt(v.found, src, "a predicate (the {…} of any, all, filter, map, count, sortBy, reduce…) may not hold another one: each would run once for every element of the outer list, which can take hours")
}

// explainDisabled replaces expr's "unknown name now" with the reason the
// builtin is unavailable, because authors who know expr would otherwise
// think they made a typo.
func explainDisabled(err error) error {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return err
	}
	name, ok := strings.CutPrefix(fe.Message, "unknown name ")
	if !ok {
		// now is a value in the environment (the incident's time), so now()
		// fails as a call of a time rather than as an unknown name.
		if fe.Message != "time.Time is not callable" {
			return err
		}
		name = "now"
	}
	reason, ok := disabledReason(name)
	if !ok {
		return err
	}
	explained := *fe
	explained.Message = fmt.Sprintf("%s() is not available in playbooks: %s", name, reason)
	return &explained
}

// severityOperators lets expressions order severities. expr v1.17 compares
// only its own number types with <, <=, > and >=, so alert.Severity (a named
// int) needs overloads; == and != already work. The functions' names start
// with '$' so that they cannot collide with names authors choose.
func severityOperators() []expr.Option {
	ops := []struct {
		operator, name string
		compare        func(a, b alert.Severity) bool
	}{
		{"<", "$severityLess", func(a, b alert.Severity) bool { return a < b }},
		{"<=", "$severityLessOrEqual", func(a, b alert.Severity) bool { return a <= b }},
		{">", "$severityGreater", func(a, b alert.Severity) bool { return a > b }},
		{">=", "$severityGreaterOrEqual", func(a, b alert.Severity) bool { return a >= b }},
	}
	opts := make([]expr.Option, 0, 2*len(ops))
	for _, op := range ops {
		compare := op.compare
		fn := func(params ...any) (any, error) {
			return compare(params[0].(alert.Severity), params[1].(alert.Severity)), nil
		}
		opts = append(opts,
			expr.Function(op.name, fn, new(func(alert.Severity, alert.Severity) bool)),
			expr.Operator(op.operator, op.name),
		)
	}
	return opts
}

// evaluate runs program against env on machine m within the memory budget.
// A VM holds state between instructions, so each goroutine needs its own;
// reusing one for several programs in a row saves allocations.
func evaluate(m *vm.VM, program *vm.Program, env *Env) (any, error) {
	m.MemoryBudget = memoryBudget
	out, err := m.Run(program, env)
	if err != nil {
		return nil, newExprError(err, true)
	}
	return out, nil
}

// exprError carries an error from expr on one line. expr's own Error method
// appends a multi-line snippet of the source, which breaks log lines and
// lists of load errors.
type exprError struct {
	err *file.Error
	// position adds the expression-relative line:column; load errors leave
	// it out because they already point into the YAML file.
	position bool
}

// newExprError wraps err if it is expr's *file.Error and returns it
// unchanged otherwise.
func newExprError(err error, position bool) error {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return err
	}
	return &exprError{err: fe, position: position}
}

func (e *exprError) Error() string {
	if !e.position || e.err.Line == 0 {
		return e.err.Message
	}
	return fmt.Sprintf("%s (%d:%d)", e.err.Message, e.err.Line, e.err.Column+1)
}

func (e *exprError) Unwrap() error { return e.err }
