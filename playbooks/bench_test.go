package playbooks

import (
	"fmt"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/soar-dev/soar/alert"
)

// The benchmarks in this file match one alert against 1, 20 and 200
// playbooks. BenchmarkMatch goes through Set.Match. BenchmarkBareExprRun and
// BenchmarkBareVMRun run the very same compiled programs with expr alone:
// with expr.Run, which makes a VM for every program, and on one VM for all
// of them. Set.Match skips the playbooks pinned to other rules than the
// alert's (see pinnedRules) and those whose leading facts are false (see
// leadingFacts), and computes simple incident keys in Go (see
// newNativeKey), while the bare benchmarks run every program, so
// BenchmarkBareVMRun minus Set.Match for the same playbooks=N is what these
// save, less what soar adds around expr. Most of benchPlaybooks are
// not pinned; BenchmarkMatchPinned matches against playbooks that all are,
// as the shipped library's. Run them with make bench, or:
//
//	go test -run '^$' -bench . -benchmem ./playbooks/

// benchSizes returns the numbers of playbooks the benchmarks compare: one,
// a team's library, and a large organisation's.
func benchSizes() []int { return []int{1, 20, 200} }

// benchAlert is the alert every benchmark matches: Falco's terminal shell in
// the payments namespace, the alert the shipped library answers.
func benchAlert() alert.Alert { return terminalShellAlert() }

// benchPlaybook is one generated playbook.
type benchPlaybook struct {
	name        string
	match       string
	incidentKey string
	// severity is the optional severity override.
	severity string
	// wantKey is the incident key the playbook gives benchAlert, or "" if
	// it must not match it; wantSeverity is the severity of the match.
	wantKey      string
	wantSeverity alert.Severity
}

// yaml returns the playbook file, laid out like the shipped library's.
func (p benchPlaybook) yaml() string {
	severity := ""
	if p.severity != "" {
		severity = "severity: " + yamlQuote(p.severity) + "\n"
	}
	return "name: " + p.name + "\n" +
		"description: Generated for the matching benchmarks.\n" +
		"match: " + yamlQuote(p.match) + "\n" +
		"incidentKey: " + yamlQuote(p.incidentKey) + "\n" +
		severity +
		"window: 1h\n" +
		"workflow: Respond\n" +
		"steps:\n" +
		"  - id: contain\n" +
		"    action: kubernetes.quarantine\n" +
		"    with:\n" +
		"      namespace: alert.k8s.namespace\n" +
		"      pod: alert.k8s.pod\n"
}

// yamlQuote single-quotes s, so that YAML reads neither a leading '"' as
// quoting nor " #" as a comment.
func yamlQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// benchRules returns the Falco rules of the generated playbooks, which
// benchAlert does not have.
func benchRules() []string {
	return []string{
		"Detect outbound connections to common miner pool ports",
		"Read sensitive file untrusted",
		"Drop and execute new binary in container",
		"Launch Privileged Container",
		"Create Symlink Over Sensitive Files",
		"Netcat Remote Code Execution in Container",
		"Fileless execution via memfd_create",
		"Clear Log Activities",
		"Launch Sensitive Mount Container",
		"Run shell untrusted",
		"Contact K8S API Server From Container",
		"Packet socket created in container",
		"Search Private Keys or Passwords",
		"Redirect STDOUT/STDIN to Network Connection in Container",
		"Directory traversal monitored file read",
		"Execution from /dev/shm",
		"Disallowed SSH Connection Non Standard Port",
		"PTRACE attached to process",
		"Modify Shell Configuration File",
		"Linux Kernel Module Injection Detected",
	}
}

// benchPlaybooks generates n playbooks named bench-000, bench-001, ... (so
// that a Set keeps them in index order). Their match expressions are those
// authors of Falco response playbooks write, 20 shapes each varied by index
// (rule names, namespaces, severity thresholds, tags), so that no two
// programs are the same. Every 20th playbook, starting with the first,
// matches benchAlert; the others fail on it at different depths: some on
// the first comparison, some only on the last clause. Some of the matching
// ones (from the 21st on) override the severity.
func benchPlaybooks(n int) []benchPlaybook {
	rules := benchRules()
	// None of these is payments or a prefix of it.
	teams := []string{"billing", "search", "identity", "ledger", "media", "ops", "data", "web", "ml", "edge"}
	// All above the alert's Notice.
	thresholds := []string{"Warning", "Error", "Critical", "Alert", "Emergency"}
	// MITRE techniques the alert is not tagged with.
	techniques := []string{"T1496", "T1611", "T1068", "T1543", "T1053", "T1105", "T1552", "T1070", "T1021", "T1548"}
	tools := []string{"nc", "ncat", "socat", "nmap", "tcpdump", "masscan", "hydra", "john", "kworkerds", "minerd"}
	ports := []int{5555, 6666, 7777, 8888, 9999, 14444, 14433, 45560, 45700, 3357}
	sidecars := []string{"istio-proxy", "envoy", "linkerd-proxy", "vault-agent", "fluent-bit", "otel-collector", "node-exporter", "cilium-agent", "coredns", "kube-proxy"}
	parents := []string{"systemd", "containerd", "dockerd", "kubelet", "crond", "atd", "sudo", "su", "login", "agetty"}
	// The incident keys and what they give benchAlert. The last one has
	// type any (a field), so Match checks its type at run time.
	keys := []struct{ src, want string }{
		{`alert.k8s.namespace + "/" + alert.k8s.pod`, "payments/checkout-7d9f8b6c5-x2lqp"},
		{`alert.k8s.namespace + "/" + alert.k8s.pod + "/" + alert.k8s.container`, "payments/checkout-7d9f8b6c5-x2lqp/shell"},
		{`alert.hostname + "/" + alert.k8s.pod`, "worker-2/checkout-7d9f8b6c5-x2lqp"},
		{`alert.k8s.namespace + "/" + alert.fields["user.name"]`, "payments/root"},
	}

	out := make([]benchPlaybook, n)
	for i := range out {
		shape, v := i%20, i/20
		rule := func(k int) string { return rules[(3*v+k)%len(rules)] }
		team := teams[v%len(teams)]
		threshold := thresholds[v%len(thresholds)]
		var match string
		switch shape {
		// Shape 0 matches, in four ways.
		case 0:
			switch v % 4 {
			case 0:
				// The shipped library's terminal-shell-in-container.
				match = `alert.rule == "Terminal shell in container" && alert.k8s.namespace != "" && alert.k8s.pod != ""`
				if v > 0 {
					match += fmt.Sprintf(` && alert.k8s.namespace != "sandbox-%s"`, team)
				}
			case 1:
				match = fmt.Sprintf(`alert.rule in ["Terminal shell in container", %q] && alert.severity >= Notice && not (alert.k8s.namespace in ["kube-system", "falco", %q])`, rule(0), team)
			case 2:
				match = fmt.Sprintf(`"T1059" in alert.tags && alert.fields["proc.name"] in ["sh", "bash", "ash", "zsh"] && not (alert.k8s.namespace startsWith %q)`, team)
			case 3:
				match = fmt.Sprintf(`alert.rule == "Terminal shell in container" && (alert.k8s.namespace startsWith "pay" || alert.k8s.namespace startsWith "prod-%s") && alert.fields["user.name"] == "root"`, team)
			}
		// The other shapes never match.
		case 1:
			match = fmt.Sprintf(`alert.rule == %q`, rule(0))
		case 2:
			match = fmt.Sprintf(`alert.rule == %q && alert.k8s.pod != ""`, rule(1))
		case 3:
			match = fmt.Sprintf(`alert.rule in [%q, %q, %q]`, rule(2), rule(3), rule(4))
		case 4:
			match = fmt.Sprintf(`alert.severity >= %s && not (alert.k8s.namespace in ["kube-system", "%s-sandbox"])`, threshold, team)
		case 5:
			match = fmt.Sprintf(`%q in alert.tags && alert.severity >= Notice`, techniques[v%len(techniques)])
		case 6:
			match = fmt.Sprintf(`alert.fields["proc.name"] in ["xmrig", "cpuminer", %q]`, tools[v%len(tools)])
		case 7:
			match = fmt.Sprintf(`alert.k8s.namespace startsWith "prod-%s" && alert.severity >= Warning`, team)
		case 8:
			// Right rule, other namespaces.
			match = fmt.Sprintf(`alert.rule == "Terminal shell in container" && alert.k8s.namespace in ["prod-%s", "staging-%s"]`, team, team)
		case 9:
			// Right rule, severity too low.
			match = fmt.Sprintf(`alert.rule == "Terminal shell in container" && alert.severity >= %s && alert.k8s.namespace != "%s-dev"`, threshold, team)
		case 10:
			// Everything but the namespace, which has a playbook of its own.
			match = fmt.Sprintf(`"T1059" in alert.tags && alert.fields["proc.name"] in ["sh", "bash"] && not (alert.k8s.namespace in ["payments", "kube-system", %q])`, team)
		case 11:
			// The alert has no fd.rport, as a terminal shell has no connection.
			match = fmt.Sprintf(`alert.fields["fd.rport"] in [3333, 4444, %d]`, ports[v%len(ports)])
		case 12:
			match = fmt.Sprintf(`alert.source == "k8s_audit" && alert.fields["ka.verb"] in ["create", "patch"] && alert.fields["ka.target.namespace"] == %q`, team)
		case 13:
			match = fmt.Sprintf(`alert.rule startsWith "Read sensitive file" && alert.fields["user.name"] != "svc-%s"`, team)
		case 14:
			match = fmt.Sprintf(`alert.fields["container.image.repository"] startsWith "ghcr.io/%s/"`, team)
		case 15:
			match = fmt.Sprintf(`alert.hostname == "bastion-%d" && alert.severity >= Notice`, v)
		case 16:
			match = fmt.Sprintf(`alert.k8s.container == %q && alert.severity > Warning`, sidecars[v%len(sidecars)])
		case 17:
			// Right user, wrong parent process.
			match = fmt.Sprintf(`alert.fields["user.uid"] == 0 && alert.fields["proc.pname"] in ["sshd", "cron", %q]`, parents[v%len(parents)])
		case 18:
			match = fmt.Sprintf(`alert.rule in [%q, %q] && alert.k8s.namespace startsWith "prod-" && alert.severity >= Warning`, rule(5), rule(6))
		case 19:
			match = fmt.Sprintf(`alert.rule == %q && "container" in alert.tags && alert.k8s.namespace == %q`, rule(7), team)
		}
		key := keys[(shape+v)%len(keys)]
		out[i] = benchPlaybook{name: fmt.Sprintf("bench-%03d", i), match: match, incidentKey: key.src}
		if shape == 0 {
			out[i].wantKey, out[i].wantSeverity = key.want, benchAlert().Severity
			if v%4 == 1 {
				out[i].severity = fmt.Sprintf(`alert.k8s.namespace in ["payments", %q] ? Critical : Warning`, team)
				out[i].wantSeverity = alert.SeverityCritical
			}
		}
	}
	return out
}

// benchPinnedPlaybooks is benchPlaybooks with every match expression pinned
// to a rule, as the shipped library's are: those that do not start with
// alert.rule get alert.rule == "..." && in front, with the rule of
// benchAlert for the playbooks that match it and one of benchRules for the
// others. benchAlert then runs the match expressions of the 3 playbooks in
// 20 that have its rule.
func benchPinnedPlaybooks(n int) []benchPlaybook {
	rules := benchRules()
	out := benchPlaybooks(n)
	for i, p := range out {
		if strings.HasPrefix(p.match, "alert.rule == ") || strings.HasPrefix(p.match, "alert.rule in ") {
			continue
		}
		rule := rules[i%len(rules)]
		if p.wantKey != "" {
			rule = benchAlert().Rule
		}
		// None of the expressions has a || outside parentheses, which
		// would bind looser than the &&.
		out[i].match = fmt.Sprintf("alert.rule == %q && %s", rule, p.match)
	}
	return out
}

// loadBenchPlaybooks writes playbooks as YAML files into a temporary
// directory, loads them with Load and returns the set.
func loadBenchPlaybooks(tb testing.TB, playbooks []benchPlaybook) *Set {
	tb.Helper()
	files := make(map[string]string, len(playbooks))
	for _, p := range playbooks {
		files[p.name+".yaml"] = p.yaml()
	}
	return loadPlaybooks(tb, files)
}

// wantMatches counts the playbooks that match benchAlert.
func wantMatches(playbooks []benchPlaybook) int {
	n := 0
	for _, p := range playbooks {
		if p.wantKey != "" {
			n++
		}
	}
	return n
}

// bareMatch is Set.Match without soar and without its index: it runs every
// playbook's match program, and the incident key and severity programs of those that match,
// against env, and returns how many matched. It runs the programs on m, or
// with expr.Run (a new VM for every program) when m is nil. The programs are
// the ones Load compiled for the Set, so all the benchmarks run the same
// bytecode.
func bareMatch(tb testing.TB, playbooks []*Playbook, env *Env, m *vm.VM) int {
	run := expr.Run
	if m != nil {
		run = m.Run
	}
	matches := 0
	for _, p := range playbooks {
		out, err := run(p.matchProgram, env)
		if err != nil {
			tb.Fatalf("%s: match: %v", p.Name, err)
		}
		if matched, _ := out.(bool); !matched {
			continue
		}
		out, err = run(p.incidentKeyProgram, env)
		if err != nil {
			tb.Fatalf("%s: incidentKey: %v", p.Name, err)
		}
		if key, _ := out.(string); key == "" {
			tb.Fatalf("%s: incidentKey is %#v", p.Name, out)
		}
		if p.severityProgram != nil {
			out, err = run(p.severityProgram, env)
			if err != nil {
				tb.Fatalf("%s: severity: %v", p.Name, err)
			}
			if _, ok := out.(alert.Severity); !ok {
				tb.Fatalf("%s: severity is %#v", p.Name, out)
			}
		}
		matches++
	}
	return matches
}

// TestBenchPlaybooks checks that the benchmarks measure what they claim:
// the generated playbooks load, differ from each other, and match
// benchAlert exactly where benchPlaybooks says, with the expected keys and
// severities, both through Set.Match and through bareMatch; and every one of
// benchPinnedPlaybooks is pinned to a rule.
func TestBenchPlaybooks(t *testing.T) {
	const n = 200
	for _, variant := range []struct {
		name     string
		generate func(int) []benchPlaybook
		// pinned says that every playbook must be pinned to a rule.
		pinned bool
	}{
		{"benchPlaybooks", benchPlaybooks, false},
		{"benchPinnedPlaybooks", benchPinnedPlaybooks, true},
	} {
		t.Run(variant.name, func(t *testing.T) {
			playbooks := variant.generate(n)
			set := loadBenchPlaybooks(t, playbooks)

			seen := make(map[string]string, n)
			for _, p := range playbooks {
				if other, dup := seen[p.match]; dup {
					t.Errorf("%s and %s have the same match expression %s", other, p.name, p.match)
				}
				seen[p.match] = p.name
			}

			matches, errs := set.Match(benchAlert())
			if len(errs) > 0 {
				t.Fatalf("Match errors: %v", errs)
			}
			var got, want []string
			for _, m := range matches {
				got = append(got, fmt.Sprintf("%s %s %v", m.Playbook.Name, m.IncidentKey, m.Severity))
			}
			for _, p := range playbooks {
				if p.wantKey != "" {
					want = append(want, fmt.Sprintf("%s %s %v", p.name, p.wantKey, p.wantSeverity))
				}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("Match gives\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if len(want) != n/20 {
				t.Errorf("%d of %d playbooks match, want one in 20", len(want), n)
			}

			env := NewEnv(benchAlert(), Incident{})
			if got := bareMatch(t, set.playbooks, &env, nil); got != len(want) {
				t.Errorf("bareMatch with expr.Run = %d, want %d", got, len(want))
			}
			if got := bareMatch(t, set.playbooks, &env, new(vm.VM)); got != len(want) {
				t.Errorf("bareMatch with one VM = %d, want %d", got, len(want))
			}

			t.Logf("%d of %d playbooks are not pinned to a rule", len(set.index.unpinned), n)
			if variant.pinned {
				for _, i := range set.index.unpinned {
					t.Errorf("%s is not pinned to a rule: %s", set.playbooks[i].Name, set.playbooks[i].Match)
				}
			}
		})
	}
}

// BenchmarkMatch matches benchAlert against n of benchPlaybooks with
// Set.Match.
func BenchmarkMatch(b *testing.B) {
	benchmarkMatch(b, benchPlaybooks)
}

// BenchmarkMatchPinned is BenchmarkMatch with benchPinnedPlaybooks, whose
// match expressions are all pinned to rules, as the shipped library's are,
// so that Set.Match runs only those of the playbooks for benchAlert's rule.
func BenchmarkMatchPinned(b *testing.B) {
	benchmarkMatch(b, benchPinnedPlaybooks)
}

func benchmarkMatch(b *testing.B, generate func(n int) []benchPlaybook) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("playbooks=%d", n), func(b *testing.B) {
			playbooks := generate(n)
			set := loadBenchPlaybooks(b, playbooks)
			want := wantMatches(playbooks)
			a := benchAlert()
			total := 0
			b.ReportAllocs()
			for b.Loop() {
				matches, errs := set.Match(a)
				if len(errs) > 0 {
					b.Fatal(errs)
				}
				if len(matches) != want {
					b.Fatalf("%d matches, want %d", len(matches), want)
				}
				total += len(matches)
			}
			b.ReportMetric(float64(total)/float64(b.N), "matches/op")
		})
	}
}

// BenchmarkBareExprRun does the expression work of BenchmarkMatch with
// expr.Run alone (see bareMatch), the way expr's documentation runs a
// program.
//
// The environment is built once, outside the loop, and passed as a pointer
// as Set.Match passes it: passing the Env value would make every expr.Run
// box a copy of it (over 600 bytes) on the heap, a cost Set.Match does not
// have.
func BenchmarkBareExprRun(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("playbooks=%d", n), func(b *testing.B) {
			playbooks := benchPlaybooks(n)
			set := loadBenchPlaybooks(b, playbooks)
			want := wantMatches(playbooks)
			env := NewEnv(benchAlert(), Incident{})
			total := 0
			b.ReportAllocs()
			for b.Loop() {
				matches := bareMatch(b, set.playbooks, &env, nil)
				if matches != want {
					b.Fatalf("%d matches, want %d", matches, want)
				}
				total += matches
			}
			b.ReportMetric(float64(total)/float64(b.N), "matches/op")
		})
	}
}

// BenchmarkBareVMRun is BenchmarkBareExprRun with one VM for all the
// programs of an alert, as Set.Match runs them. It is the floor Set.Match
// could reach without its index, which runs only part of the programs, while
// BenchmarkBareExprRun shows what reusing the VM saves.
func BenchmarkBareVMRun(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("playbooks=%d", n), func(b *testing.B) {
			playbooks := benchPlaybooks(n)
			set := loadBenchPlaybooks(b, playbooks)
			want := wantMatches(playbooks)
			env := NewEnv(benchAlert(), Incident{})
			total := 0
			b.ReportAllocs()
			for b.Loop() {
				var m vm.VM
				matches := bareMatch(b, set.playbooks, &env, &m)
				if matches != want {
					b.Fatalf("%d matches, want %d", matches, want)
				}
				total += matches
			}
			b.ReportMetric(float64(total)/float64(b.N), "matches/op")
		})
	}
}
