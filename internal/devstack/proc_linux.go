package devstack

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// procInfo is what /proc says about a running process.
type procInfo struct {
	// start is when the process started, in clock ticks after boot (field
	// 22 of /proc/PID/stat). With the PID it names one process for good: a
	// PID reused by a later process comes with another start time.
	start uint64
	// exe is the executable the /proc/PID/exe link names, "" when it
	// cannot be read.
	exe string
	// cmdline is /proc/PID/cmdline with its NULs turned into spaces.
	cmdline string
}

// readProc reads what /proc says about pid. ok is false when no such process
// runs, or when only its zombie is left: a zombie holds no files, locks or
// ports and only waits for its parent to reap it, which in some containers
// never happens.
func readProc(pid int) (p procInfo, ok bool) {
	if pid <= 0 {
		return p, false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, false
	}
	state, start, err := parseStat(stat)
	if err != nil || state == 'Z' || state == 'X' || state == 'x' {
		return p, false
	}
	p.start = start
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		// An executable replaced since it started (a rebuilt bin/soar or
		// bin/k8s/etcd) is shown as "PATH (deleted)".
		p.exe = strings.TrimSuffix(exe, " (deleted)")
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		p.cmdline = string(bytes.TrimRight(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), " "))
	}
	return p, true
}

// parseStat returns the state (field 3) and the start time (field 22) of a
// /proc/PID/stat line. The command name (field 2) is in parentheses and may
// itself hold spaces and parentheses, so fields are counted from the last ')'.
func parseStat(stat []byte) (state byte, start uint64, err error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	fields := strings.Fields(string(stat[i+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	return fields[0][0], start, err
}

// selfStart is this process's start time as readProc reports it.
func selfStart() uint64 {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	_, start, _ := parseStat(stat)
	return start
}

// sendSignal sends sig to pid.
func sendSignal(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

// lockHolder returns the process holding a flock or POSIX lock on path,
// according to /proc/locks, or 0 when none is listed (or it is only listed as
// an open file description lock, which names no process).
func lockHolder(path string) int {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0
	}
	// Lines read "1: FLOCK  ADVISORY  WRITE 3789 fe:00:9986413 0 EOF";
	// a process waiting for the lock has "->" after the number.
	want := fmt.Sprintf("%02x:%02x:%d", major(uint64(st.Dev)), minor(uint64(st.Dev)), st.Ino) // Dev is a uint32 on some platforms
	for line := range strings.Lines(string(locks)) {
		f := strings.Fields(strings.Replace(line, "->", "", 1))
		if len(f) < 6 || !strings.EqualFold(f[5], want) {
			continue
		}
		if pid, err := strconv.Atoi(f[4]); err == nil && pid > 0 {
			return pid
		}
	}
	return 0
}

// major and minor split a Linux device number as glibc's gnu_dev_major and
// gnu_dev_minor do.
func major(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func minor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }
