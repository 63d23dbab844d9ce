package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/deploy"
	"github.com/soar-dev/soar/internal/devstack"
)

// devManifests are the files of deploy/ that soar dev --local-kube
// installs: soar's namespace and ServiceAccounts, the worker's RBAC, and
// every admission policy. Not the Deployments (soar dev is the processes)
// nor the NetworkPolicies of soar's own pods (there are none).
var devManifests = []string{
	"namespace.yaml",
	"serviceaccounts.yaml",
	"rbac.yaml",
	"dispatch-rbac.yaml",
	"admission.yaml",
	"quarantine-lock.yaml",
	"incident-deployment-control.yaml",
	"baseline-policies.yaml",
}

// workerServiceAccount is who soar dev's worker is to a local API server:
// deploy/'s soar-worker, with only the rights deploy/rbac.yaml grants it.
var workerServiceAccount = rest.ImpersonationConfig{
	UserName: "system:serviceaccount:" + deploy.Namespace + ":soar-worker",
	Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + deploy.Namespace, "system:authenticated"},
}

// dispatchServiceAccount is who soar dev's dispatcher is to a local API
// server when it indexes the pods: deploy/'s soar-dispatch, with only the
// rights deploy/dispatch-rbac.yaml grants it.
var dispatchServiceAccount = rest.ImpersonationConfig{
	UserName: "system:serviceaccount:" + deploy.Namespace + ":soar-dispatch",
	Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + deploy.Namespace, "system:authenticated"},
}

// lockEnforcedWithin bounds how long soar dev waits for a new API server to
// enforce the policies it installed.
const lockEnforcedWithin = 30 * time.Second

// installDeploy installs devManifests on the local API server of cfg, and
// returns once the API server enforces them.
func installDeploy(ctx context.Context, cfg *rest.Config, list kube.LockList, log zerolog.Logger) error {
	n, err := devstack.InstallManifests(ctx, cfg, devstack.ManifestOptions{
		FS:           deploy.Manifests,
		Files:        devManifests,
		Namespace:    deploy.Namespace,
		Labels:       map[string]string{deploy.PartOf: "soar"},
		FieldManager: "soar-dev",
	})
	if err != nil {
		return err
	}
	log.Info().Int("objects", n).Strs("files", devManifests).Msg("deploy/ manifests installed")
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return waitLockEnforced(ctx, cs, list)
}

// waitLockEnforced waits until the API server refuses a change of the lock
// list by someone other than soar-worker: the admission plugin has loaded
// deploy/quarantine-lock.yaml's policies. Each quarantine then proves the
// lock on its own pod.
func waitLockEnforced(ctx context.Context, cs kubernetes.Interface, list kube.LockList) error {
	ctx, cancel := context.WithTimeout(ctx, lockEnforcedWithin)
	defer cancel()
	var last string
	for {
		last = probeListGuard(ctx, cs, list)
		if last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the local API server does not enforce deploy/quarantine-lock.yaml after %s: %s", lockEnforcedWithin, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probeListGuard asks for a dry run that adds an entry to the lock list,
// and returns "" when the list's policy refuses it, else what happened.
func probeListGuard(ctx context.Context, cs kubernetes.Interface, list kube.LockList) string {
	cm, err := cs.CoreV1().ConfigMaps(list.Namespace).Get(ctx, list.Name, metav1.GetOptions{})
	if err != nil {
		return "reading the lock list: " + err.Error()
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data["soar-dev-probe"] = "not soar-worker"
	_, err = cs.CoreV1().ConfigMaps(list.Namespace).Update(ctx, cm, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil:
		return "a change of the lock list by another user than soar-worker was allowed"
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "soar-lock-list"):
		return ""
	default:
		return err.Error()
	}
}

// maxDevClusters bounds soar dev --clusters: each cluster is an etcd and a
// kube-apiserver, about 300 MiB and a core's worth of start-up.
const maxDevClusters = 8

// devCluster is one local API server of soar dev: name is "" for the one
// of a single-cluster soar dev, else dev-1 … dev-N.
type devCluster struct {
	name, url, kubeconfig string
	stop                  func() error
}

// devClusterNames are the names of soar dev --clusters n.
func devClusterNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("dev-%d", i+1)
	}
	return names
}

// startDevCluster starts a local API server and etcd with their data under
// dataDir (etcd/ and kubeconfig for the single cluster; clusters/<name>/
// and kubeconfig-<name> for a named one), installs deploy/ there and
// returns once it enforces the quarantine lock. stop is set as soon as
// there is something to stop, error or not.
func startDevCluster(ctx context.Context, dataDir, name, pidFile string, log zerolog.Logger) (devCluster, error) {
	c := devCluster{name: name, kubeconfig: filepath.Join(dataDir, "kubeconfig")}
	dir := dataDir
	if name != "" {
		dir = filepath.Join(dataDir, "clusters", name)
		c.kubeconfig += "-" + name
		log = log.With().Str("cluster", name).Logger()
	}
	k, err := devstack.StartKube(devstack.KubeOptions{
		EtcdDir: filepath.Join(dir, "etcd"),
		RunDir:  filepath.Join(dir, "kube-run"),
		PIDFile: pidFile,
	})
	if err != nil {
		return c, err
	}
	c.stop, c.url = k.Stop, k.Config.Host
	kc, err := k.Kubeconfig()
	if err != nil {
		return c, err
	}
	if err := os.WriteFile(c.kubeconfig, kc, 0o600); err != nil {
		return c, fmt.Errorf("write kubeconfig: %w", err)
	}
	return c, installDeploy(ctx, k.Config, kube.DefaultLockList, log)
}
