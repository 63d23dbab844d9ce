package dispatch

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
)

func TestBacklogCheckIsDegradedWhileTheOldestAlertWaitsTooLong(t *testing.T) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	d := New(js, nil, nil, metrics.New(), zerolog.Nop(), Config{BacklogWarnAge: 50 * time.Millisecond})
	if err := d.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	var deg *httpserver.Degraded
	if err := d.BacklogCheck(ctx); !errors.As(err, &deg) || !strings.Contains(err.Error(), "not read yet") {
		t.Errorf("before the first read: %v", err)
	}
	if err := d.observe(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.BacklogCheck(ctx); err != nil {
		t.Errorf("empty backlog: %v", err)
	}
	if _, err := js.Publish(ctx, "alerts.unit", []byte(`{"id":"a","rule":"unit"}`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := d.observe(ctx); err != nil {
		t.Fatal(err)
	}
	err := d.BacklogCheck(ctx)
	if !errors.As(err, &deg) || !strings.Contains(err.Error(), "1 alerts waiting, the oldest for") {
		t.Errorf("an alert waiting 100 ms with a warning age of 50 ms: %v", err)
	}
	if b, ok := d.Backlog(); !ok || b.Waiting != 1 || b.Undelivered != 1 || d.floor.Load() != 0 || d.epoch() == "" {
		t.Errorf("backlog %+v, floor %d, epoch %q", b, d.floor.Load(), d.epoch())
	}
}
