package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
)

// apiCalls records the requests soar's worker sends the API server for the
// namespaces a benchmark names (recordAPI), so that it can tell where an
// alert's time went. Every client built from the tests' kubeConfig goes
// through it; requests for other namespaces pass untouched.
var apiCalls = &apiRecorder{}

type apiCall struct {
	method, path string
	start, end   time.Time
}

type apiRecorder struct {
	mu    sync.Mutex
	ns    map[string]bool
	calls []apiCall
}

// recordAPI records the requests for ns until the benchmark ends.
func recordAPI(tb testing.TB, ns string) {
	apiCalls.mu.Lock()
	defer apiCalls.mu.Unlock()
	if apiCalls.ns == nil {
		apiCalls.ns = map[string]bool{}
	}
	apiCalls.ns[ns] = true
	tb.Cleanup(func() {
		apiCalls.mu.Lock()
		defer apiCalls.mu.Unlock()
		delete(apiCalls.ns, ns)
		apiCalls.calls = slices.DeleteFunc(apiCalls.calls, func(c apiCall) bool { return strings.Contains(c.path, "/namespaces/"+ns+"/") })
	})
}

func (r *apiRecorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if !r.recording(req.URL.Path) {
			return rt.RoundTrip(req)
		}
		start := time.Now()
		resp, err := rt.RoundTrip(req)
		r.mu.Lock()
		r.calls = append(r.calls, apiCall{req.Method, req.URL.Path, start, time.Now()})
		r.mu.Unlock()
		return resp, err
	})
}

func (r *apiRecorder) recording(path string) bool {
	_, rest, ok := strings.Cut(path, "/namespaces/")
	if !ok {
		return false
	}
	ns, _, _ := strings.Cut(rest, "/")
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ns[ns]
}

// podCalls returns the requests for pod and, unless shared (other pods'
// incidents run in ns at the same time), for NetworkPolicies in ns that
// started in [from, to], in the order they started.
func (r *apiRecorder) podCalls(ns, pod string, from, to time.Time, shared bool) []apiCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []apiCall
	for _, c := range r.calls {
		if c.start.Before(from) || c.start.After(to) {
			continue
		}
		if strings.HasSuffix(c.path, "/namespaces/"+ns+"/pods/"+pod) || !shared && strings.Contains(c.path, "/namespaces/"+ns+"/networkpolicies") {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b apiCall) int { return a.start.Compare(b.start) })
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// alertPhases splits one alert's way to its label in three, from the
// incident's first history event (the time Temporal recorded the start)
// and the API requests of its quarantine: published → start recorded
// (JetStream, the dispatcher, Temporal's frontend and history service);
// → the first API request (the start persisted and answered, the first
// workflow task, the local activity up to its first request); → the label
// patched (the API server's part: pod read and policy created at once,
// then the label). With shared, other incidents act in ns at the same
// time, and the pod's read stands for the first request (the policy's
// create, sent with it, names no pod). ok is false when the requests were
// not all seen.
func alertPhases(ctx context.Context, tc client.Client, id, ns, pod string, published time.Time, took time.Duration, shared bool) (toStart, toAPI, api time.Duration, ok bool, err error) {
	it := tc.GetWorkflowHistory(ctx, id, "", false, 0)
	ev, err := it.Next()
	if err != nil {
		return 0, 0, 0, false, err
	}
	started := ev.GetEventTime().AsTime()
	calls := apiCalls.podCalls(ns, pod, published, published.Add(took), shared)
	i := slices.IndexFunc(calls, func(c apiCall) bool { return c.method == "PATCH" })
	if len(calls) == 0 || i < 0 {
		return 0, 0, 0, false, nil
	}
	return started.Sub(published), calls[0].start.Sub(started), calls[i].end.Sub(calls[0].start), true, nil
}
