package kube

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// The bookkeeping of labels and annotations that soar sets and takes back,
// shared by pods (LabelPod, AnnotatePod and their restores) and namespaces
// (AnnotateNamespace and its restore): only the object read and patched
// differs.

// validateKeys checks metadata keys and, where values has them, their values
// (with value; nil accepts any). A key under ReservedPrefix is
// ErrReservedKey; anything else invalid is ErrInvalidInput. what names the
// metadata in the error ("pod labels", "namespace shop annotations").
func validateKeys(what string, keys []string, values map[string]string, value func(string) []string) error {
	var problems []string
	reserved := false
	for _, key := range keys {
		if strings.HasPrefix(key, ReservedPrefix) {
			reserved = true
			problems = append(problems, fmt.Sprintf("%q is under %s, which only soar writes", key, ReservedPrefix))
			continue
		}
		for _, msg := range validation.IsQualifiedName(key) {
			problems = append(problems, fmt.Sprintf("key %q: %s", key, msg))
		}
		if v, ok := values[key]; ok && value != nil {
			for _, msg := range value(v) {
				problems = append(problems, fmt.Sprintf("value %q of %q: %s", v, key, msg))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sentinel := ErrInvalidInput
	if reserved {
		sentinel = ErrReservedKey
	}
	return fmt.Errorf("%w: %s: %s", sentinel, what, strings.Join(problems, "; "))
}

// setKeys compares the values to set (keys sorted) with what the object
// carries now: the merge patch that sets them, the keys that had another
// value (with that value), and the keys that were absent. Keys already set
// are left out of the patch, so a repeat writes nothing.
func setKeys(current, values map[string]string, keys []string) (patch map[string]any, previous map[string]string, added []string) {
	patch = map[string]any{}
	for _, key := range keys {
		v := values[key]
		old, present := current[key]
		switch {
		case !present:
			added = append(added, key)
		case old != v:
			if previous == nil {
				previous = map[string]string{}
			}
			previous[key] = old
		default:
			continue
		}
		patch[key] = v
	}
	return patch, previous, added
}

// restoreKeys lists, sorted, the keys a restore may touch: those soar
// changed (previous) or added. Only those are restored, and the reserved
// check applies as on the way in, so a crafted restore cannot remove soar's
// bookkeeping.
func restoreKeys(previous map[string]string, added []string) []string {
	keys := slices.Sorted(maps.Keys(previous))
	for _, key := range added {
		if !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return keys
}

// restorePatch compares what soar set with what the object carries now: the
// merge patch that puts back previous values and removes added keys (a nil
// value), the keys restored (by it or earlier), and the keys someone changed
// since, which are left alone.
func restorePatch(current, set, previous map[string]string, keys []string) (patch map[string]any, restored, skipped []string) {
	patch = map[string]any{}
	for _, key := range keys {
		cur, present := current[key]
		prev, hadPrev := previous[key]
		switch {
		case hadPrev && present && cur == prev, !hadPrev && !present:
			restored = append(restored, key) // nothing to write
		case present && cur == set[key]:
			restored = append(restored, key)
			if hadPrev {
				patch[key] = prev
			} else {
				patch[key] = nil
			}
		default:
			skipped = append(skipped, key)
		}
	}
	return patch, restored, skipped
}
