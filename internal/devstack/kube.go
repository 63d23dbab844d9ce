package devstack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// KubeAssetsEnv names the directory holding kube-apiserver and etcd, the same
// variable controller-runtime's envtest reads.
const KubeAssetsEnv = "KUBEBUILDER_ASSETS"

// kubeAssetsDir is where 'make kube-tools' puts the binaries it compiles,
// relative to the repository root.
const kubeAssetsDir = "bin/k8s"

// ErrKubeAssetsMissing means kube-apiserver or etcd could not be found.
var ErrKubeAssetsMissing = errors.New("kube-apiserver and etcd not found: run 'make kube-tools' or set " + KubeAssetsEnv)

// FindKubeAssets returns the directory holding the kube-apiserver and etcd
// binaries: $KUBEBUILDER_ASSETS when set; otherwise k8s beside the running
// executable (bin/soar finds bin/k8s wherever it is started from); otherwise
// bin/k8s in the current directory or the nearest parent that has one (so
// tests in any package find the repository's copy).
func FindKubeAssets() (string, error) {
	if dir := os.Getenv(KubeAssetsEnv); dir != "" {
		if hasKubeAssets(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%s=%s: %w", KubeAssetsEnv, dir, ErrKubeAssetsMissing)
	}
	if exe, err := os.Executable(); err == nil {
		if dir := filepath.Join(filepath.Dir(exe), "k8s"); hasKubeAssets(dir) {
			return dir, nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		candidate := filepath.Join(dir, kubeAssetsDir)
		if hasKubeAssets(candidate) {
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrKubeAssetsMissing
		}
		dir = parent
	}
}

func hasKubeAssets(dir string) bool {
	for _, name := range []string{"kube-apiserver", "etcd"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// KubeOptions configures a local Kubernetes control plane.
type KubeOptions struct {
	// AssetsDir holds kube-apiserver and etcd; empty means FindKubeAssets.
	AssetsDir string
	// EtcdDir keeps etcd's data across restarts; empty means a temporary
	// directory removed on Stop.
	EtcdDir string
}

// Kube is a kube-apiserver and etcd with no nodes, controllers or scheduler:
// objects are stored and served, pods never run, and NetworkPolicies are
// recorded but enforced by nothing. That is enough to show and test what soar
// does to a cluster.
type Kube struct {
	env *envtest.Environment
	// Config reaches the API server as an administrator.
	Config *rest.Config
}

// StartKube starts etcd and kube-apiserver and waits until the API serves.
func StartKube(opts KubeOptions) (*Kube, error) {
	if opts.AssetsDir == "" {
		dir, err := FindKubeAssets()
		if err != nil {
			return nil, err
		}
		opts.AssetsDir = dir
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    opts.AssetsDir,
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	if opts.EtcdDir != "" {
		if err := os.MkdirAll(opts.EtcdDir, 0o700); err != nil {
			return nil, fmt.Errorf("kube: etcd data directory: %w", err)
		}
		env.ControlPlane.Etcd = &envtest.Etcd{DataDir: opts.EtcdDir}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("kube: start control plane from %s: %w", opts.AssetsDir, err)
	}
	return &Kube{env: env, Config: cfg}, nil
}

// Kubeconfig returns a kubeconfig for an administrator (system:masters), for
// kubectl and for soar's own --kubeconfig.
func (k *Kube) Kubeconfig() ([]byte, error) {
	user, err := k.env.AddUser(envtest.User{Name: "soar-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("kube: create admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("kube: render kubeconfig: %w", err)
	}
	return kc, nil
}

// Stop stops kube-apiserver and etcd.
func (k *Kube) Stop() error { return k.env.Stop() }
