// Package httpserver serves soar's operational endpoints: /healthz (the
// process is alive), /readyz (every dependency answers, possibly degraded)
// and /metrics (Prometheus). Later issues mount the Slack and API handlers
// on the same mux.
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is usable; a nil error means ready.
// An error that is (or wraps) a *Degraded also means ready.
type Check func(ctx context.Context) error

// Degraded is the error a Check returns when its dependency is usable but
// not as intended, and the process still does its job: for instance when a
// playbook reload failed and the previous playbooks stay in force. Readiness
// holds; /readyz shows the error's message, "degraded: " and Detail, under
// the check's name.
type Degraded struct {
	Detail string
}

func (e *Degraded) Error() string { return "degraded: " + e.Detail }

// Server holds the readiness checks and the mux.
type Server struct {
	mu     sync.Mutex
	checks map[string]Check
	mux    *http.ServeMux
}

// New returns a Server exposing reg at /metrics.
func New(reg *prometheus.Registry) *Server {
	s := &Server{checks: map[string]Check{}, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return s
}

// AddCheck registers a readiness check under name, e.g. "nats".
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

// Handle mounts h at pattern (net/http ServeMux syntax).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler returns the root handler.
func (s *Server) Handler() http.Handler { return s.mux }

// ReadyReport is the body of /readyz. Checks maps each check's name to "ok",
// to its error when it fails (Ready is then false), or to "degraded: …"
// when it passes with a Degraded detail.
type ReadyReport struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

// Ready runs every check concurrently, each bounded by two seconds.
func (s *Server) Ready(ctx context.Context) ReadyReport {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	checks := make([]Check, len(names))
	for i, n := range names {
		checks[i] = s.checks[n]
	}
	s.mu.Unlock()

	results := make([]error, len(names))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			results[i] = c(cctx)
		}()
	}
	wg.Wait()
	rep := ReadyReport{Ready: true, Checks: map[string]string{}}
	for i, n := range names {
		var degraded *Degraded
		switch err := results[i]; {
		case err == nil:
			rep.Checks[n] = "ok"
		case errors.As(err, &degraded):
			rep.Checks[n] = err.Error()
		default:
			rep.Ready = false
			rep.Checks[n] = err.Error()
		}
	}
	return rep
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rep := s.Ready(r.Context())
	w.Header().Set("Content-Type", "application/json")
	if !rep.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rep)
}
