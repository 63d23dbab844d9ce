package playbooks

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadOptions configures Load.
type LoadOptions struct {
	// Actions lists the action names steps may use, so that a typo fails the
	// load instead of the incident. When nil, any non-empty action name is
	// accepted, which suits tools that have no registry of actions.
	Actions []string
	// Params lists, per action, the parameter names its steps may set in
	// "with", so that a misspelt parameter fails the load instead of being
	// ignored. Actions missing from the map accept any parameter.
	Params map[string][]string
	// Required lists, per action, the parameters its steps must set.
	Required map[string][]string
	// Workflows lists the workflow names a playbook may select, the ones the
	// workers register. When nil, any valid name is accepted.
	Workflows []string
	// Destructive lists the actions that cannot be undone: a step running
	// one needs an approval step before it, or withoutApproval: true.
	Destructive []string
}

// Load reads every playbook in dir: the files ending in .yaml or .yml
// directly in it, except author tests (_test.yaml, _test.yml) and hidden
// files such as editor backups. It decodes them strictly, validates them and
// compiles every expression.
//
// Load returns an error wrapping the file system's error if dir cannot be
// read (fs.ErrNotExist when it is missing), one wrapping ErrNoPlaybooks if
// it holds no playbook files, and a *LoadErrors listing every problem in
// every file otherwise. It returns no Set when any file has a problem,
// because a dispatcher running some of its playbooks would silently miss
// incidents. Load only reads; calling it again gives an equivalent Set.
func Load(dir string, opts LoadOptions) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load playbooks: %w", err)
	}
	var files []string // os.ReadDir sorts by name, so errors come out in order
	for _, e := range entries {
		if !e.IsDir() && isPlaybookFile(e.Name()) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("load playbooks from %s: %w", dir, ErrNoPlaybooks)
	}

	var (
		errs      []*LoadError
		playbooks []*Playbook
		names     = make(map[string]*LoadError, len(files)) // where each name was first seen
	)
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &LoadError{File: path, Err: err})
			continue
		}
		pb, nameNode, fileErrs := parseFile(path, src, opts)
		errs = append(errs, fileErrs...)
		if nameNode != nil {
			if err := duplicateName(names, path, pb.Name, nameNode); err != nil {
				errs = append(errs, err)
			}
		}
		playbooks = append(playbooks, pb)
	}
	if len(errs) > 0 {
		sortLoadErrors(errs)
		return nil, &LoadErrors{Errs: errs}
	}
	if g := readGitState(dir); g != nil {
		for _, pb := range playbooks {
			pb.GitCommit, pb.GitModified = g.commit, g.modified(pb.File)
		}
	}
	return newSet(playbooks), nil
}

// duplicateName records where name was seen and returns an error if another
// file already uses it: names are part of incident IDs, so two playbooks
// with one name would share incidents.
func duplicateName(names map[string]*LoadError, path, name string, n *yaml.Node) *LoadError {
	here := &LoadError{File: path, Line: n.Line, Column: n.Column, Field: "name"}
	first, dup := names[name]
	if !dup {
		names[name] = here
		return nil
	}
	here.Err = fmt.Errorf("duplicate playbook name %q (also in %s:%d)", name, first.File, first.Line)
	return here
}

// isPlaybookFile reports whether a file name is a playbook's.
func isPlaybookFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	ext := filepath.Ext(name)
	if ext != ".yaml" && ext != ".yml" {
		return false
	}
	return !strings.HasSuffix(strings.TrimSuffix(name, ext), "_test")
}
