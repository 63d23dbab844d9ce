package slack_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/soar-dev/soar/connectors/slack"
)

func sampleValue() slack.ButtonValue {
	return slack.ButtonValue{
		Incident: "inc-" + strings.Repeat("a", 60), Step: "approve-quarantine-of-the-pod",
		Approve: true, PlanHash: strings.Repeat("f", 64), Expires: time.Unix(1_800_000_000, 0),
	}
}

func TestSignerVerifiesWhatItSigned(t *testing.T) {
	s := newSigner(t)
	want := sampleValue()
	got, err := s.Verify(s.Sign(want))
	if err != nil {
		t.Fatal(err)
	}
	if got.Incident != want.Incident || got.Step != want.Step || got.Approve != want.Approve ||
		got.PlanHash != want.PlanHash || !got.Expires.Equal(want.Expires) {
		t.Errorf("Verify(Sign(v)) = %+v, want %+v", got, want)
	}
}

func TestSignerRejectsEverySingleByteChange(t *testing.T) {
	s := newSigner(t)
	value := s.Sign(sampleValue())
	for i := range len(value) {
		for _, c := range []byte{value[i] ^ 0x01, value[i] ^ 0x20, 'A', '_', '.', 0} {
			if c == value[i] {
				continue
			}
			changed := value[:i] + string(c) + value[i+1:]
			if _, err := s.Verify(changed); !errors.Is(err, slack.ErrBadButton) {
				t.Fatalf("changing byte %d to %q: Verify = %v, want ErrBadButton", i, c, err)
			}
		}
		if _, err := s.Verify(value[:i] + value[i+1:]); !errors.Is(err, slack.ErrBadButton) {
			t.Fatalf("removing byte %d: Verify = %v, want ErrBadButton", i, err)
		}
	}
	for _, bad := range []string{"", "v1.", "v1..", "v2." + strings.TrimPrefix(value, "v1."), value + "A", value + ".x"} {
		if _, err := s.Verify(bad); !errors.Is(err, slack.ErrBadButton) {
			t.Errorf("Verify(%q) = %v, want ErrBadButton", bad, err)
		}
	}
}

func TestSignerRejectsAnotherKey(t *testing.T) {
	other, err := slack.NewSigner([]byte("another key of at least thirty-two bytes"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newSigner(t).Verify(other.Sign(sampleValue())); !errors.Is(err, slack.ErrBadButton) {
		t.Errorf("a value signed with another key: %v, want ErrBadButton", err)
	}
}

func TestSignedValueFitsSlack(t *testing.T) {
	v := sampleValue()
	v.Incident = strings.Repeat("x", 64)
	v.Step = strings.Repeat("s", 64)
	if n := len(newSigner(t).Sign(v)); n >= 2000 {
		t.Errorf("a signed value is %d characters, Slack allows 2000", n)
	}
}

func TestNewSignerNeedsALongKey(t *testing.T) {
	_, err := slack.NewSigner([]byte("too short"))
	if err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("NewSigner(short key) = %v, want an error asking for 32 bytes", err)
	}
}
