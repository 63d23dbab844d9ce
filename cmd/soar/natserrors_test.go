package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/internal/testenv"
)

// logLines returns the JSON lines of log whose message is msg.
func logLines(t *testing.T, log *testenv.SyncBuffer, msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(log.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestNATSErrorsReachSoarsLog: what the NATS server or client reports on
// a connection's own schedule reaches soar's JSON log, with the subject,
// instead of a plain line on standard error that an operator collecting
// soar's log never sees: a permission the server refused is an error each
// time; messages a slow subscription dropped are a warning at most once a
// minute, with the count so far.
func TestNATSErrorsReachSoarsLog(t *testing.T) {
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true,
		Users: []*server.User{{Username: "soar", Password: "s3cret", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Deny: []string{"soar.dlq.>"}},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	var out testenv.SyncBuffer
	nf := natsFlags{urls: strings.Replace(s.ClientURL(), "nats://", "nats://soar:s3cret@", 1)}
	nc, err := nf.connect(context.Background(), "soar-test", 0, zerolog.New(&out))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	const msg = "NATS reported an error on the connection"

	// A permission the server refuses.
	if err := nc.Publish("soar.dlq.alerts", []byte("x")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the refused publish logged", func() error {
		for _, l := range logLines(t, &out, msg) {
			if l["level"] == "error" && strings.Contains(l["error"].(string), "Permissions Violation for Publish to \"soar.dlq.alerts\"") {
				return nil
			}
		}
		return fmt.Errorf("log: %s", out.String())
	})

	// A subscription that cannot keep up: its channel holds one message.
	// Twice in a row (the channel emptied in between, so that nats.go
	// reports the second time too): one warning, as a burst on the
	// dispatcher's pull would give many.
	const slowMsg = "a NATS subscription dropped messages it could not take in time"
	ch := make(chan *nats.Msg, 1)
	sub, err := nc.ChanSubscribe("alerts.slow", ch)
	if err != nil {
		t.Fatal(err)
	}
	overflow := func(want int) {
		t.Helper()
		for range 10 {
			if err := nc.Publish("alerts.slow", []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, "messages dropped", func() error {
			if n, _ := sub.Dropped(); n < want {
				return fmt.Errorf("%d dropped", n)
			}
			return nil
		})
		<-ch
	}
	overflow(9)
	testenv.Eventually(t, 10*time.Second, "the slow subscription logged", func() error {
		if l := logLines(t, &out, slowMsg); len(l) == 1 && l[0]["level"] == "warn" && l[0]["subject"] == sub.Subject && l[0]["dropped"].(float64) == 9 {
			return nil
		}
		return fmt.Errorf("log: %s", out.String())
	})
	overflow(18)
	// The errors are reported in order: once the refused publish after the
	// second overflow is in the log, so would its warning be.
	if err := nc.Publish("soar.dlq.later", []byte("x")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the second refused publish logged", func() error {
		for _, l := range logLines(t, &out, msg) {
			if strings.Contains(l["error"].(string), "soar.dlq.later") {
				return nil
			}
		}
		return fmt.Errorf("log: %s", out.String())
	})
	if l := logLines(t, &out, slowMsg); len(l) != 1 {
		t.Errorf("%d slow-consumer warnings within a minute, want 1: %v", len(l), l)
	}
	if l := logLines(t, &out, msg); len(l) != 2 {
		t.Errorf("%d errors, want the two refused publishes: %v", len(l), l)
	}
	if strings.Contains(out.String(), "s3cret") {
		t.Error("the log holds the NATS password")
	}
}
