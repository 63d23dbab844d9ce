package alert

import (
	"fmt"
	"strconv"
	"strings"
)

// String returns the lowercase name of s, such as "critical", or "unknown" for
// SeverityUnknown. A value outside the defined range prints as "Severity(42)" so
// that a corrupted value is never mistaken for a real one.
func (s Severity) String() string {
	switch s {
	case SeverityUnknown:
		return "unknown"
	case SeverityDebug:
		return "debug"
	case SeverityInformational:
		return "informational"
	case SeverityNotice:
		return "notice"
	case SeverityWarning:
		return "warning"
	case SeverityError:
		return "error"
	case SeverityCritical:
		return "critical"
	case SeverityAlert:
		return "alert"
	case SeverityEmergency:
		return "emergency"
	}
	return "Severity(" + strconv.Itoa(int(s)) + ")"
}

// ParseSeverity returns the severity named by s, ignoring case and surrounding
// spaces. It accepts:
//
//   - Falco's priority names: emergency, alert, critical, error, warning, notice,
//     informational, debug;
//   - their short syslog forms: emerg, crit, err, warn, info;
//   - the three-step scale many detectors use: low (notice), medium (warning) and
//     high (error). High maps to error rather than critical so that critical keeps
//     meaning what Falco means by it;
//   - "unknown", so that every value String returns parses back.
//
// Any other input returns SeverityUnknown and an error.
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "unknown":
		return SeverityUnknown, nil
	case "debug":
		return SeverityDebug, nil
	case "informational", "info":
		return SeverityInformational, nil
	case "notice", "low":
		return SeverityNotice, nil
	case "warning", "warn", "medium":
		return SeverityWarning, nil
	case "error", "err", "high":
		return SeverityError, nil
	case "critical", "crit":
		return SeverityCritical, nil
	case "alert":
		return SeverityAlert, nil
	case "emergency", "emerg":
		return SeverityEmergency, nil
	}
	return SeverityUnknown, fmt.Errorf("alert: unknown severity %q", s)
}

// MarshalText encodes s as its name, so JSON carries "critical" rather than 6.
// It fails for a value outside the defined range, which ParseSeverity could not
// read back.
func (s Severity) MarshalText() ([]byte, error) {
	if s < SeverityUnknown || s > SeverityEmergency {
		return nil, fmt.Errorf("alert: invalid severity %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes any name ParseSeverity accepts. On error s is left
// unchanged.
func (s *Severity) UnmarshalText(text []byte) error {
	v, err := ParseSeverity(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
