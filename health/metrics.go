package health

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/promreg"
)

const (
	resultSuccess = "success"
	resultFailure = "failure"
)

// metrics are the checker's own series. veloflux_backend_health is deliberately not here: the
// proxy exports it, because the proxy is what decides whether a backend gets traffic.
type metrics struct {
	checks   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// localErrors has no backend label: the failures it counts are this node's, whichever
	// backend the probe was for.
	localErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_health_checks_total",
			Help: "Active health check probes by pool, backend and result (success or failure).",
		}, []string{"pool", "backend", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veloflux_health_check_duration_seconds",
			Help: "Duration of active health check probes, including failed ones, by pool.",
			// From sub-millisecond LAN probes up to the 5s default timeout.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"pool"}),
		localErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veloflux_health_probe_local_errors_total",
			Help: "Active probes that failed for lack of local resources (file descriptors, ports, buffers, memory); they count neither for nor against the backend.",
		}),
	}
	if err := promreg.Register(reg, m.checks, m.duration, m.localErrors); err != nil {
		return nil, fmt.Errorf("health: register metrics: %w", err)
	}
	return m, nil
}

func (m *metrics) observe(pool, backend, result string, took time.Duration) {
	m.checks.WithLabelValues(pool, backend, result).Inc()
	m.duration.WithLabelValues(pool).Observe(took.Seconds())
}

// forgetBackend deletes every series of one backend so removed backends stop being exported.
func (m *metrics) forgetBackend(pool, backend string) {
	m.checks.DeletePartialMatch(prometheus.Labels{"pool": pool, "backend": backend})
}

func (m *metrics) forgetPool(pool string) {
	m.duration.DeleteLabelValues(pool)
}

// passiveMetrics are the passive checks' series.
type passiveMetrics struct {
	ejections *prometheus.CounterVec
	ejected   *prometheus.GaugeVec
	skipped   *prometheus.CounterVec
}

func newPassiveMetrics(reg prometheus.Registerer) (*passiveMetrics, error) {
	m := &passiveMetrics{
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_health_ejections_total",
			Help: "Backends ejected by passive checks, by pool, backend and reason (5xx, connect_failure, timeout or mixed).",
		}, []string{"pool", "backend", "reason"}),
		ejected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veloflux_health_ejected_backends",
			Help: "Backends of the pool currently ejected by passive checks.",
		}, []string{"pool"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_health_ejections_skipped_total",
			Help: "Ejections passive checks did not make because the pool was at its max_ejection_percent.",
		}, []string{"pool"}),
	}
	if err := promreg.Register(reg, m.ejections, m.ejected, m.skipped); err != nil {
		return nil, fmt.Errorf("health: register passive metrics: %w", err)
	}
	return m, nil
}

// forget deletes the series of one backend in one pool.
func (m *passiveMetrics) forget(pool, backend string) {
	m.ejections.DeletePartialMatch(prometheus.Labels{"pool": pool, "backend": backend})
}

func (m *passiveMetrics) forgetPool(pool string) {
	m.ejected.DeleteLabelValues(pool)
	m.skipped.DeleteLabelValues(pool)
}
