package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Options are what a Provider needs besides its Config. Each nil field has the default its
// comment names.
type Options struct {
	// Version is service.version. Default "unknown".
	Version string
	// Node is this node's name, service.instance.id and veloflux.node. Default: none set.
	Node string
	// Region is the node's region, veloflux.region. Default: none set.
	Region string
	// Logger receives export failures. Nil: discarded.
	Logger *slog.Logger
	// Registerer gets the span counters. Nil: kept but not exported.
	Registerer prometheus.Registerer
	// LookupEnv reads the OTEL_* variables that decide which keys the SDK takes from the
	// environment. Nil: os.LookupEnv. The SDK reads the variables it is left to through the
	// process environment.
	LookupEnv func(string) (string, bool)
}

// Provider is the tracer provider of one node with its export queue. Build it with New,
// hand TracerProvider and HeadSampler to the proxy, and run Run until the node stops.
type Provider struct {
	tp       *sdktrace.TracerProvider
	head     HeadSampler
	queue    *queueProcessor
	exporter sdktrace.SpanExporter
}

// New builds the provider for cfg, which must be enabled and valid. It opens no connection:
// the exporters connect when they first send.
func New(ctx context.Context, cfg Config, opts Options) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tracing config: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	env := envLookup(opts.LookupEnv)
	sampler, root, err := newSampler(cfg, env)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	exp, err := newExporter(ctx, cfg, env)
	if err != nil {
		return nil, err
	}
	q := newQueueProcessor(exp, cfg, opts.Logger)
	m, err := newMetrics(opts.Registerer, func() float64 { return float64(len(q.spans)) })
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, err
	}
	q.metrics = m
	head := newHeadSampler(sampler, root)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(q),
		sdktrace.WithSampler(sampler),
		sdktrace.WithIDGenerator(head.IDGenerator()),
	)
	return &Provider{tp: tp, head: head, queue: q, exporter: exp}, nil
}

// TracerProvider is what the proxy starts spans with.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.tp }

// HeadSampler takes the TracerProvider's sampling decisions ahead of its spans.
func (p *Provider) HeadSampler() HeadSampler { return p.head }

// ForceFlush exports every span finished so far; it waits for Run to do it.
func (p *Provider) ForceFlush(ctx context.Context) error { return p.queue.ForceFlush(ctx) }

// shutdownTimeout bounds the export of the spans still queued when the node stops.
const shutdownTimeout = 5 * time.Second

// Run exports queued spans in batches until ctx ends, then sends what is left (for at most
// five seconds) and closes the exporter. Spans that end after that are dropped and counted.
func (p *Provider) Run(ctx context.Context) error {
	p.queue.run(ctx)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	return errors.Join(p.tp.Shutdown(sctx), p.exporter.Shutdown(sctx))
}

func newResource(ctx context.Context, cfg Config, opts Options) (*resource.Resource, error) {
	version := opts.Version
	if version == "" {
		version = "unknown"
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(version)}
	if opts.Node != "" {
		attrs = append(attrs, semconv.ServiceInstanceID(opts.Node), attribute.String("veloflux.node", opts.Node))
	}
	if opts.Region != "" {
		attrs = append(attrs, attribute.String("veloflux.region", opts.Region))
	}
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the file.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attrs...),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	return res, nil
}

// envLookup reads the OTEL_* variables that decide which keys the SDK takes from the
// environment; an empty variable counts as unset, as in the SDK.
type envLookup func(string) (string, bool)

func (e envLookup) get(name string) (string, bool) {
	v, ok := e(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// traces returns the value of the traces-only variable OTEL_EXPORTER_OTLP_TRACES_<suffix>,
// else the general OTEL_EXPORTER_OTLP_<suffix>.
func (e envLookup) traces(suffix string) (string, bool) {
	if v, ok := e.get("OTEL_EXPORTER_OTLP_TRACES_" + suffix); ok {
		return v, true
	}
	return e.get("OTEL_EXPORTER_OTLP_" + suffix)
}

// newExporter builds the OTLP exporter. A key whose OTEL_EXPORTER_OTLP_* variable is set is
// not passed on, so the SDK takes it from the environment: the variables win over the file.
func newExporter(ctx context.Context, cfg Config, env envLookup) (sdktrace.SpanExporter, error) {
	protocol := cfg.Protocol
	if v, ok := env.traces("PROTOCOL"); ok {
		switch v {
		case "grpc":
			protocol = ProtocolGRPC
		case "http/protobuf":
			protocol = ProtocolHTTP
		default:
			return nil, fmt.Errorf("tracing: OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", v)
		}
	}
	_, envEndpoint := env.traces("ENDPOINT")
	_, envInsecure := env.traces("INSECURE")
	_, envHeaders := env.traces("HEADERS")
	_, envTimeout := env.traces("TIMEOUT")
	url := strings.Contains(cfg.Endpoint, "://")
	switch protocol {
	case ProtocolHTTP:
		var o []otlptracehttp.Option
		switch {
		case envEndpoint || cfg.Endpoint == "":
		case url:
			o = append(o, otlptracehttp.WithEndpointURL(cfg.Endpoint))
		default:
			o = append(o, otlptracehttp.WithEndpoint(cfg.Endpoint))
		}
		if cfg.Insecure && !envInsecure && !url {
			o = append(o, otlptracehttp.WithInsecure())
		}
		if len(cfg.Headers) > 0 && !envHeaders {
			o = append(o, otlptracehttp.WithHeaders(cfg.Headers))
		}
		if !envTimeout {
			o = append(o, otlptracehttp.WithTimeout(cfg.ExportTimeout))
		}
		exp, err := otlptracehttp.New(ctx, o...)
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP/HTTP exporter: %w", err)
		}
		return exp, nil
	default:
		var o []otlptracegrpc.Option
		switch {
		case envEndpoint || cfg.Endpoint == "":
		case url:
			o = append(o, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
		default:
			o = append(o, otlptracegrpc.WithEndpoint(cfg.Endpoint))
		}
		if cfg.Insecure && !envInsecure && !url {
			o = append(o, otlptracegrpc.WithInsecure())
		}
		if len(cfg.Headers) > 0 && !envHeaders {
			o = append(o, otlptracegrpc.WithHeaders(cfg.Headers))
		}
		if !envTimeout {
			o = append(o, otlptracegrpc.WithTimeout(cfg.ExportTimeout))
		}
		exp, err := otlptracegrpc.New(ctx, o...)
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP/gRPC exporter: %w", err)
		}
		return exp, nil
	}
}
