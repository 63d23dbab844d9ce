package playbooks

import (
	"errors"
	"fmt"
	"sync"

	"github.com/expr-lang/expr/vm"

	"github.com/soar-dev/soar/alert"
)

// Match is one playbook that an alert matched, with the alert's incident key.
type Match struct {
	Playbook    *Playbook
	IncidentKey string
	// Cluster is the alert's cluster (alert.Alert.Cluster): the incident
	// is within it.
	Cluster string
	// Severity is the incident's severity: the playbook's severity
	// expression when it has one, else the alert's.
	Severity alert.Severity
}

// IncidentID returns the workflow ID of the incident the alert belongs to.
func (m Match) IncidentID() string {
	return ClusterIncidentID(m.Cluster, m.Playbook.Name, m.IncidentKey)
}

// MatchError reports that a playbook's match or incidentKey expression
// failed on an alert, for example because a field had an unexpected type.
// It carries the playbook and alert apart so that callers can log them as
// fields.
type MatchError struct {
	Playbook string
	AlertID  string
	// Field is "match" or "incidentKey".
	Field string
	Err   error
}

func (e *MatchError) Error() string {
	return fmt.Sprintf("playbook %q: alert %q: %s: %v", e.Playbook, e.AlertID, e.Field, e.Err)
}

func (e *MatchError) Unwrap() error { return e.Err }

// ErrEmptyIncidentKey is the MatchError.Err of an incident key that
// evaluated to the empty string. Match refuses it because every such alert
// would otherwise share one incident by accident.
var ErrEmptyIncidentKey = errors.New("playbooks: incident key is empty")

// Match runs the playbooks' match expressions against a, and the incident
// key expression of each playbook that matches. It returns the matches in
// playbook name order, and one *MatchError for each playbook whose
// expressions failed on this alert; a failing playbook never stops the
// others. Match has no side effects and is safe for concurrent use.
//
// Match skips the playbooks whose match expressions are pinned to other
// rules than a's (see pinnedRules), and those whose leading facts are false
// for a (see leadingFacts): they are false for a without an error, so the
// result is the same as if they ran. It computes incident keys that only
// join string fields and constants in Go (see newNativeKey), with the same
// result as expr.
func (s *Set) Match(a alert.Alert) ([]Match, []error) {
	return s.match(a, s.index.byRule[a.Rule], s.index.unpinned, s.natives)
}

// match is Match over the playbooks at the positions in pinned and
// unpinned, two ascending lists that it merges to run the playbooks in name
// order. It evaluates in Go what natives[i] holds for the playbook at
// position i: it skips the playbook when the leading facts are false for a,
// and computes the incident key without expr. natives may be nil, to run
// every expression on expr's VM. The tests check that Match gives what
// match over every position without natives gives.
func (s *Set) match(a alert.Alert, pinned, unpinned []int, natives []native) ([]Match, []error) {
	// The environment and the VM belong to this call until it returns them
	// to the pool: compiled programs are shared between goroutines, their
	// inputs and machines are not.
	w := matchers.Get().(*matcher)
	defer w.release()
	w.env = NewEnv(a, Incident{})
	m, env := &w.m, &w.env
	var (
		matches []Match
		errs    []error
	)
	for len(pinned) > 0 || len(unpinned) > 0 {
		var i int
		if len(unpinned) == 0 || len(pinned) > 0 && pinned[0] < unpinned[0] {
			i, pinned = pinned[0], pinned[1:]
		} else {
			i, unpinned = unpinned[0], unpinned[1:]
		}
		var nat native
		if natives != nil {
			nat = natives[i]
		}
		if nat.facts != nil && !nat.facts(&env.Alert) {
			continue
		}
		p := s.playbooks[i]
		key, ok, err := p.evaluate(m, env, nat)
		switch {
		case err != nil:
			errs = append(errs, err)
		case ok:
			sev, err := p.severity(m, env)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			matches = append(matches, Match{Playbook: p, IncidentKey: key, Cluster: env.Alert.Cluster, Severity: sev})
		}
	}
	return matches, errs
}

// matcher is what one Set.Match call works with: a VM, which allocates its
// stack and buffers on first use, and the environment, which escapes to the
// heap because the VM takes it as an any. Set.Match takes one from matchers
// and puts it back when done, so that a busy dispatcher allocates neither
// for every alert.
//
// Reusing a VM is what match already does for the programs of one alert:
// vm.VM.Run resets the stack, scopes, memory count and instruction pointer
// before it runs a program. The variables of let are not reset, but a
// program always stores one before loading it.
type matcher struct {
	m   vm.VM
	env Env
}

// matchers holds the matchers of finished Set.Match calls.
var matchers = sync.Pool{New: func() any { return new(matcher) }}

// release puts w back into matchers. It clears the environment first so
// that a pooled matcher does not keep the alert's strings and maps alive;
// the VM's stack may still refer to the last values it held until its next
// run, or until the pool drops it at a garbage collection.
func (w *matcher) release() {
	w.env = Env{}
	matchers.Put(w)
}

// evaluate runs p's match expression and, if it matched, its incident key,
// on m except for what nat computes in Go. When nat.decided, the caller has
// found nat.facts true, which is then the match expression's value, so it
// does not run again; the key comes from nat.key when it is not nil (see
// newNativeKey).
func (p *Playbook) evaluate(m *vm.VM, env *Env, nat native) (key string, matched bool, err error) {
	fail := func(field string, err error) (string, bool, error) {
		return "", false, &MatchError{Playbook: p.Name, AlertID: env.Alert.ID, Field: field, Err: err}
	}
	if !nat.decided {
		out, err := evaluate(m, p.matchProgram, env)
		if err != nil {
			return fail("match", err)
		}
		// expr.AsBool converts the result at run time, so out is a bool
		// unless expr changes; the check keeps a change from becoming a
		// panic.
		matched, ok := out.(bool)
		if !ok {
			return fail("match", fmt.Errorf("result is %T, not bool", out))
		}
		if !matched {
			return "", false, nil
		}
	}
	if nat.key != nil {
		key = nat.key(&env.Alert)
	} else {
		out, err := evaluate(m, p.incidentKeyProgram, env)
		if err != nil {
			return fail("incidentKey", err)
		}
		// expr.AsKind checks the type only when it is known at compile
		// time, so an expression of type any (alert.fields["x"]) must be
		// checked here.
		var ok bool
		key, ok = out.(string)
		if !ok {
			return fail("incidentKey", fmt.Errorf("result is %T, not string", out))
		}
	}
	if key == "" {
		return fail("incidentKey", ErrEmptyIncidentKey)
	}
	return key, true, nil
}

// severity evaluates p's severity override, or returns the alert's.
func (p *Playbook) severity(m *vm.VM, env *Env) (alert.Severity, error) {
	if p.severityProgram == nil {
		return env.Alert.Severity, nil
	}
	out, err := evaluate(m, p.severityProgram, env)
	if err == nil {
		s, ok := out.(alert.Severity)
		if ok && s >= alert.SeverityDebug && s <= alert.SeverityEmergency {
			return s, nil
		}
		err = fmt.Errorf("result %v is not a severity such as Warning or Critical", out)
	}
	return 0, &MatchError{Playbook: p.Name, AlertID: env.Alert.ID, Field: "severity", Err: err}
}
