package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/internal/httpserver"
)

// TestAStalledRequestIsCutOff: a client that sends headers and then stalls
// mid-body (slowloris) does not keep its connection, and what the server
// buffered for it, beyond the read timeout.
func TestAStalledRequestIsCutOff(t *testing.T) {
	old := httpReadTimeout
	httpReadTimeout = 300 * time.Millisecond
	t.Cleanup(func() { httpReadTimeout = old })
	h := httpserver.New(prometheus.NewRegistry())
	// Like the Slack endpoint, the handler reads the whole body before it
	// can check anything.
	h.Handle("POST /slack/interactions", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
	}))
	srv, err := ServeHTTP("127.0.0.1:0", h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })

	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	fmt.Fprintf(conn, "POST /slack/interactions HTTP/1.1\r\nHost: soar\r\nContent-Length: 1048576\r\n\r\npayload=")
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	// The server answers (or closes) once the read timeout passed; then the
	// connection ends.
	_, _ = bufio.NewReader(conn).ReadString(0)
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("the stalled connection was held %s, want it cut after the read timeout (300ms)", waited)
	}
}
