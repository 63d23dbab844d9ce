package workflows

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSeqListRoundTripsCompactly(t *testing.T) {
	for _, l := range []SeqList{nil, {1}, {1, 2, 3}, {7, 57, 107, 1 << 40, 1<<64 - 1}} {
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatalf("%v: %v", l, err)
		}
		var back SeqList
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%v: %s: %v", l, b, err)
		}
		if !slices.Equal(back, l) {
			t.Errorf("%v encoded as %s decodes to %v", l, b, back)
		}
	}
	// A thousand sequences interleaved with 49 other incidents' take one or
	// two bytes each, not a decimal number each.
	var l SeqList
	for i := range 1000 {
		l = append(l, 1_000_000+uint64(i)*50)
	}
	b, _ := json.Marshal(l)
	if len(b) > 1500 {
		t.Errorf("1000 sequences 50 apart encode to %d bytes", len(b))
	}
}

func TestSeqListRefusesWhatItCannotHaveWritten(t *testing.T) {
	if _, err := json.Marshal(SeqList{3, 2}); err == nil {
		t.Error("an unsorted list was encoded")
	}
	for _, in := range []string{`"AQA"`, `"!!"`, `7`, `"gICAgICAgICAgAE"`} {
		var l SeqList
		if err := json.Unmarshal([]byte(in), &l); err == nil {
			t.Errorf("%s decoded to %v", in, l)
		}
	}
}

func TestCountedSetCountsEachMessageOnce(t *testing.T) {
	var c CountedSet
	d := func(floor uint64, seqs ...uint64) Deliveries {
		return Deliveries{Stream: "S", Epoch: "1", Floor: floor, Seqs: NewSeqList(seqs)}
	}
	steps := []struct {
		in   Deliveries
		want int
	}{
		{d(0, 5, 9, 12), 3},
		{d(0, 9, 12, 14), 1},  // a redelivery inside a new batch
		{d(10, 9, 14, 20), 1}, // 9 is under the floor: acknowledged, so counted
		{d(10, 12), 0},
		{Deliveries{Stream: "S", Epoch: "2", Seqs: NewSeqList([]uint64{5})}, 1}, // the stream was recreated
	}
	for i, s := range steps {
		if got := c.add(s.in); got != s.want {
			t.Errorf("step %d: %d new, want %d (set %+v)", i, got, s.want, c)
		}
	}
	if c.Floor != 0 || !slices.Equal(c.Seqs, SeqList{5}) {
		t.Errorf("after the stream was recreated the set is %+v", c)
	}
}

// TestCountedSetIsExactUnderRandomRedelivery plays random deliveries the
// way JetStream makes them: each message delivered one or more times, in
// batches of any composition, with the floor below every message not yet
// acknowledged. The count must equal the number of distinct messages.
func TestCountedSetIsExactUnderRandomRedelivery(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 1))
		n := 1 + r.IntN(3000)
		var (
			c       CountedSet
			total   int
			acked   = make([]bool, n+1)
			floor   uint64
			pending []uint64
			next    uint64 = 1
		)
		for next <= uint64(n) || len(pending) > 0 {
			// New messages arrive; some earlier ones come again.
			var seqs []uint64
			for range r.IntN(50) {
				if next <= uint64(n) {
					seqs = append(seqs, next)
					pending = append(pending, next)
					next++
				}
			}
			for range r.IntN(5) {
				if len(pending) > 0 {
					seqs = append(seqs, pending[r.IntN(len(pending))])
				}
			}
			total += c.add(Deliveries{Stream: "S", Floor: floor, Seqs: NewSeqList(seqs)})
			// Some pending messages are acknowledged; the floor follows the
			// lowest one still pending.
			var still []uint64
			for _, s := range pending {
				if r.IntN(3) == 0 && slices.Contains(seqs, s) {
					acked[s] = true
					continue
				}
				still = append(still, s)
			}
			pending = still
			for floor+1 < uint64(len(acked)) && acked[floor+1] {
				floor++
			}
		}
		if total != n {
			t.Fatalf("seed %d: counted %d of %d distinct messages", seed, total, n)
		}
		if len(c.Seqs) > maxCounted {
			t.Fatalf("seed %d: %d sequences remembered", seed, len(c.Seqs))
		}
	}
}
