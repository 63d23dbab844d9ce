package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.temporal.io/api/serviceerror"
)

var errDown = errors.New("connection refused")

func TestStartupRetryWaitsUntilTheDependencyAnswers(t *testing.T) {
	var logs bytes.Buffer
	calls := 0
	err := StartupRetry(context.Background(), time.Minute, "NATS at nats://x:4222", zerolog.New(&logs), func(context.Context) error {
		if calls++; calls < 3 {
			return errDown
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err = %v after %d calls, want nil after 3", err, calls)
	}
	// Two warnings, one per failure, naming what is awaited and why; then
	// the success.
	if n := strings.Count(logs.String(), `"message":"waiting for NATS at nats://x:4222"`); n != 2 {
		t.Errorf("%d waiting warnings, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"error":"connection refused"`) || !strings.Contains(logs.String(), `{"level":"info","attempts":3,"message":"reached NATS at nats://x:4222"}`) {
		t.Errorf("log lacks the error or the success:\n%s", logs.String())
	}
}

func TestStartupRetryGivesUpAfterTheWaitWithTheLastError(t *testing.T) {
	calls := 0
	start := time.Now()
	err := StartupRetry(context.Background(), 600*time.Millisecond, "Temporal", zerolog.Nop(), func(context.Context) error {
		calls++
		return fmt.Errorf("attempt %d: %w", calls, errDown)
	})
	took := time.Since(start)
	if !errors.Is(err, errDown) || !strings.Contains(err.Error(), fmt.Sprintf("attempt %d:", calls)) {
		t.Fatalf("err = %v, want the last attempt's error", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("gave up after %d attempts", calls)) || !strings.Contains(err.Error(), "--startup-wait") {
		t.Errorf("err = %v, want the attempts and the flag named", err)
	}
	// 250 ms, then 350 ms (what is left of 600): three attempts, and no
	// sleep past the wait.
	if calls != 3 || took < 600*time.Millisecond || took > 2*time.Second {
		t.Errorf("%d attempts in %s, want 3 in about 600ms", calls, took)
	}
}

func TestStartupRetryTriesOnceWithoutAWait(t *testing.T) {
	calls := 0
	err := StartupRetry(context.Background(), 0, "Temporal", zerolog.Nop(), func(context.Context) error { calls++; return errDown })
	if calls != 1 || !errors.Is(err, errDown) || err.Error() != errDown.Error() {
		t.Errorf("%d calls, err = %v; want 1 call and the error as it is", calls, err)
	}
}

func TestStartupRetryStopsAtARefusal(t *testing.T) {
	for _, refusal := range []error{
		serviceerror.NewPermissionDenied("no rights to add search attributes", ""),
		serviceerror.NewInvalidArgument("bad namespace name"),
		fmt.Errorf("dispatch: create or update stream ALERTS: %w", &jetstream.APIError{Code: 400, ErrorCode: 10065, Description: "subjects overlap with an existing stream"}),
		fmt.Errorf("wrapped: %w", noRetry{errDown}),
	} {
		calls := 0
		err := StartupRetry(context.Background(), time.Minute, "x", zerolog.Nop(), func(context.Context) error { calls++; return UnlessRefused(refusal) })
		if calls != 1 || err == nil || err.Error() != refusal.Error() {
			t.Errorf("%v: %d calls, err = %v; want one call and the refusal's own message", refusal, calls, err)
		}
	}
	// What waiting can cure is retried: JetStream not there yet, Temporal
	// unavailable, a namespace still being created.
	for _, transient := range []error{
		jetstream.ErrJetStreamNotEnabled,
		&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"},
		serviceerror.NewUnavailable("frontend rolling over"),
		serviceerror.NewNamespaceNotFound("default"),
		context.DeadlineExceeded,
	} {
		if errors.Is(UnlessRefused(transient), ErrNoRetry) {
			t.Errorf("%v: marked not to be retried", transient)
		}
	}
}

func TestStartupRetryStopsWhenTheProcessIsStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := StartupRetry(ctx, time.Hour, "Temporal", zerolog.Nop(), func(context.Context) error { return errDown })
	if !errors.Is(err, errDown) || !strings.Contains(err.Error(), "stopped while waiting") {
		t.Errorf("err = %v, want the last error and why it stopped", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stopped after %s, want at once", took)
	}
}
