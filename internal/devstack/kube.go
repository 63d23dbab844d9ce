package devstack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
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
	// RunDir, when set, holds the files that live only as long as the
	// control plane (the API server's certificates, the child shim's
	// links): emptied at start and removed by Stop, so that a process
	// killed before Stop leaves nothing behind elsewhere. Empty means
	// temporary directories.
	RunDir string
	// PIDFile, when set, is an existing file (DataDir.PIDFile) that gets a
	// line for each process started, so that a later soar dev can find
	// them should this one be killed before it stops them. Recorded only
	// where the child shim runs (see MaybeRunChildShim).
	PIDFile string
}

// Kube is a kube-apiserver and etcd with no nodes, controllers or scheduler:
// objects are stored and served, pods never run, and NetworkPolicies are
// recorded but enforced by nothing. That is enough to show and test what soar
// does to a cluster.
type Kube struct {
	env    *envtest.Environment
	runDir string
	// thread is where kube-apiserver and etcd were forked: the parent
	// whose end sends them their parent-death signal.
	thread   *lockedThread
	stopOnce sync.Once
	stopErr  error
	// Config reaches the API server as an administrator.
	Config *rest.Config
}

// StartKube starts etcd and kube-apiserver and waits until the API serves.
//
// In a program whose main calls MaybeRunChildShim, on Linux, both die with
// the program however it ends, SIGKILL included. Elsewhere a program killed
// before Stop leaves them running.
func StartKube(opts KubeOptions) (*Kube, error) {
	if opts.AssetsDir == "" {
		dir, err := FindKubeAssets()
		if err != nil {
			return nil, err
		}
		opts.AssetsDir = dir
	}
	// The shim runs the binaries and writes the PID file by these paths,
	// and tells them by absolute path.
	for _, p := range []*string{&opts.AssetsDir, &opts.EtcdDir, &opts.RunDir, &opts.PIDFile} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return nil, fmt.Errorf("kube: %w", err)
			}
			*p = abs
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    opts.AssetsDir,
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{}
	if opts.EtcdDir != "" {
		if err := os.MkdirAll(opts.EtcdDir, 0o700); err != nil {
			return nil, fmt.Errorf("kube: etcd data directory: %w", err)
		}
		if err := checkEtcdDataFree(opts.EtcdDir); err != nil {
			return nil, err
		}
		env.ControlPlane.Etcd.DataDir = opts.EtcdDir
	}
	if opts.RunDir != "" {
		certs := filepath.Join(opts.RunDir, "apiserver")
		if err := os.RemoveAll(opts.RunDir); err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
		if err := os.MkdirAll(certs, 0o700); err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
		env.ControlPlane.GetAPIServer().CertDir = certs
	}
	bins := map[string]string{
		"etcd":           filepath.Join(opts.AssetsDir, "etcd"),
		"kube-apiserver": filepath.Join(opts.AssetsDir, "kube-apiserver"),
	}
	paths := bins
	if useShim() {
		dir, links, err := newShimDir(opts.RunDir, bins, opts.PIDFile)
		if err != nil {
			return nil, err
		}
		// Once started, the children no longer need the links.
		defer func() { _ = os.RemoveAll(dir) }()
		paths = links
	}
	env.ControlPlane.Etcd.Path = paths["etcd"]
	env.ControlPlane.GetAPIServer().Path = paths["kube-apiserver"]

	k := &Kube{env: env, runDir: opts.RunDir, thread: newLockedThread()}
	var cfg *rest.Config
	var err error
	k.thread.do(func() { cfg, err = env.Start() })
	if useShim() {
		// The children have it; a process this one starts later (a test's
		// soar, say) must not take itself for a shim.
		_ = os.Unsetenv(shimEnv)
	}
	if err != nil {
		// envtest leaves running whatever started before the failure.
		_ = k.Stop()
		return nil, fmt.Errorf("kube: start control plane from %s: %w", opts.AssetsDir, err)
	}
	// envtest made certificates for webhooks, which soar has none of.
	// Removed now, they cannot be left behind.
	if err := os.RemoveAll(env.WebhookInstallOptions.LocalServingCertDir); err == nil {
		env.WebhookInstallOptions.LocalServingCertDir = ""
	}
	k.Config = cfg
	return k, nil
}

// checkEtcdDataFree fails when another process holds etcd's database in dir
// (an etcd left running by a soar dev that was killed, say): a new etcd would
// wait for its lock for ever, and envtest would retry for minutes, with no
// word of why.
func checkEtcdDataFree(dir string) error {
	db := filepath.Join(dir, "member", "snap", "db")
	locked, err := isLocked(db)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !locked) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kube: etcd data: %w", err)
	}
	holder := "another process"
	stop := "stop it"
	if pid := lockHolder(db); pid > 0 {
		holder = fmt.Sprintf("process %d", pid)
		if p, ok := readProc(pid); ok && p.cmdline != "" {
			cmdline := p.cmdline
			if len(cmdline) > 160 {
				cmdline = cmdline[:160] + "…"
			}
			holder += " (" + cmdline + ")"
		}
		stop = fmt.Sprintf("stop it (kill %d)", pid)
	}
	return fmt.Errorf("kube: etcd data in %s is in use by %s, perhaps an etcd left running by an earlier soar dev: %s and start again", dir, holder, stop)
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

// Stop stops kube-apiserver and etcd. One that does not stop in time gets
// SIGKILL from envtest and, started through the child shim, its parent-death
// signal too when the thread that started it ends.
func (k *Kube) Stop() error {
	k.stopOnce.Do(func() {
		k.stopErr = k.env.Stop()
		k.thread.close()
		if k.runDir != "" {
			if err := os.RemoveAll(k.runDir); err != nil && k.stopErr == nil {
				k.stopErr = fmt.Errorf("kube: %w", err)
			}
		}
	})
	return k.stopErr
}
