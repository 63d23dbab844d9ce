package playbooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rs/zerolog"
)

// The Watch tests in this file are not parallel: every Watch handles the
// process's SIGHUP, so a SIGHUP sent by one test would reload the others'
// playbooks.

// rulePlaybook returns a valid playbook matching one rule; the rule makes
// its version distinct.
func rulePlaybook(name, rule string) string {
	return playbookYAML(name, `alert.rule == "`+rule+`"`)
}

// brokenYAML is shell.yaml with a match expression that does not compile,
// on line 2.
const brokenYAML = "name: shell\n" +
	"match: alert.rule ==\n" +
	"incidentKey: alert.k8s.pod\n" +
	"steps:\n" +
	"  - id: contain\n" +
	"    action: kubernetes.quarantine\n"

// fileVersion is the version Load gives a playbook file with this content.
func fileVersion(content string) string {
	sum := sha256.Sum256([]byte(content))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes content beside path and renames it over path, as
// editors and configuration tools save.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// logLines collects the JSON lines of a zerolog logger; zerolog writes each
// line with one Write, from the watch's goroutine.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
	bad   []string
}

func (l *logLines) Write(p []byte) (int, error) {
	var e map[string]any
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := json.Unmarshal(p, &e); err != nil {
		l.bad = append(l.bad, string(p))
	} else {
		l.lines = append(l.lines, e)
	}
	return len(p), nil
}

// entries returns the lines logged with the given message.
func (l *logLines) entries(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) > 0 {
		t.Fatalf("log lines that are not JSON: %q", l.bad)
	}
	var out []map[string]any
	for _, e := range l.lines {
		if e["message"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// watched is a Source under a running watch, with what a test inspects: its
// log and the statuses its callback received.
type watched struct {
	src      *Source
	log      *logLines
	reloaded chan struct{} // ready after each reload

	mu       sync.Mutex
	statuses []ReloadStatus
}

// reloads returns how many reloads succeeded and how many failed.
func (w *watched) reloads() (succeeded, failed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, st := range w.statuses {
		if st.Err != nil {
			failed++
		} else {
			succeeded++
		}
	}
	return succeeded, failed
}

// last returns the status the latest callback received.
func (w *watched) last() ReloadStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.statuses) == 0 {
		return ReloadStatus{}
	}
	return w.statuses[len(w.statuses)-1]
}

// waitFor waits until cond holds, checking it after every reload, and fails
// the test after 10s.
func (w *watched) waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-w.reloaded:
		case <-deadline:
			t.Fatalf("%s: not within 10s: %v", what, err)
		}
	}
}

// startWatch makes a Source of dir and watches it until the test ends.
// debounce 0 means the default.
func startWatch(t *testing.T, dir string, debounce time.Duration) *watched {
	t.Helper()
	src, err := NewSource(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if debounce > 0 {
		src.debounce, src.maxDelay = debounce, 20*debounce
	}
	w := &watched{src: src, log: &logLines{}, reloaded: make(chan struct{}, 1)}
	pw, err := src.Watch(t.Context(), zerolog.New(w.log).Level(zerolog.DebugLevel), func(st ReloadStatus) {
		w.mu.Lock()
		w.statuses = append(w.statuses, st)
		w.mu.Unlock()
		select {
		case w.reloaded <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pw.Stop)
	return w
}

// versions returns name → version of the set in force.
func versions(src *Source) map[string]string {
	out := map[string]string{}
	for _, p := range src.Current().Playbooks() {
		out[p.Name] = p.Version
	}
	return out
}

// inForce is a waitFor condition: the set in force has exactly these
// versions.
func inForce(src *Source, want map[string]string) func() error {
	return func() error {
		got := versions(src)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("playbooks in force %v, want %v", got, want)
		}
		return nil
	}
}

// TestWatchPicksUpChanges makes each kind of change a playbook directory
// sees in practice and waits for the new set to be in force.
func TestWatchPicksUpChanges(t *testing.T) {
	v1, v2 := rulePlaybook("shell", "Terminal shell in container"), rulePlaybook("shell", "Shell spawned")
	other := rulePlaybook("other", "Other rule")
	tests := []struct {
		name string
		// setup fills root and returns the directory soar is given.
		setup func(t *testing.T, root string) string
		// change changes the playbooks; want is the set then in force.
		change func(t *testing.T, root, dir string)
		want   map[string]string
	}{
		{
			name:   "a file edited in place",
			setup:  plainDir(map[string]string{"shell.yaml": v1}),
			change: func(t *testing.T, _, dir string) { writeFile(t, dir, "shell.yaml", v2) },
			want:   map[string]string{"shell": fileVersion(v2)},
		},
		{
			name:   "a file replaced by rename, as editors save",
			setup:  plainDir(map[string]string{"shell.yaml": v1}),
			change: func(t *testing.T, _, dir string) { replaceFile(t, filepath.Join(dir, "shell.yaml"), v2) },
			want:   map[string]string{"shell": fileVersion(v2)},
		},
		{
			name:   "a new file",
			setup:  plainDir(map[string]string{"shell.yaml": v1}),
			change: func(t *testing.T, _, dir string) { writeFile(t, dir, "other.yml", other) },
			want:   map[string]string{"shell": fileVersion(v1), "other": fileVersion(other)},
		},
		{
			name:  "a removed file",
			setup: plainDir(map[string]string{"shell.yaml": v1, "other.yaml": other}),
			change: func(t *testing.T, _, dir string) {
				if err := os.Remove(filepath.Join(dir, "other.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"shell": fileVersion(v1)},
		},
		{
			name:   "a Kubernetes ConfigMap volume swapping its ..data symlink",
			setup:  configMapDir(map[string]string{"shell.yaml": v1}),
			change: func(t *testing.T, _, dir string) { updateConfigMap(t, dir, "..2", map[string]string{"shell.yaml": v2}) },
			want:   map[string]string{"shell": fileVersion(v2)},
		},
		{
			name:  "a Kubernetes ConfigMap volume gaining a key",
			setup: configMapDir(map[string]string{"shell.yaml": v1}),
			change: func(t *testing.T, _, dir string) {
				updateConfigMap(t, dir, "..2", map[string]string{"shell.yaml": v1, "other.yaml": other})
			},
			want: map[string]string{"shell": fileVersion(v1), "other": fileVersion(other)},
		},
		{
			name:  "the directory replaced by rename",
			setup: plainDir(map[string]string{"shell.yaml": v1}),
			change: func(t *testing.T, root, dir string) {
				next := filepath.Join(root, "next")
				if err := os.Mkdir(next, 0o750); err != nil {
					t.Fatal(err)
				}
				writeFile(t, next, "shell.yaml", v2)
				if err := os.Rename(dir, filepath.Join(root, "old")); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(next, dir); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"shell": fileVersion(v2)},
		},
		{
			name: "a symlink to the directory swapped, as in release-directory deploys",
			setup: func(t *testing.T, root string) string {
				release := filepath.Join(root, "release-1")
				if err := os.Mkdir(release, 0o750); err != nil {
					t.Fatal(err)
				}
				writeFile(t, release, "shell.yaml", v1)
				link := filepath.Join(root, "current")
				if err := os.Symlink("release-1", link); err != nil {
					t.Fatal(err)
				}
				return link
			},
			change: func(t *testing.T, root, dir string) {
				release := filepath.Join(root, "release-2")
				if err := os.Mkdir(release, 0o750); err != nil {
					t.Fatal(err)
				}
				writeFile(t, release, "shell.yaml", v2)
				swapSymlink(t, "release-2", dir)
			},
			want: map[string]string{"shell": fileVersion(v2)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := tt.setup(t, root)
			w := startWatch(t, dir, 0)
			before := versions(w.src)
			tt.change(t, root, dir)
			w.waitFor(t, "new playbooks in force", inForce(w.src, tt.want))
			if ok, failed := w.reloads(); ok < 1 || failed != 0 {
				t.Errorf("reloads: %d successful, %d failed; want at least 1 and 0", ok, failed)
			}
			if got := w.last().Playbooks; got != len(tt.want) {
				t.Errorf("the callback's status has %d playbooks, want %d", got, len(tt.want))
			}
			logged := w.log.entries(t, "playbooks reloaded")
			if len(logged) == 0 {
				t.Fatalf("no %q log line; playbooks went from %v to %v", "playbooks reloaded", before, tt.want)
			}
			if last := logged[len(logged)-1]; last["level"] != "info" || last["playbooks"] != float64(len(tt.want)) || last["dir"] != dir {
				t.Errorf("log line %v, want level info, playbooks %d and dir %s", last, len(tt.want), dir)
			}
		})
	}
}

// plainDir returns a setup that writes files into root/playbooks.
func plainDir(files map[string]string) func(t *testing.T, root string) string {
	return func(t *testing.T, root string) string {
		t.Helper()
		dir := filepath.Join(root, "playbooks")
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			writeFile(t, dir, name, content)
		}
		return dir
	}
}

// configMapDir returns a setup that lays out root/playbooks as the kubelet
// mounts a ConfigMap volume: the data in a hidden timestamped directory,
// ..data a symlink to it, and each key a symlink into ..data.
func configMapDir(files map[string]string) func(t *testing.T, root string) string {
	return func(t *testing.T, root string) string {
		t.Helper()
		dir := filepath.Join(root, "playbooks")
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		updateConfigMap(t, dir, "..1", files)
		return dir
	}
}

// updateConfigMap changes a ConfigMap volume the way the kubelet's atomic
// writer does: it writes the new data into a new hidden directory, points
// ..data_tmp at it and renames that over ..data, adds a symlink for each new
// key, and removes the old data.
func updateConfigMap(t *testing.T, dir, stamp string, files map[string]string) {
	t.Helper()
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := os.Mkdir(filepath.Join(dir, stamp), 0o750); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, stamp), name, content)
	}
	swapSymlink(t, stamp, filepath.Join(dir, "..data"))
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// swapSymlink points link at target atomically: a new symlink renamed over
// the old one.
func swapSymlink(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + "_tmp"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

// TestWatchKeepsPreviousSetOnBrokenEdit breaks a playbook and fixes it
// again, checking what a caller and an operator see each time: the
// playbooks in force, the status, the callback and the log.
func TestWatchKeepsPreviousSetOnBrokenEdit(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "shell.yaml", rulePlaybook("shell", "Terminal shell in container"))
	w := startWatch(t, dir, 0)
	inForceBefore := w.src.Current()

	replaceFile(t, filepath.Join(dir, "shell.yaml"), brokenYAML)
	w.waitFor(t, "a failed reload", func() error {
		if _, failed := w.reloads(); failed != 1 {
			return fmt.Errorf("%d failed reloads", failed)
		}
		return nil
	})
	if w.src.Current() != inForceBefore {
		t.Errorf("the set in force changed after a broken edit: %v", versions(w.src))
	}
	st := w.src.Status()
	var le *LoadErrors
	if !errors.As(st.Err, &le) || len(le.Errs) == 0 {
		t.Fatalf("Status().Err = %v, want a *LoadErrors", st.Err)
	}
	where := filepath.Join(dir, "shell.yaml") + ":2:"
	if !strings.HasPrefix(le.Errs[0].Error(), where) {
		t.Errorf("problem %q does not start with %q", le.Errs[0], where)
	}
	if st.Playbooks != 1 || st.FailedAt.IsZero() || !st.FailedAt.After(st.LoadedAt) {
		t.Errorf("Status() = %+v, want 1 playbook loaded before the failure", st)
	}
	if got := w.last(); !errors.Is(got.Err, st.Err) || got.Playbooks != 1 {
		t.Errorf("the callback received %+v, want the status %+v", got, st)
	}
	if p := st.Problems(); len(p) != len(le.Errs) || !strings.HasPrefix(p[0], where) {
		t.Errorf("Problems() = %q, want the %d problems starting with %q", p, len(le.Errs), where)
	}

	failed := w.log.entries(t, "playbook reload failed; previous playbooks stay in force")
	if len(failed) != 1 || failed[0]["level"] != "error" {
		t.Fatalf("failure log lines: %v", failed)
	}
	if p, _ := failed[0]["problems"].([]any); len(p) != len(le.Errs) || !strings.HasPrefix(fmt.Sprint(p[0]), where) {
		t.Errorf("logged problems %v, want the %d problems starting with %q", failed[0]["problems"], len(le.Errs), where)
	}

	fixed := rulePlaybook("shell", "Shell spawned")
	replaceFile(t, filepath.Join(dir, "shell.yaml"), fixed)
	w.waitFor(t, "fixed playbook in force", inForce(w.src, map[string]string{"shell": fileVersion(fixed)}))
	if st := w.src.Status(); st.Err != nil || st.Problems() != nil {
		t.Errorf("Status() = %+v after the fix, want no error and no problems", st)
	}
	if got := w.last(); got.Err != nil {
		t.Errorf("the callback received %+v after the fix", got)
	}
	reloaded := w.log.entries(t, "playbooks reloaded")
	if len(reloaded) != 1 || reloaded[0]["recovered"] != true ||
		fmt.Sprint(reloaded[0]["changed"]) != fmt.Sprint([]any{"shell@" + fileVersion(fixed)}) {
		t.Errorf("recovery log lines: %v", reloaded)
	}
}

// TestWatchFollowsDirectoryRecreated removes the playbook directory, which
// ends the watch on it, and creates it again once the failure is reported:
// the watch on its parent sees it come back.
func TestWatchFollowsDirectoryRecreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "playbooks")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "shell.yaml", rulePlaybook("shell", "Terminal shell in container"))
	w := startWatch(t, dir, 0)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "missing directory reported", func() error {
		if err := w.src.Status().Err; !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("Status().Err = %w", err)
		}
		return nil
	})
	if got := w.last(); !errors.Is(got.Err, fs.ErrNotExist) || got.Playbooks != 1 {
		t.Errorf("the callback received %+v, want the missing directory and 1 playbook in force", got)
	}

	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	next := rulePlaybook("shell", "Shell spawned")
	writeFile(t, dir, "shell.yaml", next)
	w.waitFor(t, "playbooks in the new directory in force", inForce(w.src, map[string]string{"shell": fileVersion(next)}))
	if got := w.last(); got.Err != nil {
		t.Errorf("the callback received %+v once the directory is back", got)
	}
}

// TestWatchReloadsOnceForBurst writes 20 playbooks, as a git checkout
// would, and expects one reload. The debounce is long enough that the
// writes, a few microseconds apart, cannot outlast it on a loaded machine.
func TestWatchReloadsOnceForBurst(t *testing.T) {
	const debounce = 500 * time.Millisecond
	dir := t.TempDir()
	writeFile(t, dir, "shell.yaml", rulePlaybook("shell", "Terminal shell in container"))
	w := startWatch(t, dir, debounce)

	// Readers use the set in force throughout, as the dispatcher does; the
	// race detector checks the swap.
	ctx, cancel := context.WithCancel(t.Context())
	var readers sync.WaitGroup
	readers.Go(func() {
		for ctx.Err() == nil {
			_ = w.src.Current().Playbooks()
			_ = w.src.Status()
		}
	})
	defer readers.Wait()
	defer cancel()

	want := versions(w.src)
	for i := range 20 {
		name := fmt.Sprintf("rule-%02d", i)
		content := rulePlaybook(name, name)
		writeFile(t, dir, name+".yaml", content)
		want[name] = fileVersion(content)
	}
	w.waitFor(t, "a reload", func() error {
		if ok, _ := w.reloads(); ok == 0 {
			return errors.New("no reload yet")
		}
		return nil
	})
	// The first reload must have seen every file: a reload in the middle of
	// the burst would leave some out.
	if err := inForce(w.src, want)(); err != nil {
		t.Fatal(err)
	}
	// And no second reload follows once the burst's events are drained.
	time.Sleep(3 * debounce)
	if ok, failed := w.reloads(); ok != 1 || failed != 0 {
		t.Fatalf("%d successful and %d failed reloads for one burst, want 1 and 0", ok, failed)
	}
}

// TestWatchReloadsOnSIGHUP sends the test process SIGHUP, which Watch
// handles: nothing in the directory changes, so only the signal can cause
// the reload. The test registers its own SIGHUP handler as well, so that if
// Watch failed to, the signal would be caught rather than end the test
// binary; Watch registers its handler before it returns.
func TestWatchReloadsOnSIGHUP(t *testing.T) {
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	dir := t.TempDir()
	writeFile(t, dir, "shell.yaml", rulePlaybook("shell", "Terminal shell in container"))
	w := startWatch(t, dir, 0)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "reload on SIGHUP", func() error {
		if ok, _ := w.reloads(); ok != 1 {
			return fmt.Errorf("%d successful reloads", ok)
		}
		return nil
	})
	unchanged := w.log.entries(t, "playbooks unchanged")
	if len(unchanged) != 1 || unchanged[0]["level"] != "debug" || unchanged[0]["trigger"] != "sighup" {
		t.Errorf("log lines %v, want one debug line with trigger sighup", unchanged)
	}
	if got := w.log.entries(t, "playbooks reloaded"); len(got) != 0 {
		t.Errorf("an unchanged reload logged at info: %v", got)
	}
}

// TestReload checks Reload's contract without a watch: the set in force
// changes only when the whole directory loads, and the error says why not.
func TestReload(t *testing.T) {
	good := rulePlaybook("shell", "Terminal shell in container")
	tests := []struct {
		name    string
		change  func(t *testing.T, dir string)
		wantErr func(error) bool
	}{
		{
			name: "an invalid playbook beside a valid one fails with every problem",
			change: func(t *testing.T, dir string) {
				writeFile(t, dir, "broken.yaml", strings.ReplaceAll(brokenYAML, "shell", "broken"))
			},
			wantErr: func(err error) bool { var le *LoadErrors; return errors.As(err, &le) },
		},
		{
			name: "two playbooks with one name fail",
			change: func(t *testing.T, dir string) {
				writeFile(t, dir, "copy.yaml", rulePlaybook("shell", "Shell spawned"))
			},
			wantErr: func(err error) bool { return err != nil && strings.Contains(err.Error(), "duplicate playbook name") },
		},
		{
			name: "an emptied directory fails with ErrNoPlaybooks",
			change: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "shell.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: func(err error) bool { return errors.Is(err, ErrNoPlaybooks) },
		},
		{
			name: "a removed directory fails with ErrNotExist",
			change: func(t *testing.T, dir string) {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: func(err error) bool { return errors.Is(err, fs.ErrNotExist) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "playbooks")
			if err := os.Mkdir(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "shell.yaml", good)
			src, err := NewSource(dir, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			before := src.Current()
			if err := src.Reload(); err != nil {
				t.Fatalf("Reload of an unchanged directory: %v", err)
			}

			tt.change(t, dir)
			err = src.Reload()
			if !tt.wantErr(err) {
				t.Fatalf("Reload() = %v", err)
			}
			if got := versions(src); got["shell"] != fileVersion(good) || len(got) != 1 {
				t.Errorf("in force after a failed reload: %v", got)
			}
			if st := src.Status(); !errors.Is(st.Err, err) {
				t.Errorf("Status().Err = %v, want %v", st.Err, err)
			}

			if err := os.MkdirAll(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "shell.yaml", good)
			_ = os.Remove(filepath.Join(dir, "broken.yaml"))
			_ = os.Remove(filepath.Join(dir, "copy.yaml"))
			if err := src.Reload(); err != nil {
				t.Fatalf("Reload after the fix: %v", err)
			}
			if src.Current() == before {
				t.Error("a successful Reload kept the old set")
			}
			if st := src.Status(); st.Err != nil {
				t.Errorf("Status().Err = %v after the fix", st.Err)
			}
		})
	}
}

func TestNewSourceFailsOnAnInvalidPlaybook(t *testing.T) {
	dir := writeFiles(t, map[string]string{"shell.yaml": brokenYAML})
	src, err := NewSource(dir, LoadOptions{})
	var le *LoadErrors
	if !errors.As(err, &le) || src != nil {
		t.Fatalf("NewSource() = %v, %v; want no source and a *LoadErrors", src, err)
	}
	if where := filepath.Join(dir, "shell.yaml") + ":2:"; !strings.HasPrefix(le.Errs[0].Error(), where) {
		t.Errorf("problem %q does not start with %q", le.Errs[0], where)
	}
}

func TestInotifyHint(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"too many instances", fmt.Errorf("new watcher: %w", syscall.EMFILE), "fs.inotify.max_user_instances"},
		{"too many watches", syscall.ENOSPC, "fs.inotify.max_user_watches"},
		{"another error", fs.ErrPermission, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := inotifyHint(tt.err)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("inotifyHint(%v) = %q, want it to name %q", tt.err, got, tt.want)
			}
		})
	}
}

// The tests below cover Load on an fs.FS and LoadFile, the other two ways
// in besides LoadDir that the rest of this package's tests use.

func TestLoadNamesFilesByTheirPathInTheFS(t *testing.T) {
	fsys := fstest.MapFS{
		"shell.yaml":       {Data: []byte(rulePlaybook("shell", "Terminal shell in container"))},
		"other.yml":        {Data: []byte(rulePlaybook("other", "Other rule"))},
		"shell_test.yaml":  {Data: []byte("an author test: [")},
		".shell.yaml.swp":  {Data: []byte("an editor's file: [")},
		"nested/deep.yaml": {Data: []byte("only the root is read: [")},
	}
	set, err := Load(fsys, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(set); fmt.Sprint(got) != "[other shell]" {
		t.Errorf("Playbooks() = %v, want [other shell]", got)
	}
	if pb, _ := set.Get("other"); pb.File != "other.yml" || pb.GitCommit != "" {
		t.Errorf("other: File %q, GitCommit %q; want other.yml and none", pb.File, pb.GitCommit)
	}

	fsys["shell.yaml"] = &fstest.MapFile{Data: []byte(brokenYAML)}
	_, err = Load(fsys, LoadOptions{})
	var le *LoadErrors
	if !errors.As(err, &le) || !strings.HasPrefix(le.Errs[0].Error(), "shell.yaml:2:") {
		t.Errorf("Load of a broken playbook: %v, want problems at shell.yaml:2:", err)
	}

	if _, err := Load(fstest.MapFS{}, LoadOptions{}); !errors.Is(err, ErrNoPlaybooks) {
		t.Errorf("Load of an empty FS: %v, want ErrNoPlaybooks", err)
	}
}

func TestLoadDirNamesTheDirectoryInItsErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := LoadDir(missing, LoadOptions{})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "open "+missing+":") {
		t.Errorf("LoadDir of a missing directory: %v, want ErrNotExist naming %s", err, missing)
	}
	empty := t.TempDir()
	if _, err := LoadDir(empty, LoadOptions{}); !errors.Is(err, ErrNoPlaybooks) || !strings.Contains(err.Error(), "from "+empty+":") {
		t.Errorf("LoadDir of an empty directory: %v, want ErrNoPlaybooks naming %s", err, empty)
	}
}

func TestLoadFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"shell_test.yaml": rulePlaybook("shell", "Terminal shell in container"),
		"broken.yaml":     brokenYAML,
	})
	tests := []struct {
		name    string
		file    string
		wantErr func(error) bool
	}{
		{"any file name, beside a broken playbook", "shell_test.yaml", nil},
		{"a broken playbook, with its path, line and column", "broken.yaml", func(err error) bool {
			var le *LoadErrors
			return errors.As(err, &le) && strings.HasPrefix(le.Errs[0].Error(), filepath.Join(dir, "broken.yaml")+":2:")
		}},
		{"a missing file", "nope.yaml", func(err error) bool { return errors.Is(err, fs.ErrNotExist) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			pb, err := LoadFile(path, LoadOptions{})
			if tt.wantErr != nil {
				if !tt.wantErr(err) || pb != nil {
					t.Errorf("LoadFile() = %v, %v", pb, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pb.Name != "shell" || pb.File != path {
				t.Errorf("LoadFile() = %s from %s, want shell from %s", pb.Name, pb.File, path)
			}
		})
	}
}
