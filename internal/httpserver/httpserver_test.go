package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "soar_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	s := New(reg)
	natsUp := true
	s.AddCheck("nats", func(context.Context) error {
		if natsUp {
			return nil
		}
		return errors.New("nats: connection closed")
	})
	s.AddCheck("playbooks", func(context.Context) error { return nil })
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "soar_test_total 3") {
		t.Errorf("/metrics = %d, missing counter: %s", code, body)
	}
	code, body := get("/readyz")
	var rep ReadyReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil || code != 200 || !rep.Ready || rep.Checks["nats"] != "ok" {
		t.Errorf("/readyz ready = %d %s (%v)", code, body, err)
	}
	natsUp = false
	code, body = get("/readyz")
	if err := json.Unmarshal([]byte(body), &rep); err != nil || code != 503 || rep.Ready || rep.Checks["nats"] != "nats: connection closed" || rep.Checks["playbooks"] != "ok" {
		t.Errorf("/readyz not ready = %d %s (%v)", code, body, err)
	}
}
