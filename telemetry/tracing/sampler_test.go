package tracing

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/veloflux/veloflux/internal/traceid"
)

// The sampler from the file or from OTEL_TRACES_SAMPLER, asked ahead of the span through the
// HeadSampler, decides as the provider then does for the span it starts, in the trace the
// HeadSampler was asked about.
func TestHeadSamplerDecidesAsTheProvider(t *testing.T) {
	var (
		// TraceIDRatioBased samples a trace when the last 8 bytes of its ID, as a number
		// shifted right by one, are under ratio * 2^63: low passes any ratio above 0, high
		// none below 1.
		low  = trace.TraceID{0: 1}
		high = trace.TraceID{0: 1, 8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff}
	)
	type parent int
	const (
		none parent = iota
		sampled
		unsampled
	)
	type check struct {
		parent parent
		id     trace.TraceID
		want   bool
	}
	tests := []struct {
		name   string
		ratio  float64 // sample_ratio in the file
		env    map[string]string
		checks []check
	}{
		{"file ratio 0.5, parent-based", 0.5, nil, []check{
			{none, low, true}, {none, high, false}, {sampled, high, true}, {unsampled, low, false}}},
		{"file ratio 0", 0, nil, []check{{none, low, false}, {sampled, high, true}}},
		{"always_on", 0, map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}, []check{
			{none, high, true}, {unsampled, high, true}}},
		{"always_off", 1, map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, []check{
			{none, low, false}, {sampled, low, false}}},
		{"traceidratio ignores the parent", 1, map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, []check{
			{none, low, true}, {sampled, high, false}, {unsampled, low, true}}},
		{"traceidratio without argument samples all", 0, map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio"}, []check{
			{none, high, true}}},
		{"parentbased_traceidratio", 1, map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": " 0 "}, []check{
			{none, low, false}, {sampled, high, true}, {unsampled, low, false}}},
		{"parentbased_always_on", 0, map[string]string{"OTEL_TRACES_SAMPLER": "ParentBased_Always_On"}, []check{
			{none, high, true}, {unsampled, low, false}}},
		{"parentbased_always_off", 1, map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, []check{
			{none, low, false}, {sampled, high, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := httpConfig("127.0.0.1:4318")
			cfg.SampleRatio = tt.ratio
			p, err := New(context.Background(), cfg, Options{LookupEnv: func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }})
			if err != nil {
				t.Fatal(err)
			}
			head, tr := p.HeadSampler(), p.TracerProvider().Tracer("test")
			for _, c := range tt.checks {
				ctx, decide := context.Background(), context.Background()
				if c.parent != none {
					flags := trace.FlagsSampled
					if c.parent == unsampled {
						flags = 0
					}
					ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
						TraceID: c.id, SpanID: trace.SpanID{7}, TraceFlags: flags, Remote: true,
					}))
					decide = ctx
				}
				got := head.Sampled(decide, c.id, "GET")
				if got != c.want {
					t.Errorf("parent %d, trace %s: Sampled = %v, want %v", c.parent, c.id, got, c.want)
				}
				if c.parent == none {
					ctx = head.NewTrace(ctx, c.id)
				}
				_, span := tr.Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindServer))
				if sc := span.SpanContext(); sc.TraceID() != c.id || sc.IsSampled() != got {
					t.Errorf("parent %d: the provider's span is in trace %s, sampled %v; want %s, %v", c.parent, sc.TraceID(), sc.IsSampled(), c.id, got)
				}
			}
		})
	}
}

// For a new trace the HeadSampler takes the trace ID ratio test itself; its decisions are
// those of the sampler it stands for, at every ratio and for every trace ID, the IDs next to
// the bound included.
func TestHeadSamplerRootAsTheSampler(t *testing.T) {
	idAt := func(low uint64) trace.TraceID {
		id := traceid.NewTraceID()
		binary.BigEndian.PutUint64(id[8:], low)
		return id
	}
	for _, ratio := range []float64{0, 1e-9, 0.01, 0.25, 0.5, 0.999999, 1} {
		for _, env := range []map[string]string{
			nil, // sample_ratio from the file, parent-based
			{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": strconv.FormatFloat(ratio, 'g', -1, 64)},
		} {
			t.Run(fmt.Sprintf("%g %v", ratio, env), func(t *testing.T) {
				cfg := httpConfig("127.0.0.1:4318")
				cfg.SampleRatio = ratio
				p, err := New(context.Background(), cfg, Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
				if err != nil {
					t.Fatal(err)
				}
				head := p.HeadSampler()
				if !head.rootKnown {
					t.Fatal("the provider's HeadSampler does not take the ratio test itself")
				}
				bound := uint64(ratio * (1 << 63))
				ids := []trace.TraceID{idAt(0), idAt(math.MaxUint64), idAt(bound << 1), idAt(bound<<1 - 2), idAt(bound<<1 + 2)}
				for range 2000 {
					ids = append(ids, traceid.NewTraceID())
				}
				for _, id := range ids {
					want := head.sampler.ShouldSample(sdktrace.SamplingParameters{
						ParentContext: context.Background(), TraceID: id, Name: "GET", Kind: trace.SpanKindServer,
					}).Decision != sdktrace.Drop
					if got := head.Sampled(context.Background(), id, "GET"); got != want {
						t.Fatalf("trace %s: Sampled = %v, the sampler says %v", id, got, want)
					}
				}
			})
		}
	}
}

// A sampler the node cannot read stops it, where the SDK would sample everything.
func TestSamplerEnvironmentRefused(t *testing.T) {
	tests := []struct {
		name, sampler, arg, want string
	}{
		{"unknown sampler", "jaeger_remote", "", `OTEL_TRACES_SAMPLER "jaeger_remote"`},
		{"argument not a number", "traceidratio", "half", `OTEL_TRACES_SAMPLER_ARG "half"`},
		{"ratio above 1", "parentbased_traceidratio", "1.5", `OTEL_TRACES_SAMPLER_ARG "1.5"`},
		{"ratio below 0", "traceidratio", "-0.1", `OTEL_TRACES_SAMPLER_ARG "-0.1"`},
		{"ratio not a number", "traceidratio", "NaN", `OTEL_TRACES_SAMPLER_ARG "NaN"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"OTEL_TRACES_SAMPLER": tt.sampler, "OTEL_TRACES_SAMPLER_ARG": tt.arg}
			_, err := New(context.Background(), httpConfig("127.0.0.1:4318"), Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// A provider's own new traces, started without NewTrace, get random IDs.
func TestIDGeneratorWithoutNewTrace(t *testing.T) {
	p, err := New(context.Background(), httpConfig("127.0.0.1:4318"), Options{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	tr := p.TracerProvider().Tracer("test")
	_, a := tr.Start(context.Background(), "a")
	_, b := tr.Start(context.Background(), "b")
	if !a.SpanContext().IsValid() || a.SpanContext().TraceID() == b.SpanContext().TraceID() {
		t.Errorf("two new traces %s and %s: want two valid, different trace IDs", a.SpanContext().TraceID(), b.SpanContext().TraceID())
	}
}
