package devstack

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// PIDFileName is the file in a soar dev data directory that the soar dev
// using the directory holds an exclusive lock on, and that lists it and the
// processes it started, one a line: "ROLE PID START-TIME EXECUTABLE", where
// ROLE is soar-dev or the binary's name (etcd, kube-apiserver) and START-TIME
// is field 22 of /proc/PID/stat, which tells a process from a later one that
// got the same PID.
const PIDFileName = "soar-dev.pid"

// ownerRole is the role of soar dev's own line.
const ownerRole = "soar-dev"

const pidFileHeader = "# soar dev and the processes it started: ROLE PID START-TIME EXECUTABLE\n"

// How long stale processes get to exit after SIGTERM, and then after SIGKILL.
var (
	staleTermGrace = 3 * time.Second
	staleKillGrace = 5 * time.Second
)

// pidEntry is one line of the PID file.
type pidEntry struct {
	role  string
	pid   int
	start uint64
	exe   string
}

func (e pidEntry) String() string {
	return fmt.Sprintf("%s %d %d %s\n", e.role, e.pid, e.start, e.exe)
}

// matches says whether p is the process e recorded: it started at the
// recorded time, and runs the recorded executable (or names it in its command
// line, as envtest's processes do in their first argument).
func (e pidEntry) matches(p procInfo) bool {
	return e.start == p.start && e.exe != "" && (p.exe == e.exe || strings.Contains(p.cmdline, e.exe))
}

// running says whether the process e recorded still runs.
func (e pidEntry) running() bool {
	p, ok := readProc(e.pid)
	return ok && e.matches(p)
}

func parsePIDFile(data []byte) []pidEntry {
	var entries []pidEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, " ", 4)
		if len(f) != 4 {
			continue
		}
		pid, err1 := strconv.Atoi(f[1])
		start, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || pid <= 0 {
			continue
		}
		entries = append(entries, pidEntry{role: f[0], pid: pid, start: start, exe: f[3]})
	}
	return entries
}

// appendPIDEntry adds e to the PID file, which the soar dev that started the
// process has created. One short write with O_APPEND, so that processes
// starting at once do not mix their lines.
func appendPIDEntry(path string, e pidEntry) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(e.String()); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// DataDir is a soar dev data directory that this process holds.
type DataDir struct {
	dir string
	f   *os.File
}

// LockDataDir takes dir for this process until Close: it locks dir's PID
// file, so that no other soar dev can use dir meanwhile, and stops what the
// PID file says an earlier soar dev, now gone, left running there (its etcd
// would keep the etcd data locked, and a new etcd would wait for it for ever).
//
// It refuses when another soar dev holds dir. A process listed in the file
// is stopped only if it still is the process listed (same PID and start time,
// same executable); a PID that now belongs to another program is left alone.
// Where /proc is missing (not Linux) nothing is stopped.
func LockDataDir(dir string, log zerolog.Logger) (*DataDir, error) {
	path := filepath.Join(dir, PIDFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := tryLock(f); errors.Is(err, errLocked) {
		_ = f.Close()
		entries, _ := readPIDFile(path)
		for _, e := range entries {
			if e.role == ownerRole {
				return nil, inUseError(e.pid, dir)
			}
		}
		return nil, fmt.Errorf("another soar dev is using %s (it holds a lock on %s); stop it first", dir, path)
	} else if err != nil {
		// Some file systems (a few network ones) have no flock: go on
		// without it rather than not at all.
		log.Warn().Err(err).Str("file", path).Msg("cannot lock the data directory; make sure no other soar dev uses it")
	}
	entries, err := readPIDFile(path)
	if err == nil {
		err = clearStale(dir, entries, log)
	}
	if err == nil {
		self, _ := os.Executable()
		err = writePIDFile(f, pidEntry{role: ownerRole, pid: os.Getpid(), start: selfStart(), exe: self})
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &DataDir{dir: dir, f: f}, nil
}

// PIDFile is the file where the processes started for this soar dev are to
// be recorded (KubeOptions.PIDFile).
func (d *DataDir) PIDFile() string { return filepath.Join(d.dir, PIDFileName) }

// Close empties the PID file, everything in it having stopped, and lets the
// directory go. The file stays: removing it would let a soar dev that opened
// it just before lock a file that no longer has a name, while a third one
// locks a new one.
func (d *DataDir) Close() error {
	err := d.f.Truncate(0)
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func inUseError(pid int, dir string) error {
	return fmt.Errorf("another soar dev (pid %d) is using %s; stop it first", pid, dir)
}

func readPIDFile(path string) ([]pidEntry, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	return parsePIDFile(data), nil
}

func writePIDFile(f *os.File, owner pidEntry) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if _, err := f.WriteAt([]byte(pidFileHeader+owner.String()), 0); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	return nil
}

// clearStale stops the processes entries lists that still run, unless the
// soar dev that started them still runs: then it refuses.
func clearStale(dir string, entries []pidEntry, log zerolog.Logger) error {
	owner := pidEntry{role: ownerRole}
	for _, e := range entries {
		if e.role == ownerRole {
			owner = e
		}
	}
	if owner.pid != 0 && owner.running() {
		return inUseError(owner.pid, dir)
	}
	var stale []pidEntry
	for _, e := range entries {
		if e.role == ownerRole {
			continue
		}
		p, ok := readProc(e.pid)
		if !ok {
			continue
		}
		if !e.matches(p) {
			log.Debug().Int("pid", e.pid).Str("process", e.role).Msg("a PID in the data directory's PID file now belongs to another program; left alone")
			continue
		}
		stale = append(stale, e)
	}
	if len(stale) == 0 {
		return nil
	}
	return stopStale(dir, owner, stale, log)
}

// stopStale sends stale SIGTERM, then SIGKILL to what still runs after
// staleTermGrace, and waits until all are gone.
func stopStale(dir string, owner pidEntry, stale []pidEntry, log zerolog.Logger) error {
	for _, e := range stale {
		log.Warn().Int("pid", e.pid).Str("process", e.role).Int("soar_dev_pid", owner.pid).Str("data_dir", dir).
			Msg("stopping a process that an earlier soar dev, now gone, left running")
		_ = sendSignal(e.pid, syscall.SIGTERM)
	}
	left := waitGone(stale, staleTermGrace)
	for _, e := range left {
		log.Warn().Int("pid", e.pid).Str("process", e.role).Msgf("still running %s after SIGTERM: sending SIGKILL", staleTermGrace)
		_ = sendSignal(e.pid, syscall.SIGKILL)
	}
	left = waitGone(left, staleKillGrace)
	if len(left) > 0 {
		var pids []string
		for _, e := range left {
			pids = append(pids, fmt.Sprintf("%s (pid %d)", e.role, e.pid))
		}
		return fmt.Errorf("%s: cannot stop %s left running by an earlier soar dev; stop it and start again", dir, strings.Join(pids, ", "))
	}
	return nil
}

// waitGone waits up to d for the processes to exit, and returns those that
// have not.
func waitGone(entries []pidEntry, d time.Duration) []pidEntry {
	deadline := time.Now().Add(d)
	for {
		var left []pidEntry
		for _, e := range entries {
			if e.running() {
				left = append(left, e)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		entries = left
		time.Sleep(50 * time.Millisecond)
	}
}
