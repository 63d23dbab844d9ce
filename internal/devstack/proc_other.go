//go:build !linux

package devstack

import (
	"errors"
	"syscall"
)

// Where there is no /proc, soar dev cannot tell whether a PID in its PID file
// is still the process it started, so it never signals one: readProc finds
// nothing. A process an earlier soar dev left running is then the user's to
// stop.

type procInfo struct {
	start   uint64
	exe     string
	cmdline string
}

func readProc(int) (procInfo, bool) { return procInfo{}, false }

func selfStart() uint64 { return 0 }

func sendSignal(int, syscall.Signal) error { return errors.ErrUnsupported }

func lockHolder(string) int { return 0 }
