package devstack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
)

// The child shim makes kube-apiserver and etcd die with the soar that
// started them, however soar ends, SIGKILL included.
//
// Linux does that for a child that asked for it with
// prctl(PR_SET_PDEATHSIG, SIGKILL), and the request survives execve (for a
// program that is not setuid). exec.Cmd can ask on the child's behalf
// (SysProcAttr.Pdeathsig), but envtest builds its own exec.Cmd for each
// binary and lets no caller set SysProcAttr. So StartKube, in a program
// whose main has called MaybeRunChildShim, points envtest at links to the
// program's own executable instead of at the real binaries, in a
// directory holding a shim.json that says where the real ones are, and sets
// shimEnv. soar's main calls MaybeRunChildShim first; run that way, it asks
// for the parent-death signal, checks that its parent has not died already,
// records itself in the data directory's PID file and execs the real binary
// with the same arguments and PID.
//
// The signal is sent when the THREAD that forked the child ends, not the
// process. Go ends a thread only when a goroutine locked to it returns
// without unlocking, so StartKube forks from a goroutine of its own that
// stays locked to its thread until Stop (see lockedThread).

// shimEnv marks a process started through the shim.
const shimEnv = "SOAR_DEVSTACK_CHILD_SHIM"

// shimConfigName is the file beside the links that configures the shim.
const shimConfigName = "shim.json"

type shimConfig struct {
	// Parent is the PID of the soar that starts the children. A shim whose
	// parent is another process started after it had died.
	Parent int `json:"parent"`
	// Binaries maps each link's name to the real binary.
	Binaries map[string]string `json:"binaries"`
	// PIDFile, when set, gets a line for every process started.
	PIDFile string `json:"pid_file,omitempty"`
}

// shimInstalled is set by MaybeRunChildShim: the running executable can serve
// as the shim. Test binaries and other programs that use devstack without
// calling it start the binaries directly, without the parent-death signal.
var shimInstalled atomic.Bool

// MaybeRunChildShim is for a main that uses StartKube to call before anything
// else. In a process started by StartKube as a stand-in for kube-apiserver or etcd
// it never returns: it becomes that binary. Anywhere else it returns at once,
// having noted that this executable can serve as such a stand-in.
func MaybeRunChildShim() {
	if os.Getenv(shimEnv) != "" {
		runChildShim()
	}
	shimInstalled.Store(true)
}

// useShim says whether StartKube starts its binaries through the shim.
func useShim() bool { return shimSupported && shimInstalled.Load() }

// newShimDir makes a directory (in parent, or the system's temporary
// directory when parent is empty) of links to this executable, one named after
// each binary, with the shim.json that maps them to the real ones, and sets
// shimEnv in this process's environment (exec.Cmd passes it on; envtest sets
// no environment of its own). It returns the directory and the path of each
// link.
func newShimDir(parent string, binaries map[string]string, pidFile string) (string, map[string]string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("child shim: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "soar-kube-shim-")
	if err != nil {
		return "", nil, fmt.Errorf("child shim: %w", err)
	}
	// The shim finds shim.json beside the absolute path it is run by.
	if abs, aerr := filepath.Abs(dir); aerr == nil {
		dir = abs
	}
	cfg := shimConfig{Parent: os.Getpid(), Binaries: binaries, PIDFile: pidFile}
	data, err := json.Marshal(cfg)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, shimConfigName), data, 0o600)
	}
	links := make(map[string]string, len(binaries))
	for name := range binaries {
		if err != nil {
			break
		}
		links[name] = filepath.Join(dir, name)
		err = os.Symlink(self, links[name])
	}
	if err == nil {
		err = os.Setenv(shimEnv, "1")
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("child shim: %w", err)
	}
	return dir, links, nil
}

// lockedThread runs functions on one OS thread that lives until close. A
// child forked on it gets its parent-death signal when soar ends, not
// before: any other thread might be ended by the Go runtime earlier.
type lockedThread struct{ calls chan func() }

func newLockedThread() *lockedThread {
	t := &lockedThread{calls: make(chan func())}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: when close ends this goroutine, the runtime
		// ends the thread too, and any child still running (one that
		// did not stop in time) gets its parent-death signal.
		for f := range t.calls {
			f()
		}
	}()
	return t
}

// do runs f on the thread and returns when it has.
func (t *lockedThread) do(f func()) {
	done := make(chan struct{})
	t.calls <- func() {
		defer close(done)
		f()
	}
	<-done
}

func (t *lockedThread) close() { close(t.calls) }
