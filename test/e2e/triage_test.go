package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/dispatch"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/playbooks"
)

// podIndex is a synced index of the test API server's pods.
func podIndex(tb testing.TB) *kube.PodIndex {
	tb.Helper()
	idx, err := kube.NewPodIndex(kubeConfig)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	idx.Run(ctx)
	if err := idx.WaitSynced(ctx, 30*time.Second); err != nil {
		tb.Fatal(err)
	}
	return idx
}

// TestAFloodForPodsThatDoNotExistDoesNotHoldBackARealPod: 200 alerts, each
// for another pod that does not exist, are published before one alert for
// a real pod. With the API server's pods indexed, the phantoms go through a
// lane one wide, in order, and the rest of them wait without holding up the
// dispatcher, so the real pod's incident opens before most of theirs, where
// in stream order it would open last. Nothing is lost or doubled: every
// phantom still opens its incident, once, counting its one alert.
//
// It runs twice: with room for every phantom to wait in the dispatcher's
// memory, and with room for 20, where the others are deferred through
// JetStream and come back later.
func TestAFloodForPodsThatDoNotExistDoesNotHoldBackARealPod(t *testing.T) {
	idx := podIndex(t)
	t.Run("waiting in memory", func(t *testing.T) { floodOfPhantoms(t, idx, 0) })
	t.Run("deferred through JetStream", func(t *testing.T) { floodOfPhantoms(t, idx, 20) })
}

func floodOfPhantoms(t *testing.T, idx *kube.PodIndex, maxWaiting int) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	s := startSoar(t, js, tc, libraryDir, dispatch.Config{Pods: map[string]dispatch.PodIndex{"": idx}, UnknownPodConcurrency: 1, UnknownPodMaxWaiting: maxWaiting})
	ns := fmt.Sprintf("triage-%d", time.Now().UnixNano())
	testenv.Namespace(t, kubeCS, ns)
	testenv.Pod(t, kubeCS, ns, "real")
	labelled := watchQuarantined(t, ns)

	const phantoms = 200
	for n := range phantoms {
		if _, err := js.PublishAsync("falco.notice.terminal_shell_in_container", stormAlert(ns, fmt.Sprintf("ghost-%d", n), n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.PublishAsync("falco.notice.terminal_shell_in_container", stormAlert(ns, "real", phantoms)); err != nil {
		t.Fatal(err)
	}
	awaitPublished(t, js)
	labelled.wait(t, "real", 5*time.Minute)

	id := func(pod string) string { return playbooks.IncidentID("terminal-shell-in-container", ns+"/"+pod) }
	opened := func(pod string) (time.Time, error) {
		d, err := tc.DescribeWorkflowExecution(ctx, id(pod), "")
		return d.GetWorkflowExecutionInfo().GetStartTime().AsTime(), err
	}
	for n := range phantoms {
		pod := fmt.Sprintf("ghost-%d", n)
		testenv.Eventually(t, 5*time.Minute, pod+"'s incident opened and counted its alert", func() error {
			st, err := incidentState(ctx, tc, id(pod))
			if err == nil && st.AlertCount != 1 {
				err = fmt.Errorf("counted %d alerts, want 1", st.AlertCount)
			}
			return err
		})
	}
	realOpened, err := opened("real")
	if err != nil {
		t.Fatal(err)
	}
	after := 0
	for n := range phantoms {
		at, err := opened(fmt.Sprintf("ghost-%d", n))
		if err != nil {
			t.Fatal(err)
		}
		if at.After(realOpened) {
			after++
		}
	}
	outcome := func(o string) float64 { return testutil.ToFloat64(s.metrics.UnknownPodAlerts.WithLabelValues(o)) }
	t.Logf("%d of %d phantom incidents opened after the real pod's; admitted at once %.0f, after waiting %.0f, deferred %.0f, overdue %.0f",
		after, phantoms, outcome("admitted"), outcome("waited"), outcome("deferred"), outcome("overdue"))
	if after < phantoms/2 {
		t.Errorf("only %d of %d phantom incidents opened after the real pod's: it waited behind them", after, phantoms)
	}
	if outcome("waited") == 0 || outcome("admitted")+outcome("waited")+outcome("overdue") != phantoms {
		t.Errorf("%.0f phantom alerts admitted at once, %.0f after waiting and %.0f overdue, want %d in all, some waiting", outcome("admitted"), outcome("waited"), outcome("overdue"), phantoms)
	}
	if deferred := outcome("deferred") > 0; deferred != (maxWaiting > 0) {
		t.Errorf("%.0f deferrals with room for %d to wait", outcome("deferred"), maxWaiting)
	}
	if started := testutil.ToFloat64(s.metrics.WorkflowsStarted.WithLabelValues("terminal-shell-in-container")); started != phantoms+1 {
		t.Errorf("%.0f incidents opened, want %d", started, phantoms+1)
	}
}
