// Package traceid draws random W3C trace and span IDs, as the OpenTelemetry SDK's own
// generator does, for the code that names a span before (or instead of) asking the SDK for
// one.
package traceid

import (
	"encoding/binary"
	"math/bits"
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

// Source draws IDs for one owner at a time, from a wyrand state that the runtime's random
// source seeds on first use: a multiplication per 64 bits, where each draw from the runtime's
// source (ChaCha8, per thread) costs about 60 instructions in all. wyrand's output passes
// the usual statistical tests (BigCrush, PractRand), which is what trace IDs ask for: the
// SDK's own generator is math/rand's. It is not for secrets. The zero value is ready; a
// Source must not be used by two goroutines at once.
type Source struct{ s uint64 }

func (r *Source) next() uint64 {
	if r.s == 0 {
		r.s = rand.Uint64()
	}
	r.s += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(r.s, r.s^0xe7037ed1a0b428db)
	return hi ^ lo
}

// TraceID returns a random, valid (not all zero) trace ID.
func (r *Source) TraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], r.next())
		binary.NativeEndian.PutUint64(tid[8:], r.next())
	}
	return tid
}

// SpanID returns a random, valid (not all zero) span ID.
func (r *Source) SpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], r.next())
	}
	return sid
}
