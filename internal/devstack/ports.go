package devstack

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowestPort is the lowest port FreePort hands out: above the well-known and
// most registered services' ports.
const lowestPort = 10000

// FreePort returns a TCP port on host that nothing listens on, for a server
// that binds it a moment later (Temporal opens its own listeners from its
// configuration, so it cannot be handed one).
//
// The port is taken below the kernel's ephemeral range. A port the kernel
// picked for a listener on port 0 is an ephemeral one, and once that
// listener is closed any outgoing connection of any process may take it
// before the server binds it again: a test run opens thousands, and CI saw
// Temporal's worker service fail so ("Failed to start gRPC listener", which
// the server's no-op logger does not make fatal, then a nil listener's
// panic that took the test binary down). Outgoing connections never take a
// port below the ephemeral range, so only another process picking ports as
// this one does could, and it picks at random among more than 20,000.
func FreePort(host string) (int, error) {
	lo, hi := lowestPort, ephemeralLow()
	for range 50 {
		port := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue // in use
		}
		_ = l.Close()
		return port, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the lowest port of the kernel's ephemeral range (Linux's
// ip_local_port_range), or 32768, Linux's default, where it cannot be read
// or leaves too few ports below it. (macOS and the BSDs start theirs at
// 49152.)
func ephemeralLow() int {
	const linuxDefault, atLeast = 32768, lowestPort + 5000
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return linuxDefault
	}
	return parseEphemeralLow(string(data), linuxDefault, atLeast)
}

// parseEphemeralLow reads the range's first number from the file's text.
func parseEphemeralLow(text string, fallback, atLeast int) int {
	fields := strings.Fields(text)
	if len(fields) == 0 {
		return fallback
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low < atLeast || low > 65535 {
		return fallback
	}
	return low
}
