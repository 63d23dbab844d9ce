package main

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/soar-dev/soar/console"
)

func TestConsoleSignInIsConfiguredOrRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		addr string
		dev  bool
		want string // an error holding this; "" means ok
		kind string // the authenticator's type when ok
	}{
		{nil, ":8080", false, "", "<nil>"},
		{nil, "127.0.0.1:8080", true, "", "console.Local"},
		{[]string{"--console-auth", "local"}, "127.0.0.1:8080", false, "is soar dev's", ""},
		{[]string{"--console-auth", "local"}, "0.0.0.0:8080", true, "needs a loopback listen address", ""},
		{[]string{"--console-auth", "proxy"}, ":8080", false, "needs --console-proxy-from", ""},
		{[]string{"--console-auth", "proxy", "--console-proxy-from", "10.0.0.0/8,192.168.1.7"}, ":8080", false, "", "console.Proxy"},
		{[]string{"--console-auth", "proxy", "--console-proxy-from", "nonsense"}, ":8080", false, "want an address or a CIDR prefix", ""},
		{[]string{"--console-auth", "proxy", "--console-proxy-from", "10.0.0.1", "--console-group-map", "secops=U0ALICE"}, ":8080", false, "--console-group-map", ""},
		{[]string{"--console-auth", "ldap"}, ":8080", false, `want "oidc", "proxy" or ""`, ""},
		{[]string{"--console-auth", "ldap"}, "127.0.0.1:8080", true, `want "local", "oidc", "proxy" or ""`, ""},
		{[]string{"--console-auth", "oidc", "--console-oidc-issuer", "https://idp.example"}, ":8080", false, "needs --console-oidc-issuer, --console-oidc-client-id and --console-oidc-redirect-url", ""},
		{[]string{"--console-auth", "proxy", "--console-proxy-from", "10.0.0.1", "--console-downloads-per-minute", "-5"}, ":8080", false, "--console-downloads-per-minute -5: want 0 (no limit) or more", ""},
		{[]string{"--console-auth", "proxy", "--console-proxy-from", "10.0.0.1", "--console-downloads-per-minute", "0"}, ":8080", false, "", "console.Proxy"},
	} {
		var f consoleFlags
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		f.register(fs, tc.dev)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var local *console.Local
		if tc.dev {
			local = &console.Local{User: "api:me", Name: "me"}
		}
		a, err := f.authenticator(context.Background(), tc.addr, local, 0, zerolog.Nop())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		case tc.want == "" && typeName(a) != tc.kind:
			t.Errorf("%v: authenticator %s, want %s", tc.args, typeName(a), tc.kind)
		}
	}
}

func TestConsolePeopleFlag(t *testing.T) {
	var f consoleFlags
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	f.register(fs, false)
	if err := fs.Parse([]string{"--console-people", "alice=U0ALICE, user:bob=W0BOB"}); err != nil {
		t.Fatal(err)
	}
	m, err := f.peopleMap()
	if err != nil || m["user:alice"] != "U0ALICE" || m["user:bob"] != "W0BOB" || len(m) != 2 {
		t.Errorf("people %v, %v", m, err)
	}
	f.people = "alice=S0SECOPS"
	if _, err := f.peopleMap(); err == nil || !strings.Contains(err.Error(), "--console-people") {
		t.Errorf("a user group as a person: %v", err)
	}
}

func typeName(a console.Authenticator) string {
	switch a.(type) {
	case nil:
		return "<nil>"
	case console.Local:
		return "console.Local"
	case console.Proxy:
		return "console.Proxy"
	}
	return "?"
}

// TestConsoleSharedKey: SOAR_CONSOLE_SESSION_KEY (or its _FILE) is the key
// the replicas share; a short one fails at start, with either sign-in,
// before serve connects anywhere.
func TestConsoleSharedKey(t *testing.T) {
	proxy := consoleFlags{auth: "proxy", proxyFrom: []string{"10.0.0.0/8"}}
	t.Setenv(envSessionKey, "too-short")
	if _, err := proxy.authenticator(context.Background(), ":8080", nil, 0, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), envSessionKey+": 9 bytes, want at least 32") {
		t.Errorf("a 9-byte key: %v", err)
	}
	off := consoleFlags{}
	if a, err := off.authenticator(context.Background(), ":8080", nil, 0, zerolog.Nop()); a != nil || err != nil {
		t.Errorf("no console, a short key: %v, %v", a, err)
	}
	key := strings.Repeat("k", 32)
	t.Setenv(envSessionKey, key)
	if got, err := sharedKey(); err != nil || string(got) != key {
		t.Errorf("sharedKey() = %q, %v", got, err)
	}
	t.Setenv(envSessionKey, "")
	if got, err := sharedKey(); err != nil || got != nil {
		t.Errorf("no key: %q, %v", got, err)
	}
}
