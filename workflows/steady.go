package workflows

import (
	"cmp"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// steadyVersion guards the steady incident: alerts are counted as they
// arrive, even while a step runs (a 30-minute approval, a wait), and close
// and release act at once, interrupting a pending approval or wait instead
// of queueing behind it. Before it, signals were read only between steps.
const steadyVersion = "steady-intake"

// ErrTypeInterrupted is the error type of an approval or wait step that a
// close or release interrupted.
const ErrTypeInterrupted = "Interrupted"

// OutcomeInterrupted is the outcome of an approval that a close or release
// ended before anyone decided.
const OutcomeInterrupted = "interrupted"

// stopInterrupted is what a step run returns when a close or release
// interrupted it; it is never an incident status.
const stopInterrupted = "interrupted"

// stopRequest is a close or release that arrived; the steps check it
// between steps and while they wait.
type stopRequest struct {
	close, release string
}

// take records a stop request; the first close and the first release
// count.
func (r *stopRequest) take(s StopRequest) {
	switch {
	case s.Release && r.release == "":
		r.release = cmp.Or(s.Reason, "released on request") + " (by " + s.By + ")"
	case !s.Release && r.close == "":
		r.close = cmp.Or(s.Reason, "closed on request") + " (by " + s.By + ")"
	}
}

// interrupted reports whether a close or release waits to act. It is always
// false on incidents that started before steadyVersion.
func (s *steps) interrupted() bool {
	return s.stop != nil && (s.stop.close != "" || s.stop.release != "")
}

// interruption is the error of a step that a stop request interrupted.
func (s *steps) interruption(step string) error {
	what := "closed: " + s.stop.close
	if s.stop.release != "" {
		what = "released: " + s.stop.release
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("step %q interrupted: the incident was %s", step, what), ErrTypeInterrupted, nil)
}

// respondSteady is Respond from the first alert on, for incidents under
// steadyVersion. One coroutine takes in every signal as it arrives: alerts
// are counted at once and a close or release is recorded and wakes the
// main coroutine, which runs the steps and the quiet window.
func respondSteady(run *steps, window time.Duration) (*IncidentState, error) {
	ctx, st := run.ctx, run.st
	// The first alert's count is published before the steps run, which may
	// wait for an approval for a long time.
	st.publishing = changeVersion(ctx, countsVersion) >= 1
	st.publishCounts(ctx)
	alerts := workflow.GetSignalChannel(ctx, SignalAlert)
	closing := workflow.GetSignalChannel(ctx, SignalClose)
	releasing := workflow.GetSignalChannel(ctx, SignalRelease)
	req := &stopRequest{}
	run.stop = req
	wake := workflow.NewBufferedChannel(ctx, 1)
	if st.guard != nil {
		keys := st.guard.keys
		err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateStop,
			func(ctx workflow.Context, r StopRequest) error {
				req.take(r)
				wake.SendAsync(struct{}{})
				return nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, r StopRequest) error { return st.validateStop(keys, r) }},
		)
		if err != nil {
			return nil, fmt.Errorf("register stop update: %w", err)
		}
	}
	joined := false // an alert joined since the main coroutine last looked
	absorbed := 0
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(alerts, func(c workflow.ReceiveChannel, _ bool) {
				var sig AlertSignal
				c.Receive(ctx, &sig)
				st.addAlert(ctx, sig)
				absorbed++
				joined = true
				// While the steps run the main loop does not publish:
				// an alert that finds the count's interval over does.
				if st.countsWait(workflow.Now(ctx)) == 0 {
					st.publishCounts(ctx)
				}
			})
			sel.AddReceive(closing, func(c workflow.ReceiveChannel, _ bool) {
				var reason string
				c.Receive(ctx, &reason)
				if st.guard.isStrict() {
					st.refuse(ctx, "close signal", "a signal carries no proof: close with the stop Update, through soar")
					return
				}
				if reason == "" {
					reason = "closed on request"
				}
				if req.close == "" {
					req.close = reason
				}
			})
			sel.AddReceive(releasing, func(c workflow.ReceiveChannel, _ bool) {
				var reason string
				c.Receive(ctx, &reason)
				if st.guard.isStrict() {
					st.refuse(ctx, "release signal", "a signal carries no proof: release with the stop Update, through soar")
					return
				}
				if reason == "" {
					reason = "released on request"
				}
				if req.release == "" {
					req.release = reason
				}
			})
			sel.Select(ctx)
			wake.SendAsync(struct{}{})
		}
	})

	if !st.StepsDone {
		outcome := run.runAll()
		st.StepsDone = true
		if outcome != stopInterrupted {
			if err := setStatus(ctx, st, outcome); err != nil {
				return nil, err
			}
		}
	}

	var timer, ticketTimer, countsTimer workflow.Future
	for {
		switch {
		case req.release != "":
			return run.releaseAndFinish(alerts, req.release)
		case req.close != "":
			return run.closeAndFinish(alerts, req.close)
		}
		if joined {
			joined = false
			if recheckAllowed(ctx, st) {
				// A joining alert may make a skipped step's condition true.
				if err := recheckSteady(run); err != nil {
					return nil, err
				}
				continue // the recheck may have been interrupted
			}
		}
		if absorbed >= continueAfter || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return run.continueAsNew(alerts)
		}
		remaining := st.LastAlertAt.Add(window).Sub(workflow.Now(ctx))
		if remaining <= 0 {
			drain(ctx, alerts, st)
			if st.LastAlertAt.Add(window).After(workflow.Now(ctx)) {
				continue
			}
			reason := fmt.Sprintf("no new alert for %s", window)
			if err := run.settle(reason); err != nil {
				return nil, err
			}
			return finish(ctx, st, reason)
		}
		// The alert count goes to the search attributes at most every
		// countsEvery.
		if countsTimer == nil {
			switch wait := st.countsWait(workflow.Now(ctx)); {
			case wait == 0:
				st.publishCounts(ctx)
			case wait > 0:
				countsTimer = workflow.NewTimer(ctx, wait)
			}
		}
		// News for the ticket go out in one comment per interval.
		if ticketTimer == nil && st.ticketDue() {
			ticketTimer = workflow.NewTimer(ctx, run.commentEvery())
		}
		// One timer covers the quiet window: alerts only move LastAlertAt,
		// and when the timer fires the window is measured again. A storm
		// costs one timer per window, not one per alert.
		if timer == nil {
			timer = workflow.NewTimer(ctx, remaining)
		}
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(wake, func(c workflow.ReceiveChannel, _ bool) { c.ReceiveAsync(nil) })
		sel.AddFuture(timer, func(workflow.Future) { timer = nil })
		if ticketTimer != nil {
			sel.AddFuture(ticketTimer, func(workflow.Future) {
				ticketTimer = nil
				run.flushTicket(false, "")
			})
		}
		if countsTimer != nil {
			sel.AddFuture(countsTimer, func(workflow.Future) { countsTimer = nil })
		}
		sel.Select(ctx)
	}
}

// recheckSteady is recheck for steady incidents: an interrupted recheck
// leaves the status to the close or release that interrupted it.
func recheckSteady(run *steps) error {
	status := run.recheck()
	if status == stopInterrupted {
		return nil
	}
	if status == "" {
		status = run.settled()
	}
	if status == run.st.Status {
		return nil
	}
	return setStatus(run.ctx, run.st, status)
}
