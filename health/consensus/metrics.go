package consensus

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/promreg"
)

// Label values of veloflux_health_observations_total, all exported from the start so a
// dashboard sees 0 rather than a missing series.
const (
	obsSent     = "sent"     // written here and broadcast
	obsFailed   = "failed"   // not stored, or stored but refused by the broadcaster
	obsReceived = "received" // a peer's observation accepted by the store
	obsInvalid  = "invalid"  // a peer's entry whose key or value does not decode
	obsDropped  = "dropped"  // a store change that found Run's queue full
)

// metrics are the View's own series.
type metrics struct {
	probed       prometheus.Gauge
	observations *prometheus.CounterVec
	down         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		probed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "veloflux_health_probed_backends",
			Help: "Backends this node probes actively: its share of the cluster's backends, or all of them when standalone.",
		}),
		observations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_health_observations_total",
			Help: "Health observations by result: sent, failed (not stored or not broadcast), received, invalid (undecodable), dropped (queue full).",
		}, []string{"result"}),
		down: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "veloflux_health_consensus_down_backends",
			Help: "Backends the cluster view has down: by consensus of their probers, or by this node's own checks when standalone.",
		}),
	}
	for _, r := range []string{obsSent, obsFailed, obsReceived, obsInvalid, obsDropped} {
		m.observations.WithLabelValues(r)
	}
	if err := promreg.Register(reg, m.probed, m.observations, m.down); err != nil {
		return nil, fmt.Errorf("consensus: register metrics: %w", err)
	}
	return m, nil
}
