package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/internal/proof"
)

func TestPlaybookLintReportsEveryProblemAndFails(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "name: a\nmatch: alert.rule ==\nincidentKey: alert.id\nsteps:\n  - id: s\n    action: kubernetes.quarantine\n")
	write("b.yaml", "name: b\nmatch: 'true'\nincidentKey: alert.id\nsteps:\n  - id: s\n    action: kubernetes.explode\n")

	root := newRootCmd()
	var out strings.Builder
	root.SetOut(&out)
	root.SetArgs([]string{"playbook", "lint", dir})
	err := root.Execute()
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("lint error = %v, want exit code 1", err)
	}
	got := out.String()
	for _, want := range []string{filepath.Join(dir, "a.yaml") + ":2:", filepath.Join(dir, "b.yaml") + ":6:", "kubernetes.explode"} {
		if !strings.Contains(got, want) {
			t.Errorf("lint output lacks %q:\n%s", want, got)
		}
	}
}

func TestPlaybookLintAcceptsTheLibrary(t *testing.T) {
	out := soar(t, "playbook", "lint", "../../playbooks/library")
	if !regexp.MustCompile(`^\.\./\.\./playbooks/library: [0-9]+ playbooks OK\n$`).MatchString(out) {
		t.Errorf("lint printed %q", out)
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("SOAR_PLAYBOOKS", "/nonexistent/playbooks")
	t.Setenv(app.EnvSigningKeys, proof.Generate())
	root := newRootCmd()
	root.SetArgs([]string{"dispatch", "--http-addr", ""})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/playbooks") {
		t.Fatalf("dispatch with SOAR_PLAYBOOKS set: err = %v, want it to name the directory from the environment", err)
	}
}

func TestDefaultSubjectFollowsFalcosidekick(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{`{"rule":"Terminal shell in container","priority":"Notice","output":"x"}`, "falco.notice.terminal_shell_in_container"},
		{`{"rule":"Read sensitive file untrusted","priority":"Warning","output":"x"}`, "falco.warning.read_sensitive_file_untrusted"},
		{`{"id":"1","source":"custom-detector","rule":"x"}`, "alerts.custom_detector"},
		{`not json`, "alerts.unknown"},
	} {
		if got := defaultSubject([]byte(tc.data)); got != tc.want {
			t.Errorf("defaultSubject(%s) = %q, want %q", tc.data, got, tc.want)
		}
	}
}

func TestPlaybookLintChecksWorkflowAndParameterNames(t *testing.T) {
	dir := t.TempDir()
	body := "name: a\nmatch: 'true'\nincidentKey: alert.id\nworkflow: Foo\nsteps:\n  - id: s\n    action: kubernetes.quarantine\n    with:\n      podUid: alert.k8s.podUID\n"
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	root := newRootCmd()
	var out strings.Builder
	root.SetOut(&out)
	root.SetArgs([]string{"playbook", "lint", dir})
	if err := root.Execute(); err == nil {
		t.Fatal("lint passed a playbook with an unknown workflow and parameter")
	}
	for _, want := range []string{`a.yaml:4:11: workflow: unknown workflow "Foo": workers run Respond`, `a.yaml:9:7: steps[0].with.podUid: action kubernetes.quarantine takes no parameter "podUid"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("lint output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestNATSURLsAreRedactedInErrors(t *testing.T) {
	got := redactURLs("nats://alice:s3cret@nats-1:4222, nats://tok3n@nats-2:4222,nats://nats-3:4222")
	if strings.Contains(got, "s3cret") || strings.Contains(got, "tok3n") || strings.Contains(got, "alice") {
		t.Errorf("credentials leak: %s", got)
	}
	if !strings.Contains(got, "nats-1:4222") || !strings.Contains(got, "nats://nats-3:4222") {
		t.Errorf("hosts lost: %s", got)
	}
}

func TestDevRefusesToGuessTheCluster(t *testing.T) {
	root := newRootCmd()
	root.SetArgs([]string{"dev", "--data-dir", t.TempDir(), "--playbooks", "../../playbooks/library"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "--local-kube") || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Fatalf("soar dev without --local-kube or --kubeconfig: err = %v", err)
	}
}

// TestDevRefusesALockListItsPoliciesDoNotRead: deploy/'s policies read
// soar/soar-locks, so another list would lock nothing while the worker
// wrote it; soar dev says so before it starts anything.
func TestDevRefusesALockListItsPoliciesDoNotRead(t *testing.T) {
	root := newRootCmd()
	root.SetArgs([]string{"dev", "--local-kube", "--lock-list", "soar/other", "--data-dir", t.TempDir(), "--playbooks", "../../playbooks/library"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "the policies soar dev installs read soar/soar-locks") {
		t.Fatalf("soar dev --local-kube --lock-list soar/other: err = %v", err)
	}
}

// TestDevRefusesClustersItCannotStart: --clusters needs the local API
// servers it starts, and a count it can start; the dispatcher refuses a
// default cluster that is no cluster name. All before anything starts.
func TestDevRefusesClustersItCannotStart(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--kubeconfig", "/nonexistent", "--clusters", "2"}, "pass --local-kube with it"},
		{[]string{"--local-kube", "--clusters", "9"}, "--clusters 9: from 0"},
		{[]string{"--local-kube", "--clusters", "-1"}, "--clusters -1: from 0"},
		{[]string{"--local-kube", "--clusters", "2", "--default-cluster", "dev 1"}, `--default-cluster: default cluster: cluster name "dev 1"`},
		{[]string{"--local-kube", "--clusters", "2", "--allowed-clusters", "dev-1", "--default-cluster", "dev-2"}, `default cluster dev-2 is not among the allowed clusters dev-1`},
		{[]string{"--local-kube", "--allowed-clusters", "dev-1,dev.2"}, `allowed cluster: cluster name "dev.2"`},
	} {
		root := newRootCmd()
		root.SetArgs(append([]string{"dev", "--data-dir", t.TempDir(), "--playbooks", "../../playbooks/library"}, tt.args...))
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("soar dev %v: err = %v, want %q", tt.args, err, tt.want)
		}
	}
}

func TestActionsListAndShowComeFromTheCatalogue(t *testing.T) {
	list := soar(t, "actions", "list")
	if !strings.HasPrefix(list, "ACTION") || !regexp.MustCompile(`kubernetes.quarantine\s+false\s+kubernetes.release`).MatchString(list) {
		t.Errorf("actions list printed:\n%s", list)
	}
	show := soar(t, "actions", "show", "kubernetes.quarantine")
	for _, want := range []string{`podUID`, `policyCreated`, `networking.k8s.io\s+networkpolicies\s+create,delete,get,list,update\n`,
		`core\s+configmaps\s+get,update\s+soar's lock lists only`} {
		if !regexp.MustCompile(want).MatchString(show) {
			t.Errorf("actions show lacks %q:\n%s", want, show)
		}
	}
	root := newRootCmd()
	root.SetArgs([]string{"actions", "show", "kubernetes.explode"})
	root.SetOut(&strings.Builder{})
	if err := root.Execute(); err == nil {
		t.Error("actions show accepted an unknown action")
	}
}

func TestDevKeepsItsSecretsAndNeverReplacesGivenKeys(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(app.EnvSigningKeys, "")
	t.Setenv(app.EnvSigningKeys+"_FILE", "")
	k1, tok1, err := devSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, tok2, err := devSecrets(dir)
	if err != nil || k1.ID() != k2.ID() || tok1 != tok2 || tok1.token == "" {
		t.Fatalf("a restart changed soar dev's secrets: %s/%s, %v", k1.ID(), k2.ID(), err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "signing-keys")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("signing-keys: %v %v", fi, err)
	}
	t.Setenv(app.EnvSigningKeys, "too-short")
	if _, _, err := devSecrets(dir); err == nil || !strings.Contains(err.Error(), app.EnvSigningKeys) {
		t.Errorf("an invalid SOAR_SIGNING_KEYS was not reported: %v", err)
	}
}
