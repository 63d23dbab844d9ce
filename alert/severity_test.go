package alert

import (
	"encoding/json"
	"testing"
)

func TestParseSeverityAcceptsFalcoSyslogAndGenericNames(t *testing.T) {
	tests := []struct {
		in   string
		want Severity
	}{
		// Falco's priority names, as Falco writes them in JSON.
		{"Emergency", SeverityEmergency},
		{"Alert", SeverityAlert},
		{"Critical", SeverityCritical},
		{"Error", SeverityError},
		{"Warning", SeverityWarning},
		{"Notice", SeverityNotice},
		{"Informational", SeverityInformational},
		{"Debug", SeverityDebug},
		// Case does not matter, nor do surrounding spaces.
		{"CRITICAL", SeverityCritical},
		{"informational", SeverityInformational},
		{" warning\t", SeverityWarning},
		// Short forms, as Falco rule files and syslog write them.
		{"INFO", SeverityInformational},
		{"warn", SeverityWarning},
		{"err", SeverityError},
		{"crit", SeverityCritical},
		{"emerg", SeverityEmergency},
		// The generic three-step scale.
		{"low", SeverityNotice},
		{"Medium", SeverityWarning},
		{"high", SeverityError},
		// String's name for the zero value reads back.
		{"unknown", SeverityUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSeverity(tt.in)
			if err != nil {
				t.Fatalf("ParseSeverity(%q) failed: %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseSeverity(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseSeverityRejectsUnknownNames(t *testing.T) {
	for _, in := range []string{"", "severe", "5", "crit ical", "informationa"} {
		t.Run(in, func(t *testing.T) {
			got, err := ParseSeverity(in)
			if err == nil {
				t.Fatalf("ParseSeverity(%q) = %v, want an error", in, got)
			}
			if got != SeverityUnknown {
				t.Errorf("ParseSeverity(%q) returned %v with its error, want unknown", in, got)
			}
		})
	}
}

func TestSeveritiesIncreaseWithUrgency(t *testing.T) {
	ordered := []Severity{
		SeverityUnknown, SeverityDebug, SeverityInformational, SeverityNotice, SeverityWarning,
		SeverityError, SeverityCritical, SeverityAlert, SeverityEmergency,
	}
	for i := 1; i < len(ordered); i++ {
		if ordered[i] <= ordered[i-1] {
			t.Errorf("%v <= %v, want severities to increase with urgency", ordered[i], ordered[i-1])
		}
	}
	if !(SeverityCritical > SeverityWarning) {
		t.Error("SeverityCritical > SeverityWarning is false")
	}
}

func TestSeverityStringIsItsLowerCaseName(t *testing.T) {
	tests := []struct {
		s    Severity
		want string
	}{
		{SeverityUnknown, "unknown"},
		{SeverityDebug, "debug"},
		{SeverityInformational, "informational"},
		{SeverityNotice, "notice"},
		{SeverityWarning, "warning"},
		{SeverityError, "error"},
		{SeverityCritical, "critical"},
		{SeverityAlert, "alert"},
		{SeverityEmergency, "emergency"},
		{Severity(42), "Severity(42)"},
		{Severity(-1), "Severity(-1)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.s.String(); got != tt.want {
				t.Errorf("Severity(%d).String() = %q, want %q", int(tt.s), got, tt.want)
			}
		})
	}
}

func TestSeverityTextReadsBackAsTheSameSeverity(t *testing.T) {
	for s := SeverityUnknown; s <= SeverityEmergency; s++ {
		t.Run(s.String(), func(t *testing.T) {
			text, err := s.MarshalText()
			if err != nil {
				t.Fatalf("MarshalText failed: %v", err)
			}
			if string(text) != s.String() {
				t.Errorf("MarshalText = %q, want %q", text, s.String())
			}
			var got Severity
			if err := got.UnmarshalText(text); err != nil {
				t.Fatalf("UnmarshalText(%q) failed: %v", text, err)
			}
			if got != s {
				t.Errorf("UnmarshalText(%q) = %v, want %v", text, got, s)
			}
		})
	}
}

func TestSeverityMarshalTextRejectsOutOfRange(t *testing.T) {
	for _, s := range []Severity{-1, SeverityEmergency + 1} {
		if text, err := s.MarshalText(); err == nil {
			t.Errorf("Severity(%d).MarshalText() = %q, want an error", int(s), text)
		}
	}
}

func TestSeverityUnmarshalTextKeepsValueOnError(t *testing.T) {
	s := SeverityCritical
	if err := s.UnmarshalText([]byte("severe")); err == nil {
		t.Fatal("UnmarshalText(severe) succeeded, want an error")
	}
	if s != SeverityCritical {
		t.Errorf("after a failed UnmarshalText the severity is %v, want it unchanged (critical)", s)
	}
}

func TestSeverityIsAStringInJSON(t *testing.T) {
	type doc struct {
		Severity Severity `json:"severity"`
	}
	data, err := json.Marshal(doc{SeverityCritical})
	if err != nil {
		t.Fatalf("json.Marshal failed: %v", err)
	}
	if want := `{"severity":"critical"}`; string(data) != want {
		t.Errorf("json.Marshal = %s, want %s", data, want)
	}

	var got doc
	if err := json.Unmarshal([]byte(`{"severity":"WARN"}`), &got); err != nil {
		t.Fatalf("json.Unmarshal failed: %v", err)
	}
	if got.Severity != SeverityWarning {
		t.Errorf("json.Unmarshal gave %v, want warning", got.Severity)
	}
}
