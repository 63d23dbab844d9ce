package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
)

// The tests in this file are not parallel: every Watch handles the process's
// SIGHUP, so a SIGHUP sent by one test would reload the others' playbooks.

// playbookYAML returns a valid playbook; rule makes its version distinct.
func playbookYAML(name, rule string) string {
	return "name: " + name + "\n" +
		"match: alert.rule == \"" + rule + "\"\n" +
		"incidentKey: alert.k8s.namespace + \"/\" + alert.k8s.pod\n" +
		"steps:\n" +
		"  - id: contain\n" +
		"    action: kubernetes.quarantine\n" +
		"    with:\n" +
		"      namespace: alert.k8s.namespace\n" +
		"      pod: alert.k8s.pod\n"
}

// brokenYAML is shell.yaml with a match expression that does not compile,
// on line 2.
const brokenYAML = "name: shell\n" +
	"match: alert.rule ==\n" +
	"incidentKey: alert.k8s.pod\n" +
	"steps:\n" +
	"  - id: contain\n" +
	"    action: kubernetes.quarantine\n"

// version is the version Load gives a playbook file with this content.
func version(content string) string {
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

// entries returns the JSON log lines with the given message.
func entries(t *testing.T, s *testenv.SyncBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s.String()), "\n") {
		if line == "" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if e["message"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// watched is a Playbooks under a running watch, with what a test inspects.
type watched struct {
	pb  *Playbooks
	m   *metrics.Metrics
	log *testenv.SyncBuffer
}

func (w *watched) reloads(result string) float64 {
	return testutil.ToFloat64(w.m.PlaybookReloads.WithLabelValues(result))
}

// startWatch loads dir and watches it until the test ends. debounce 0
// means the default.
func startWatch(t *testing.T, dir string, debounce time.Duration) *watched {
	t.Helper()
	pb, err := LoadPlaybooks(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := watchOptions{debounce: ReloadDebounce, maxDelay: ReloadMaxDelay}
	if debounce > 0 {
		opts = watchOptions{debounce: debounce, maxDelay: 20 * debounce}
	}
	w := &watched{pb: pb, m: metrics.New(), log: &testenv.SyncBuffer{}}
	pw, err := pb.watch(t.Context(), zerolog.New(w.log).Level(zerolog.DebugLevel), w.m, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pw.Stop)
	return w
}

// versions returns name → version of the set in force.
func versions(pb *Playbooks) map[string]string {
	out := map[string]string{}
	for _, p := range pb.Current().Playbooks() {
		out[p.Name] = p.Version
	}
	return out
}

// inForce is a waitFor condition: the set in force has exactly these
// versions.
func inForce(pb *Playbooks, want map[string]string) func() error {
	return func() error {
		got := versions(pb)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("playbooks in force %v, want %v", got, want)
		}
		return nil
	}
}

// TestWatchPicksUpChanges makes each kind of change a playbook directory
// sees in practice and waits for the new set to be in force.
func TestWatchPicksUpChanges(t *testing.T) {
	v1, v2 := playbookYAML("shell", "Terminal shell in container"), playbookYAML("shell", "Shell spawned")
	other := playbookYAML("other", "Other rule")
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
			want:   map[string]string{"shell": version(v2)},
		},
		{
			name:   "a file replaced by rename, as editors save",
			setup:  plainDir(map[string]string{"shell.yaml": v1}),
			change: func(t *testing.T, _, dir string) { replaceFile(t, filepath.Join(dir, "shell.yaml"), v2) },
			want:   map[string]string{"shell": version(v2)},
		},
		{
			name:   "a new file",
			setup:  plainDir(map[string]string{"shell.yaml": v1}),
			change: func(t *testing.T, _, dir string) { writeFile(t, dir, "other.yml", other) },
			want:   map[string]string{"shell": version(v1), "other": version(other)},
		},
		{
			name:  "a removed file",
			setup: plainDir(map[string]string{"shell.yaml": v1, "other.yaml": other}),
			change: func(t *testing.T, _, dir string) {
				if err := os.Remove(filepath.Join(dir, "other.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"shell": version(v1)},
		},
		{
			name:   "a Kubernetes ConfigMap volume swapping its ..data symlink",
			setup:  configMapDir(map[string]string{"shell.yaml": v1}),
			change: func(t *testing.T, _, dir string) { updateConfigMap(t, dir, "..2", map[string]string{"shell.yaml": v2}) },
			want:   map[string]string{"shell": version(v2)},
		},
		{
			name:  "a Kubernetes ConfigMap volume gaining a key",
			setup: configMapDir(map[string]string{"shell.yaml": v1}),
			change: func(t *testing.T, _, dir string) {
				updateConfigMap(t, dir, "..2", map[string]string{"shell.yaml": v1, "other.yaml": other})
			},
			want: map[string]string{"shell": version(v1), "other": version(other)},
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
			want: map[string]string{"shell": version(v2)},
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
			want: map[string]string{"shell": version(v2)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := tt.setup(t, root)
			w := startWatch(t, dir, 0)
			before := versions(w.pb)
			tt.change(t, root, dir)
			testenv.Eventually(t, 10*time.Second, "new playbooks in force", inForce(w.pb, tt.want))
			if w.reloads("success") < 1 || w.reloads("failure") != 0 {
				t.Errorf("reloads: %v successful, %v failed; want at least 1 and 0", w.reloads("success"), w.reloads("failure"))
			}
			if got := testutil.ToFloat64(w.m.PlaybooksLoaded); got != float64(len(tt.want)) {
				t.Errorf("soar_playbooks_loaded = %v, want %d", got, len(tt.want))
			}
			logged := entries(t, w.log, "playbooks reloaded")
			if len(logged) == 0 {
				t.Fatalf("no %q log line; playbooks went from %v to %v", "playbooks reloaded", before, tt.want)
			}
			if last := logged[len(logged)-1]; last["level"] != "info" || last["playbooks"] != float64(len(tt.want)) {
				t.Errorf("log line %v, want level info and playbooks %d", last, len(tt.want))
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
// again, checking what an operator sees each time: the playbooks in force,
// the log, the metrics and /readyz.
func TestWatchKeepsPreviousSetOnBrokenEdit(t *testing.T) {
	dir := t.TempDir()
	good := playbookYAML("shell", "Terminal shell in container")
	writeFile(t, dir, "shell.yaml", good)
	w := startWatch(t, dir, 0)
	hs := httpserver.New(w.m.Registry)
	hs.AddCheck("playbooks", w.pb.Check)
	srv := httptest.NewServer(hs.Handler())
	defer srv.Close()
	inForceBefore := w.pb.Current()

	replaceFile(t, filepath.Join(dir, "shell.yaml"), brokenYAML)
	testenv.Eventually(t, 10*time.Second, "reload failure counted", func() error {
		if got := w.reloads("failure"); got != 1 {
			return fmt.Errorf("failed reloads = %v", got)
		}
		return nil
	})
	if w.pb.Current() != inForceBefore {
		t.Errorf("the set in force changed after a broken edit: %v", versions(w.pb))
	}
	st := w.pb.Status()
	var le *playbooks.LoadErrors
	if !errors.As(st.Err, &le) || len(le.Errs) == 0 {
		t.Fatalf("Status().Err = %v, want a *playbooks.LoadErrors", st.Err)
	}
	where := filepath.Join(dir, "shell.yaml") + ":2:"
	if !strings.HasPrefix(le.Errs[0].Error(), where) {
		t.Errorf("problem %q does not start with %q", le.Errs[0], where)
	}
	if st.Playbooks != 1 || st.FailedAt.IsZero() || !st.FailedAt.After(st.LoadedAt) {
		t.Errorf("Status() = %+v, want 1 playbook loaded before the failure", st)
	}
	assertGauges(t, w.m, 1, 1)

	failed := entries(t, w.log, "playbook reload failed; previous playbooks stay in force")
	if len(failed) != 1 || failed[0]["level"] != "error" {
		t.Fatalf("failure log lines: %v", failed)
	}
	if p, _ := failed[0]["problems"].([]any); len(p) != len(le.Errs) || !strings.HasPrefix(fmt.Sprint(p[0]), where) {
		t.Errorf("logged problems %v, want the %d problems starting with %q", failed[0]["problems"], len(le.Errs), where)
	}

	code, rep := readyz(t, srv.URL)
	detail := rep.Checks["playbooks"]
	if code != http.StatusOK || !rep.Ready || !strings.HasPrefix(detail, "degraded: reload failed at ") ||
		!strings.Contains(detail, "; the playbooks loaded at ") || !strings.Contains(detail, where) {
		t.Errorf("/readyz = %d %+v, want 200, ready, and the failure in checks.playbooks", code, rep)
	}
	if metrics := get(t, srv.URL+"/metrics"); !strings.Contains(metrics, "soar_playbook_reload_failing 1") ||
		!strings.Contains(metrics, `soar_playbook_reloads_total{result="failure"} 1`) {
		t.Errorf("/metrics lacks the failure:\n%s", metrics)
	}

	fixed := playbookYAML("shell", "Shell spawned")
	replaceFile(t, filepath.Join(dir, "shell.yaml"), fixed)
	testenv.Eventually(t, 10*time.Second, "fixed playbook in force", inForce(w.pb, map[string]string{"shell": version(fixed)}))
	if err := w.pb.Status().Err; err != nil {
		t.Errorf("Status().Err = %v after the fix", err)
	}
	assertGauges(t, w.m, 1, 0)
	if code, rep := readyz(t, srv.URL); code != http.StatusOK || rep.Checks["playbooks"] != "ok" {
		t.Errorf("/readyz after the fix = %d %+v", code, rep)
	}
	reloaded := entries(t, w.log, "playbooks reloaded")
	if len(reloaded) != 1 || reloaded[0]["recovered"] != true ||
		fmt.Sprint(reloaded[0]["changed"]) != fmt.Sprint([]any{"shell@" + version(fixed)}) {
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
	writeFile(t, dir, "shell.yaml", playbookYAML("shell", "Terminal shell in container"))
	w := startWatch(t, dir, 0)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "missing directory reported", func() error {
		if err := w.pb.Status().Err; !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("Status().Err = %v", err)
		}
		return nil
	})
	assertGauges(t, w.m, 1, 1)

	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	next := playbookYAML("shell", "Shell spawned")
	writeFile(t, dir, "shell.yaml", next)
	testenv.Eventually(t, 10*time.Second, "playbooks in the new directory in force", inForce(w.pb, map[string]string{"shell": version(next)}))
	assertGauges(t, w.m, 1, 0)
}

func assertGauges(t *testing.T, m *metrics.Metrics, loaded, failing float64) {
	t.Helper()
	if got := testutil.ToFloat64(m.PlaybooksLoaded); got != loaded {
		t.Errorf("soar_playbooks_loaded = %v, want %v", got, loaded)
	}
	if got := testutil.ToFloat64(m.PlaybookReloadFailing); got != failing {
		t.Errorf("soar_playbook_reload_failing = %v, want %v", got, failing)
	}
	if got := testutil.ToFloat64(m.PlaybooksLastReload); got <= 0 {
		t.Errorf("soar_playbooks_last_reload_timestamp_seconds = %v", got)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readyz(t *testing.T, base string) (int, httpserver.ReadyReport) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep httpserver.ReadyReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, rep
}

// TestWatchReloadsOnceForBurst writes 20 playbooks, as a git checkout
// would, and expects one reload. The debounce is long enough that the
// writes, a few microseconds apart, cannot outlast it on a loaded machine.
func TestWatchReloadsOnceForBurst(t *testing.T) {
	const debounce = 500 * time.Millisecond
	dir := t.TempDir()
	writeFile(t, dir, "shell.yaml", playbookYAML("shell", "Terminal shell in container"))
	w := startWatch(t, dir, debounce)

	// Readers use the set in force throughout, as the dispatcher does; the
	// race detector checks the swap.
	ctx, cancel := context.WithCancel(t.Context())
	var readers sync.WaitGroup
	readers.Go(func() {
		for ctx.Err() == nil {
			_ = w.pb.Current().Playbooks()
			_ = w.pb.Check(ctx)
		}
	})
	defer readers.Wait()
	defer cancel()

	want := versions(w.pb)
	for i := range 20 {
		name := fmt.Sprintf("rule-%02d", i)
		content := playbookYAML(name, name)
		writeFile(t, dir, name+".yaml", content)
		want[name] = version(content)
	}
	testenv.Eventually(t, 10*time.Second, "a reload", func() error {
		if w.reloads("success") == 0 {
			return errors.New("no reload yet")
		}
		return nil
	})
	// The first reload must have seen every file: a reload in the middle of
	// the burst would leave some out.
	if err := inForce(w.pb, want)(); err != nil {
		t.Fatal(err)
	}
	// And no second reload follows once the burst's events are drained.
	settle := time.Now().Add(3 * debounce)
	for time.Now().Before(settle) {
		if got := w.reloads("success"); got != 1 {
			t.Fatalf("%v reloads for one burst, want 1", got)
		}
		time.Sleep(10 * time.Millisecond)
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
	writeFile(t, dir, "shell.yaml", playbookYAML("shell", "Terminal shell in container"))
	w := startWatch(t, dir, 0)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "reload on SIGHUP", func() error {
		if got := w.reloads("success"); got != 1 {
			return fmt.Errorf("successful reloads = %v", got)
		}
		return nil
	})
	unchanged := entries(t, w.log, "playbooks unchanged")
	if len(unchanged) != 1 || unchanged[0]["level"] != "debug" || unchanged[0]["trigger"] != "sighup" {
		t.Errorf("log lines %v, want one debug line with trigger sighup", unchanged)
	}
	if got := entries(t, w.log, "playbooks reloaded"); len(got) != 0 {
		t.Errorf("an unchanged reload logged at info: %v", got)
	}
}

// TestReload checks Reload's contract without a watch: the set in force
// changes only when the whole directory loads, and the error says why not.
func TestReload(t *testing.T) {
	good := playbookYAML("shell", "Terminal shell in container")
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
			wantErr: func(err error) bool { var le *playbooks.LoadErrors; return errors.As(err, &le) },
		},
		{
			name: "two playbooks with one name fail",
			change: func(t *testing.T, dir string) {
				writeFile(t, dir, "copy.yaml", playbookYAML("shell", "Shell spawned"))
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
			wantErr: func(err error) bool { return errors.Is(err, playbooks.ErrNoPlaybooks) },
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
			pb, err := LoadPlaybooks(dir)
			if err != nil {
				t.Fatal(err)
			}
			before := pb.Current()
			if err := pb.Reload(); err != nil {
				t.Fatalf("Reload of an unchanged directory: %v", err)
			}

			tt.change(t, dir)
			err = pb.Reload()
			if !tt.wantErr(err) {
				t.Fatalf("Reload() = %v", err)
			}
			if got := versions(pb); got["shell"] != version(good) || len(got) != 1 {
				t.Errorf("in force after a failed reload: %v", got)
			}
			if st := pb.Status(); st.Err != err {
				t.Errorf("Status().Err = %v, want %v", st.Err, err)
			}
			var degraded *httpserver.Degraded
			if err := pb.Check(t.Context()); !errors.As(err, &degraded) {
				t.Errorf("Check() = %v, want *httpserver.Degraded", err)
			}

			if err := os.MkdirAll(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "shell.yaml", good)
			_ = os.Remove(filepath.Join(dir, "broken.yaml"))
			_ = os.Remove(filepath.Join(dir, "copy.yaml"))
			if err := pb.Reload(); err != nil {
				t.Fatalf("Reload after the fix: %v", err)
			}
			if pb.Current() == before {
				t.Error("a successful Reload kept the old set")
			}
			if err := pb.Check(t.Context()); err != nil {
				t.Errorf("Check() after the fix = %v", err)
			}
		})
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
