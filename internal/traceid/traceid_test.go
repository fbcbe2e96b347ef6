package traceid

import (
	"encoding/binary"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// A Source's IDs are valid, do not repeat, and are random where samplers look: every bit of
// a trace ID is set about half the time, and the trace ID ratio test at 0.01 passes about 1%
// of them, as with the runtime's source.
func TestSourceIDs(t *testing.T) {
	const n = 100_000
	var src Source
	seen := make(map[trace.TraceID]struct{}, n)
	var ones [128]int
	var sampled int
	ratio := 0.01
	bound := uint64(ratio * (1 << 63)) // as the SDK's TraceIDRatioBased computes it
	for range n {
		tid := src.TraceID()
		if !tid.IsValid() {
			t.Fatalf("invalid trace ID %s", tid)
		}
		if _, dup := seen[tid]; dup {
			t.Fatalf("trace ID %s drawn twice", tid)
		}
		seen[tid] = struct{}{}
		for i := range ones {
			ones[i] += int(tid[i/8] >> (i % 8) & 1)
		}
		if binary.BigEndian.Uint64(tid[8:16])>>1 < bound {
			sampled++
		}
		if sid := src.SpanID(); !sid.IsValid() {
			t.Fatalf("invalid span ID %s", sid)
		}
	}
	// Binomial standard deviations: 158 for a bit, 31 for the ratio; the bounds are over six.
	for i, c := range ones {
		if c < n/2-1000 || c > n/2+1000 {
			t.Errorf("bit %d set in %d of %d trace IDs", i, c, n)
		}
	}
	if sampled < 800 || sampled > 1200 {
		t.Errorf("the ratio test at 0.01 passed %d of %d trace IDs, want about 1,000", sampled, n)
	}
}

// Two Sources seed themselves apart: owners of a Source each (pooled request states) do not
// draw the same IDs.
func TestSourcesDiffer(t *testing.T) {
	var a, b Source
	if x, y := a.TraceID(), b.TraceID(); x == y {
		t.Fatalf("two Sources drew the same trace ID %s", x)
	}
}

func BenchmarkIDs(b *testing.B) {
	b.Run("runtime", func(b *testing.B) {
		for b.Loop() {
			_, _ = NewTraceID(), NewSpanID()
		}
	})
	b.Run("Source", func(b *testing.B) {
		var src Source
		for b.Loop() {
			_, _ = src.TraceID(), src.SpanID()
		}
	})
}
