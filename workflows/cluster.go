package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/activities/contract"
)

// clusterRoutingVersion guards a change of behaviour: an incident whose
// first alert names a cluster runs its Kubernetes actions (and their
// inverses) on that cluster's task queue, where only that cluster's
// workers poll, never as a local activity of whichever worker runs the
// workflow; the first of them checks that some worker polls there, and an
// action no worker took fails as ClusterUnavailable. Incidents without a
// cluster never ask for the version, so their histories are unchanged.
const clusterRoutingVersion = "cluster-routing"

// ErrTypeClusterUnavailable: see contract.ErrTypeClusterUnavailable.
const ErrTypeClusterUnavailable = contract.ErrTypeClusterUnavailable

// clusterQueue returns the task queue on which action must run, or "" when
// it runs on the incident's own queue: it is not a Kubernetes action, or
// the incident has no cluster.
func (s *steps) clusterQueue(action string) string {
	if !strings.HasPrefix(action, contract.KubernetesPrefix) {
		return ""
	}
	first := s.st.FirstAlert
	if first == nil || first.Cluster == "" {
		return ""
	}
	if changeVersion(s.ctx, clusterRoutingVersion) < 1 {
		return ""
	}
	return contract.ClusterTaskQueue(workflow.GetInfo(s.ctx).TaskQueueName, first.Cluster)
}

// clusterCheckOptions bound the check that a cluster has a worker: a
// Temporal that does not answer within a minute fails the action rather
// than let it wait.
var clusterCheckOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    10 * time.Second,
	ScheduleToCloseTimeout: time.Minute,
	RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second},
}

// checkCluster makes sure, once per incident, that a worker polls queue
// for the incident's cluster, and returns a ClusterUnavailable error when
// none does.
func (s *steps) checkCluster(queue string) error {
	if s.st.ClusterServed {
		return nil
	}
	ctx := workflow.WithActivityOptions(s.ctx, clusterCheckOptions)
	req := contract.ClusterCheckRequest{Cluster: s.st.FirstAlert.Cluster, TaskQueue: queue}
	// A ClusterUnavailable from the check is the step's error as it is.
	if err := workflow.ExecuteActivity(ctx, contract.ClusterCheckActivity, req).Get(s.ctx, nil); err != nil {
		return err
	}
	s.st.ClusterServed = true
	return nil
}

// routed returns opts for an action on a cluster's queue: no worker taking
// an attempt within nine tenths of the action's time to close is
// ClusterUnavailable (see clusterError) rather than the plain timeout that
// would end it a moment later.
func routed(opts workflow.ActivityOptions, queue string) workflow.ActivityOptions {
	opts.TaskQueue = queue
	opts.ScheduleToStartTimeout = opts.ScheduleToCloseTimeout - opts.ScheduleToCloseTimeout/10
	return opts
}

// clusterError turns the timeout of an action that no worker of the
// incident's cluster took into ClusterUnavailable.
func (s *steps) clusterError(err error, queue string) error {
	var te *temporal.TimeoutError
	if errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("no worker of cluster %s took the action from task queue %s", s.st.FirstAlert.Cluster, queue), ErrTypeClusterUnavailable, err)
	}
	return err
}
