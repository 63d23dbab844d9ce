package console

import (
	"strings"
	"testing"
	"time"
)

func TestSealedCookiesRefuseTampering(t *testing.T) {
	o := &OIDC{cfg: OIDCConfig{SessionKey: []byte(strings.Repeat("k", 32))}}
	v := o.seal(session{User: "alice@example.com", Groups: []string{"S0SECOPS"}, Expires: time.Now().Add(time.Hour)})
	var s session
	if !o.open(v, &s) || s.User != "alice@example.com" {
		t.Fatalf("the console's own cookie: %+v", s)
	}
	payload, sig, _ := strings.Cut(v, ".")
	forged := (&OIDC{cfg: OIDCConfig{SessionKey: []byte(strings.Repeat("x", 32))}}).seal(session{User: "mallory", Groups: []string{"S0SECOPS"}})
	for name, bad := range map[string]string{
		"another key":        forged,
		"changed payload":    strings.ToUpper(payload[:4]) + payload[4:] + "." + sig,
		"no signature":       payload,
		"empty":              "",
		"signature of other": payload + "." + strings.SplitN(forged, ".", 2)[1],
	} {
		if o.open(bad, &session{}) {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSafeNextStaysInTheConsole(t *testing.T) {
	for next, want := range map[string]string{
		"/console/incidents/x?y=1": "/console/incidents/x?y=1",
		"https://evil.example/":    "/console/",
		"//evil.example/console/":  "/console/",
		"/console/\\evil":          "/console/",
		"/api/v1/incidents":        "/console/",
		"":                         "/console/",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

func TestGroupsClaim(t *testing.T) {
	if g := stringsOf([]any{"a", 3, "b"}); strings.Join(g, ",") != "a,b" {
		t.Errorf("%v", g)
	}
	if g := stringsOf("a"); len(g) != 1 {
		t.Errorf("%v", g)
	}
	if g := stringsOf(map[string]any{}); g != nil {
		t.Errorf("%v", g)
	}
}
