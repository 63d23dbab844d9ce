package logging

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{
		"WorkflowID":   "workflow_id",
		"RunID":        "run_id",
		"Namespace":    "namespace",
		"TaskQueue":    "task_queue",
		"workflow_id":  "workflow_id",
		"IDValue":      "id_value",
		"ActivityType": "activity_type",
	} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTemporalAdapterWritesStructuredFields(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "debug", "json")
	if err != nil {
		t.Fatal(err)
	}
	Temporal{L: l}.Warn("activity failed", "WorkflowID", "soar-x", "Attempt", 3)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("log line is not JSON: %v: %s", err, buf.String())
	}
	if got["message"] != "activity failed" || got["workflow_id"] != "soar-x" || got["attempt"] != 3.0 || got["level"] != "warn" {
		t.Errorf("log line = %v", got)
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "loud", "json"); err == nil {
		t.Error("level loud accepted")
	}
	if _, err := New(&bytes.Buffer{}, "info", "xml"); err == nil {
		t.Error("format xml accepted")
	}
}
