package consul

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/promreg"
)

// Request endpoints, the endpoint label of veloflux_consul_requests_total.
const (
	endpointServices = "services" // /v1/catalog/services
	endpointHealth   = "health"   // /v1/health/service/<name>
	endpointAgent    = "agent"    // /v1/agent/self, once, to learn the agent's datacenter
)

// metrics are the source's Prometheus series. A datacenter label is "" for the agent's own
// datacenter until its name is known; those series are then moved to the name.
type metrics struct {
	up          *prometheus.GaugeVec   // datacenter
	requests    *prometheus.CounterVec // datacenter, endpoint, result
	lastSuccess *prometheus.GaugeVec   // datacenter
	tagErrors   *prometheus.GaugeVec   // service
	watched     *prometheus.GaugeVec   // datacenter
	published   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veloflux_consul_up",
			Help: "1 when every watch of the datacenter succeeded on its last try, else 0.",
		}, []string{"datacenter"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_consul_requests_total",
			Help: "Consul HTTP API requests by endpoint (services, health, agent) and result (ok, error).",
		}, []string{"datacenter", "endpoint", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veloflux_consul_last_success_timestamp_seconds",
			Help: "Unix time of the last successful request to the datacenter.",
		}, []string{"datacenter"}),
		tagErrors: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veloflux_consul_tag_errors",
			Help: "VeloFlux tags and meta entries of the service's instances that cannot be used, now.",
		}, []string{"service"}),
		watched: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veloflux_consul_services_watched",
			Help: "Services of the datacenter with a running health watch.",
		}, []string{"datacenter"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veloflux_consul_snapshots_published_total",
			Help: "Snapshots the Consul source handed to the proxy.",
		}),
	}
	if err := promreg.Register(reg, m.up, m.requests, m.lastSuccess, m.tagErrors, m.watched, m.published); err != nil {
		return nil, fmt.Errorf("consul metrics: %w", err)
	}
	return m, nil
}

// renameDatacenter moves the series labelled "" to the agent's datacenter once its name is
// known. Counters start again from zero under the name; the "" series only ever counted the
// requests before the first answer.
// dup says another watch owns the name's series (the name is also in Config.Datacenters).
func (m *metrics) renameDatacenter(name string, dup bool) {
	unnamed := prometheus.Labels{"datacenter": ""}
	m.up.DeletePartialMatch(unnamed)
	m.requests.DeletePartialMatch(unnamed)
	m.lastSuccess.DeletePartialMatch(unnamed)
	m.watched.DeletePartialMatch(unnamed)
	if !dup {
		m.up.WithLabelValues(name).Set(0)
	}
}
