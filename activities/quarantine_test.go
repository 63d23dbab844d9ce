package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/soar-dev/soar/connectors/kube"
)

// stubKube is a unit-test double: it returns a fixed error and records calls.
// The real connector is tested against a real API server in connectors/kube
// and test/e2e. An action whose method it lacks fails with InvalidRequest,
// as on a worker whose connector cannot run it.
type stubKube struct {
	err   error
	calls int
	reqs  []kube.QuarantineRequest
}

func (s *stubKube) Quarantine(_ context.Context, req kube.QuarantineRequest) (kube.QuarantineResult, error) {
	s.calls++
	s.reqs = append(s.reqs, req)
	return kube.QuarantineResult{Namespace: req.Namespace, Pod: req.Pod}, s.err
}

func TestQuarantineErrors(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	for _, tc := range []struct {
		name        string
		in          QuarantineInput
		kubeErr     error
		wantType    string // "" means retryable
		wantNoCalls bool
		wantIn      string // in the error's message
	}{
		{name: "protected namespace is refused before any API call", in: QuarantineInput{Namespace: "kube-system", Pod: "coredns-1"}, wantType: ErrTypeProtectedNamespace, wantNoCalls: true},
		{name: "missing target names is an invalid request", in: QuarantineInput{Namespace: "shop"}, wantType: ErrTypeInvalidRequest, wantNoCalls: true},
		{name: "pod gone is not retried", in: QuarantineInput{Namespace: "shop", Pod: "web"}, kubeErr: fmt.Errorf("%w: shop/web", kube.ErrPodNotFound), wantType: ErrTypeTargetNotFound},
		{name: "replaced pod is not retried", in: QuarantineInput{Namespace: "shop", Pod: "web"}, kubeErr: fmt.Errorf("%w: uid", kube.ErrTargetChanged), wantType: ErrTypeTargetChanged},
		{name: "forbidden is not retried", in: QuarantineInput{Namespace: "shop", Pod: "web"}, kubeErr: apierrors.NewForbidden(gr, "web", errors.New("no RBAC")), wantType: ErrTypeForbidden, wantIn: "check soar's RBAC"},
		{name: "an admission policy's refusal says so", in: QuarantineInput{Namespace: "vault", Pod: "web"},
			kubeErr:  apierrors.NewForbidden(gr, "web", errors.New("ValidatingAdmissionPolicy 'soar-worker-bounds' with binding 'soar-worker-bounds' denied request: namespace vault is protected")),
			wantType: ErrTypeForbidden, wantIn: "namespace vault is protected (an admission policy refused it"},
		{name: "server timeout is retried", in: QuarantineInput{Namespace: "shop", Pod: "web"}, kubeErr: apierrors.NewServerTimeout(gr, "patch", 1)},
		{name: "throttling is retried", in: QuarantineInput{Namespace: "shop", Pod: "web"}, kubeErr: apierrors.NewTooManyRequests("slow down", 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &stubKube{err: tc.kubeErr}
			a := &Activities{Kube: k, ProtectedNamespaces: DefaultProtectedNamespaces}
			_, err := a.Quarantine(context.Background(), tc.in)
			if err == nil {
				t.Fatal("no error")
			}
			var appErr *temporal.ApplicationError
			isApp := errors.As(err, &appErr)
			switch {
			case tc.wantType == "" && isApp && appErr.NonRetryable():
				t.Errorf("error %v is non-retryable, want retryable", err)
			case tc.wantType != "" && (!isApp || !appErr.NonRetryable() || appErr.Type() != tc.wantType):
				t.Errorf("error %v, want non-retryable %s", err, tc.wantType)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("error %q does not say %q", err, tc.wantIn)
			}
			if tc.wantNoCalls && k.calls != 0 {
				t.Errorf("connector called %d times", k.calls)
			}
		})
	}
}

// labelledKube is stubKube with namespaces that carry labels.
type labelledKube struct {
	stubKube
	labels map[string]map[string]string
	delay  time.Duration
	mu     sync.Mutex
	reads  int
}

func (l *labelledKube) NamespaceLabels(_ context.Context, name string) (map[string]string, error) {
	l.mu.Lock()
	l.reads++
	l.mu.Unlock()
	time.Sleep(l.delay)
	m, ok := l.labels[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", kube.ErrNamespaceNotFound, name)
	}
	return m, nil
}

func TestALabelledNamespaceIsProtectedAndTheLabelIsRememberedBriefly(t *testing.T) {
	k := &labelledKube{labels: map[string]map[string]string{
		"vault": {ProtectedLabel: "true"},
		"shop":  {ProtectedLabel: "false", "team": "web"},
	}}
	a := &Activities{Kube: k}
	ctx := context.Background()
	_, err := a.Quarantine(ctx, QuarantineInput{Namespace: "vault", Pod: "db-0"})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrTypeProtectedNamespace || !appErr.NonRetryable() || !strings.Contains(err.Error(), "labelled soar.dev/protected=true") {
		t.Fatalf("quarantine in a labelled namespace: %v", err)
	}
	if k.calls != 0 {
		t.Errorf("the connector acted %d times in a protected namespace", k.calls)
	}
	for range 3 {
		if _, err := a.Quarantine(ctx, QuarantineInput{Namespace: "shop", Pod: "web-0"}); err != nil {
			t.Fatalf("quarantine in an ordinary namespace: %v", err)
		}
	}
	if _, err := a.Quarantine(ctx, QuarantineInput{Namespace: "gone", Pod: "web-0"}); err != nil {
		t.Fatalf("a namespace that does not exist is left to the action: %v", err)
	}
	if k.reads != 3 || k.calls != 4 {
		t.Errorf("%d label reads and %d actions; want one read per namespace (vault, shop, gone) and 4 actions", k.reads, k.calls)
	}
}

// A storm of new incidents in one namespace reads its label once.
func TestConcurrentActionsInOneNamespaceReadItsLabelOnce(t *testing.T) {
	k := &labelledKube{labels: map[string]map[string]string{"shop": {}}, delay: 50 * time.Millisecond}
	a := &Activities{Kube: k}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := a.protectedByLabel(context.Background(), "shop"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if k.reads != 1 {
		t.Errorf("%d label reads for 50 concurrent actions, want 1", k.reads)
	}
}
