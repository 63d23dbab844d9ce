package playbooks

import (
	"fmt"
	"testing"
)

// benchMatches are match expressions of the kinds authors write: rule names,
// severities, tags, fields, and the odd builtin.
func benchMatches() []string {
	return []string{
		`alert.rule == "Terminal shell in container" && alert.k8s.pod != ""`,
		`alert.rule == "Detect outbound connections to common miner pool ports"`,
		`alert.severity >= Critical`,
		`"T1059" in alert.tags && alert.severity >= Notice`,
		`alert.fields["proc.name"] in ["sh", "bash", "zsh", "ash"]`,
		`alert.fields["fd.rport"] == 3333 || alert.fields["fd.rport"] == 4444`,
		`alert.k8s.namespace in ["kube-system", "falco"]`,
		`alert.rule startsWith "Read sensitive file"`,
		`alert.source == "k8s_audit" && alert.fields["ka.verb"] == "create"`,
		`lower(alert.summary) contains "xmrig"`,
		`any(alert.tags, # startsWith "mitre_")`,
		`alert.format == "generic" && alert.severity >= Error`,
		`alert.rule matches "^Launch (Privileged|Sensitive Mount) Container$"`,
		`alert.fields["container.image.repository"] startsWith "docker.io/"`,
		`alert.hostname == "worker-9" && alert.severity == Emergency`,
		`len(alert.tags) > 10`,
		`alert.fields["user.uid"] == 0 && alert.k8s.pod != ""`,
		`alert.rule in ["Drop and execute new binary in container", "Fileless execution via memfd_create"]`,
		`alert.k8s.container == "istio-proxy" && alert.severity > Warning`,
		`alert.fields["evt.type"] == "execve" && alert.fields["proc.pname"] == "runc"`,
	}
}

func BenchmarkMatch(b *testing.B) {
	matches := benchMatches()
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("playbooks=%d", n), func(b *testing.B) {
			files := make(map[string]string, n)
			for i := range n {
				name := fmt.Sprintf("p%02d", i)
				// Single quotes keep YAML from reading a leading '"' as
				// quoting or " #" as a comment.
				files[name+".yaml"] = playbookYAML(name, "'"+matches[i%len(matches)]+"'")
			}
			set := loadPlaybooks(b, files)
			a := terminalShellAlert()
			b.ReportAllocs()
			for b.Loop() {
				if _, errs := set.Match(a); len(errs) > 0 {
					b.Fatal(errs)
				}
			}
		})
	}
}
