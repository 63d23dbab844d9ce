package devstack

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortIsBelowTheEphemeralRange: the ports FreePort hands out are
// ones no outgoing connection can take (below the kernel's ephemeral
// range), and free: the server can bind them.
func TestFreePortIsBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		port, err := FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if port < lowestPort || port >= low {
			t.Fatalf("FreePort = %d, want in [%d, %d)", port, lowestPort, low)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("bind the port FreePort returned: %v", err)
		}
		_ = l.Close()
	}
}

func TestParseEphemeralLow(t *testing.T) {
	for _, c := range []struct {
		text string
		want int
	}{
		{"32768\t60999\n", 32768},
		{"40000 65000\n", 40000},
		{"1024 65000\n", 99},  // too few ports below it
		{"70000 80000\n", 99}, // not a port
		{"", 99},
		{"x y", 99},
	} {
		if got := parseEphemeralLow(c.text, 99, 15000); got != c.want {
			t.Errorf("parseEphemeralLow(%q) = %d, want %d", c.text, got, c.want)
		}
	}
}

// TestFreePortsAreDistinct: the ports of one server never repeat, nor
// repeat the one it already has (two of a Temporal server's ports once
// collided and its bind failed).
func TestFreePortsAreDistinct(t *testing.T) {
	first, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ports, err := FreePorts("127.0.0.1", 500, first)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{first: true}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d handed out twice: %v", p, ports)
		}
		seen[p] = true
	}
	if len(ports) != 500 {
		t.Errorf("%d ports, want 500", len(ports))
	}
}
