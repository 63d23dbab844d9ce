package main

import (
	"context"
	"io"
	"testing"
	"time"
)

// bgRun is a soar command that runBackground runs until it is stopped or
// the test ends.
type bgRun struct {
	t        *testing.T
	cancel   context.CancelFunc
	finished chan struct{} // closed once the command returned err
	err      error
	read     bool // the test read how it ended
}

// runBackground runs 'soar args...', its standard output to out (nil: the
// test's nothing), until stop or the end of the test; an error it returns
// then fails the test unless the test read it (exited, abandon).
func runBackground(t *testing.T, out io.Writer, args ...string) *bgRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	root := newRootCmd()
	if out != nil {
		root.SetOut(out)
	}
	root.SetArgs(args)
	r := &bgRun{t: t, cancel: cancel, finished: make(chan struct{})}
	go func() {
		defer close(r.finished)
		r.err = root.ExecuteContext(ctx)
	}()
	t.Cleanup(r.stop)
	return r
}

// stop stops the command and fails the test if it returned an error the
// test did not read.
func (r *bgRun) stop() {
	r.cancel()
	<-r.finished
	if r.err != nil && !r.read {
		r.t.Errorf("soar: %v", r.err)
	}
	r.read = true
}

// abandon stops the command and returns what it returned, for the test to
// judge.
func (r *bgRun) abandon() error {
	r.cancel()
	<-r.finished
	r.read = true
	return r.err
}

// ended returns what the command returned, if it has, without waiting.
func (r *bgRun) ended() (err error, ended bool) {
	select {
	case <-r.finished:
		r.read = true
		return r.err, true
	default:
		return nil, false
	}
}

// exited returns what the command returned once it exits on its own within
// the time given, and fails the test if it is still running then.
func (r *bgRun) exited(within time.Duration) error {
	r.t.Helper()
	select {
	case <-r.finished:
		r.read = true
		return r.err
	case <-time.After(within):
		r.t.Fatalf("soar still running after %s", within)
		return nil
	}
}
