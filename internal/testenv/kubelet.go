package testenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultKubeletVersion is the version a TestKubelet's Node reports unless
// KubeletVersion says otherwise: the version of kube-apiserver in bin/k8s.
const DefaultKubeletVersion = "v1.37.2"

// CheckpointMode says how a TestKubelet answers POST /checkpoint/...; each
// mode is an answer a real kubelet gives.
type CheckpointMode int

const (
	// CheckpointOK answers 200 with {"items":["<archive path>"]}, as a kubelet
	// with the ContainerCheckpoint feature gate and a runtime with CRIU does.
	CheckpointOK CheckpointMode = iota
	// CheckpointGateOff answers 404 "404 page not found", as a kubelet does
	// when the ContainerCheckpoint feature gate is off (the route is not
	// installed) or the kubelet predates the API.
	CheckpointGateOff
	// CheckpointRuntimeUnsupported answers 500 with the message CRI-O gives
	// when checkpoint/restore support is not enabled.
	CheckpointRuntimeUnsupported
	// CheckpointRuntimeUnimplemented answers 500 with the gRPC Unimplemented
	// error a runtime without the CheckpointContainer CRI method returns
	// (containerd before 2.0).
	CheckpointRuntimeUnimplemented
	// CheckpointRuntimeFailure answers 500 with a transient runtime error.
	CheckpointRuntimeFailure
)

// KubeletRequest is one request a TestKubelet received through the API
// server's proxy.
type KubeletRequest struct {
	Method string
	// Path is the request path, e.g. /containerLogs/ns/pod/container.
	Path  string
	Query url.Values
}

// KubeletOption configures a TestKubelet.
type KubeletOption func(*TestKubelet)

// KubeletVersion sets the version the Node reports in
// status.nodeInfo.kubeletVersion.
func KubeletVersion(v string) KubeletOption {
	return func(k *TestKubelet) { k.version = v }
}

// KubeletCheckpoint sets how the kubelet answers checkpoint requests.
func KubeletCheckpoint(mode CheckpointMode) KubeletOption {
	return func(k *TestKubelet) { k.checkpoint = mode }
}

// TestKubelet serves the parts of the kubelet's HTTPS API that soar reaches
// through the API server's node proxy: container logs and checkpoints. It is
// registered as a Node's kubelet, so kube-apiserver forwards pods/log and
// nodes/proxy requests for pods bound to that node to it.
type TestKubelet struct {
	// NodeName is the Node it serves, Addr its host:port.
	NodeName string
	Addr     string

	version    string
	srv        *httptest.Server
	mu         sync.Mutex
	checkpoint CheckpointMode
	logs       map[string]string // "ns/pod/container" and "ns/pod/container#previous"
	requests   []KubeletRequest
}

// Kubelet starts a TestKubelet and creates the Node nodeName with the
// kubelet's address (status.addresses InternalIP), port
// (status.daemonEndpoints.kubeletEndpoint) and version
// (status.nodeInfo.kubeletVersion). The server is stopped and the Node
// deleted when the test ends.
//
// The kubelet listens on the first non-loopback, non-link-local IPv4 address
// of this machine, because kube-apiserver refuses to proxy nodes/{name}/proxy
// to any address that is not global unicast; it fails the test when there is
// none. Its certificate is self-signed: kube-apiserver started without
// --kubelet-certificate-authority (as envtest starts it) does not verify it.
func Kubelet(t testing.TB, cs kubernetes.Interface, nodeName string, opts ...KubeletOption) *TestKubelet {
	t.Helper()
	ip, err := proxyableIPv4()
	if err != nil {
		t.Fatalf("test kubelet: %v", err)
	}
	k := &TestKubelet{NodeName: nodeName, version: DefaultKubeletVersion, logs: map[string]string{}}
	for _, o := range opts {
		o(k)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(k.serve))
	l, err := net.Listen("tcp4", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatalf("test kubelet: listen on %s: %v", ip, err)
	}
	srv.Listener.Close() // the loopback listener NewUnstartedServer opened
	srv.Listener = l
	srv.StartTLS()
	t.Cleanup(srv.Close)
	k.srv = srv
	k.Addr = l.Addr().String()
	port := l.Addr().(*net.TCPAddr).Port

	ctx := context.Background()
	node, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("test kubelet: create node %s: %v", nodeName, err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Nodes().Delete(context.Background(), nodeName, metav1.DeleteOptions{})
	})
	// Status is ignored on create: the API server keeps only what
	// UpdateStatus writes.
	node.Status = corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip.String()}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
		NodeInfo:        corev1.NodeSystemInfo{KubeletVersion: k.version, ContainerRuntimeVersion: "containerd://2.1.0"},
		Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
	}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("test kubelet: update node %s status: %v", nodeName, err)
	}
	return k
}

// proxyableIPv4 returns the first IPv4 address of an up interface that is
// neither loopback nor link-local.
func proxyableIPv4() (net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip := n.IP.To4()
			if ip != nil && ip.IsGlobalUnicast() && !ip.IsLinkLocalUnicast() {
				return ip, nil
			}
		}
	}
	return nil, fmt.Errorf("no non-loopback, non-link-local IPv4 address on this machine: kube-apiserver proxies to a node only at such an address")
}

// SetLog sets the current log of a container.
func (k *TestKubelet) SetLog(namespace, pod, container, log string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.logs[namespace+"/"+pod+"/"+container] = log
}

// SetPreviousLog sets the log of a container's previous instance, served
// with previous=true. Without one, the kubelet answers 400 "previous
// terminated container ... not found", as the real one does.
func (k *TestKubelet) SetPreviousLog(namespace, pod, container, log string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.logs[namespace+"/"+pod+"/"+container+"#previous"] = log
}

// SetCheckpoint changes how the kubelet answers checkpoint requests.
func (k *TestKubelet) SetCheckpoint(mode CheckpointMode) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.checkpoint = mode
}

// Requests returns the requests received so far, oldest first.
func (k *TestKubelet) Requests() []KubeletRequest {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]KubeletRequest(nil), k.requests...)
}

// Reset forgets the requests received so far.
func (k *TestKubelet) Reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.requests = nil
}

// CheckpointPath is the archive path the kubelet reports for a successful
// checkpoint, in the real kubelet's format
// (checkpoint-<pod>_<namespace>-<container>-<RFC 3339 time>.tar).
func CheckpointPath(namespace, pod, container string) string {
	return fmt.Sprintf("/var/lib/kubelet/checkpoints/checkpoint-%s_%s-%s-2026-01-02T15:04:05Z.tar", pod, namespace, container)
}

func (k *TestKubelet) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	k.mu.Lock()
	k.requests = append(k.requests, KubeletRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()})
	mode := k.checkpoint
	k.mu.Unlock()

	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 4 && parts[0] == "containerLogs" && r.Method == http.MethodGet:
		k.serveLog(w, r, parts[1], parts[2], parts[3])
	case len(parts) == 4 && parts[0] == "checkpoint" && r.Method == http.MethodPost:
		serveCheckpoint(w, mode, parts[1], parts[2], parts[3])
	default:
		http.NotFound(w, r)
	}
}

func (k *TestKubelet) serveLog(w http.ResponseWriter, r *http.Request, ns, pod, container string) {
	q := r.URL.Query()
	key := ns + "/" + pod + "/" + container
	previous := q.Get("previous") == "true"
	if previous {
		key += "#previous"
	}
	k.mu.Lock()
	log, ok := k.logs[key]
	k.mu.Unlock()
	switch {
	case !ok && previous:
		http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", container, pod), http.StatusBadRequest)
		return
	case !ok:
		http.Error(w, fmt.Sprintf("container %q not found in pod %q", container, pod), http.StatusNotFound)
		return
	}
	if s := q.Get("limitBytes"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < len(log) {
			log = log[:n]
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, log)
}

func serveCheckpoint(w http.ResponseWriter, mode CheckpointMode, ns, pod, container string) {
	failed := func(cause string) {
		http.Error(w, fmt.Sprintf("checkpointing of %s/%s/%s failed (%s)", ns, pod, container, cause), http.StatusInternalServerError)
	}
	switch mode {
	case CheckpointOK:
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"items":[%q]}`, CheckpointPath(ns, pod, container))
	case CheckpointGateOff:
		http.Error(w, "404 page not found", http.StatusNotFound)
	case CheckpointRuntimeUnsupported:
		failed("rpc error: code = Unknown desc = checkpoint/restore support not available")
	case CheckpointRuntimeUnimplemented:
		failed("rpc error: code = Unimplemented desc = method CheckpointContainer not implemented")
	default:
		failed("rpc error: code = DeadlineExceeded desc = context deadline exceeded")
	}
}
