// Package logging builds soar's zerolog loggers and adapts them for the
// libraries soar embeds, so that one process writes one log stream.
package logging

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// Formats New accepts.
const (
	// FormatAuto is console on a terminal and JSON anywhere else (a file, a
	// pipe, a log collector), as zerolog users expect.
	FormatAuto    = "auto"
	FormatConsole = "console"
	FormatJSON    = "json"
)

// New returns a logger writing to w at level ("debug", "info", "warn",
// "error") in format FormatJSON (for machines), FormatConsole (for people)
// or FormatAuto. Console lines are coloured only when w is a terminal and
// NO_COLOR is unset, so that a log file never holds escape sequences.
func New(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	tty := isTerminal(w)
	switch format {
	case FormatAuto:
		if tty {
			w = console(w, true)
		}
	case FormatJSON:
	case FormatConsole:
		w = console(w, tty)
	default:
		return zerolog.Nop(), fmt.Errorf("log format %q: want auto, console or json", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func console(w io.Writer, tty bool) zerolog.ConsoleWriter {
	return zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !tty || os.Getenv("NO_COLOR") != ""}
}

// isTerminal reports whether w is a character device, as a terminal is.
// /dev/null is one too, which does no harm: nobody reads what goes there.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Temporal adapts a zerolog logger to the Temporal SDK's log.Logger interface.
type Temporal struct{ L zerolog.Logger }

// Debug implements go.temporal.io/sdk/log.Logger.
func (t Temporal) Debug(msg string, keyvals ...any) { t.log(t.L.Debug(), msg, keyvals) }

// Info implements go.temporal.io/sdk/log.Logger.
func (t Temporal) Info(msg string, keyvals ...any) { t.log(t.L.Info(), msg, keyvals) }

// Warn implements go.temporal.io/sdk/log.Logger.
func (t Temporal) Warn(msg string, keyvals ...any) { t.log(t.L.Warn(), msg, keyvals) }

// Error implements go.temporal.io/sdk/log.Logger.
func (t Temporal) Error(msg string, keyvals ...any) { t.log(t.L.Error(), msg, keyvals) }

func (t Temporal) log(e *zerolog.Event, msg string, keyvals []any) {
	for i := 0; i+1 < len(keyvals); i += 2 {
		key, ok := keyvals[i].(string)
		if !ok {
			key = fmt.Sprint(keyvals[i])
		}
		e = e.Interface(snake(key), keyvals[i+1])
	}
	e.Msg(msg)
}

// snake turns the SDK's CamelCase keys (WorkflowID, RunID) into soar's stable
// lower_snake keys (workflow_id, run_id).
func snake(s string) string {
	out := make([]byte, 0, len(s)+4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			// Start a new word at an upper-case letter that follows a lower-case
			// one, or that begins a new word after an acronym (IDValue → id_value).
			if i > 0 && (isLower(s[i-1]) || (i+1 < len(s) && isLower(s[i+1]) && isUpper(s[i-1]))) {
				out = append(out, '_')
			}
			c += 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
