package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.temporal.io/api/serviceerror"

	"github.com/soar-dev/soar/internal/devstack"
)

// TestTemporalCompressionFollowsTheFlag: against a real Temporal frontend,
// behind a proxy that counts what the client sends, a request carrying 256 KiB
// of repetitive data crosses the wire gzip-compressed with
// --temporal-grpc-compression=gzip and whole with none and with auto on a
// loopback address (where gzip only costs CPU on both ends). An unknown mode
// is refused before anything is dialled.
func TestTemporalCompressionFollowsTheFlag(t *testing.T) {
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{Namespaces: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Stop() })
	proxy, sent := countingProxy(t, ts.Address())

	payload := bytes.Repeat([]byte("falco says: terminal shell in container. "), 256<<10/41)
	sentFor := func(t *testing.T, mode string) int64 {
		t.Helper()
		f := temporalFlags{address: proxy, namespace: "default", compression: mode}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tc, err := f.dial(ctx, "compression-test", 0, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		before := sent.Load()
		// The workflow does not exist: Temporal reads the request and says so.
		err = tc.SignalWorkflow(ctx, "no-such-incident", "", "alert", payload)
		if _, ok := errors.AsType[*serviceerror.NotFound](err); !ok {
			t.Fatalf("signal: %v, want not found", err)
		}
		return sent.Load() - before
	}
	for _, tc := range []struct {
		mode       string
		compressed bool
	}{{"gzip", true}, {"none", false}, {"auto", false}} {
		t.Run(tc.mode, func(t *testing.T) {
			n := sentFor(t, tc.mode)
			if compressed := n < int64(len(payload))/4; compressed != tc.compressed {
				t.Errorf("a %d-byte payload took %d bytes on the wire: compressed %v, want %v", len(payload), n, compressed, tc.compressed)
			}
		})
	}

	f := temporalFlags{address: proxy, namespace: "default", compression: "zstd"}
	if _, err := f.dial(context.Background(), "compression-test", 0, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "--temporal-grpc-compression") {
		t.Errorf("an unknown mode: %v, want an error naming the flag", err)
	}
}

// countingProxy forwards connections on a loopback port to target and counts
// the bytes clients send through it.
func countingProxy(t *testing.T, target string) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			wg.Go(func() {
				_, _ = io.Copy(countingWriter{s, &sent}, c)
				_ = s.Close()
			})
			wg.Go(func() {
				_, _ = io.Copy(c, s)
				_ = c.Close()
			})
		}
	})
	return l.Addr().String(), &sent
}

// countingWriter counts what passes through it before it passes, so that
// the count includes a request by the time its answer comes back.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return c.w.Write(p)
}
