package playbooks

import (
	"cmp"
	"slices"

	"github.com/soar-dev/soar/alert"
)

// Set is a loaded collection of playbooks with unique names. It is
// immutable and safe for concurrent use; to change playbooks, Load a new Set
// and swap it in.
type Set struct {
	playbooks []*Playbook // sorted by name
	byName    map[string]*Playbook
	// index says which playbooks an alert's rule lets match (see
	// pinnedRules).
	index ruleIndex
	// natives holds, by position in playbooks, what Set.Match evaluates
	// in Go for each playbook.
	natives []native
}

func newSet(playbooks []*Playbook) *Set {
	sorted := slices.Clone(playbooks)
	slices.SortFunc(sorted, func(a, b *Playbook) int { return cmp.Compare(a.Name, b.Name) })
	byName := make(map[string]*Playbook, len(sorted))
	for _, p := range sorted {
		byName[p.Name] = p
	}
	return &Set{playbooks: sorted, byName: byName, index: newRuleIndex(sorted), natives: newNatives(sorted)}
}

// native is what Set.Match evaluates in Go for one playbook, with the same
// result as expr.
type native struct {
	// facts are the leading facts of the match expression (see
	// leadingFacts), or nil.
	facts fact
	// decided says that the whole match expression is a fact, so that
	// facts is its value and it never runs on the VM: expr would give
	// the same bool, and a fact cannot fail.
	decided bool
	// key computes the incident key (see newNativeKey), or is nil.
	key func(*alert.Alert) string
}

// newNatives returns what Set.Match evaluates in Go for each playbook.
func newNatives(playbooks []*Playbook) []native {
	natives := make([]native, len(playbooks))
	for i, p := range playbooks {
		if p.matchProgram != nil {
			natives[i].facts, _ = leadingFacts(p.matchProgram.Node())
			_, natives[i].decided = newFact(p.matchProgram.Node())
		}
		if p.incidentKeyProgram != nil {
			natives[i].key, _ = newNativeKey(p.incidentKeyProgram.Node())
		}
	}
	return natives
}

// Playbooks returns the playbooks sorted by name. The slice is the caller's
// to keep; the playbooks are shared and must not be modified.
func (s *Set) Playbooks() []*Playbook {
	return slices.Clone(s.playbooks)
}

// Get returns the playbook with the given name, and whether there is one.
func (s *Set) Get(name string) (*Playbook, bool) {
	p, ok := s.byName[name]
	return p, ok
}
