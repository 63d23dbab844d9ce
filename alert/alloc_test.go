package alert

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// allocated returns the bytes allocated while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// hostileShapes are messages of at most 1 MiB that make the decoder work
// hardest for their size: many tiny values, many keys, long strings.
func hostileShapes() map[string][]byte {
	fill := func(prefix, item, suffix string, n int) []byte {
		return []byte(prefix + strings.TrimSuffix(strings.Repeat(item, n), ",") + suffix)
	}
	max := DefaultLimits.MaxValues - 10
	keys := func(n, valueLen int) []byte {
		var b strings.Builder
		b.WriteString(`{"rule":"r","output_fields":{`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"k%d":"%s"`, i, strings.Repeat("v", valueLen))
		}
		b.WriteString("}}")
		return []byte(b.String())
	}
	return map[string][]byte{
		"half a million zeros":        fill(`{"rule":"r","output_fields":{"a":[`, "0,", "]}}", 500000),
		"a million-byte array of {}":  fill(`{"rule":"r","a":[`, "{},", "]}", 340000),
		"zeros just under the limit":  fill(`{"rule":"r","output_fields":{"a":[`, "0,", "]}}", max),
		"keys just under the limit":   keys(max, 1),
		"long values under the limit": keys(max, (DefaultLimits.MaxBytes-20*max)/max),
		"one 1 MiB string":            []byte(`{"rule":"r","output":"` + strings.Repeat("x", DefaultLimits.MaxBytes-40) + `"}`),
	}
}

// allocationBound is what Decode may allocate for data: a constant, and
// for each value and each byte a share. Measured on the shapes above, the
// worst is about 100 bytes per value (an array of zeros: each a json.Number
// boxed in an interface) and 6 per byte (long strings, copied by the parser
// and again into the Alert).
func allocationBound(data []byte) uint64 {
	values := 0
	if _, err := checkShape(data, Limits{MaxDepth: 1 << 30, MaxValues: 1 << 30}); err == nil {
		values = strings.Count(string(data), ",") + strings.Count(string(data), "{") + strings.Count(string(data), "[")
	}
	return 256<<10 + 200*uint64(values) + 8*uint64(len(data))
}

// decodeBudget is the most one Decode of a message within DefaultLimits may
// allocate; docs/operations.md adds it up for the dispatcher.
const decodeBudget = 8 << 20

func TestDecodeAllocationIsBoundedByWorkNotBytes(t *testing.T) {
	for name, msg := range hostileShapes() {
		t.Run(name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = Decode(msg, DefaultLimits) })
			t.Logf("%d bytes in, %d allocated, %v", len(msg), n, err)
			if err != nil && n > 64<<10 {
				t.Errorf("a rejected message allocated %d bytes, want it refused before parsing (≤ 64 KiB)", n)
			}
			if n > decodeBudget {
				t.Errorf("%d bytes allocated, over the %d-byte budget of one decode", n, decodeBudget)
			}
		})
	}
}

// FuzzAllocation checks that no message allocates more than its share:
// run with 'go test ./alert -run ^$ -fuzz FuzzAllocation'.
func FuzzAllocation(f *testing.F) {
	for _, msg := range hostileShapes() {
		if len(msg) < 64<<10 {
			f.Add(msg)
		}
	}
	f.Add([]byte(`{"rule":"r","output_fields":{"a":[0,0,0,0],"b":{"c":"d"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := allocated(func() { _, _ = Decode(data, DefaultLimits) })
		if bound := allocationBound(data); n > bound {
			t.Errorf("%d bytes allocated for %d bytes in, over the bound %d", n, len(data), bound)
		}
	})
}
