package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpointsServeHealthMetricsAndReadiness(t *testing.T) {
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

// TestReadyDegraded checks that a check returning a *Degraded, bare or
// wrapped, keeps the process ready and shows its detail.
func TestReadyDegraded(t *testing.T) {
	degraded := &Degraded{Detail: "reload failed at 2025-01-02T03:04:05Z; the playbooks loaded at 2025-01-02T03:00:00Z stay in force: a.yaml:2:8: match: unexpected token"}
	tests := []struct {
		name      string
		checks    map[string]Check
		wantCode  int
		wantReady bool
		want      map[string]string
	}{
		{
			name:      "a degraded check is ready and shows its detail",
			checks:    map[string]Check{"playbooks": func(context.Context) error { return degraded }, "nats": func(context.Context) error { return nil }},
			wantCode:  http.StatusOK,
			wantReady: true,
			want:      map[string]string{"playbooks": "degraded: " + degraded.Detail, "nats": "ok"},
		},
		{
			name:      "a wrapped degraded check is ready",
			checks:    map[string]Check{"playbooks": func(context.Context) error { return fmt.Errorf("dir x: %w", degraded) }},
			wantCode:  http.StatusOK,
			wantReady: true,
			want:      map[string]string{"playbooks": "dir x: degraded: " + degraded.Detail},
		},
		{
			name:      "a failing check beside a degraded one is not ready",
			checks:    map[string]Check{"playbooks": func(context.Context) error { return degraded }, "nats": func(context.Context) error { return errors.New("nats connection CLOSED") }},
			wantCode:  http.StatusServiceUnavailable,
			wantReady: false,
			want:      map[string]string{"playbooks": "degraded: " + degraded.Detail, "nats": "nats connection CLOSED"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(prometheus.NewRegistry())
			for name, c := range tt.checks {
				s.AddCheck(name, c)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			var rep ReadyReport
			if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tt.wantCode || rep.Ready != tt.wantReady || fmt.Sprint(rep.Checks) != fmt.Sprint(tt.want) {
				t.Errorf("/readyz = %d %+v, want %d ready=%v checks %v", rec.Code, rep, tt.wantCode, tt.wantReady, tt.want)
			}
		})
	}
}
