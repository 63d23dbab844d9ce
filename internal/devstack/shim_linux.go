package devstack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// shimSupported: Linux has the parent-death signal.
const shimSupported = true

// runChildShim execs the real binary, or returns when this process was not
// started through a shim link: a program that soar runs inherits shimEnv
// and may be soar itself.
func runChildShim() {
	// envtest runs binaries by absolute path; a relative argv[0], or one
	// with no shim.json beside it, is soar run by hand or by a script with
	// shimEnv inherited.
	if !filepath.IsAbs(os.Args[0]) {
		_ = os.Unsetenv(shimEnv)
		return
	}
	dir, name := filepath.Split(os.Args[0])
	data, err := os.ReadFile(filepath.Join(dir, shimConfigName))
	if err != nil {
		_ = os.Unsetenv(shimEnv)
		return
	}
	var cfg shimConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		shimFail("%s: %v", filepath.Join(dir, shimConfigName), err)
	}
	bin, ok := cfg.Binaries[name]
	if !ok {
		shimFail("%s names no binary for %q", filepath.Join(dir, shimConfigName), name)
	}
	// The parent-death signal is a property of the thread that asks for
	// it, and execve keeps only the calling thread: both must happen on
	// one thread.
	runtime.LockOSThread()
	if err := setParentDeathSignal(); err != nil {
		shimFail("parent-death signal: %v", err)
	}
	// Had soar died before the request, the signal would never come: the
	// shim would have been handed to init (or a subreaper) already.
	if os.Getppid() != cfg.Parent {
		shimFail("soar (pid %d) has exited", cfg.Parent)
	}
	if cfg.PIDFile != "" {
		// The PID survives the exec. Failing to write only loses the
		// fallback that finds stale processes, so the shim goes on.
		if err := appendPIDEntry(cfg.PIDFile, pidEntry{role: name, pid: os.Getpid(), start: selfStart(), exe: bin}); err != nil {
			fmt.Fprintf(os.Stderr, "soar child shim: %v\n", err)
		}
	}
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, shimEnv+"=") {
			env = append(env, kv)
		}
	}
	err = syscall.Exec(bin, append([]string{bin}, os.Args[1:]...), env)
	shimFail("exec %s: %v", bin, err)
}

func shimFail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "soar child shim: "+format+"\n", args...)
	os.Exit(127)
}

// setParentDeathSignal asks for SIGKILL when the parent thread ends.
func setParentDeathSignal() error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
	if errno != 0 {
		return errno
	}
	return nil
}
