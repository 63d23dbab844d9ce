//go:build !linux

package devstack

import "os"

// shimSupported is false: only Linux has a parent-death signal
// (prctl PR_SET_PDEATHSIG). Elsewhere StartKube starts kube-apiserver and etcd
// directly, and a soar that is killed leaves them running; the next soar dev
// then reports etcd's data directory as in use.
const shimSupported = false

// runChildShim only clears the marker: no shim is ever started here.
func runChildShim() { _ = os.Unsetenv(shimEnv) }
