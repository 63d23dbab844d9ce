//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package devstack

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// tryLock does nothing where there is no flock (Windows): two soar devs on
// one data directory are not prevented there.
func tryLock(*os.File) error { return nil }

// isLocked cannot tell, and says no.
func isLocked(string) (bool, error) { return false, nil }
