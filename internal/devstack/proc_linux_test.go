package devstack

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	fields := make([]string, 50)
	for i := range fields {
		fields[i] = strconv.Itoa(i + 3)
	}
	fields[0] = "S"
	state, start, err := parseStat([]byte("42 (a (b) c) " + strings.Join(fields, " ") + "\n"))
	if err != nil || state != 'S' || start != 22 {
		t.Errorf("parseStat = %c, %d, %v; want S, 22", state, start, err)
	}
	if _, _, err := parseStat([]byte("42 (x) S 1 2")); err == nil {
		t.Error("short line parsed")
	}
}
