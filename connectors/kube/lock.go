// RBAC for the lock list (deploy/quarantine-lock.yaml, a Role in soar's
// namespace):
//   - "" configmaps soar-locks: get, update

package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// LockList is the ConfigMap that deploy/quarantine-lock.yaml's admission
// policy reads: the pods, NetworkPolicies and namespaces soar keeps locked,
// and for whom. Its keys:
//
//	pod_<namespace>_<pod>                      the IncidentHash of each incident holding the pod, space-separated
//	netpol_<namespace>_soar-quarantine-<hash>  <hash>, while a pod of that incident is locked there
//	ns_<namespace>                             the hashes of every incident with a locked pod there
//	incident_<hash>                            the incident ID, for the policy's messages
//
// Only the pod_ keys are facts; the others are derived from them on every
// write. Kubernetes names hold no "_", so no key is ambiguous.
type LockList struct {
	Namespace, Name string
}

// DefaultLockList is where deploy/ puts the list.
var DefaultLockList = LockList{Namespace: "soar", Name: "soar-locks"}

// String is namespace/name.
func (l LockList) String() string { return l.Namespace + "/" + l.Name }

// ErrLockListMissing means the lock list (or the deployment-control list)
// does not exist. soar never recreates one: a recreated lock list would
// unlock every pod it held.
var ErrLockListMissing = errors.New("kube: a lock list is missing")

// maxLockKey is a ConfigMap key's longest.
const maxLockKey = 253

// WithLocks makes Quarantine lock each pod it quarantines in list, and
// Release unlock it first. proven, when set, hears each quarantine's
// outcome: whether the lock was proven (a metric, in the worker).
func (c *Client) WithLocks(list LockList, proven ...func(tamperProof bool)) *Client {
	c.locks = &locker{list: list, missing: "the admission policies refuse what they guard (fail closed); recreate it from deploy/quarantine-lock.yaml"}
	c.controls = &locker{list: DeployControlList(list), compact: true,
		missing: "blocked images and frozen namespaces are not enforced; create it from deploy/incident-deployment-control.yaml"}
	if len(proven) > 0 {
		c.locks.proven = proven[0]
	}
	return c
}

// DeployControlList is where kubernetes.block_image and
// kubernetes.freeze_namespace write: the ConfigMap soar-deploy-control next
// to the lock list. It is kept apart, and compact (a few keys, see
// compactControls), because the API server converts a policy's whole
// parameter object on every request the policy sees: the deployment-control
// policies see every pod and workload write in the cluster, and a list of
// thousands of keys would slow each by milliseconds.
func DeployControlList(list LockList) LockList {
	return LockList{Namespace: list.Namespace, Name: "soar-deploy-control"}
}

// locker writes lock changes to the list, coalescing the changes of
// concurrent quarantines into one update: a storm of new incidents makes a
// few writes to the one ConfigMap, not one conflict-retried write each.
type locker struct {
	list LockList
	// compact: the ConfigMap holds compactControls' form.
	compact bool
	// missing says what a missing ConfigMap means, and what to do.
	missing string
	// checked is the last check of the policies (policiesInForce).
	checkMu   sync.Mutex
	checked   string
	checkedAt time.Time
	proven    func(tamperProof bool)
	mu        sync.Mutex
	pending   []*lockOp
	busy      bool
}

// lockOp adds or removes an incident's hash in one fact key (pod_ in the
// lock list; image_ and freeze_ in the deployment-control list, in
// compactControls' form there), or removes it from every fact key with
// prefix.
type lockOp struct {
	key, prefix string
	incident    string
	lock        bool
	done        chan error
}

// lockTimeout bounds one write of the list, retries on conflict included.
const lockTimeout = 30 * time.Second

// lockPod adds (lock) or removes the incident's hold on the pod, and returns
// once the list says so.
func (c *Client) lockPod(ctx context.Context, namespace, pod, incident string, lock bool) error {
	if c.locks == nil {
		return nil
	}
	if key := podLockKey(namespace, pod); len(key) > maxLockKey || len(netpolLockKey(namespace, PolicyName(incident))) > maxLockKey {
		return fmt.Errorf("kube: pod %s/%s: its lock key would be longer than a ConfigMap key may be (%d)", namespace, pod, maxLockKey)
	}
	return c.writeLock(ctx, c.locks, &lockOp{key: podLockKey(namespace, pod), incident: incident, lock: lock})
}

// writeLock queues ops for l's writer and waits for their writes.
func (c *Client) writeLock(ctx context.Context, l *locker, ops ...*lockOp) error {
	if l == nil {
		return fmt.Errorf("%w: no lock list is configured (the worker's --lock-list)", ErrInvalidInput)
	}
	l.mu.Lock()
	for _, op := range ops {
		op.done = make(chan error, 1)
		l.pending = append(l.pending, op)
	}
	if !l.busy {
		l.busy = true
		go c.writeLocks(l)
	}
	l.mu.Unlock()
	for _, op := range ops {
		select {
		case err := <-op.done:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// writeLocks applies pending changes, batch after batch, until none is left.
func (c *Client) writeLocks(l *locker) {
	for {
		l.mu.Lock()
		batch := l.pending
		l.pending = nil
		if len(batch) == 0 {
			l.busy = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
		err := c.updateLocks(ctx, l, batch, false)
		cancel()
		for _, op := range batch {
			op.done <- err
		}
	}
}

// updateLocks applies ops to the list, retrying on a conflict with another
// worker's write. A dry run sends the update as a server-side dry run, even
// when it changes nothing, so that plan mode meets the API server's checks.
func (c *Client) updateLocks(ctx context.Context, l *locker, ops []*lockOp, dryRun bool) error {
	list := l.list
	api := c.cs.CoreV1().ConfigMaps(list.Namespace)
	for {
		cm, err := api.Get(ctx, list.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return l.missingError()
		}
		if err != nil {
			return fmt.Errorf("kube: read the lock list %s: %w", list, err)
		}
		data := l.apply(cm.Data, ops)
		if !dryRun && maps.Equal(data, cm.Data) {
			return nil
		}
		cm.Data = data
		_, err = api.Update(ctx, cm, metav1.UpdateOptions{FieldManager: ManagedByValue, DryRun: dryRunOption(dryRun)})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return writeError("update the lock list "+list.String(), err)
		}
		return nil
	}
}

func podLockKey(namespace, pod string) string { return "pod_" + namespace + "_" + pod }
func netpolLockKey(namespace, policy string) string {
	return "netpol_" + namespace + "_" + policy
}

// missingError says that l's ConfigMap does not exist, and what that means.
func (l *locker) missingError() error {
	return fmt.Errorf("%w: ConfigMap %s does not exist: %s", ErrLockListMissing, l.list, l.missing)
}

// apply returns data, in l's form, with ops applied.
func (l *locker) apply(data map[string]string, ops []*lockOp) map[string]string {
	if !l.compact {
		return applyLocks(data, ops)
	}
	return compactControls(applyLocks(expandControls(data), ops))
}

// compactControls turns the image_, freeze_ and incident_ keys into three
// keys of lines, which is what deploy/incident-deployment-control.yaml reads:
//
//	images     "<reference> <hash>,<hash>" per line
//	frozen     "<namespace> <hash>,<hash>" per line
//	incidents  "<hash> <incident>" per line
//
// References, namespace names and incident IDs hold no space or newline.
// Empty tables are left out.
func compactControls(data map[string]string) map[string]string {
	tables := map[string][]string{}
	for k, v := range data {
		switch {
		case strings.HasPrefix(k, "image_"):
			tables["images"] = append(tables["images"], decodeImageKey(k)+" "+strings.Join(strings.Fields(v), ","))
		case strings.HasPrefix(k, "freeze_"):
			tables["frozen"] = append(tables["frozen"], strings.TrimPrefix(k, "freeze_")+" "+strings.Join(strings.Fields(v), ","))
		case strings.HasPrefix(k, "incident_"):
			tables["incidents"] = append(tables["incidents"], strings.TrimPrefix(k, "incident_")+" "+v)
		}
	}
	out := map[string]string{}
	for name, lines := range tables {
		slices.Sort(lines)
		out[name] = strings.Join(lines, "\n")
	}
	return out
}

// expandControls is compactControls' inverse.
func expandControls(data map[string]string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(data["images"], "\n") {
		if ref, hashes, ok := strings.Cut(line, " "); ok {
			out[ImageKey(ref)] = strings.ReplaceAll(hashes, ",", " ")
		}
	}
	for _, line := range strings.Split(data["frozen"], "\n") {
		if ns, hashes, ok := strings.Cut(line, " "); ok {
			out[FreezeKey(ns)] = strings.ReplaceAll(hashes, ",", " ")
		}
	}
	for _, line := range strings.Split(data["incidents"], "\n") {
		if h, id, ok := strings.Cut(line, " "); ok {
			out["incident_"+h] = id
		}
	}
	return out
}

// factPrefixes are the keys that hold facts; the rest are derived.
var factPrefixes = []string{"pod_", "image_", "freeze_"}

func isFact(key string) bool {
	return slices.ContainsFunc(factPrefixes, func(p string) bool { return strings.HasPrefix(key, p) })
}

// applyLocks returns data with ops applied and the derived keys rebuilt.
func applyLocks(data map[string]string, ops []*lockOp) map[string]string {
	facts := map[string][]string{} // fact key -> hashes
	ids := map[string]string{}     // hash -> incident
	for k, v := range data {
		switch {
		case isFact(k):
			facts[k] = strings.Fields(v)
		case strings.HasPrefix(k, "incident_"):
			ids[strings.TrimPrefix(k, "incident_")] = v
		}
	}
	for _, op := range ops {
		hash := IncidentHash(op.incident)
		if op.prefix != "" {
			for k, hashes := range facts {
				if strings.HasPrefix(k, op.prefix) {
					facts[k] = slices.DeleteFunc(hashes, func(h string) bool { return h == hash })
				}
			}
			continue
		}
		hashes := facts[op.key]
		switch {
		case op.lock && !slices.Contains(hashes, hash):
			hashes = append(hashes, hash)
		case !op.lock:
			hashes = slices.DeleteFunc(hashes, func(h string) bool { return h == hash })
		}
		if op.lock {
			ids[hash] = op.incident
		}
		facts[op.key] = hashes
	}
	out := map[string]string{}
	nsHashes := map[string][]string{}
	used := map[string]bool{}
	for key, hashes := range facts {
		if len(hashes) == 0 {
			continue
		}
		out[key] = strings.Join(hashes, " ")
		for _, h := range hashes {
			used[h] = true
		}
		if !strings.HasPrefix(key, "pod_") {
			continue
		}
		ns, _, _ := strings.Cut(strings.TrimPrefix(key, "pod_"), "_")
		for _, h := range hashes {
			if !slices.Contains(nsHashes[ns], h) {
				nsHashes[ns] = append(nsHashes[ns], h)
			}
			out[netpolLockKey(ns, "soar-quarantine-"+h)] = h
		}
	}
	for ns, hashes := range nsHashes {
		slices.Sort(hashes)
		out["ns_"+ns] = strings.Join(hashes, " ")
	}
	for h := range used {
		out["incident_"+h] = ids[h]
	}
	return out
}

// proveLock asks the API server, as a dry run, to remove the quarantine
// label from pod, which the lock must refuse. It returns "" when it was
// refused by the lock, or why the containment is not tamper-proof, and
// whether the API server allowed the dry run.
func (c *Client) proveLock(ctx context.Context, namespace, pod, uid string) (why string, allowed bool) {
	body := fmt.Sprintf(`{"metadata":{"uid":%q,"labels":{%q:null}}}`, uid, QuarantineLabel)
	_, err := c.cs.CoreV1().Pods(namespace).Patch(ctx, pod, types.MergePatchType, []byte(body),
		metav1.PatchOptions{FieldManager: ManagedByValue, DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil:
		return "the API server let soar itself remove the quarantine label (a dry run): apply deploy/quarantine-lock.yaml", true
	case lockRefused(err):
		return "", false
	default:
		return "could not check the lock: " + err.Error(), false
	}
}

// proofPatience bounds how long proveHeld waits for the API server to see
// what the worker has just written to the lock list. The policies read the
// list through an informer, which lags the write by milliseconds at rest and
// by more under load: in a storm of 100 quarantines on two cores
// (BenchmarkQuarantineStorm100Locked, 2026-12-03) 27 of 400 first dry runs
// were let through and refused a moment later. A lock that still lets a
// dry run through after proofPatience is reported as not holding.
const proofPatience = 5 * time.Second

// proveHeld proves the lock on pod and its incident's policy: "" when both
// dry runs were refused, else why not. A dry run the API server allowed is
// asked again, with growing pauses, for up to proofPatience.
func (c *Client) proveHeld(ctx context.Context, pod *corev1.Pod, policy string) string {
	pause, deadline := 20*time.Millisecond, time.Now().Add(proofPatience)
	for {
		why, allowed := c.proveLock(ctx, pod.Namespace, pod.Name, string(pod.UID))
		if why == "" {
			why, allowed = c.provePolicyLock(ctx, pod.Namespace, policy)
		}
		if !allowed || time.Now().Add(pause).After(deadline) {
			return why
		}
		select {
		case <-ctx.Done():
			return why
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// provePolicyLock asks the API server, as a dry run, to delete the
// incident's policy in namespace, which the lock must refuse; it returns ""
// when it did, or why the policy is not locked, and whether the API server
// allowed the dry run.
func (c *Client) provePolicyLock(ctx context.Context, namespace, policy string) (why string, allowed bool) {
	err := c.cs.NetworkingV1().NetworkPolicies(namespace).Delete(ctx, policy, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case lockRefused(err):
		return "", false
	case err == nil:
		return "the API server would let soar itself delete the incident's policy " + policy + " (a dry run): apply deploy/quarantine-lock.yaml", true
	default:
		return "could not check the policy's lock: " + err.Error(), false
	}
}

// lockRefused reports whether err is the quarantine lock's refusal.
func lockRefused(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "soar-quarantine-lock")
}

// lockArtifact is the snapshot's record of the pod's quarantine lock.
const lockArtifact = "quarantine-lock.json"

// LockState is what a snapshot records of a pod's quarantine lock: whether
// the pod is on the lock list, for which incidents, and whether the API
// server refused, when the snapshot was taken, dry runs that remove its
// quarantine label and delete the first incident's policy.
type LockState struct {
	List           string    `json:"list"`
	Incidents      []string  `json:"incidents"`
	TamperProof    bool      `json:"tamperProof"`
	NotTamperProof string    `json:"notTamperProof,omitempty"`
	CheckedAt      time.Time `json:"checkedAt"`
}

// lockState reads the list and proves the lock on pod.
func (c *Client) lockState(ctx context.Context, pod *corev1.Pod) (LockState, error) {
	list := c.locks.list
	st := LockState{List: list.String(), Incidents: []string{}, CheckedAt: time.Now().UTC()}
	cm, err := c.cs.CoreV1().ConfigMaps(list.Namespace).Get(ctx, list.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		st.NotTamperProof = "the lock list " + list.String() + " is missing"
		return st, nil
	case err != nil:
		return st, fmt.Errorf("kube: read the lock list %s: %w", list, err)
	}
	hashes := strings.Fields(cm.Data[podLockKey(pod.Namespace, pod.Name)])
	for _, h := range hashes {
		st.Incidents = append(st.Incidents, cmp.Or(cm.Data["incident_"+h], h))
	}
	if len(hashes) == 0 {
		st.NotTamperProof = "the pod is not on the lock list"
		return st, nil
	}
	// As in a quarantine: a policy missing or only warning is the reason,
	// and the proof waits for a lock being loaded, not for one that is not
	// in force.
	if st.NotTamperProof = c.policiesInForce(ctx); st.NotTamperProof == "" {
		st.NotTamperProof = c.proveHeld(ctx, pod, "soar-quarantine-"+hashes[0])
	}
	st.TamperProof = st.NotTamperProof == ""
	return st, nil
}
