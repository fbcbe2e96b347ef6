package telemetry

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// ErrUnknownLevel is wrapped by ParseLevel (and so NewLogger) when the level name is not one
// of debug, info, warn or error.
var ErrUnknownLevel = errors.New("unknown log level")

// ParseLevel maps a level name (debug, info, warn or error, any case, surrounding spaces
// ignored) to its slog.Level. Anything else, including the empty string, is an error wrapping
// ErrUnknownLevel: a typo in the config must not silently fall back to a default level.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("parse log level %q: %w (want debug, info, warn or error)", s, ErrUnknownLevel)
}

// NewLogger returns a JSON slog logger writing one object per line to w. The keys are "ts"
// (RFC 3339 with nanoseconds), "level" (lower case, e.g. "info") and "msg", so log shippers
// need no per-component parsing rules.
//
// The returned LevelVar holds the minimum level; setting it changes what the logger (and every
// logger derived from it with With) emits, which is how a config reload changes the level
// without rebuilding loggers held by other packages.
func NewLogger(w io.Writer, level string) (*slog.Logger, *slog.LevelVar, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, nil, fmt.Errorf("new logger: %w", err)
	}
	lv := new(slog.LevelVar)
	lv.Set(lvl)
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level:       lv,
		ReplaceAttr: replaceBuiltins,
	})
	return slog.New(h), lv, nil
}

// replaceBuiltins renames and reformats slog's built-in time and level attributes. It only
// touches top-level attributes whose value has the built-in's type, so a caller's own "level"
// attribute inside a group, or a string "time" attribute, passes through unchanged.
func replaceBuiltins(groups []string, a slog.Attr) slog.Attr {
	if len(groups) != 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		if a.Value.Kind() != slog.KindTime {
			return a
		}
		// slog's default is millisecond precision; request timings need more.
		return slog.String("ts", a.Value.Time().Format(time.RFC3339Nano))
	case slog.LevelKey:
		if l, ok := a.Value.Any().(slog.Level); ok {
			return slog.String(slog.LevelKey, strings.ToLower(l.String()))
		}
	}
	return a
}
