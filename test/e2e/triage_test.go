package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.temporal.io/sdk/client"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

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
// It runs three times: with room for every phantom to wait in the
// dispatcher's memory; with room for 20, where the others are parked, and
// the alert consumer may hold only 60 alerts unacknowledged, fewer than the
// flood (so that phantoms kept unacknowledged, waiting or deferred, would
// stop JetStream from delivering the real pod's alert until the lane had
// worked through them); and with room for 20 and a parked stream too
// small to take any, where the others are deferred through JetStream and
// come back later.
func TestAFloodForPodsThatDoNotExistDoesNotHoldBackARealPod(t *testing.T) {
	idx := podIndex(t)
	t.Run("waiting in memory", func(t *testing.T) { floodOfPhantoms(t, idx, dispatch.Config{}, "waited") })
	t.Run("parked", func(t *testing.T) {
		floodOfPhantoms(t, idx, dispatch.Config{UnknownPodMaxWaiting: 20, MaxAckPending: 60}, "parked")
	})
	t.Run("deferred through JetStream", func(t *testing.T) {
		floodOfPhantoms(t, idx, dispatch.Config{UnknownPodMaxWaiting: 20, ParkedMaxBytes: 1}, "deferred")
	})
}

// floodOfPhantoms runs the flood against a dispatcher with cfg and the pod
// index, and checks that the phantoms beyond the lane took the way named:
// waited, parked or deferred.
func floodOfPhantoms(t *testing.T, idx *kube.PodIndex, cfg dispatch.Config, way string) {
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	tc := temporalClient(t)
	cfg.Pods, cfg.UnknownPodConcurrency = map[string]dispatch.PodIndex{"": idx}, 1
	s := startSoar(t, js, tc, libraryDir, cfg)
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
	t.Logf("%d of %d phantom incidents opened after the real pod's; admitted at once %.0f, after waiting %.0f, parked %.0f, unparked %.0f, deferred %.0f, overdue %.0f",
		after, phantoms, outcome("admitted"), outcome("waited"), outcome("parked"), outcome("unparked"), outcome("deferred"), outcome("overdue"))
	if after < phantoms/2 {
		t.Errorf("only %d of %d phantom incidents opened after the real pod's: it waited behind them", after, phantoms)
	}
	if got := outcome("admitted") + outcome("waited") + outcome("unparked") + outcome("overdue"); got != phantoms {
		t.Errorf("%.0f phantom alerts admitted at once, after waiting, out of the parked stream or overdue, want %d", got, phantoms)
	}
	if outcome(way) == 0 {
		t.Errorf("no phantom alert %s", way)
	}
	for _, o := range []string{"parked", "deferred"} {
		if o != way && outcome(o) != 0 {
			t.Errorf("%.0f phantom alerts %s, where they should have %s", outcome(o), o, way)
		}
	}
	if outcome("unparked") != outcome("parked") {
		t.Errorf("%.0f alerts parked, %.0f taken out of the parked stream", outcome("parked"), outcome("unparked"))
	}
	if started := testutil.ToFloat64(s.metrics.WorkflowsStarted.WithLabelValues("terminal-shell-in-container")); started != phantoms+1 {
		t.Errorf("%.0f incidents opened, want %d", started, phantoms+1)
	}
	if way == "parked" {
		forgedParkedAlert(t, js, tc, ns)
	}
}

// forgedParkedAlert: a message someone else publishes to the parked
// subject, dressed as a parked alert but without the dispatcher's proof,
// is dead-lettered (reason forged_parked) and opens no incident.
func forgedParkedAlert(t *testing.T, js jetstream.JetStream, tc client.Client, ns string) {
	ctx := context.Background()
	dl, err := js.CreateOrUpdateConsumer(ctx, dispatch.DefaultDeadLetterStream, jetstream.ConsumerConfig{
		FilterSubject: dispatch.DefaultDeadLetterPrefix + "." + string(dispatch.ReasonForgedParked), AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(dispatch.DefaultParkedSubject)
	m.Data = stormAlert(ns, "forged", 0)
	for k, v := range map[string]string{
		dispatch.HeaderOriginalStream: dispatch.DefaultStream, dispatch.HeaderOriginalSeq: "1", dispatch.HeaderOriginalSubject: "falco.notice.x",
		dispatch.HeaderOriginalTime: "0", dispatch.HeaderFloor: "0", dispatch.HeaderProof: "v1.0123456789ab.forged",
	} {
		m.Header.Set(k, v)
	}
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	msg, err := dl.Next(jetstream.FetchMaxWait(30 * time.Second))
	if err != nil {
		t.Fatalf("the forged parked alert was not dead-lettered: %v", err)
	}
	_ = msg.Ack()
	if h := msg.Headers(); h.Get(dispatch.HeaderReason) != string(dispatch.ReasonForgedParked) || !strings.Contains(h.Get(dispatch.HeaderError), "proof") {
		t.Errorf("dead letter of the forged parked alert: %v", h)
	}
	if _, err := tc.DescribeWorkflowExecution(ctx, playbooks.IncidentID("terminal-shell-in-container", ns+"/forged"), ""); err == nil {
		t.Error("the forged parked alert opened an incident")
	}
}

// TestThePodIndexNeedsOnlyDispatchRBAC: as deploy/'s soar-dispatch, with
// deploy/dispatch-rbac.yaml applied, the pod index lists and watches the
// cluster's pods (and sees a new one); soar-dispatch may not read a pod,
// change one, or read anything else. Without the file, the index never
// syncs and tells the dispatcher it cannot tell.
func TestThePodIndexNeedsOnlyDispatchRBAC(t *testing.T) {
	ctx := context.Background()
	applyWorkerRBAC(t) // the namespace and deploy/'s ServiceAccounts
	const dispatchSA = "system:serviceaccount:soar:soar-dispatch"
	asDispatch := rest.CopyConfig(kubeConfig)
	asDispatch.Impersonate = rest.ImpersonationConfig{UserName: dispatchSA, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:soar", "system:authenticated"}}
	ns := fmt.Sprintf("index-%d", time.Now().UnixNano())
	testenv.Namespace(t, kubeCS, ns)
	testenv.Pod(t, kubeCS, ns, "before")

	t.Run("without dispatch-rbac.yaml the index cannot tell", func(t *testing.T) {
		// An earlier run (-count) may have left the binding.
		if err := kubeCS.RbacV1().ClusterRoleBindings().Delete(ctx, "soar-dispatch-pod-index", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, "an index without the role never lists the pods", func() error {
			idx, err := kube.NewPodIndex(asDispatch)
			if err != nil {
				return err
			}
			ictx, cancel := context.WithCancel(ctx)
			defer cancel()
			idx.Run(ictx)
			if err := idx.WaitSynced(ictx, 2*time.Second); err == nil {
				return errors.New("the index listed pods without the role")
			}
			if _, known := idx.Exists(ns, "before"); known {
				t.Fatal("an index that never listed says it knows")
			}
			return nil
		})
	})

	docs := manifests(t, "dispatch-rbac.yaml")
	if len(docs["ClusterRole"]) != 1 || len(docs["ClusterRoleBinding"]) != 1 || len(docs) != 2 {
		t.Fatalf("deploy/dispatch-rbac.yaml: want one ClusterRole and one ClusterRoleBinding, got %v", slices.Collect(maps.Keys(docs)))
	}
	var role rbacv1.ClusterRole
	var binding rbacv1.ClusterRoleBinding
	if err := yaml.UnmarshalStrict(docs["ClusterRole"][0], &role); err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(docs["ClusterRoleBinding"][0], &binding); err != nil {
		t.Fatal(err)
	}
	if _, err := kubeCS.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := kubeCS.RbacV1().ClusterRoleBindings().Create(ctx, &binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	kustomization, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(kustomization, []byte("- dispatch-rbac.yaml")) {
		t.Error("kustomization.yaml applies the opt-in pod index role")
	}

	var idx *kube.PodIndex
	testenv.Eventually(t, 30*time.Second, "the index, as soar-dispatch, lists the pods", func() error {
		// RBAC reaches the authorizer's cache a moment after the write.
		var err error
		if idx, err = kube.NewPodIndex(asDispatch); err != nil {
			return err
		}
		ictx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		idx.Run(ictx)
		if err := idx.WaitSynced(ictx, 3*time.Second); err != nil {
			cancel()
			return err
		}
		return nil
	})
	if exists, known := idx.Exists(ns, "before"); !exists || !known {
		t.Errorf("a pod that exists: exists %v, known %v", exists, known)
	}
	if exists, known := idx.Exists(ns, "ghost"); exists || !known {
		t.Errorf("a pod that does not exist: exists %v, known %v", exists, known)
	}
	testenv.Pod(t, kubeCS, ns, "after")
	testenv.Eventually(t, 10*time.Second, "the watch brings the new pod", func() error {
		if exists, _ := idx.Exists(ns, "after"); !exists {
			return errors.New("not yet")
		}
		return nil
	})

	cs, err := kubernetes.NewForConfig(asDispatch)
	if err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"read a pod":   func() error { _, err := cs.CoreV1().Pods(ns).Get(ctx, "before", metav1.GetOptions{}); return err }(),
		"delete a pod": cs.CoreV1().Pods(ns).Delete(ctx, "before", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}),
		"list secrets": func() error { _, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); return err }(),
		"list nodes":   func() error { _, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); return err }(),
	} {
		if !apierrors.IsForbidden(err) {
			t.Errorf("soar-dispatch may %s: %v", what, err)
		}
	}
}
