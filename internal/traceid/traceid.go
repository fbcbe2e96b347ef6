// Package traceid draws random W3C trace and span IDs, as the OpenTelemetry SDK's own
// generator does, for the code that names a span before (or instead of) asking the SDK for
// one.
package traceid

import (
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
)

// NewTraceID returns a random, valid (not all zero) trace ID.
func NewTraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid
}

// NewSpanID returns a random, valid (not all zero) span ID.
func NewSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
