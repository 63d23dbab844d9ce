package playbooks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// Default timing of Watch. A burst of changes, such as a git checkout of many
// files or a Kubernetes ConfigMap update, is read once ReloadDebounce has
// passed without a further change; a directory that never stops changing is
// still read every ReloadMaxDelay.
const (
	ReloadDebounce = 250 * time.Millisecond
	ReloadMaxDelay = 2 * time.Second
)

// Source is the playbook set in force for a directory, kept up to date while
// the directory changes. Readers always see a complete, valid set: Reload
// (and Watch, which calls it) loads a new set in full before it replaces the
// old one atomically, and keeps the old one when the new one has any
// problem. A Source is safe for concurrent use.
type Source struct {
	dir       string
	opts      LoadOptions
	state     atomic.Pointer[sourceState] // never nil after NewSource
	reloading sync.Mutex                  // one Reload at a time

	// debounce and maxDelay are Watch's timings; tests change them.
	debounce, maxDelay time.Duration
}

// sourceState is one immutable snapshot of a Source: the set in force and
// the outcome of the latest reload. It is swapped as a whole, so readers
// never see a set with another set's status.
type sourceState struct {
	set      *Set
	loadedAt time.Time // when set was loaded
	err      error     // why the latest reload failed; nil when it succeeded
	failedAt time.Time // when it failed
}

// NewSource loads every playbook in dir with LoadDir and returns a Source
// holding them, which Reload and Watch keep up to date with opts. It fails
// with LoadDir's error, listing every problem with its file, line and
// column, when any playbook is invalid.
func NewSource(dir string, opts LoadOptions) (*Source, error) {
	set, err := LoadDir(dir, opts)
	if err != nil {
		return nil, err
	}
	s := &Source{dir: dir, opts: opts, debounce: ReloadDebounce, maxDelay: ReloadMaxDelay}
	s.state.Store(&sourceState{set: set, loadedAt: time.Now()})
	return s, nil
}

// Dir is the directory the playbooks come from.
func (s *Source) Dir() string { return s.dir }

// Current returns the set in force. Callers that use several playbooks
// together should call it once and keep the set, which a reload does not
// change.
func (s *Source) Current() *Set {
	if st := s.state.Load(); st != nil {
		return st.set
	}
	return nil
}

// ReloadStatus describes the playbooks in force and the latest reload.
type ReloadStatus struct {
	// Playbooks is the number of playbooks in force, and LoadedAt when they
	// were loaded: at start or by the latest successful reload.
	Playbooks int
	LoadedAt  time.Time
	// Err is why the latest reload failed, nil when it succeeded or none has
	// run; FailedAt is when it failed. The set loaded at LoadedAt stays in
	// force meanwhile.
	Err      error
	FailedAt time.Time
}

// Problems lists why the latest reload failed, one problem per entry: for a
// *LoadErrors each problem as "file:line:col: field: message", otherwise the
// error's text. It returns nil when the latest reload did not fail.
func (st ReloadStatus) Problems() []string {
	if st.Err == nil {
		return nil
	}
	return problems(st.Err)
}

// problems lists the problems in a load error one per entry.
func problems(err error) []string {
	var le *LoadErrors
	if !errors.As(err, &le) {
		return []string{err.Error()}
	}
	out := make([]string, len(le.Errs))
	for i, e := range le.Errs {
		out[i] = e.Error()
	}
	return out
}

// Status returns the source's status. It is safe to call at any time.
func (s *Source) Status() ReloadStatus {
	st := s.state.Load()
	if st == nil {
		return ReloadStatus{}
	}
	return ReloadStatus{Playbooks: len(st.set.playbooks), LoadedAt: st.loadedAt, Err: st.err, FailedAt: st.failedAt}
}

// Reload reads the directory again with LoadDir and, when every playbook in
// it is valid, puts the new set in force atomically. Otherwise the set in
// force stays, the failure is remembered (see Status) and returned: a
// *LoadErrors listing every problem with its file, line and column, or an
// error wrapping ErrNoPlaybooks or the file system's error.
//
// Reload is safe to call concurrently and idempotent: reloading an unchanged
// directory puts an equivalent set in force and changes only
// Status().LoadedAt. It neither logs nor calls Watch's callback; Watch does
// both.
func (s *Source) Reload() error {
	_, err := s.reload()
	return err
}

// setChanges is what a successful reload changed.
type setChanges struct {
	added, changed []string // name@version
	removed        []string // names
	recovered      bool     // the reload before it had failed
}

func (c setChanges) empty() bool {
	return len(c.added) == 0 && len(c.changed) == 0 && len(c.removed) == 0
}

func (s *Source) reload() (setChanges, error) {
	s.reloading.Lock()
	defer s.reloading.Unlock()
	old := s.state.Load()
	set, err := LoadDir(s.dir, s.opts)
	now := time.Now()
	if err != nil {
		next := *old
		next.err, next.failedAt = err, now
		s.state.Store(&next)
		return setChanges{}, err
	}
	s.state.Store(&sourceState{set: set, loadedAt: now})
	c := diffSets(old.set, set)
	c.recovered = old.err != nil
	return c, nil
}

// diffSets compares two sets by name and version (the SHA-256 of the file).
func diffSets(old, cur *Set) setChanges {
	var c setChanges
	for _, pb := range cur.playbooks {
		prev, ok := old.Get(pb.Name)
		switch {
		case !ok:
			c.added = append(c.added, pb.Name+"@"+pb.Version)
		case prev.Version != pb.Version:
			c.changed = append(c.changed, pb.Name+"@"+pb.Version)
		}
	}
	for _, pb := range old.playbooks {
		if _, ok := cur.Get(pb.Name); !ok {
			c.removed = append(c.removed, pb.Name)
		}
	}
	return c
}

// Watcher is a running watch on a playbook directory; see Source.Watch.
type Watcher struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Stop ends the watch and waits for a reload in progress to finish. The
// watch then no longer handles SIGHUP: unless something else does, SIGHUP
// ends the process again. Stop is idempotent.
func (w *Watcher) Stop() {
	w.cancel()
	<-w.done
}

// Watch reloads the playbooks whenever their directory changes and whenever
// the process receives SIGHUP, until ctx ends or Stop is called. It returns
// once the directory is watched and SIGHUP is handled, or an error if the
// directory cannot be watched (for instance when the inotify limits
// fs.inotify.max_user_instances or max_user_watches are reached).
//
// Watch watches the directory, not the files, so that it sees an editor
// replacing a file by rename and a Kubernetes ConfigMap volume swapping its
// ..data symlink. It also watches the directory's parent, so that a
// directory that is removed and created again, or replaced by rename, is
// watched again. Changes are debounced (ReloadDebounce, ReloadMaxDelay);
// SIGHUP reloads at once and watches the directory afresh, which is the way
// to pick up a change inotify cannot see, such as one made by another host
// on a network file system.
//
// Each reload is logged to log ("playbooks reloaded" at info, "playbooks
// unchanged" at debug, "playbook reload failed; previous playbooks stay in
// force" at error with every problem), and then onReload, unless nil, is
// called with the status after it, from the watch's goroutine: a failed
// reload is one whose status has an Err.
func (s *Source) Watch(ctx context.Context, log zerolog.Logger, onReload func(ReloadStatus)) (*Watcher, error) {
	dir, err := filepath.Abs(s.dir)
	if err != nil {
		return nil, fmt.Errorf("watch playbooks in %s: %w", s.dir, err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch playbooks in %s: %w%s", s.dir, err, inotifyHint(err))
	}
	if err := fw.Add(dir); err != nil {
		_ = fw.Close() // the error above is the one to report
		return nil, fmt.Errorf("watch playbooks in %s: %w%s", s.dir, err, inotifyHint(err))
	}
	log = log.With().Str("dir", s.dir).Logger()
	if parent := filepath.Dir(dir); parent != dir {
		if err := fw.Add(parent); err != nil {
			log.Warn().Err(err).Str("parent", parent).Msg("cannot watch the playbook directory's parent; if the directory is replaced, send SIGHUP to watch it again")
		}
	}
	// Notify is registered before Watch returns, so a SIGHUP sent after it
	// reloads instead of ending the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)

	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{cancel: cancel, done: make(chan struct{})}
	r := &reloader{s: s, fw: fw, dir: dir, log: log, onReload: onReload}
	go func() {
		defer close(w.done)
		defer func() { _ = fw.Close() }() // a watcher that fails to close has nothing left to tell
		defer signal.Stop(hup)
		r.run(ctx, hup)
	}()
	return w, nil
}

// inotifyHint explains the errors by which Linux says an inotify limit is
// reached, whose own messages mislead.
func inotifyHint(err error) string {
	switch {
	case runtime.GOOS != "linux":
		return ""
	case errors.Is(err, syscall.EMFILE):
		return " (too many inotify instances: raise the sysctl fs.inotify.max_user_instances)"
	case errors.Is(err, syscall.ENOSPC):
		return " (too many inotify watches: raise the sysctl fs.inotify.max_user_watches)"
	}
	return ""
}

// reloader is the state of one Watch's goroutine.
type reloader struct {
	s        *Source
	fw       *fsnotify.Watcher
	dir      string // absolute
	log      zerolog.Logger
	onReload func(ReloadStatus)

	timer   *time.Timer // nil until the first change
	pending <-chan time.Time
	first   time.Time // first change since the last reload
	rewatch bool      // the directory itself was created, removed or moved
}

func (r *reloader) run(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.rewatch = true
			r.reload("sighup")
		case <-r.pending:
			r.reload("change")
		case ev, ok := <-r.fw.Events:
			if !ok {
				return
			}
			r.event(ev)
		case err, ok := <-r.fw.Errors:
			if !ok {
				return
			}
			// Overflow means events were lost: reading the directory again
			// is the only way to be sure it is in force.
			r.log.Warn().Err(err).Msg("playbook watch error; reloading to be sure")
			r.schedule()
		}
	}
}

// event schedules a reload for a change in the directory or to the
// directory itself, and ignores the rest of its parent's events.
func (r *reloader) event(ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	switch {
	case name == r.dir:
		r.rewatch = true
	case filepath.Dir(name) != r.dir:
		return
	case ev.Op == fsnotify.Chmod:
		// Permission and time stamp changes come from backup and
		// anti-virus tools far more often than from an edit.
		return
	}
	r.schedule()
}

// schedule sets the debounce timer: the source's debounce after the latest
// change, but no later than its maxDelay after the first.
func (r *reloader) schedule() {
	now := time.Now()
	if r.pending == nil {
		r.first = now
	}
	delay := min(r.s.debounce, r.first.Add(r.s.maxDelay).Sub(now))
	if r.timer == nil {
		r.timer = time.NewTimer(delay)
	} else {
		r.timer.Reset(delay)
	}
	r.pending = r.timer.C
}

func (r *reloader) reload(trigger string) {
	if r.timer != nil {
		r.timer.Stop()
	}
	r.pending = nil
	if r.rewatch {
		r.rewatch = false
		// Remove forgets a watch on a directory that is gone or was moved
		// away; Add watches whatever is at the path now.
		_ = r.fw.Remove(r.dir)
		if err := r.fw.Add(r.dir); err != nil {
			r.log.Warn().Err(err).Msg("cannot watch the playbook directory; waiting for it to appear")
		}
	}

	c, err := r.s.reload()
	st := r.s.Status()
	r.logReload(trigger, st, c, err)
	if r.onReload != nil {
		r.onReload(st)
	}
}

func (r *reloader) logReload(trigger string, st ReloadStatus, c setChanges, err error) {
	log := r.log.With().Str("trigger", trigger).Logger()
	if err != nil {
		log.Error().Strs("problems", problems(err)).Int("playbooks", st.Playbooks).Time("loaded_at", st.LoadedAt).
			Msg("playbook reload failed; previous playbooks stay in force")
		return
	}
	if c.empty() && !c.recovered {
		log.Debug().Int("playbooks", st.Playbooks).Msg("playbooks unchanged")
		return
	}
	ev := log.Info().Int("playbooks", st.Playbooks)
	if len(c.added) > 0 {
		ev = ev.Strs("added", c.added)
	}
	if len(c.changed) > 0 {
		ev = ev.Strs("changed", c.changed)
	}
	if len(c.removed) > 0 {
		ev = ev.Strs("removed", c.removed)
	}
	if c.recovered {
		ev = ev.Bool("recovered", true)
	}
	ev.Msg("playbooks reloaded")
}
