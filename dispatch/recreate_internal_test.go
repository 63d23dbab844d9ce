package dispatch

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestADeletedStreamSettlesBeforeItIsCreatedAgain: a stream found deleted
// is created again only once it has been gone for streamSettle, counted
// from when it was first found gone, again from a failed creation, and
// afresh once it was found there again.
func TestADeletedStreamSettlesBeforeItIsCreatedAgain(t *testing.T) {
	var g goneStreams
	t0 := time.Unix(1000, 0)
	for _, step := range []struct {
		at   time.Duration
		want bool
	}{{0, false}, {time.Second, false}, {streamSettle - time.Millisecond, false}, {streamSettle, true}, {3 * time.Second, true}} {
		if got := g.settled("S", t0.Add(step.at)); got != step.want {
			t.Errorf("found gone %s after the first time: settled %v, want %v", step.at, got, step.want)
		}
	}
	if g.settled("T", t0.Add(3*time.Second)) {
		t.Error("another stream settled at once")
	}
	g.forget("S", true, t0.Add(3*time.Second))
	if g.settled("S", t0.Add(4*time.Second)) || !g.settled("S", t0.Add(5*time.Second)) {
		t.Error("a stream to create afresh did not wait streamSettle again")
	}
	g.forget("S", false, t0)
	if g.settled("S", t0.Add(10*time.Second)) {
		t.Error("a stream created again was still remembered as gone")
	}
	// Found gone, then found there (somebody else created it): a deletion
	// a minute later waits streamSettle again.
	g.present("S")
	if g.settled("S", t0.Add(70*time.Second)) {
		t.Error("a stream found there again was still remembered as gone since its earlier deletion")
	}
}

// TestAStreamOnADeletedOnesFilesIsTold: a stream whose last message is
// older than the stream opened the files of a deleted one of its name;
// one that never stored a message, or only after its creation, did not.
func TestAStreamOnADeletedOnesFilesIsTold(t *testing.T) {
	created := time.Unix(2000, 0)
	for _, tc := range []struct {
		name  string
		state jetstream.StreamState
		want  bool
	}{
		{"new and empty", jetstream.StreamState{}, false},
		{"stored after its creation", jetstream.StreamState{LastSeq: 3, LastTime: created.Add(time.Millisecond)}, false},
		{"the deleted one's last message", jetstream.StreamState{FirstSeq: 6, LastSeq: 5, LastTime: created.Add(-time.Second)}, true},
	} {
		if got := openedDeleted(&jetstream.StreamInfo{Created: created, State: tc.state}); got != tc.want {
			t.Errorf("%s: openedDeleted %v, want %v", tc.name, got, tc.want)
		}
	}
}
