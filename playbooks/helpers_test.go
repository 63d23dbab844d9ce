package playbooks

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/soar-dev/soar/alert"
)

// writeFiles writes files (name → content) into a new temporary directory
// and returns the directory.
func writeFiles(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mustLoad loads dir and fails the test on any error.
func mustLoad(t testing.TB, dir string, opts LoadOptions) *Set {
	t.Helper()
	set, err := LoadDir(dir, opts)
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	return set
}

// loadPlaybooks writes files into a temporary directory and loads it.
func loadPlaybooks(t testing.TB, files map[string]string) *Set {
	t.Helper()
	return mustLoad(t, writeFiles(t, files), LoadOptions{})
}

// playbookYAML returns a valid playbook with the given name and match
// expression, keyed by pod.
func playbookYAML(name, match string) string {
	return "name: " + name + "\n" +
		"match: " + match + "\n" +
		"incidentKey: alert.k8s.namespace + \"/\" + alert.k8s.pod\n" +
		"steps:\n" +
		"  - id: contain\n" +
		"    action: kubernetes.quarantine\n" +
		"    with:\n" +
		"      namespace: alert.k8s.namespace\n" +
		"      pod: alert.k8s.pod\n"
}

// terminalShellAlert is /work/shared/testdata/alerts/falco-terminal-shell.json
// as the Falco decoder normalises it; mods adjust it per test.
func terminalShellAlert(mods ...func(*alert.Alert)) alert.Alert {
	a := alert.Alert{
		ID:       "5d1f3c0e-8a57-4b43-9a8e-1f2b7f0c4a11",
		Source:   "syscall",
		Rule:     "Terminal shell in container",
		Severity: alert.SeverityNotice,
		Time:     time.Date(2026, 11, 20, 13, 44, 5, 478445995, time.UTC),
		Summary:  "A shell was spawned in a container with an attached terminal (evt_type=execve user=root user_uid=0 user_loginuid=-1 process=sh proc_exepath=/bin/busybox parent=runc command=sh -c clear; (bash || ash || sh) terminal=34816 exe_flags=EXE_WRITABLE container_id=ee97d9c4186f container_image=docker.io/library/alpine container_image_tag=3.20 container_name=shell k8s_ns=payments k8s_pod_name=checkout-7d9f8b6c5-x2lqp)",
		Hostname: "worker-2",
		Tags:     []string{"T1059", "container", "maturity_stable", "mitre_execution", "shell"},
		Kubernetes: alert.Kubernetes{
			Namespace: "payments",
			Pod:       "checkout-7d9f8b6c5-x2lqp",
			Container: "shell",
		},
		Fields: map[string]any{
			"container.id":               "ee97d9c4186f",
			"container.image.repository": "docker.io/library/alpine",
			"container.image.tag":        "3.20",
			"container.name":             "shell",
			"evt.time":                   int64(1795181045478445995),
			"evt.type":                   "execve",
			"k8s.ns.name":                "payments",
			"k8s.pod.name":               "checkout-7d9f8b6c5-x2lqp",
			"proc.cmdline":               "sh -c clear; (bash || ash || sh)",
			"proc.exepath":               "/bin/busybox",
			"proc.name":                  "sh",
			"proc.pname":                 "runc",
			"proc.tty":                   int64(34816),
			"user.loginuid":              int64(-1),
			"user.name":                  "root",
			"user.uid":                   int64(0),
		},
		Format: "falco",
	}
	for _, mod := range mods {
		mod(&a)
	}
	return a
}

// cryptoMinerAlert is /work/shared/testdata/alerts/falco-crypto-miner.json
// as the Falco decoder normalises it.
func cryptoMinerAlert(mods ...func(*alert.Alert)) alert.Alert {
	a := alert.Alert{
		ID:       "0b6a7e52-2f4e-4f0e-a3cb-6d1d7c59e8f2",
		Source:   "syscall",
		Rule:     "Detect outbound connections to common miner pool ports",
		Severity: alert.SeverityCritical,
		Time:     time.Date(2026, 11, 21, 9, 12, 44, 101223344, time.UTC),
		Summary:  "Outbound connection to IP/Port flagged by https://cryptoioc.ch (connection=10.244.1.17:43122->45.9.148.108:3333 lport=43122 rport=3333 fd_type=ipv4 fd_proto=tcp evt_type=connect user=app user_uid=1000 process=xmrig command=xmrig -o pool.supportxmr.com:3333 container_id=3c1e9a2b7d40 container_image=ghcr.io/acme/web container_name=web k8s_ns=shop k8s_pod_name=web-5c7d9f6b8-qz8kd)",
		Hostname: "worker-1",
		Tags:     []string{"T1496", "maturity_sandbox", "mitre_impact", "network"},
		Kubernetes: alert.Kubernetes{
			Namespace: "shop",
			Pod:       "web-5c7d9f6b8-qz8kd",
			Container: "web",
		},
		Fields: map[string]any{
			"container.id":               "3c1e9a2b7d40",
			"container.image.repository": "ghcr.io/acme/web",
			"container.name":             "web",
			"evt.time":                   int64(1795252364101223344),
			"evt.type":                   "connect",
			"fd.name":                    "10.244.1.17:43122->45.9.148.108:3333",
			"fd.rport":                   int64(3333),
			"k8s.ns.name":                "shop",
			"k8s.pod.name":               "web-5c7d9f6b8-qz8kd",
			"proc.cmdline":               "xmrig -o pool.supportxmr.com:3333",
			"proc.name":                  "xmrig",
			"user.name":                  "app",
			"user.uid":                   int64(1000),
		},
		Format: "falco",
	}
	for _, mod := range mods {
		mod(&a)
	}
	return a
}

func withSeverity(s alert.Severity) func(*alert.Alert) {
	return func(a *alert.Alert) { a.Severity = s }
}

func withField(name string, value any) func(*alert.Alert) {
	return func(a *alert.Alert) { a.Fields[name] = value }
}

func withPod(namespace, pod string) func(*alert.Alert) {
	return func(a *alert.Alert) { a.Kubernetes.Namespace, a.Kubernetes.Pod = namespace, pod }
}
