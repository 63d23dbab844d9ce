package playbooks

import (
	"errors"
	"strings"

	"github.com/soar-dev/soar/internal/yamlfile"
)

// ErrNoPlaybooks is returned (wrapped) by Load when a directory holds no
// playbook files. A dispatcher without playbooks would ack and drop every
// alert, so this is an error rather than an empty Set.
var ErrNoPlaybooks = errors.New("playbooks: no playbook files")

// LoadError is one problem in one playbook file. It prints as
// "file:line:col: field: message", the form editors and CI annotations
// understand; Line and Column are 1-based and 0 when unknown, and Field is
// the path of the offending key, such as "steps[1].with.pod", or empty.
type LoadError = yamlfile.Error

// LoadErrors is every problem Load found, sorted by file, line and column,
// so that an author fixes them all in one round.
type LoadErrors struct {
	Errs []*LoadError
}

// Error lists the problems one per line.
func (e *LoadErrors) Error() string {
	lines := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As look at each problem.
func (e *LoadErrors) Unwrap() []error {
	errs := make([]error, len(e.Errs))
	for i, err := range e.Errs {
		errs[i] = err
	}
	return errs
}

// sortLoadErrors orders errors by position, stably.
func sortLoadErrors(errs []*LoadError) { yamlfile.Sort(errs) }
