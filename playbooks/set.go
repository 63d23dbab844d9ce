package playbooks

import (
	"cmp"
	"slices"
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
	// facts holds, by position in playbooks, the leading facts of each
	// match expression, or nil (see leadingFacts).
	facts []fact
}

func newSet(playbooks []*Playbook) *Set {
	sorted := slices.Clone(playbooks)
	slices.SortFunc(sorted, func(a, b *Playbook) int { return cmp.Compare(a.Name, b.Name) })
	byName := make(map[string]*Playbook, len(sorted))
	for _, p := range sorted {
		byName[p.Name] = p
	}
	return &Set{playbooks: sorted, byName: byName, index: newRuleIndex(sorted), facts: newFacts(sorted)}
}

// newFacts returns the leading facts of the playbooks' match expressions.
func newFacts(playbooks []*Playbook) []fact {
	facts := make([]fact, len(playbooks))
	for i, p := range playbooks {
		if p.matchProgram != nil {
			facts[i], _ = leadingFacts(p.matchProgram.Node())
		}
	}
	return facts
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
