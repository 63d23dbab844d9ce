package proof

import (
	"errors"
	"strings"
	"testing"
)

type msg struct {
	User   string         `json:"user"`
	Groups []string       `json:"groups,omitempty"`
	Params map[string]any `json:"params,omitempty"`
}

func TestAProofHoldsOnlyForItsPurposeSubjectAndValue(t *testing.T) {
	k, err := Parse(Generate())
	if err != nil {
		t.Fatal(err)
	}
	v := msg{User: "U1", Groups: []string{"S1"}, Params: map[string]any{"n": 3, "pod": "web-0"}}
	p, err := Sign(k, Decision, "inc-1/ask", v)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(k, Decision, "inc-1/ask", v, p); err != nil {
		t.Fatalf("the signed value: %v", err)
	}
	other, _ := Parse(Generate())
	for name, check := range map[string]error{
		"another purpose": Verify(k, Control, "inc-1/ask", v, p),
		"another subject": Verify(k, Decision, "inc-2/ask", v, p),
		"another user":    Verify(k, Decision, "inc-1/ask", msg{User: "U2", Groups: v.Groups, Params: v.Params}, p),
		"a claimed group": Verify(k, Decision, "inc-1/ask", msg{User: "U1", Groups: []string{"S1", "S0ADMINS"}, Params: v.Params}, p),
		"another key":     Verify(other, Decision, "inc-1/ask", v, p),
		"no keys":         Verify(nil, Decision, "inc-1/ask", v, p),
		"a cut proof":     Verify(k, Decision, "inc-1/ask", v, p[:len(p)-4]),
		"another format":  Verify(k, Decision, "inc-1/ask", v, "v0."+strings.TrimPrefix(p, "v1.")),
	} {
		if !errors.Is(check, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, check)
		}
	}
	if err := Verify(k, Decision, "inc-1/ask", v, ""); !errors.Is(err, ErrMissing) {
		t.Errorf("no proof: %v", err)
	}
}

// The verifier sees the value after Temporal's JSON round trip: ints become
// float64, nil slices stay absent. The proof must still hold.
func TestAProofSurvivesTheJSONRoundTrip(t *testing.T) {
	k, _ := Parse(Generate())
	v := msg{User: "U1", Params: map[string]any{"replicas": 3, "big": 1 << 40, "s": "<b>&"}}
	p, err := Sign(k, Start, "inc", v)
	if err != nil {
		t.Fatal(err)
	}
	decoded := msg{User: "U1", Params: map[string]any{"replicas": float64(3), "big": float64(1 << 40), "s": "<b>&"}}
	if err := Verify(k, Start, "inc", decoded, p); err != nil {
		t.Fatalf("after the round trip: %v", err)
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := Generate(), Generate()
	before, _ := Parse(oldKey)
	during, err := Parse(newKey + "," + oldKey)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := Parse(newKey)
	p, _ := Sign(before, Alert, "inc", "x")
	if err := Verify(during, Alert, "inc", "x", p); err != nil {
		t.Errorf("a proof under the old key while both are held: %v", err)
	}
	if err := Verify(after, Alert, "inc", "x", p); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "does not hold") {
		t.Errorf("a proof under a retired key: %v", err)
	}
	q, _ := Sign(during, Alert, "inc", "x")
	if err := Verify(after, Alert, "inc", "x", q); err != nil {
		t.Errorf("the new key signs while both are held: %v", err)
	}
	if during.ID() != after.ID() {
		t.Errorf("signing key %s, want the first listed, %s", during.ID(), after.ID())
	}
}

func TestParseRefusesWeakKeysWithoutQuotingThem(t *testing.T) {
	for _, in := range []string{"", " , ", "short-secret", Generate() + "," + "tooshort"} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) accepted", in)
			continue
		}
		if strings.Contains(err.Error(), "short") && strings.Contains(in, "short-secret") && strings.Contains(err.Error(), "short-secret") {
			t.Errorf("the error quotes the key: %v", err)
		}
	}
	k := Generate()
	if _, err := Parse(k + "\n" + k); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a key listed twice: %v", err)
	}
}
