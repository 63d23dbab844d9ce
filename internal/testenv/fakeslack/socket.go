package fakeslack

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pingInterval is how often the fake pings a Socket Mode client, as Slack
// does, so that the client's dead-connection timer never fires in a test.
const pingInterval = 500 * time.Millisecond

// socketState is the Socket Mode side of the fake. It is guarded by
// Server.mu.
type socketState struct {
	appToken string
	opens    int
	current  *wsConn
	all      []*wsConn
	acks     []string
}

// wsConn is one Socket Mode WebSocket connection.
type wsConn struct {
	conn    *websocket.Conn
	writeMu sync.Mutex // gorilla/websocket allows one writer at a time
	done    chan struct{}
	once    sync.Once
}

// writeJSON sends v as one text message.
func (c *wsConn) writeJSON(v any) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteJSON(v)
}

// close drops the connection without a close frame, as a network failure
// would.
func (c *wsConn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.conn.Close()
	})
}

// SetAppToken makes apps.connections.open require this app-level token
// (as a Bearer header).
func (s *Server) SetAppToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.socket.appToken = tok
}

// Connections returns how many times apps.connections.open was called.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.socket.opens
}

// Acks returns the envelope IDs the client acknowledged, in order.
func (s *Server) Acks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.socket.acks...)
}

// Drop closes the current WebSocket connection abruptly.
func (s *Server) Drop() {
	s.mu.Lock()
	c := s.socket.current
	s.socket.current = nil
	s.mu.Unlock()
	if c != nil {
		c.close()
	}
}

// SendDisconnect asks the connected client to reconnect, as Slack does
// before it recycles a connection. The connection stays open; the next
// SendInteractive waits for the new one.
func (s *Server) SendDisconnect() {
	s.mu.Lock()
	c := s.socket.current
	s.socket.current = nil
	s.mu.Unlock()
	if c != nil {
		_ = c.writeJSON(map[string]any{
			"type": "disconnect", "reason": "refresh_requested",
			"debug_info": map[string]any{"host": "fakeslack"},
		})
	}
}

// SendInteractive delivers an interactive envelope to the connected client,
// waiting up to 5s for a connection. payload is the interaction payload:
// JSON bytes, or a value to marshal (see ClickPayload).
func (s *Server) SendInteractive(t testing.TB, envelopeID string, payload any) {
	t.Helper()
	raw, ok := payload.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(payload); err != nil {
			t.Fatalf("fakeslack: marshal payload: %v", err)
		}
	}
	envelope := map[string]any{
		"envelope_id": envelopeID, "type": "interactive",
		"accepts_response_payload": false, "payload": json.RawMessage(raw),
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		c := s.socket.current
		s.mu.Unlock()
		if c != nil {
			if err := c.writeJSON(envelope); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("fakeslack: no Socket Mode client connected within 5s to deliver envelope %s", envelopeID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// appsConnectionsOpen answers a WebSocket URL. Callers hold mu.
func (s *Server) appsConnectionsOpen(w http.ResponseWriter, r *http.Request) {
	s.socket.opens++
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case tok == "":
		writeJSON(w, http.StatusOK, slackError("not_authed"))
		return
	case s.socket.appToken != "" && tok != s.socket.appToken:
		writeJSON(w, http.StatusOK, slackError("invalid_auth"))
		return
	}
	u := "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/socket?ticket=" + strconv.Itoa(s.socket.opens)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "url": u})
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// serveSocket accepts a Socket Mode connection, greets it, pings it and
// records its acknowledgements until it closes.
func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &wsConn{conn: conn, done: make(chan struct{})}
	s.mu.Lock()
	s.socket.current = c
	s.socket.all = append(s.socket.all, c)
	s.mu.Unlock()

	_ = c.writeJSON(map[string]any{
		"type": "hello", "num_connections": 1,
		"debug_info":      map[string]any{"host": "fakeslack", "approximate_connection_time": 3600},
		"connection_info": map[string]any{"app_id": AppID},
	})
	go c.ping()
	s.readAcks(c)
}

// ping sends WebSocket pings until the connection closes.
func (c *wsConn) ping() {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if err := c.conn.WriteControl(websocket.PingMessage, []byte("fakeslack"), time.Now().Add(time.Second)); err != nil {
				return
			}
		}
	}
}

// readAcks records the envelope IDs the client acknowledges until the
// connection fails.
func (s *Server) readAcks(c *wsConn) {
	defer func() {
		c.close()
		s.mu.Lock()
		if s.socket.current == c {
			s.socket.current = nil
		}
		s.mu.Unlock()
	}()
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		var ack struct {
			EnvelopeID string `json:"envelope_id"`
		}
		if json.Unmarshal(msg, &ack) == nil && ack.EnvelopeID != "" {
			s.mu.Lock()
			s.socket.acks = append(s.socket.acks, ack.EnvelopeID)
			s.mu.Unlock()
		}
	}
}

// closeSockets closes every connection, for cleanup.
func (s *Server) closeSockets() {
	s.mu.Lock()
	all := s.socket.all
	s.socket.current = nil
	s.mu.Unlock()
	for _, c := range all {
		c.close()
	}
}
