package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
)

// LogBuffer collects log output written from any goroutine: a component's logger in the test
// process (Logger, or slog.NewJSONHandler(buf, ...) on it) or the stderr lines of a child
// process. Records and Find read JSON lines back; lines that are not JSON objects are kept in
// String and skipped by them. The zero value is ready to use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p. slog handlers write one whole record per call.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// WriteLine appends line and a newline, for a reader that splits a child's output into lines.
func (b *LogBuffer) WriteLine(line []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(line)
	b.buf.WriteByte('\n')
}

// String returns everything written so far, for failure messages and substring checks.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Count returns how many times s occurs in the output.
func (b *LogBuffer) Count(s string) int {
	return strings.Count(b.String(), s)
}

// Logger returns a JSON logger at debug level writing to b.
func (b *LogBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Records decodes every JSON line written so far, in order.
func (b *LogBuffer) Records() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// Find returns the records whose "msg" is msg, in order.
func (b *LogBuffer) Find(msg string) []map[string]any {
	var out []map[string]any
	for _, r := range b.Records() {
		if r[slog.MessageKey] == msg {
			out = append(out, r)
		}
	}
	return out
}
