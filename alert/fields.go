package alert

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
)

// The helpers below read one member of a decoded JSON object. A member that is
// missing, of the wrong type or unparsable reads as absent rather than failing
// the alert: a detection with one odd field is still worth responding to.

// stringField returns obj[key] if it is a string, else "".
func stringField(obj map[string]any, key string) string {
	s, _ := obj[key].(string)
	return s
}

// k8sField returns obj[key] as a Kubernetes name. Falco writes "<NA>" for a
// value it could not resolve, which means "not known" just like "".
func k8sField(obj map[string]any, key string) string {
	s := stringField(obj, key)
	if s == "<NA>" {
		return ""
	}
	return s
}

// timeField parses obj[key] as an RFC 3339 time, with or without fractional
// seconds, and returns it in UTC. It returns the zero time when the member is
// absent or invalid, including years JSON cannot encode again (a negative
// offset can push 0000-01-01 into year -1).
func timeField(obj map[string]any, key string) time.Time {
	s, ok := obj[key].(string)
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	t = t.UTC()
	if t.Year() < 0 || t.Year() > 9999 {
		return time.Time{}
	}
	return t
}

// severityField parses obj[key] with ParseSeverity. A severity that is absent
// or unknown is SeverityUnknown, so that playbooks can still match the alert on
// its rule.
func severityField(obj map[string]any, key string) Severity {
	s, _ := ParseSeverity(stringField(obj, key))
	return s
}

// tagsField returns the string elements of the array obj[key], or nil.
func tagsField(obj map[string]any, key string) []string {
	arr, _ := obj[key].([]any)
	var tags []string
	for _, v := range arr {
		if s, ok := v.(string); ok {
			tags = append(tags, s)
		}
	}
	return tags
}

// fieldsOf returns the object obj[key] as Alert.Fields: values normalised and
// nested objects flattened to dotted keys. It returns nil when the member is
// absent, not an object or empty.
func fieldsOf(obj map[string]any, key string) map[string]any {
	m, _ := obj[key].(map[string]any)
	if len(m) == 0 {
		return nil
	}
	for k, v := range m {
		m[k] = normalise(v)
	}
	return flatten(m)
}

// normalise replaces every json.Number in v, however deeply nested, by the Go
// number a playbook author expects. It modifies maps and slices in place.
func normalise(v any) any {
	switch v := v.(type) {
	case json.Number:
		return number(v)
	case []any:
		for i, e := range v {
			v[i] = normalise(e)
		}
	case map[string]any:
		for k, e := range v {
			v[k] = normalise(e)
		}
	}
	return v
}

// number converts a JSON number to int64 when its value is integral and fits,
// so that fields["fd.rport"] == 3333 holds, and to float64 otherwise. A number
// too large even for float64 (1e400) stays its literal text: converting it to
// infinity would make the alert impossible to encode as JSON again.
func number(n json.Number) any {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		return string(n)
	}
	// -2^63 <= f < 2^63 is exactly the range int64 can hold; both bounds are
	// exact in float64.
	if f == math.Trunc(f) && f >= math.MinInt64 && f < 1<<63 {
		return int64(f)
	}
	return f
}

// flatten replaces nested objects in m by dotted keys: {"a":{"b":1}} becomes
// {"a.b":1}. An empty nested object stays as it is, so its key is not lost.
// Objects inside arrays are left alone.
//
// Two paths can flatten to the same key ({"a.b":1,"a":{"b":2}}). The shallower
// one wins, and between equally deep ones the first in sorted key order wins;
// any fixed rule would do, but it must not depend on map iteration order.
func flatten(m map[string]any) map[string]any {
	nested := false
	for _, v := range m {
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			nested = true
			break
		}
	}
	if !nested {
		return m // The common case, and Falco's: keys are already dotted.
	}

	out := make(map[string]any, len(m))
	depth := make(map[string]int, len(m))
	var walk func(prefix string, obj map[string]any, level int)
	walk = func(prefix string, obj map[string]any, level int) {
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			key := k
			if level > 0 {
				key = prefix + "." + k
			}
			if sub, ok := obj[k].(map[string]any); ok && len(sub) > 0 {
				walk(key, sub, level+1)
				continue
			}
			if d, seen := depth[key]; seen && d <= level {
				continue
			}
			out[key] = obj[k]
			depth[key] = level
		}
	}
	walk("", m, 0)
	return out
}
