// Package tracing builds the OpenTelemetry tracer provider that the proxy's request and
// attempt spans go through, and exports them over OTLP (gRPC or HTTP) to a collector.
//
// Spans leave through a bounded queue: when the collector is slow or down, spans beyond the
// queue are dropped and counted (veloflux_tracing_spans_dropped_total), never waited for, so
// exporter trouble cannot slow a request. The standard OTEL_* variables of every OTel SDK
// work, and win over the file's keys (docs/observability.md).
package tracing
