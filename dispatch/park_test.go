package dispatch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
)

func TestCapFloorHoldsTheFloorBelowParkedAlerts(t *testing.T) {
	for _, tc := range []struct {
		ack  uint64
		p    ParkedState
		want uint64
	}{
		{100, ParkedState{}, 100},
		{100, ParkedState{Waiting: 3, FloorCap: 40, Epoch: "1"}, 40},
		{100, ParkedState{Waiting: 1, FloorCap: 0, Epoch: "1"}, 0},
		// A cap above the consumer's floor (a forged header) never raises it.
		{100, ParkedState{Waiting: 1, FloorCap: 5000, Epoch: "1"}, 100},
		// The oldest parked alert is of the stream's earlier life: the
		// current life's parked alerts, behind it, recorded floors nobody
		// read.
		{100, ParkedState{Waiting: 2, FloorCap: 90, Epoch: "0"}, 0},
		// A forged oldest message (no epoch read).
		{100, ParkedState{Waiting: 1}, 0},
	} {
		if got := capFloor(tc.ack, "1", tc.p); got != tc.want {
			t.Errorf("capFloor(%d, %+v) = %d, want %d", tc.ack, tc.p, got, tc.want)
		}
	}
}

// TestParkKeepsTheAlertsIdentity, on a real NATS server: a parked alert
// carries the original's stream, sequence, subject and publication time and
// the floor its dispatcher knew, under a proof; the original is
// acknowledged; parking the same original again stores nothing new; and a
// copy whose sequence, subject or body was changed is refused.
func TestParkKeepsTheAlertsIdentity(t *testing.T) {
	ctx := context.Background()
	js, d, msgs := parkFixture(t, "a", "b", "ghost")
	if err := d.observe(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs[:2] {
		_ = m.Ack()
	}
	ghost := msgs[2]
	meta, err := ghost.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	// The floor the dispatcher knows is below the unacknowledged ghost.
	waitFloor(t, d, 2)
	for range 2 { // the second time, as after a redelivery
		if !d.park(ctx, ghost, meta, d.currentLife(), zerolog.Nop()) {
			t.Fatal("park refused")
		}
	}
	p, err := ReadParked(ctx, js, d.cfg.ParkedStream, nil)
	if err != nil || p.Waiting != 1 || p.FloorCap != 2 {
		t.Fatalf("parked stream %+v, %v; want one alert recording floor 2", p, err)
	}
	// The acknowledgement is not awaited (Ack, not DoubleAck): the server
	// may take a moment to apply it.
	testenv.Eventually(t, 10*time.Second, "the original acknowledged", func() error {
		if b, err := ReadBacklog(ctx, js, d.cfg.Stream, d.cfg.Consumer); err != nil || b.Waiting != 0 {
			return fmt.Errorf("alert stream after parking: %+v, %w", b, err)
		}
		return nil
	})

	parkedCons, err := js.Consumer(ctx, d.cfg.ParkedStream, d.cfg.ParkedConsumer)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := parkedCons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.unpark(pm)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stream != d.cfg.Stream || got.Seq != meta.Sequence.Stream || got.Subject != "falco.notice.x" || got.Floor != 2 ||
		got.Time != meta.Timestamp.UnixNano() || got.Epoch != d.epoch() {
		t.Errorf("unparked %+v, want the original's identity (seq %d)", got, meta.Sequence.Stream)
	}

	for name, change := range map[string]func(m *nats.Msg){
		"another sequence": func(m *nats.Msg) { m.Header.Set(HeaderOriginalSeq, "1") },
		"another subject":  func(m *nats.Msg) { m.Header.Set(HeaderOriginalSubject, "clusters.prod.falco.x") },
		"another body": func(m *nats.Msg) {
			m.Data = []byte(`{"id":"ghost","rule":"unit","kubernetes":{"namespace":"kube-system","pod":"x"}}`)
		},
		"a higher floor": func(m *nats.Msg) { m.Header.Set(HeaderFloor, "99") },
		"no proof":       func(m *nats.Msg) { m.Header.Del(HeaderProof) },
	} {
		forged := nats.NewMsg(d.cfg.ParkedSubject)
		forged.Data = pm.Data()
		for k, v := range pm.Headers() {
			forged.Header[k] = v
		}
		forged.Header.Del(nats.MsgIdHdr)
		change(forged)
		if _, err := js.PublishMsg(ctx, forged); err != nil {
			t.Fatal(err)
		}
		fm, err := parkedCons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		_ = fm.Ack()
		if _, err := d.unpark(fm); err == nil || !strings.Contains(err.Error(), "proof") {
			t.Errorf("%s: unpark = %v, want a refusal of its proof", name, err)
		}
	}
}

// TestAForgedParkedMessageCannotRaiseTheFloor: a message someone else put
// on the parked subject, claiming a floor far above the consumer's, holds
// the floor the dispatcher sends at 0 while it is the oldest there (until
// it is pulled and dead-lettered); it never lifts the floor past parked
// alerts, which would make incidents skip them.
func TestAForgedParkedMessageCannotRaiseTheFloor(t *testing.T) {
	ctx := context.Background()
	js, d, msgs := parkFixture(t, "a", "b", "c")
	for _, m := range msgs {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	forged := nats.NewMsg(d.cfg.ParkedSubject)
	forged.Data = []byte(`{"id":"x","rule":"unit"}`)
	forged.Header.Set(HeaderFloor, "99999")
	forged.Header.Set(HeaderProof, "v1.0123456789ab.forged")
	if _, err := js.PublishMsg(ctx, forged); err != nil {
		t.Fatal(err)
	}
	if err := d.observe(ctx); err != nil {
		t.Fatal(err)
	}
	if f := d.floor(); f != 0 {
		t.Errorf("floor %d with a forged message oldest in the parked stream, want 0", f)
	}
	if p, err := ReadParked(ctx, js, d.cfg.ParkedStream, nil); err != nil || p.FloorCap != 99999 {
		t.Fatalf("the forged message's floor as read unchecked: %+v, %v", p, err)
	}
}

// TestTheFloorStaysBelowParkedAlertsOfANewLife, on a real NATS server: an
// alert parked with the floor 2 still waits when the alert stream is
// deleted and created again, and an alert of the new stream is parked
// behind it with the floor 0 while the new stream's floor passes it. The
// floor sent with signals must stay below that alert, or its incident
// would take it as counted when it is unparked. The oldest parked alert's
// floor is the old stream's and says nothing of the new one's, so the
// floor is held at 0 until it has gone; before, it was the smaller of the
// two floors (2), above the new parked alert's sequence 1.
func TestTheFloorStaysBelowParkedAlertsOfANewLife(t *testing.T) {
	ctx := context.Background()
	js, d, msgs := parkFixture(t, "a", "b", "ghost")
	for _, m := range msgs[:2] {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	park := func(m jetstream.Msg) {
		t.Helper()
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if !d.park(ctx, m, meta, d.currentLife(), zerolog.Nop()) {
			t.Fatal("park refused")
		}
	}
	waitFloor(t, d, 2)
	park(msgs[2])
	before := d.epoch()

	if err := js.DeleteStream(ctx, d.cfg.Stream); err != nil {
		t.Fatal(err)
	}
	time.Sleep(streamSettle)
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.beginLife(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pod := range []string{"new-ghost", "c", "d"} {
		if _, err := js.Publish(ctx, "falco.notice.x", []byte(`{"id":"`+pod+`","rule":"unit","kubernetes":{"namespace":"ns","pod":"`+pod+`"}}`)); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.Consumer(ctx, d.cfg.Stream, d.cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var fresh []jetstream.Msg
	for m := range batch.Messages() {
		fresh = append(fresh, m)
	}
	if len(fresh) != 3 {
		t.Fatalf("%d of 3 alerts of the new stream delivered", len(fresh))
	}
	park(fresh[0])
	for _, m := range fresh[1:] {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "the new stream's floor passes every alert", func() error {
		if b, err := ReadBacklog(ctx, js, d.cfg.Stream, d.cfg.Consumer); err != nil || b.AckFloor != 3 {
			return fmt.Errorf("backlog %+v: %w", b, err)
		}
		return nil
	})
	p, err := ReadParked(ctx, js, d.cfg.ParkedStream, nil)
	if err != nil || p.Waiting != 2 || p.Epoch != before || p.FloorCap != 2 {
		t.Fatalf("parked %+v, %v; want the old stream's alert (floor 2, epoch %s) first of two", p, err, before)
	}
	if err := d.observe(ctx); err != nil {
		t.Fatal(err)
	}
	if d.epoch() == before {
		t.Fatal("the new stream's life did not begin")
	}
	if f := d.floor(); f != 0 {
		t.Errorf("floor %d with the new stream's alert of sequence 1 parked behind the old stream's: an incident would take it as counted", f)
	}
}

// waitFloor reads the backlog until the floor d sends is want.
func waitFloor(t *testing.T, d *Dispatcher, want uint64) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "the floor passes the acknowledged alerts", func() error {
		if err := d.observe(context.Background()); err != nil {
			return err
		}
		if f := d.floor(); f != want {
			return fmt.Errorf("floor %d, want %d", f, want)
		}
		return nil
	})
}

// parkFixture is a dispatcher's streams on a real NATS server, with an
// alert published for each pod and delivered, in that order, unacknowledged.
func parkFixture(t *testing.T, pods ...string) (jetstream.JetStream, *Dispatcher, []jetstream.Msg) {
	t.Helper()
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d := New(js, nil, nil, metrics.New(), zerolog.Nop(), Config{Keys: testenv.SigningKeys()})
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pod := range pods {
		if _, err := js.Publish(ctx, "falco.notice.x", []byte(`{"id":"`+pod+`","rule":"unit","kubernetes":{"namespace":"ns","pod":"`+pod+`"}}`)); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.Consumer(ctx, d.cfg.Stream, d.cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(len(pods), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != len(pods) {
		t.Fatalf("%d of %d alerts delivered", len(msgs), len(pods))
	}
	return js, d, msgs
}
