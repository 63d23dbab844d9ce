package activities

import (
	"context"
	"errors"
	"fmt"
	"testing"

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
	}{
		{name: "protected namespace is refused before any API call", in: QuarantineInput{Namespace: "kube-system", Pod: "coredns-1"}, wantType: ErrTypeProtectedNamespace, wantNoCalls: true},
		{name: "missing target names is an invalid request", in: QuarantineInput{Namespace: "shop"}, wantType: ErrTypeInvalidRequest, wantNoCalls: true},
		{name: "pod gone is not retried", in: QuarantineInput{Namespace: "shop", Pod: "web"}, kubeErr: fmt.Errorf("%w: shop/web", kube.ErrPodNotFound), wantType: ErrTypeTargetNotFound},
		{name: "replaced pod is not retried", in: QuarantineInput{Namespace: "shop", Pod: "web"}, kubeErr: fmt.Errorf("%w: uid", kube.ErrTargetChanged), wantType: ErrTypeTargetChanged},
		{name: "forbidden is not retried", in: QuarantineInput{Namespace: "shop", Pod: "web"}, kubeErr: apierrors.NewForbidden(gr, "web", errors.New("no RBAC")), wantType: ErrTypeForbidden},
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
			if tc.wantNoCalls && k.calls != 0 {
				t.Errorf("connector called %d times", k.calls)
			}
		})
	}
}
