package e2e

import (
	"context"
	"net/netip"
	"path"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/soar-dev/soar/internal/testenv"
)

// The files of soar's three Deployments, in deploy/.
var deployFiles = []string{"worker.yaml", "dispatch.yaml", "serve.yaml"}

// deployments decodes the Deployment of each file, strictly: a field the
// API does not have fails the test.
func deployments(t *testing.T) map[string]appsv1.Deployment {
	t.Helper()
	out := map[string]appsv1.Deployment{}
	for _, file := range deployFiles {
		docs := manifests(t, file)["Deployment"]
		if len(docs) != 1 {
			t.Fatalf("deploy/%s: want one Deployment, got %d", file, len(docs))
		}
		var d appsv1.Deployment
		if err := yaml.UnmarshalStrict(docs[0], &d); err != nil {
			t.Fatalf("deploy/%s: %v", file, err)
		}
		out[file] = d
	}
	return out
}

// dryRunPolicies decodes every NetworkPolicy of a file in deploy/ strictly
// and creates it with a server-side dry run, so that the API server
// validates and defaults it, and returns the policies as the server would
// have stored them.
func dryRunPolicies(t *testing.T, file, namespace string) []networkingv1.NetworkPolicy {
	t.Helper()
	docs := manifests(t, file)
	for kind := range docs {
		if kind != "NetworkPolicy" {
			t.Errorf("deploy/%s holds a %s; want NetworkPolicies only", file, kind)
		}
	}
	if len(docs["NetworkPolicy"]) == 0 {
		t.Fatalf("deploy/%s holds no NetworkPolicy", file)
	}
	var out []networkingv1.NetworkPolicy
	for _, doc := range docs["NetworkPolicy"] {
		var p networkingv1.NetworkPolicy
		if err := yaml.UnmarshalStrict(doc, &p); err != nil {
			t.Fatalf("deploy/%s: %v", file, err)
		}
		if p.Namespace != namespace {
			t.Errorf("deploy/%s: %s is in namespace %q, want %q", file, p.Name, p.Namespace, namespace)
		}
		got, err := kubeCS.NetworkingV1().NetworkPolicies(namespace).Create(context.Background(), &p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("deploy/%s: the API server refuses %s: %v", file, p.Name, err)
		}
		out = append(out, *got)
	}
	return out
}

// endpoint is one end of a connection: a pod (namespace and labels, and its
// named ports) or, with no namespace, an address outside the cluster.
type endpoint struct {
	name      string
	namespace string
	labels    map[string]string
	ports     map[string]int32
	ip        string
}

func (e endpoint) isPod() bool { return e.namespace != "" }

// netpols evaluates NetworkPolicies as the API defines them.
type netpols struct {
	t        *testing.T
	policies []networkingv1.NetworkPolicy
}

func (n netpols) selects(sel *metav1.LabelSelector, set map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		n.t.Fatal(err)
	}
	return s.Matches(labels.Set(set))
}

// isolating returns the policies that select pod for direction dir.
func (n netpols) isolating(pod endpoint, dir networkingv1.PolicyType) []networkingv1.NetworkPolicy {
	var out []networkingv1.NetworkPolicy
	for _, p := range n.policies {
		if p.Namespace == pod.namespace && slices.Contains(p.Spec.PolicyTypes, dir) && n.selects(&p.Spec.PodSelector, pod.labels) {
			out = append(out, p)
		}
	}
	return out
}

func (n netpols) peerMatches(peers []networkingv1.NetworkPolicyPeer, policyNamespace string, e endpoint) bool {
	if len(peers) == 0 {
		return true
	}
	for _, peer := range peers {
		if peer.IPBlock != nil {
			if e.ip == "" {
				continue
			}
			addr := netip.MustParseAddr(e.ip)
			if !netip.MustParsePrefix(peer.IPBlock.CIDR).Contains(addr) {
				continue
			}
			if !slices.ContainsFunc(peer.IPBlock.Except, func(c string) bool { return netip.MustParsePrefix(c).Contains(addr) }) {
				return true
			}
			continue
		}
		if !e.isPod() {
			continue
		}
		nsOK := e.namespace == policyNamespace
		if peer.NamespaceSelector != nil {
			nsOK = n.selects(peer.NamespaceSelector, map[string]string{corev1.LabelMetadataName: e.namespace})
		}
		if nsOK && (peer.PodSelector == nil || n.selects(peer.PodSelector, e.labels)) {
			return true
		}
	}
	return false
}

// portMatches says whether ports admit port/proto on a pod whose named ports
// are named.
func portMatches(ports []networkingv1.NetworkPolicyPort, named map[string]int32, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.String:
			if n, ok := named[p.Port.StrVal]; ok && n == port {
				return true
			}
		default:
			lo, hi := p.Port.IntVal, p.Port.IntVal
			if p.EndPort != nil {
				hi = *p.EndPort
			}
			if port >= lo && port <= hi {
				return true
			}
		}
	}
	return false
}

// egress says whether the policies let from open a connection to port/proto
// of to.
func (n netpols) egress(from, to endpoint, port int32, proto corev1.Protocol) bool {
	pols := n.isolating(from, networkingv1.PolicyTypeEgress)
	if len(pols) == 0 {
		return true
	}
	for _, p := range pols {
		for _, r := range p.Spec.Egress {
			if n.peerMatches(r.To, p.Namespace, to) && portMatches(r.Ports, to.ports, port, proto) {
				return true
			}
		}
	}
	return false
}

// ingress says whether the policies let to accept a connection from from on
// port/proto.
func (n netpols) ingress(from, to endpoint, port int32, proto corev1.Protocol) bool {
	pols := n.isolating(to, networkingv1.PolicyTypeIngress)
	if len(pols) == 0 {
		return true
	}
	for _, p := range pols {
		for _, r := range p.Spec.Ingress {
			if n.peerMatches(r.From, p.Namespace, from) && portMatches(r.Ports, to.ports, port, proto) {
				return true
			}
		}
	}
	return false
}

// connects says whether a connection from from to port/proto of to gets
// through both ends' policies; an address outside the cluster has none.
func (n netpols) connects(from, to endpoint, port int32, proto corev1.Protocol) bool {
	if from.isPod() && !n.egress(from, to, port, proto) {
		return false
	}
	if to.isPod() && !n.ingress(from, to, port, proto) {
		return false
	}
	return true
}

// podOf is the endpoint of a Deployment's pods, and the port its container
// calls "http".
func podOf(t *testing.T, file string, d appsv1.Deployment) (endpoint, int32) {
	t.Helper()
	e := endpoint{name: file, namespace: d.Namespace, labels: d.Spec.Template.Labels, ports: map[string]int32{}}
	var http int32
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name != "" {
				e.ports[p.Name] = p.ContainerPort
			}
			if p.Name == "http" {
				http = p.ContainerPort
			}
		}
	}
	if http == 0 {
		t.Fatalf("deploy/%s: no container port named http", file)
	}
	if e.namespace != "soar" {
		t.Fatalf("deploy/%s: Deployment in namespace %q, want soar", file, e.namespace)
	}
	return e, http
}

func TestDeployNetworkPolicies(t *testing.T) {
	testenv.Namespace(t, kubeCS, "soar")
	testenv.Namespace(t, kubeCS, "temporal")
	own := dryRunPolicies(t, "networkpolicy.yaml", "soar")
	temporal := dryRunPolicies(t, "temporal-networkpolicy.example.yaml", "temporal")

	// networkpolicy.yaml is applied with the rest; the example is not.
	var kust struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(manifests(t, "kustomization.yaml")["Kustomization"][0], &kust); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kust.Resources, "networkpolicy.yaml") {
		t.Errorf("kustomization.yaml resources %v lack networkpolicy.yaml", kust.Resources)
	}
	if slices.Contains(kust.Resources, "temporal-networkpolicy.example.yaml") {
		t.Errorf("kustomization.yaml applies temporal-networkpolicy.example.yaml, which belongs in Temporal's namespace")
	}

	n := netpols{t: t, policies: append(slices.Clone(own), temporal...)}
	deps := deployments(t)
	pods := map[string]endpoint{}
	httpPort := map[string]int32{}
	for _, file := range deployFiles {
		pods[file], httpPort[file] = podOf(t, file, deps[file])
	}

	// Every policy of networkpolicy.yaml selects one of soar's pods at least:
	// a typo in a selector would leave a rule that applies to nothing.
	for _, p := range own {
		if !slices.ContainsFunc(deployFiles, func(f string) bool { return n.selects(&p.Spec.PodSelector, pods[f].labels) }) {
			t.Errorf("networkpolicy.yaml: %s selects none of soar's pods", p.Name)
		}
	}

	// What the pods talk to, labelled as the Helm charts label them.
	var (
		frontend = endpoint{name: "Temporal's frontend", namespace: "temporal", labels: map[string]string{"app.kubernetes.io/name": "temporal", "app.kubernetes.io/component": "frontend"}}
		history  = endpoint{name: "Temporal's history", namespace: "temporal", labels: map[string]string{"app.kubernetes.io/name": "temporal", "app.kubernetes.io/component": "history"}}
		web      = endpoint{name: "Temporal's web UI", namespace: "temporal", labels: map[string]string{"app.kubernetes.io/name": "temporal", "app.kubernetes.io/component": "web"}}
		nats     = endpoint{name: "NATS", namespace: "soar", labels: map[string]string{"app.kubernetes.io/name": "nats"}}
		dns      = endpoint{name: "CoreDNS", namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}}
		prom     = endpoint{name: "Prometheus", namespace: "monitoring", labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
		stranger = endpoint{name: "a pod in default", namespace: "default", labels: map[string]string{"app": "web"}}
		internet = endpoint{name: "an outside address", ip: "203.0.113.7"}
		internv6 = endpoint{name: "an outside IPv6 address", ip: "2001:db8::7"}
		apiserv  = endpoint{name: "the API server's address", ip: "10.0.0.10"}
	)
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP

	for _, file := range deployFiles {
		pod, http := pods[file], httpPort[file]
		component := pod.labels["app.kubernetes.io/component"]
		isWorker, isDispatch, isServe := component == "worker", component == "dispatch", component == "serve"
		if !isWorker && !isDispatch && !isServe {
			t.Fatalf("deploy/%s: unexpected component label %q", file, component)
		}

		// Default deny, both ways.
		if !slices.ContainsFunc(own, func(p networkingv1.NetworkPolicy) bool {
			return n.selects(&p.Spec.PodSelector, pod.labels) &&
				slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) &&
				slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) &&
				len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0
		}) {
			t.Errorf("deploy/%s: no default-deny policy (Ingress and Egress, no rules) selects its pods %v", file, pod.labels)
		}

		check := func(what string, got, want bool) {
			t.Helper()
			if got != want {
				t.Errorf("deploy/%s (%s): %s: allowed is %v, want %v", file, component, what, got, want)
			}
		}
		// Egress.
		check("to Temporal's frontend, TCP 7233", n.connects(pod, frontend, 7233, tcp), true)
		check("to Temporal's history, TCP 7234", n.connects(pod, history, 7234, tcp), false)
		check("to port 7233 in namespace default", n.connects(pod, stranger, 7233, tcp), false)
		check("to CoreDNS, UDP 53", n.connects(pod, dns, 53, udp), true)
		check("to CoreDNS, TCP 53", n.connects(pod, dns, 53, tcp), true)
		check("to NATS, TCP 4222", n.connects(pod, nats, 4222, tcp), isDispatch)
		check("to an outside address, TCP 443", n.connects(pod, internet, 443, tcp), isWorker || isServe)
		check("to an outside IPv6 address, TCP 443", n.connects(pod, internv6, 443, tcp), isWorker || isServe)
		check("to the API server, TCP 6443", n.connects(pod, apiserv, 6443, tcp), isWorker)
		check("to an outside address, TCP 80", n.connects(pod, internet, 80, tcp), false)
		check("to a pod in default, TCP 80", n.connects(pod, stranger, 80, tcp), false)
		// Ingress on the HTTP port: from everywhere for serve only, from
		// the monitoring namespace for all.
		check("from an outside address to its HTTP port", n.connects(internet, pod, http, tcp), isServe)
		check("from a pod in default to its HTTP port", n.connects(stranger, pod, http, tcp), isServe)
		check("from Temporal to its HTTP port", n.connects(frontend, pod, http, tcp), isServe)
		check("from Prometheus to its HTTP port", n.connects(prom, pod, http, tcp), true)
		check("from Prometheus to another port", n.connects(prom, pod, 22, tcp), false)
		check("from a pod in default to another port", n.connects(stranger, pod, 22, tcp), false)
		for _, other := range deployFiles {
			if other != file {
				check("from "+other+" to its HTTP port", n.connects(pods[other], pod, http, tcp), false)
			}
		}
	}

	// Only the HTTP ports of serve are open to all.
	for _, p := range own {
		for _, r := range p.Spec.Ingress {
			if len(r.From) == 0 && !n.selects(&p.Spec.PodSelector, pods["serve.yaml"].labels) {
				t.Errorf("networkpolicy.yaml: %s admits ingress from everywhere to pods other than serve's", p.Name)
			}
			if len(r.From) == 0 && (len(r.Ports) != 1 || r.Ports[0].Port == nil || r.Ports[0].Port.IntValue() != int(httpPort["serve.yaml"])) {
				t.Errorf("networkpolicy.yaml: %s admits ingress from everywhere on %v, want serve's HTTP port %d only", p.Name, r.Ports, httpPort["serve.yaml"])
			}
		}
	}

	// NATS shares soar's namespace and must not be caught by soar's policies.
	for _, dir := range []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress} {
		if pols := n.isolating(nats, dir); len(pols) > 0 {
			t.Errorf("%s of NATS pods is restricted by %s", dir, pols[0].Name)
		}
	}

	// Temporal's side, with the example applied: soar reaches the frontend,
	// Temporal's own pods reach each other, nobody else gets in.
	if len(n.isolating(frontend, networkingv1.PolicyTypeIngress)) == 0 || len(n.isolating(history, networkingv1.PolicyTypeIngress)) == 0 {
		t.Errorf("temporal-networkpolicy.example.yaml does not restrict ingress to Temporal's frontend and history")
	}
	for _, file := range deployFiles {
		if !n.ingress(pods[file], frontend, 7233, tcp) {
			t.Errorf("temporal-networkpolicy.example.yaml refuses deploy/%s's pods on the frontend's port 7233", file)
		}
		if n.ingress(pods[file], history, 7234, tcp) {
			t.Errorf("temporal-networkpolicy.example.yaml admits deploy/%s's pods to history's port 7234", file)
		}
	}
	for _, c := range []struct {
		from, to endpoint
		port     int32
		want     bool
	}{
		{web, frontend, 7233, true},
		{history, frontend, 6933, true}, // membership
		{frontend, history, 7234, true},
		{stranger, frontend, 7233, false},
		{nats, frontend, 7233, false},
		{internet, frontend, 7233, false},
		{prom, history, 9090, false}, // until its commented rule is uncommented
	} {
		if got := n.ingress(c.from, c.to, c.port, tcp); got != c.want {
			t.Errorf("temporal-networkpolicy.example.yaml: %s to %s port %d: allowed is %v, want %v", c.from.name, c.to.name, c.port, got, c.want)
		}
	}
}

func TestDeploySigningKeys(t *testing.T) {
	testenv.Namespace(t, kubeCS, "soar")
	for file, d := range deployments(t) {
		spec := d.Spec.Template.Spec
		// The pods keep the restricted security context.
		if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
			t.Errorf("deploy/%s: pod security context %+v, want runAsNonRoot and UID 65532", file, sc)
		}
		if len(spec.Containers) != 1 {
			t.Fatalf("deploy/%s: want one container, got %d", file, len(spec.Containers))
		}
		c := spec.Containers[0]
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("deploy/%s: container %s has no read-only root file system", file, c.Name)
		}

		var keysFile string
		for _, e := range c.Env {
			switch e.Name {
			case "SOAR_SIGNING_KEYS_FILE":
				if e.ValueFrom != nil || e.Value == "" {
					t.Errorf("deploy/%s: SOAR_SIGNING_KEYS_FILE should be a path, got %+v", file, e)
				}
				keysFile = e.Value
			case "SOAR_SIGNING_KEYS":
				t.Errorf("deploy/%s sets SOAR_SIGNING_KEYS as well as the file", file)
			}
		}
		if keysFile == "" {
			t.Errorf("deploy/%s: container %s does not set SOAR_SIGNING_KEYS_FILE", file, c.Name)
			continue
		}

		// The mount that holds the file: the deepest one above it.
		var mount *corev1.VolumeMount
		for i, m := range c.VolumeMounts {
			dir := path.Clean(m.MountPath)
			if strings.HasPrefix(path.Clean(keysFile), dir+"/") && (mount == nil || len(dir) > len(path.Clean(mount.MountPath))) {
				mount = &c.VolumeMounts[i]
			}
		}
		if mount == nil {
			t.Errorf("deploy/%s: SOAR_SIGNING_KEYS_FILE=%s is under no volume mount", file, keysFile)
			continue
		}
		if !mount.ReadOnly || mount.SubPath != "" || mount.SubPathExpr != "" {
			t.Errorf("deploy/%s: mount %s at %s should be read-only and whole (no subPath)", file, mount.Name, mount.MountPath)
		}
		rel := strings.TrimPrefix(path.Clean(keysFile), path.Clean(mount.MountPath)+"/")

		var vol *corev1.Volume
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == mount.Name {
				vol = &spec.Volumes[i]
			}
		}
		if vol == nil || vol.Secret == nil {
			t.Errorf("deploy/%s: volume %s is not a Secret volume", file, mount.Name)
			continue
		}
		s := vol.Secret
		if s.SecretName != "soar-signing-keys" {
			t.Errorf("deploy/%s: volume %s mounts Secret %q, want soar-signing-keys", file, vol.Name, s.SecretName)
		}
		if s.Optional != nil && *s.Optional {
			t.Errorf("deploy/%s: the signing keys Secret is optional; the processes cannot run without it", file)
		}
		// The file is the Secret's key "keys", readable by UID 65532.
		key, mode := rel, int32(corev1.SecretVolumeSourceDefaultMode)
		if s.DefaultMode != nil {
			mode = *s.DefaultMode
		}
		if len(s.Items) > 0 {
			key = ""
			for _, it := range s.Items {
				if path.Clean(it.Path) == rel {
					key = it.Key
					if it.Mode != nil {
						mode = *it.Mode
					}
				}
			}
		}
		if key != "keys" {
			t.Errorf("deploy/%s: %s is the Secret's key %q, want \"keys\"", file, keysFile, key)
		}
		if mode&0o004 == 0 && (spec.SecurityContext == nil || spec.SecurityContext.FSGroup == nil || mode&0o040 == 0) {
			t.Errorf("deploy/%s: the keys file gets mode %o, which UID 65532 cannot read", file, mode)
		}

		// And the API server takes the Deployment as it is.
		if _, err := kubeCS.AppsV1().Deployments(d.Namespace).Create(context.Background(), &d, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("deploy/%s: the API server refuses the Deployment: %v", file, err)
		}
	}
}
