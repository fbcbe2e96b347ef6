package geo

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/promreg"
)

// metrics are the locator's series, listed in docs/geo-routing.md. The per-result counters
// are resolved once here so that counting a lookup is one atomic add, without the label
// lookup (and its allocation) of WithLabelValues on the request path.
type metrics struct {
	hit, miss, unknown     prometheus.Counter
	reloadOK, reloadFailed prometheus.Counter
	buildTimestamp         prometheus.Gauge
	lookupsVec, reloadsVec *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lookupsVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_geo_lookups_total",
			Help: "Client locations asked for, by result: hit (answered from the cache), miss (looked up in the database), unknown (the address cannot be located).",
		}, []string{"result"}),
		reloadsVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_geo_database_reloads_total",
			Help: "Replacements of the GeoIP database file, by result: success (now serving) or failure (rejected, the previous database keeps serving).",
		}, []string{"result"}),
		buildTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "veloflux_geo_database_build_timestamp_seconds",
			Help: "Build time of the GeoIP database being served, from its metadata, as a Unix timestamp.",
		}),
	}
	m.hit = m.lookupsVec.WithLabelValues("hit")
	m.miss = m.lookupsVec.WithLabelValues("miss")
	m.unknown = m.lookupsVec.WithLabelValues("unknown")
	m.reloadOK = m.reloadsVec.WithLabelValues("success")
	m.reloadFailed = m.reloadsVec.WithLabelValues("failure")
	if err := promreg.Register(reg, m.lookupsVec, m.reloadsVec, m.buildTimestamp); err != nil {
		return nil, fmt.Errorf("geo: register metrics: %w", err)
	}
	return m, nil
}

// count records one answer: hit and miss only for clients that were located, so that
// hit/(hit+miss) is the cache's hit rate on the lookups it can help.
func (m *metrics) count(e *locEntry, cached bool) {
	switch {
	case !e.ok:
		m.unknown.Inc()
	case cached:
		m.hit.Inc()
	default:
		m.miss.Inc()
	}
}
