// Package kube is soar's connector to the Kubernetes API: the response actions
// it takes on pods and the policies around them. It knows client-go and nothing
// of Temporal; activities translate its errors into retry decisions.
package kube

import (
	"errors"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Labels and names soar puts on the objects it creates or changes.
const (
	// QuarantineLabel marks a quarantined pod; the deny-all policy selects it.
	QuarantineLabel = "soar.dev/quarantine"
	// QuarantineValue is the value of QuarantineLabel on a quarantined pod.
	QuarantineValue = "true"
	// IncidentAnnotation records the incident that quarantined the pod.
	IncidentAnnotation = "soar.dev/incident"
	// PolicyName is the deny-all NetworkPolicy soar keeps in each namespace
	// where it quarantined a pod.
	PolicyName = "soar-quarantine"
	// ManagedByLabel and ManagedByValue mark objects soar owns.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "soar"
)

// Errors callers branch on. Each is wrapped with the object it concerns.
var (
	// ErrPodNotFound means the pod the alert named does not exist (any more).
	ErrPodNotFound = errors.New("kube: pod not found")
	// ErrTargetChanged means a pod of that name exists but is not the one the
	// alert named (its UID differs): it was replaced, and acting on it would hit
	// an innocent workload.
	ErrTargetChanged = errors.New("kube: target changed")
)

// Client performs soar's actions through one clientset.
type Client struct {
	cs kubernetes.Interface
}

// New returns a Client using cs.
func New(cs kubernetes.Interface) *Client { return &Client{cs: cs} }

// Default client-side rate limits. client-go's own (5 QPS, burst 10) would turn
// a storm of 100 quarantines into a 40-second queue; the API server's priority
// and fairness protects it better than a client-side throttle does.
const (
	DefaultQPS   = 100
	DefaultBurst = 200
)

// RESTConfig loads the API server configuration: the kubeconfig file when one
// is named, otherwise the in-cluster service account, otherwise the default
// kubeconfig loading rules ($KUBECONFIG, ~/.kube/config). QPS and Burst are set
// to DefaultQPS and DefaultBurst.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	switch {
	case kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	default:
		cfg, err = rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("kube: load configuration: %w", err)
	}
	cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	cfg.UserAgent = "soar"
	return cfg, nil
}

// NewForConfig returns a Client for cfg.
func NewForConfig(cfg *rest.Config) (*Client, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: create clientset: %w", err)
	}
	return New(cs), nil
}
