package devstack

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// lowestPort is the lowest port FreePort hands out: above the well-known and
// most registered services' ports.
const lowestPort = 10000

// FreePort returns a TCP port on host that nothing listens on, for a server
// that binds it a moment later. FreePorts gives several at once.
func FreePort(host string) (int, error) {
	ports, err := FreePorts(host, 1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns n distinct TCP ports on host that nothing listens on,
// none of them in avoid, for servers that bind them a moment later
// (Temporal opens its own listeners from its configuration, so it cannot
// be handed them).
//
// Each port is held until all are chosen, so none is handed out twice. A
// port picked and closed at once can come back on a later pick, and two of
// one Temporal server's eight ports colliding is the likeliest reason (not
// reproduced) why one of its binds failed in CI on 3654867 and 99517a2:
// "Failed to start gRPC listener", which the server's no-op logger does not
// make fatal, then Serve's nil listener took the test binary down.
//
// The ports come from below the kernel's ephemeral range, where no outgoing
// connection of any process takes them before the server binds them; only
// another process picking as this one does could, at random among more than
// 20,000.
func FreePorts(host string, n int, avoid ...int) ([]int, error) {
	lo, hi := lowestPort, ephemeralLow()
	var (
		ports []int
		held  []net.Listener
	)
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		addr := net.JoinHostPort(host, "0")
		if tries < 50*n {
			port := lo + rand.IntN(hi-lo)
			if slices.Contains(avoid, port) {
				continue
			}
			addr = net.JoinHostPort(host, strconv.Itoa(port))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if tries < 50*n {
				continue // in use
			}
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		held = append(held, l)
		if port := l.Addr().(*net.TCPAddr).Port; !slices.Contains(avoid, port) {
			ports = append(ports, port)
		}
	}
	return ports, nil
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
