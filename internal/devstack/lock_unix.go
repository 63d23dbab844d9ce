//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package devstack

import (
	"errors"
	"os"
	"syscall"
)

// errLocked means another open file holds the lock.
var errLocked = errors.New("locked")

// tryLock takes an exclusive flock on f without waiting. The lock belongs to
// f's open file: the kernel drops it when f is closed, which happens however
// the process ends, SIGKILL included. Go opens files close-on-exec, so the
// processes soar starts do not inherit it.
func tryLock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return errLocked
		default:
			return err
		}
	}
}

// isLocked says whether another open file holds a flock on path, as etcd's
// database (bbolt) does while etcd runs.
func isLocked(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }() // only read
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		switch {
		case err == nil:
			return false, nil // closing f lets go again
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return true, nil
		default:
			return false, err
		}
	}
}
