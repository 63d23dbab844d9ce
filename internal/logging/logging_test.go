package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSnakeTurnsSDKKeysIntoLowerSnakeCase(t *testing.T) {
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

// TestLogsToAFileOrPipeAreJSONWithoutEscapes: 'soar dev > log' or
// 'soar dev | jq' must get JSON lines, not a terminal's colours.
func TestLogsToAFileOrPipeAreJSONWithoutEscapes(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) (w *os.File, read func() string){
		"file": func(t *testing.T) (*os.File, func() string) {
			path := filepath.Join(t.TempDir(), "soar.log")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			return f, func() string {
				_ = f.Close()
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
		},
		"pipe": func(t *testing.T) (*os.File, func() string) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 1)
			go func() {
				b, _ := io.ReadAll(r)
				_ = r.Close()
				got <- string(b)
			}()
			return w, func() string {
				_ = w.Close()
				return <-got
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			w, read := open(t)
			l, err := New(w, "info", FormatAuto)
			if err != nil {
				t.Fatal(err)
			}
			l.Info().Str("incident_id", "soar-x").Msg("incident opened")
			l.Warn().Msg("alert dead-lettered")
			out := read()
			if strings.Contains(out, "\x1b") {
				t.Errorf("escape sequences in %s: %q", name, out)
			}
			sc := bufio.NewScanner(strings.NewReader(out))
			lines := 0
			for sc.Scan() {
				var line map[string]any
				if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
					t.Fatalf("line %d is not JSON: %v: %q", lines+1, err, sc.Text())
				}
				lines++
			}
			if lines != 2 {
				t.Errorf("%d lines, want 2:\n%s", lines, out)
			}
		})
	}
}

func TestConsoleFormatIsUncolouredOutsideATerminal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "soar.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(f, "info", FormatConsole)
	if err != nil {
		t.Fatal(err)
	}
	l.Error().Str("incident_id", "soar-x").Msg("step failed")
	_ = f.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if out := string(b); strings.Contains(out, "\x1b") || !strings.Contains(out, "step failed") || !strings.Contains(out, "incident_id=soar-x") {
		t.Errorf("console line in a file = %q, want it readable and without escapes", out)
	}
}
