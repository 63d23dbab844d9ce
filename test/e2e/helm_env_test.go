package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/soar-dev/soar/cmd/soar/app"
)

// consoleValues turn on the console of serve with an OIDC provider.
const consoleValues = `
serve:
  replicas: 2
  console:
    auth: oidc
    oidc: {issuer: "https://id.example", clientID: soar, redirectURL: "https://soar.example/console/auth/callback", userClaim: preferred_username}
    secret: soar-console-oidc
    groupMap: security=S0SECURITY
    people: alice@example.com=U0ALICE
    viewers: [auditors, ciso]
    downloadsPerMinute: 20
`

// secretVariables are the secrets soar reads from the environment (each
// also as NAME_FILE) rather than through a flag.
var secretVariables = []string{
	app.EnvSlackBotToken, app.EnvSlackSigningSecret, app.EnvSlackAppToken, app.EnvSlackButtonKey, app.EnvAPITokens,
	app.EnvSigningKeys, app.EnvJiraAPIToken, app.EnvJiraPAT, app.EnvGitHubToken, app.EnvWebhookSecret,
	"SOAR_TEMPORAL_API_KEY", "SOAR_CONSOLE_OIDC_CLIENT_SECRET", "SOAR_CONSOLE_SESSION_KEY",
}

// flagsOf returns the flags soar sub lists in its help.
func flagsOf(t *testing.T, sub string) map[string]bool {
	t.Helper()
	out, err := exec.Command(soarBinary(t), sub, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("soar %s --help: %v\n%s", sub, err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 10 {
		t.Fatalf("soar %s --help lists %d flags:\n%s", sub, len(flags), out)
	}
	return flags
}

// readBy reports whether soar, with these flags, reads the variable name:
// as the variable of a flag (SOAR_FOO_BAR is --foo-bar) or as a secret.
func readBy(flags map[string]bool, name string) bool {
	for _, s := range secretVariables {
		if name == s || name == s+"_FILE" {
			return true
		}
	}
	return flags[strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "SOAR_")), "_", "-")]
}

// TestChartSetsOnlyWhatSoarReads: soar ignores a variable for a flag its
// subcommand does not have, so a misspelt SOAR_* in the chart would be a
// setting silently lost. Every SOAR_* variable a container of the chart
// gets, with every option on and the console of either kind, names a flag
// of that container's subcommand, as soar's own help lists them, or a
// secret soar reads; every one in soar-config, a flag of one of them.
func TestChartSetsOnlyWhatSoarReads(t *testing.T) {
	flags := map[string]map[string]bool{}
	for _, sub := range []string{"worker", "dispatch", "serve"} {
		flags[sub] = flagsOf(t, sub)
	}
	proxy := "serve: {console: {auth: proxy, proxyFrom: [10.1.0.0/16, 10.2.0.7]}}\n"
	n := 0
	for _, values := range []string{representativeValues, proxy} {
		objs := renderChart(t, values)
		for name, u := range objs["Deployment"] {
			d := deploymentOf(t, u)
			for _, c := range d.Spec.Template.Spec.Containers {
				sub := c.Args[0]
				if flags[sub] == nil {
					continue // git-sync
				}
				for _, e := range c.Env {
					if strings.HasPrefix(e.Name, "SOAR_") {
						n++
						if !readBy(flags[sub], e.Name) {
							t.Errorf("%s/%s (soar %s) gets %s, which soar %s does not read", name, c.Name, sub, e.Name, sub)
						}
					}
				}
			}
		}
		for key := range objs["ConfigMap"]["soar-config"].Object["data"].(map[string]any) {
			n++
			if !readBy(flags["worker"], key) && !readBy(flags["dispatch"], key) && !readBy(flags["serve"], key) {
				t.Errorf("soar-config sets %s, which no soar process reads", key)
			}
		}
	}
	if n < 40 {
		t.Errorf("only %d variables checked", n)
	}
}

// TestChartConfiguresTheConsole: serve.console becomes soar serve's
// --console-* settings, its secrets (the OIDC client's, the key the
// replicas share) come from the Secret named, and what it lacks fails the
// install with the value to set.
func TestChartConfiguresTheConsole(t *testing.T) {
	serve := deploymentOf(t, renderChart(t, consoleValues)["Deployment"]["soar-serve"]).Spec.Template.Spec.Containers[0]
	got := map[string]string{}
	for _, e := range serve.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			optional := ref.Optional != nil && *ref.Optional
			got[e.Name] = "secret " + ref.Name + "/" + ref.Key
			if optional && strings.HasPrefix(e.Name, "SOAR_CONSOLE_") {
				t.Errorf("%s is optional: serve would sign sessions with a key of its own per replica", e.Name)
			}
		case strings.HasPrefix(e.Name, "SOAR_CONSOLE_"):
			got[e.Name] = e.Value
		}
	}
	want := map[string]string{
		"SOAR_CONSOLE_AUTH":                 "oidc",
		"SOAR_CONSOLE_OIDC_ISSUER":          "https://id.example",
		"SOAR_CONSOLE_OIDC_CLIENT_ID":       "soar",
		"SOAR_CONSOLE_OIDC_REDIRECT_URL":    "https://soar.example/console/auth/callback",
		"SOAR_CONSOLE_OIDC_USER_CLAIM":      "preferred_username",
		"SOAR_CONSOLE_GROUP_MAP":            "security=S0SECURITY",
		"SOAR_CONSOLE_PEOPLE":               "alice@example.com=U0ALICE",
		"SOAR_CONSOLE_VIEWERS":              "auditors,ciso",
		"SOAR_CONSOLE_DOWNLOADS_PER_MINUTE": "20",
		"SOAR_CONSOLE_OIDC_CLIENT_SECRET":   "secret soar-console-oidc/oidc-client-secret",
		"SOAR_CONSOLE_SESSION_KEY":          "secret soar-console-oidc/session-key",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && strings.HasPrefix(k, "SOAR_CONSOLE_") {
			t.Errorf("%s = %q, which the values did not ask for", k, got[k])
		}
	}
	// Behind a proxy: the proxy's addresses, and the shared key, which
	// keys the forms so that a page from one replica posts to the other.
	proxy := map[string]string{}
	for _, e := range deploymentOf(t, renderChart(t, "serve: {console: {auth: proxy, proxyFrom: [10.1.0.0/16, 10.2.0.7]}}\n")["Deployment"]["soar-serve"]).Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			proxy[e.Name] = "secret " + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		} else if strings.HasPrefix(e.Name, "SOAR_CONSOLE_") {
			proxy[e.Name] = e.Value
		}
	}
	if proxy["SOAR_CONSOLE_PROXY_FROM"] != "10.1.0.0/16,10.2.0.7" || proxy["SOAR_CONSOLE_SESSION_KEY"] != "secret soar-console/session-key" {
		t.Errorf("behind a proxy the console gets %v", proxy)
	}
	if _, ok := proxy["SOAR_CONSOLE_OIDC_CLIENT_SECRET"]; ok {
		t.Error("behind a proxy the console gets an OIDC client secret")
	}
	// No console: none of its settings or secrets.
	for _, e := range deploymentOf(t, renderChart(t, "")["Deployment"]["soar-serve"]).Spec.Template.Spec.Containers[0].Env {
		if strings.HasPrefix(e.Name, "SOAR_CONSOLE_") {
			t.Errorf("without serve.console.auth, serve gets %s", e.Name)
		}
	}

	for _, tt := range []struct{ set, want string }{
		{"serve.console.auth=oidc", "serve.console.auth oidc needs serve.console.oidc.issuer, .clientID and .redirectURL"},
		{"serve.console.auth=proxy", "serve.console.auth proxy needs serve.console.proxyFrom"},
		{"serve.console.auth=local", "/serve/console/auth"},
		{"serve.console.oidc.issuer=id.example", "/serve/console/oidc/issuer"},
		{"serve.console.downloadsPerMinute=-1", "/serve/console/downloadsPerMinute"},
	} {
		out, err := helmOut(t, "template", "soar", chartDir, "--namespace", "soar", "--set", tt.set)
		if err == nil || !strings.Contains(out, tt.want) {
			t.Errorf("helm template --set %s: %v, want an error with %q:\n%s", tt.set, err, tt.want, out)
		}
	}
}
