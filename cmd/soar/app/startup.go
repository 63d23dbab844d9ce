package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.temporal.io/api/serviceerror"
)

// DefaultStartupWait is how long a long-running part keeps trying to reach
// Temporal and NATS at start before it exits: under the 60 s that the
// manifests' startupProbe allows, so that the process exits with the reason
// on standard error before the kubelet kills it without one.
const DefaultStartupWait = 45 * time.Second

// Backoff between attempts: the first retry comes after startupFirstDelay,
// each next one after twice the last, never more than startupMaxDelay apart.
const (
	startupFirstDelay = 250 * time.Millisecond
	startupMaxDelay   = 5 * time.Second
)

// ErrNoRetry marks an error that waiting cannot cure (a certificate file
// that does not load, say): StartupRetry returns it at once.
var ErrNoRetry = errors.New("not retried")

// StartupRetry calls try until it succeeds, returns an error wrapping
// ErrNoRetry, ctx ends, or wait has passed since the first call. Each failure
// before the last is logged as a warning naming what is awaited, the error
// and when the next attempt comes, so that an operator watching a part that
// is not ready yet sees why. A wait of 0 or less tries once.
//
// It is for start-up only: a dependency that is down when a part starts (a
// NATS cluster electing its JetStream leader, a Temporal frontend rolling
// over) costs the part a few seconds of retries instead of an exit and the
// supervisor's restart back-off, which grows to five minutes in Kubernetes.
// The error returned is try's last, with the number of attempts and the wait
// when there was more than one.
func StartupRetry(ctx context.Context, wait time.Duration, what string, log zerolog.Logger, try func(context.Context) error) error {
	deadline := time.Now().Add(wait)
	delay := startupFirstDelay
	for attempt := 1; ; attempt++ {
		err := try(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info().Int("attempts", attempt).Msg("reached " + what)
			}
			return nil
		}
		left := time.Until(deadline)
		if errors.Is(err, ErrNoRetry) || left <= 0 || ctx.Err() != nil {
			if attempt == 1 {
				return err
			}
			return fmt.Errorf("%w (gave up after %d attempts in %s; --startup-wait)", err, attempt, wait.Round(time.Second))
		}
		d := min(delay, left)
		log.Warn().Err(err).Int("attempt", attempt).
			Dur("retry_in", d.Round(time.Millisecond)).Dur("giving_up_in", left.Round(time.Second)).
			Msg("waiting for " + what)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (stopped while waiting: %w)", err, context.Cause(ctx))
		case <-t.C:
		}
		delay = min(2*delay, startupMaxDelay)
	}
}

// NoRetry marks err as one StartupRetry returns at once, with err's own
// message.
func NoRetry(err error) error { return noRetry{err} }

// noRetry is an error StartupRetry returns at once; its message is the
// error's own.
type noRetry struct{ error }

func (e noRetry) Unwrap() error        { return e.error }
func (e noRetry) Is(target error) bool { return target == ErrNoRetry }

// UnlessRefused marks err as not worth waiting for when a server that did
// answer refused the request for a reason time does not change: Temporal
// denying permission or calling the request invalid, or a JetStream API error
// other than 503 (JetStream not available yet, a leader being elected).
// Anything else, including timeouts and a Temporal namespace not found (an
// install still creating it), is returned as it is, and retried.
func UnlessRefused(err error) error {
	var (
		denied  *serviceerror.PermissionDenied
		invalid *serviceerror.InvalidArgument
		api     *jetstream.APIError
		jsErr   jetstream.JetStreamError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &denied), errors.As(err, &invalid):
		return noRetry{err}
	case errors.As(err, &api) && api.Code != http.StatusServiceUnavailable:
		return noRetry{err}
	case errors.As(err, &jsErr) && jsErr.APIError() != nil && jsErr.APIError().Code != http.StatusServiceUnavailable:
		return noRetry{err}
	}
	return err
}
