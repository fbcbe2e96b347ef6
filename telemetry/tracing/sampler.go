package tracing

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/veloflux/veloflux/internal/traceid"
)

// newSampler is the provider's sampler: OTEL_TRACES_SAMPLER (with OTEL_TRACES_SAMPLER_ARG)
// when set, with the names and defaults of every OTel SDK, else parent-based trace ID ratio at
// cfg.SampleRatio. The SDK would fall back to sampling everything on a name or argument it
// cannot read; a node refuses to start instead. root is the ratio the sampler records new
// traces (without a parent) at: every sampler it builds decides those by the trace ID ratio
// test, always_on and always_off being ratios 1 and 0.
func newSampler(cfg Config, env envLookup) (s sdktrace.Sampler, root float64, err error) {
	name, set := env.get("OTEL_TRACES_SAMPLER")
	if !set {
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio)), cfg.SampleRatio, nil
	}
	ratio := func() (float64, error) {
		arg, ok := env.get("OTEL_TRACES_SAMPLER_ARG")
		if !ok {
			return 1, nil // the SDKs' default for the ratio samplers
		}
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
			return 0, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER_ARG %q: want a ratio between 0 and 1", arg)
		}
		return v, nil
	}
	switch strings.ToLower(name) {
	case "always_on":
		return sdktrace.AlwaysSample(), 1, nil
	case "always_off":
		return sdktrace.NeverSample(), 0, nil
	case "traceidratio":
		r, err := ratio()
		return sdktrace.TraceIDRatioBased(r), r, err
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), 1, nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), 0, nil
	case "parentbased_traceidratio":
		r, err := ratio()
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), r, err
	}
	return nil, 0, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio, "+
		"parentbased_always_on, parentbased_always_off or parentbased_traceidratio", name)
}

// HeadSampler takes a tracer provider's sampling decision for a server span before the span
// exists, so that a caller can spare an unsampled request the span, its context and its
// attributes (see the proxy's Options.TraceSampler). Its decisions are the provider's own
// when the provider samples with the same sampler and draws IDs from IDGenerator, as the
// Provider built by New does.
type HeadSampler struct {
	sampler sdktrace.Sampler
	// rootKnown says that sampler records a new trace exactly when the trace ID ratio test
	// passes against rootBound, so Sampled takes that test itself for a request without a
	// parent: the common case, spared the sampler's interface calls and context lookups.
	rootKnown bool
	rootBound uint64
}

// NewHeadSampler returns the HeadSampler of a tracer provider that samples with s.
func NewHeadSampler(s sdktrace.Sampler) HeadSampler { return HeadSampler{sampler: s} }

// newHeadSampler returns the HeadSampler of a sampler that records new traces at ratio root,
// by the test of the SDK's TraceIDRatioBased.
func newHeadSampler(s sdktrace.Sampler, root float64) HeadSampler {
	h := HeadSampler{sampler: s, rootKnown: true}
	switch {
	case root >= 1:
		h.rootBound = math.MaxUint64 // above any ID shifted right by one
	case root > 0:
		h.rootBound = uint64(root * (1 << 63)) // as TraceIDRatioBased computes it
	}
	return h
}

// IDGenerator is the ID generator the tracer provider must use: the SDK's random one, except
// that it starts the trace NewTrace names.
func (HeadSampler) IDGenerator() sdktrace.IDGenerator { return idGenerator{} }

// Sampled reports whether the provider records a server span named name in trace id, under
// the span context in parent: the caller's, continued, or none (context.Background()) for a
// new trace.
func (h HeadSampler) Sampled(parent context.Context, id trace.TraceID, name string) bool {
	if h.rootKnown && parent == context.Background() {
		return binary.BigEndian.Uint64(id[8:16])>>1 < h.rootBound
	}
	return h.sampler.ShouldSample(sdktrace.SamplingParameters{
		ParentContext: parent,
		TraceID:       id,
		Name:          name,
		Kind:          trace.SpanKindServer,
	}).Decision != sdktrace.Drop
}

// NewTrace returns ctx carrying id, so that a span started in it without a parent begins
// trace id rather than a trace of a new random ID: the one Sampled decided on. Use it only
// for a new trace that Sampled said is recorded.
func (HeadSampler) NewTrace(ctx context.Context, id trace.TraceID) context.Context {
	return context.WithValue(ctx, traceIDKey{}, id)
}

type traceIDKey struct{}

// idGenerator is the SDK's random ID generator that starts a new trace with the trace ID
// HeadSampler.NewTrace put in the context, when there is one.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	tid, ok := ctx.Value(traceIDKey{}).(trace.TraceID)
	if !ok || !tid.IsValid() {
		tid = traceid.NewTraceID()
	}
	return tid, traceid.NewSpanID()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return traceid.NewSpanID() }
