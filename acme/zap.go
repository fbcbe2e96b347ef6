package acme

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger gives certmagic, which logs with zap, a logger that writes to log, so that its
// lines are VeloFlux's JSON log lines with the component's attributes. certmagic's info lines
// (one per step of an order) become debug lines; its warnings and errors keep their level.
func newZapLogger(log *slog.Logger) *zap.Logger {
	return zap.New(zapCore{log: log})
}

type zapCore struct {
	log   *slog.Logger
	attrs []slog.Attr
}

func level(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l >= zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelDebug
	}
}

func (c zapCore) Enabled(l zapcore.Level) bool {
	return c.log.Enabled(context.Background(), level(l))
}

func (c zapCore) With(fields []zapcore.Field) zapcore.Core {
	return zapCore{log: c.log, attrs: append(append([]slog.Attr(nil), c.attrs...), attrs(fields)...)}
}

func (c zapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c zapCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	as := append(append([]slog.Attr(nil), c.attrs...), attrs(fields)...)
	if e.LoggerName != "" {
		as = append(as, slog.String("certmagic", e.LoggerName))
	}
	c.log.LogAttrs(context.Background(), level(e.Level), e.Message, as...)
	return nil
}

func (zapCore) Sync() error { return nil }

// attrs turns zap fields into slog attributes through zap's map encoder.
func attrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		out = append(out, slog.Any(k, v))
	}
	return out
}
