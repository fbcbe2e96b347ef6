package telemetry

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// logLines decodes every line buf holds, failing the test on any line that is not a JSON object.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not a JSON object: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestNewLoggerLineFormat(t *testing.T) {
	tests := []struct {
		name      string
		log       func(*slog.Logger)
		wantLevel string
		wantMsg   string
	}{
		{"debug", func(l *slog.Logger) { l.Debug("d") }, "debug", "d"},
		{"info", func(l *slog.Logger) { l.Info("i") }, "info", "i"},
		{"warn", func(l *slog.Logger) { l.Warn("w") }, "warn", "w"},
		{"error", func(l *slog.Logger) { l.Error("e") }, "error", "e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger, _, err := NewLogger(&buf, "debug")
			if err != nil {
				t.Fatalf("NewLogger: %v", err)
			}
			before := time.Now()
			tt.log(logger.With("component", "test"))
			lines := logLines(t, &buf)
			if len(lines) != 1 {
				t.Fatalf("got %d log lines, want 1: %s", len(lines), buf.String())
			}
			line := lines[0]
			for _, gone := range []string{"time", "LEVEL"} {
				if _, ok := line[gone]; ok {
					t.Errorf("line has key %q, want it renamed: %s", gone, buf.String())
				}
			}
			if line["level"] != tt.wantLevel {
				t.Errorf("level = %v, want %q", line["level"], tt.wantLevel)
			}
			if line["msg"] != tt.wantMsg {
				t.Errorf("msg = %v, want %q", line["msg"], tt.wantMsg)
			}
			if line["component"] != "test" {
				t.Errorf("component = %v, want %q", line["component"], "test")
			}
			tsStr, ok := line["ts"].(string)
			if !ok {
				t.Fatalf("ts = %#v, want a string", line["ts"])
			}
			ts, err := time.Parse(time.RFC3339Nano, tsStr)
			if err != nil {
				t.Fatalf("ts %q is not RFC 3339: %v", tsStr, err)
			}
			// Millisecond truncation (slog's default) would put ts before "before" most of
			// the time; nanosecond precision never does.
			if ts.Before(before.Truncate(time.Microsecond)) || ts.After(time.Now()) {
				t.Errorf("ts %v not within [%v, now]", ts, before)
			}
		})
	}
}

func TestNewLoggerLeavesUserAttrsAlone(t *testing.T) {
	var buf bytes.Buffer
	logger, _, err := NewLogger(&buf, "info")
	if err != nil {
		t.Fatalf("NewLogger: %v", err)
	}
	// Same keys and types as the built-ins, but inside a group: they are the caller's data.
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	logger.WithGroup("req").Info("m", "level", slog.LevelWarn, "time", when)
	lines := logLines(t, &buf)
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1", len(lines))
	}
	req, ok := lines[0]["req"].(map[string]any)
	if !ok {
		t.Fatalf("req group missing: %s", buf.String())
	}
	if _, renamed := req["ts"]; renamed || req["time"] == nil {
		t.Errorf("grouped time attr renamed: %s", buf.String())
	}
	if req["level"] != "WARN" {
		t.Errorf("grouped level attr = %v, want slog's own \"WARN\": %s", req["level"], buf.String())
	}
}

func TestNewLoggerLevelFiltering(t *testing.T) {
	emitAll := func(l *slog.Logger) {
		l.Debug("debug")
		l.Info("info")
		l.Warn("warn")
		l.Error("error")
	}
	tests := []struct {
		name  string
		level string
		want  []string
	}{
		{"debug", "debug", []string{"debug", "info", "warn", "error"}},
		{"info", "INFO", []string{"info", "warn", "error"}},
		{"warn", "Warn", []string{"warn", "error"}},
		{"error", "error", []string{"error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger, _, err := NewLogger(&buf, tt.level)
			if err != nil {
				t.Fatalf("NewLogger: %v", err)
			}
			emitAll(logger)
			var got []string
			for _, l := range logLines(t, &buf) {
				got = append(got, l["msg"].(string))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("emitted %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewLoggerLevelVarChangesDerivedLoggers(t *testing.T) {
	var buf bytes.Buffer
	logger, lv, err := NewLogger(&buf, "warn")
	if err != nil {
		t.Fatalf("NewLogger: %v", err)
	}
	// Derived before the change, as a component would hold it across a reload.
	derived := logger.With("component", "proxy")

	derived.Info("before")
	lv.Set(slog.LevelDebug)
	derived.Debug("after-debug")
	lv.Set(slog.LevelError)
	derived.Warn("after-error")

	var got []string
	for _, l := range logLines(t, &buf) {
		got = append(got, l["msg"].(string))
	}
	if strings.Join(got, ",") != "after-debug" {
		t.Errorf("emitted %v, want [after-debug]", got)
	}
}

func TestNewLoggerRejectsUnknownLevel(t *testing.T) {
	logger, lv, err := NewLogger(&bytes.Buffer{}, "verbose")
	if !errors.Is(err, ErrUnknownLevel) {
		t.Fatalf("err = %v, want ErrUnknownLevel", err)
	}
	if logger != nil || lv != nil {
		t.Errorf("got non-nil logger/levelvar with an error")
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"debug", "debug", slog.LevelDebug, false},
		{"info upper", "INFO", slog.LevelInfo, false},
		{"warn mixed", "wArN", slog.LevelWarn, false},
		{"error spaces", "  error\n", slog.LevelError, false},
		{"empty", "", 0, true},
		{"warning spelled out", "warning", 0, true},
		{"trace", "trace", 0, true},
		{"numeric", "4", 0, true},
		{"slog offset form", "INFO+2", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLevel(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownLevel) {
					t.Fatalf("ParseLevel(%q) err = %v, want ErrUnknownLevel", tt.in, err)
				}
				if !strings.Contains(err.Error(), "debug, info, warn or error") {
					t.Errorf("error %q does not list the valid levels", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLevel(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseLevel(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseLevel(f *testing.F) {
	for _, s := range []string{"debug", "INFO", " warn ", "error", "", "warning", "DEBUG-4", "\x00"} {
		f.Add(s)
	}
	valid := map[slog.Level]bool{slog.LevelDebug: true, slog.LevelInfo: true, slog.LevelWarn: true, slog.LevelError: true}
	f.Fuzz(func(t *testing.T, s string) {
		lvl, err := ParseLevel(s)
		if err != nil {
			if !errors.Is(err, ErrUnknownLevel) {
				t.Fatalf("ParseLevel(%q) err %v does not wrap ErrUnknownLevel", s, err)
			}
			return
		}
		if !valid[lvl] {
			t.Fatalf("ParseLevel(%q) = %v, not one of the four levels", s, lvl)
		}
		// The lower-cased slog name must parse back to the same level, so the names the logger
		// writes are names the config accepts.
		back, err := ParseLevel(strings.ToLower(lvl.String()))
		if err != nil || back != lvl {
			t.Fatalf("round trip of %v gave %v, %v", lvl, back, err)
		}
	})
}
