package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// fault answers some requests to the real API server itself, the way a
// loaded, flaky or racing cluster would. Rules are keyed by namespace, so
// each case of a test keeps to its own.
type fault struct {
	method string // GET, PATCH, POST
	path   string // a substring of the URL path: "/pods/", "/networkpolicies"
	times  int    // how many matching requests it answers; -1 for all
	// status and body, as the API server would send them; or hang, to time
	// out the client; or before, run before the request goes through.
	status     int
	retryAfter string
	hang       time.Duration
	before     func()
}

// faults is an http.RoundTripper wrapper that applies rules and records
// every request by namespace.
type faults struct {
	mu    sync.Mutex
	rules map[string][]*fault
	seen  map[string][]seenRequest
}

type seenRequest struct {
	method, path string
	at           time.Time
	injected     int // the status injected, 0 when it went through
}

func (f *faults) add(namespace string, r *fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[namespace] = append(f.rules[namespace], r)
}

func (f *faults) requests(namespace, method, path string) []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []seenRequest
	for _, r := range f.seen[namespace] {
		if r.method == method && strings.Contains(r.path, path) {
			out = append(out, r)
		}
	}
	return out
}

func (f *faults) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		ns := namespaceOf(req.URL.Path)
		f.mu.Lock()
		var match *fault
		for _, r := range f.rules[ns] {
			if r.times != 0 && r.method == req.Method && strings.Contains(req.URL.Path, r.path) {
				match = r
				if r.times > 0 {
					r.times--
				}
				break
			}
		}
		seen := seenRequest{method: req.Method, path: req.URL.Path, at: time.Now()}
		if match != nil && match.status != 0 {
			seen.injected = match.status
		}
		f.seen[ns] = append(f.seen[ns], seen)
		f.mu.Unlock()
		switch {
		case match == nil:
		case match.before != nil:
			match.before()
		case match.hang > 0:
			select {
			case <-time.After(match.hang):
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		case match.status != 0:
			return statusResponse(req, match.status, match.retryAfter), nil
		}
		return next.RoundTrip(req)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// namespaceOf returns the namespace of a namespaced API path.
func namespaceOf(path string) string {
	_, rest, ok := strings.Cut(path, "/namespaces/")
	if !ok {
		return ""
	}
	ns, _, _ := strings.Cut(rest, "/")
	return ns
}

// statusResponse is the metav1.Status the API server sends with code.
func statusResponse(req *http.Request, code int, retryAfter string) *http.Response {
	reason := map[int]metav1.StatusReason{
		http.StatusConflict:            metav1.StatusReasonConflict,
		http.StatusTooManyRequests:     metav1.StatusReasonTooManyRequests,
		http.StatusInternalServerError: metav1.StatusReasonInternalError,
	}[code]
	body := fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"injected %d %s","reason":%q,"code":%d}`, code, reason, reason, code)
	h := http.Header{"Content-Type": []string{"application/json"}}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return &http.Response{StatusCode: code, Header: h, Body: io.NopCloser(bytes.NewBufferString(body)), Request: req, ProtoMajor: 1, ProtoMinor: 1}
}

const faultPlaybook = `name: api-errors
description: Quarantine, to see how API errors are handled.
match: alert.rule == "e2e api errors"
incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
steps:
  - id: contain
    action: kubernetes.quarantine
    timeout: 1m
    retry: {maxAttempts: 4, initialInterval: 100ms, maximumInterval: 1s}
`

// TestAPIErrorsAreRetriedOrFailedAsAUserExpects runs a quarantine through a
// real worker, Temporal and API server while the API server's answers are
// faulted, and checks what the incident says.
func TestAPIErrorsAreRetriedOrFailedAsAUserExpects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api-errors.yaml"), []byte(faultPlaybook), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &faults{rules: map[string][]*fault{}, seen: map[string][]seenRequest{}}
	cfg := rest.CopyConfig(kubeConfig)
	cfg.Timeout = 2 * time.Second // one request; the activity retries
	cfg.WrapTransport = f.wrap
	kc, err := kube.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	startSoarOn(t, kc, js, tc, dir, dispatch.Config{})

	run := func(t *testing.T, ns string) *workflows.IncidentState {
		t.Helper()
		a := fmt.Appendf(nil, `{"source":"e2e","rule":"e2e api errors","severity":"high","kubernetes":{"namespace":%q,"pod":"web-1"}}`, ns)
		if _, err := js.Publish(ctx, "alerts.e2e", a); err != nil {
			t.Fatal(err)
		}
		id := playbooks.IncidentID("api-errors", ns+"/web-1")
		var st *workflows.IncidentState
		testenv.Eventually(t, 45*time.Second, "the quarantine step finishes", func() error {
			var err error
			if st, err = incidentState(ctx, tc, id); err != nil {
				return err
			}
			if len(st.Steps) == 0 || st.Status == workflows.StatusResponding {
				return fmt.Errorf("status %s, steps %+v", st.Status, st.Steps)
			}
			return nil
		})
		return st
	}
	contained := func(t *testing.T, st *workflows.IncidentState, ns string) {
		t.Helper()
		if st.Status != workflows.StatusContained || st.Steps[0].Status != workflows.StepSucceeded {
			t.Fatalf("incident %s: status %s, step %+v", ns, st.Status, st.Steps[0])
		}
		if err := quarantined(ctx, ns, "web-1"); err != nil {
			t.Fatal(err)
		}
	}
	failed := func(t *testing.T, st *workflows.IncidentState, errType, reason string) {
		t.Helper()
		s := st.Steps[0]
		if st.Status != workflows.StatusFailed || s.Status != workflows.StepFailed || s.ErrorType != errType || !strings.Contains(s.Error, reason) {
			t.Fatalf("status %s, step %s %s %q; want failed with %s %q", st.Status, s.Status, s.ErrorType, s.Error, errType, reason)
		}
	}

	t.Run("409 conflicts on the label patch are retried", func(t *testing.T) {
		ns := "fault-conflict"
		testenv.Pod(t, kubeCS, ns, "web-1")
		f.add(ns, &fault{method: http.MethodPatch, path: "/pods/web-1", times: 2, status: http.StatusConflict})
		contained(t, run(t, ns), ns)
		if n := len(f.requests(ns, http.MethodPatch, "/pods/web-1")); n != 3 {
			t.Errorf("%d pod patches, want 2 refused and 1 accepted", n)
		}
	})

	t.Run("429 with Retry-After is waited out by the client", func(t *testing.T) {
		ns := "fault-throttled"
		testenv.Pod(t, kubeCS, ns, "web-1")
		f.add(ns, &fault{method: http.MethodGet, path: "/pods/web-1", times: 1, status: http.StatusTooManyRequests, retryAfter: "1"})
		contained(t, run(t, ns), ns)
		gets := f.requests(ns, http.MethodGet, "/pods/web-1")
		if len(gets) < 2 || gets[0].injected != http.StatusTooManyRequests {
			t.Fatalf("pod reads %+v", gets)
		}
		if gap := gets[1].at.Sub(gets[0].at); gap < 900*time.Millisecond {
			t.Errorf("the read after a 429 with Retry-After: 1 came %s later", gap)
		}
	})

	t.Run("500s are retried by Temporal", func(t *testing.T) {
		ns := "fault-internal"
		testenv.Pod(t, kubeCS, ns, "web-1")
		f.add(ns, &fault{method: http.MethodPost, path: "/networkpolicies", times: 2, status: http.StatusInternalServerError})
		contained(t, run(t, ns), ns)
		if n := len(f.requests(ns, http.MethodPost, "/networkpolicies")); n != 3 {
			t.Errorf("%d policy creations, want 2 refused and 1 accepted", n)
		}
	})

	t.Run("a request that times out is retried", func(t *testing.T) {
		ns := "fault-timeout"
		testenv.Pod(t, kubeCS, ns, "web-1")
		f.add(ns, &fault{method: http.MethodGet, path: "/pods/web-1", times: 1, hang: time.Minute})
		contained(t, run(t, ns), ns)
	})

	t.Run("500s that never end fail the step with the reason", func(t *testing.T) {
		ns := "fault-down"
		testenv.Pod(t, kubeCS, ns, "web-1")
		f.add(ns, &fault{method: http.MethodPost, path: "/networkpolicies", times: -1, status: http.StatusInternalServerError})
		st := run(t, ns)
		failed(t, st, activities.ErrTypeKubernetesAPI, "injected 500")
		if n := len(f.requests(ns, http.MethodPost, "/networkpolicies")); n != 4 {
			t.Errorf("%d attempts, want the step's maxAttempts 4", n)
		}
	})

	t.Run("a pod deleted mid-action fails at once as TargetNotFound", func(t *testing.T) {
		ns := "fault-deleted"
		testenv.Pod(t, kubeCS, ns, "web-1")
		f.add(ns, &fault{method: http.MethodPatch, path: "/pods/web-1", times: 1, before: func() {
			_ = kubeCS.CoreV1().Pods(ns).Delete(context.Background(), "web-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		}})
		st := run(t, ns)
		failed(t, st, activities.ErrTypeTargetNotFound, "web-1")
		if n := len(f.requests(ns, http.MethodPatch, "/pods/web-1")); n != 1 {
			t.Errorf("%d patches: a pod that is gone must not be retried", n)
		}
	})

	t.Run("a terminating namespace fails at once as NamespaceTerminating", func(t *testing.T) {
		ns := "fault-terminating"
		testenv.Pod(t, kubeCS, ns, "web-1")
		// No namespace controller runs here: the namespace stays
		// Terminating, as one being emptied does.
		if err := kubeCS.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, "namespace terminating", func() error {
			n, err := kubeCS.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if n.Status.Phase != corev1.NamespaceTerminating {
				return fmt.Errorf("phase %s", n.Status.Phase)
			}
			return nil
		})
		st := run(t, ns)
		failed(t, st, activities.ErrTypeNamespaceTerminating, "terminat")
		if n := len(f.requests(ns, http.MethodPost, "/networkpolicies")); n != 1 {
			t.Errorf("%d policy creations: a terminating namespace must not be retried", n)
		}
	})
}
