package tracing

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/promreg"
)

// metrics count what became of the sampled spans.
type metrics struct {
	exported         prometheus.Counter
	droppedQueueFull prometheus.Counter
	droppedExport    prometheus.Counter
	droppedShutdown  prometheus.Counter
	dropped          *prometheus.CounterVec
}

// newMetrics registers the span counters and the queue gauge, which reads queued.
func newMetrics(reg prometheus.Registerer, queued func() float64) (*metrics, error) {
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veloflux_tracing_spans_dropped_total",
		Help: "Sampled spans not delivered to the collector, by reason: queue_full (the export queue was full), export_failed (the collector refused or did not answer in time), shutdown (ended after the node stopped exporting).",
	}, []string{"reason"})
	m := &metrics{
		exported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veloflux_tracing_spans_exported_total",
			Help: "Sampled spans the collector accepted.",
		}),
		dropped:          dropped,
		droppedQueueFull: dropped.WithLabelValues("queue_full"),
		droppedExport:    dropped.WithLabelValues("export_failed"),
		droppedShutdown:  dropped.WithLabelValues("shutdown"),
	}
	if err := promreg.Register(reg, m.exported, m.dropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "veloflux_tracing_queue_length",
			Help: "Sampled spans waiting for export.",
		}, queued)); err != nil {
		return nil, fmt.Errorf("register tracing metrics: %w", err)
	}
	return m, nil
}
