package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"k8s.io/client-go/rest"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/dispatch"
)

// inCluster is --pod-index's name for the dispatcher's own service account.
const inCluster = "in-cluster"

// parsePodIndexes reads --pod-index values, [cluster=]in-cluster|KUBECONFIG:
// the cluster whose alerts the index triages (none: alerts without a
// cluster) and how to reach its API server.
func parsePodIndexes(specs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range specs {
		cluster, source, found := strings.Cut(s, "=")
		if !found {
			cluster, source = "", s
		}
		if source == "" {
			return nil, fmt.Errorf("--pod-index %q: want [cluster=]%s or [cluster=]KUBECONFIG", s, inCluster)
		}
		if _, dup := out[cluster]; dup {
			return nil, fmt.Errorf("--pod-index %q: cluster %q has an index already", s, cluster)
		}
		out[cluster] = source
	}
	return out, nil
}

// podIndexSyncWait is how long an index may take for its first list of
// pods before the dispatcher warns.
const podIndexSyncWait = 30 * time.Second

// startPodIndexes starts an index of the pods of each cluster in sources
// (cluster → kubeconfig, or in-cluster), acting as `as` when it names
// someone, until ctx ends. It does not wait for them: until an index has
// listed its cluster's pods, that cluster's alerts are dispatched without
// triage, as without an index; one that has not listed them within
// podIndexSyncWait is reported (it keeps trying).
func startPodIndexes(ctx context.Context, sources map[string]string, as rest.ImpersonationConfig, log zerolog.Logger) (map[string]dispatch.PodIndex, error) {
	out := map[string]dispatch.PodIndex{}
	for cluster, source := range sources {
		path := source
		if source == inCluster {
			path = ""
		}
		cfg, err := kube.RESTConfig(path)
		if err != nil {
			return nil, fmt.Errorf("--pod-index %s: %w", source, err)
		}
		cfg.Impersonate = as
		idx, err := kube.NewPodIndex(cfg)
		if err != nil {
			return nil, fmt.Errorf("--pod-index %s: %w", source, err)
		}
		idx.Run(ctx)
		out[cluster] = idx
		log := log.With().Str("cluster", cluster).Str("source", source).Logger()
		go func() {
			if err := idx.WaitSynced(ctx, podIndexSyncWait); err != nil {
				if ctx.Err() == nil {
					log.Warn().Err(err).Msg("pod index not ready: it needs list and watch on pods (deploy/dispatch-rbac.yaml); until it lists them, this cluster's alerts are dispatched without triage")
				}
				return
			}
			log.Info().Msg("pod index ready: alerts for pods this cluster does not have go through their own lane")
		}()
	}
	return out, nil
}
