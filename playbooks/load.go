package playbooks

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadOptions configures Load.
type LoadOptions struct {
	// Actions are the actions the workers run, so that a typo in an action
	// or a parameter fails the load instead of the incident, and so that
	// what a workflow must know of each action is pinned into the steps
	// that run it. When nil, any non-empty action name and any parameter
	// is accepted and nothing is pinned, which suits tools that have no
	// registry of actions.
	Actions []ActionInfo
	// Workflows lists the workflow names a playbook may select, the ones the
	// workers register. When nil, any valid name is accepted.
	Workflows []string
}

// ActionInfo is what loading needs to know of one action.
type ActionInfo struct {
	Name string
	// Params are the parameter names its steps may set in "with"; nil
	// accepts any.
	Params []string
	// Required are the parameters its steps must set.
	Required []string
	// Facts are pinned into every step that runs the action.
	Facts ActionFacts
}

// action returns the action named name, and whether the options know it.
func (o LoadOptions) action(name string) (ActionInfo, bool) {
	for _, a := range o.Actions {
		if a.Name == name {
			return a, true
		}
	}
	return ActionInfo{}, false
}

// destructive reports whether the action named name cannot be undone.
func (o LoadOptions) destructive(name string) bool {
	a, ok := o.action(name)
	return ok && a.Facts.Destructive
}

// Load reads every playbook at the root of fsys: the files ending in .yaml
// or .yml directly in it, except author tests (_test.yaml, _test.yml) and
// hidden files such as editor backups. It decodes them strictly, validates
// them and compiles every expression. Files are named by their path in fsys,
// in errors and in Playbook.File; LoadDir names them as the directory's
// files.
//
// Load returns an error wrapping fsys's error if its root cannot be read
// (fs.ErrNotExist when it is missing), one wrapping ErrNoPlaybooks if it
// holds no playbook files, and a *LoadErrors listing every problem in every
// file otherwise. It returns no Set when any file has a problem, because a
// dispatcher running some of its playbooks would silently miss incidents.
// Load only reads; calling it again gives an equivalent Set.
func Load(fsys fs.FS, opts LoadOptions) (*Set, error) {
	return load(fsys, "", opts)
}

// LoadDir is Load on the directory dir. Files are named dir/file, as the
// user named the directory, and when dir is in a git checkout every
// playbook records its commit (Playbook.GitCommit and GitModified).
func LoadDir(dir string, opts LoadOptions) (*Set, error) {
	set, err := load(os.DirFS(dir), dir, opts)
	if err != nil {
		return nil, err
	}
	if g := readGitState(dir); g != nil {
		for _, pb := range set.playbooks {
			pb.GitCommit, pb.GitModified = g.commit, g.modified(pb.File)
		}
	}
	return set, nil
}

// LoadFile loads the playbook in the one file at path, whatever the file is
// named (x_test.yaml and .x.yaml included), so that a tool can look at one
// playbook while others beside it have problems. It records the git commit
// as LoadDir does.
//
// LoadFile returns an error wrapping the file system's error if path cannot
// be read, and a *LoadErrors listing every problem in the file otherwise.
func LoadFile(path string, opts LoadOptions) (*Playbook, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read playbook: %w", err)
	}
	pb, _, errs := parseFile(path, src, opts)
	if len(errs) > 0 {
		sortLoadErrors(errs)
		return nil, &LoadErrors{Errs: errs}
	}
	if g := readGitState(filepath.Dir(path)); g != nil {
		pb.GitCommit, pb.GitModified = g.commit, g.modified(path)
	}
	return pb, nil
}

// load is Load with the files named as dir/file when dir is not empty.
func load(fsys fs.FS, dir string, opts LoadOptions) (*Set, error) {
	// name is what users call a file of fsys, and the path in its errors.
	name := func(file string) string {
		switch {
		case dir == "":
			return file
		case file == ".":
			return dir
		}
		return filepath.Join(dir, filepath.FromSlash(file))
	}
	renamed := func(err error) error {
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			pe.Path = name(pe.Path)
		}
		return err
	}

	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("load playbooks: %w", renamed(err))
	}
	var files []string // fs.ReadDir sorts by name, so errors come out in order
	for _, e := range entries {
		if !e.IsDir() && isPlaybookFile(e.Name()) {
			files = append(files, e.Name())
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("load playbooks from %s: %w", name("."), ErrNoPlaybooks)
	}

	var (
		errs      []*LoadError
		playbooks []*Playbook
		names     = make(map[string]*LoadError, len(files)) // where each name was first seen
	)
	for _, file := range files {
		path := name(file)
		src, err := fs.ReadFile(fsys, file)
		if err != nil {
			errs = append(errs, &LoadError{File: path, Err: renamed(err)})
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
