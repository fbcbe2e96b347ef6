// Package telemetry sets up the process-wide observability plumbing: the JSON slog logger, the
// Prometheus registry with runtime and build metrics, and the HTTP mux that serves /metrics,
// /healthz and /readyz.
//
// Nothing here is global. Every constructor returns the value it builds, and cmd hands those
// values to the packages that log or register metrics, so two nodes can run in one test process
// without sharing a logger, a registry or a level.
package telemetry
