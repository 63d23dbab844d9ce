package workflows

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Deliveries names the JetStream messages one coalesced AlertSignal stands
// for. The incident counts each message once, however often it is
// delivered, by remembering the sequences it counted above the stream's
// acknowledgement floor.
type Deliveries struct {
	// Stream is the JetStream stream the messages came from.
	Stream string `json:"stream"`
	// Epoch tells one life of the stream from the next (its creation time):
	// a recreated stream numbers its messages from 1 again.
	Epoch string `json:"epoch,omitempty"`
	// Floor is a stream sequence at or below which every message was
	// already acknowledged, so was counted by every incident it belongs to,
	// and is never delivered again. The dispatcher reads it from the
	// consumer; zero means unknown.
	Floor uint64 `json:"floor,omitempty"`
	// Seqs are the stream sequences of the messages.
	Seqs SeqList `json:"seqs"`
}

// maxCounted bounds the sequences an incident remembers above the floor.
// The floor rises as messages are acknowledged, so the set holds only the
// messages still in flight somewhere; the bound matters only when one
// message stays unacknowledged while thousands of later ones are counted.
// Then the oldest sequences are forgotten, and a redelivery of one of them
// (possible only after a dispatcher died holding it) would count twice.
const maxCounted = 16384

// CountedSet remembers which messages of one stream an incident counted.
type CountedSet struct {
	Stream string `json:"stream"`
	Epoch  string `json:"epoch,omitempty"`
	// Floor: every message at or below it was acknowledged (see
	// Deliveries.Floor), so is either counted or not the incident's.
	Floor uint64 `json:"floor,omitempty"`
	// Seqs are the counted sequences above Floor.
	Seqs SeqList `json:"seqs,omitempty"`
}

// add records d's messages and returns how many of them were new.
func (c *CountedSet) add(d Deliveries) int {
	if c.Stream != d.Stream || c.Epoch != d.Epoch {
		// A different stream, or the same stream recreated: its sequences
		// say nothing about the ones counted before.
		*c = CountedSet{Stream: d.Stream, Epoch: d.Epoch}
	}
	if d.Floor > c.Floor {
		c.Floor = d.Floor
		i, _ := slices.BinarySearch(c.Seqs, c.Floor+1)
		c.Seqs = slices.Delete(c.Seqs, 0, i)
	}
	fresh := 0
	for _, s := range d.Seqs {
		if s <= c.Floor {
			// Acknowledged already, so counted when it was.
			continue
		}
		i, found := slices.BinarySearch(c.Seqs, s)
		if found {
			continue
		}
		c.Seqs = slices.Insert(c.Seqs, i, s)
		fresh++
	}
	if over := len(c.Seqs) - maxCounted; over > 0 {
		c.Floor = c.Seqs[over-1]
		c.Seqs = slices.Delete(c.Seqs, 0, over)
	}
	return fresh
}

// SeqList is a sorted list of distinct stream sequences. In JSON it is one
// string: the gaps between consecutive sequences as unsigned varints,
// base64-encoded, so a thousand interleaved sequences take a few KiB rather
// than a number each.
type SeqList []uint64

// NewSeqList returns the distinct values of seqs, sorted.
func NewSeqList(seqs []uint64) SeqList {
	out := slices.Clone(seqs)
	slices.Sort(out)
	return SeqList(slices.Compact(out))
}

// MarshalJSON encodes l as a base64 string of varint gaps.
func (l SeqList) MarshalJSON() ([]byte, error) {
	buf := make([]byte, 0, len(l)*2)
	prev := uint64(0)
	for i, s := range l {
		if i > 0 && s <= prev {
			return nil, fmt.Errorf("workflows: sequence list not sorted and distinct at %d", i)
		}
		buf = binary.AppendUvarint(buf, s-prev)
		prev = s
	}
	return json.Marshal(base64.RawStdEncoding.EncodeToString(buf))
}

// maxSeqListBytes bounds a decoded list: a signal can never carry more.
const maxSeqListBytes = 4 << 20

// UnmarshalJSON decodes what MarshalJSON encodes.
func (l *SeqList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("workflows: sequence list: %w", err)
	}
	if len(s) > maxSeqListBytes {
		return errors.New("workflows: sequence list too long")
	}
	raw, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("workflows: sequence list: %w", err)
	}
	out := SeqList{}
	prev := uint64(0)
	for len(raw) > 0 {
		gap, n := binary.Uvarint(raw)
		if n <= 0 || (len(out) > 0 && gap == 0) || prev+gap < prev {
			return errors.New("workflows: sequence list: malformed")
		}
		prev += gap
		out = append(out, prev)
		raw = raw[n:]
	}
	*l = out
	return nil
}
