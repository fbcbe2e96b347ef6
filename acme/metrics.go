package acme

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/promreg"
)

type metrics struct {
	orders  prometheus.Counter
	results *prometheus.CounterVec
}

var expiryDesc = prometheus.NewDesc("veloflux_acme_certificate_expiry_timestamp_seconds",
	"Unix time at which the certificate served for each managed name expires; absent while a name has none.",
	[]string{"name"}, nil)

var namesDesc = prometheus.NewDesc("veloflux_acme_names",
	"Names managed with ACME: the exact hosts of the routes.", nil, nil)

func newMetrics(reg prometheus.Registerer, m *Manager) (*metrics, error) {
	mt := &metrics{
		orders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veloflux_acme_orders_total",
			Help: "ACME orders this node placed (first certificates and renewals); with shared storage one node orders each name.",
		}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_acme_order_results_total",
			Help: "Results of this node's ACME orders by kind (obtain, renew) and result (success, failure).",
		}, []string{"kind", "result"}),
	}
	for _, kind := range []string{"obtain", "renew"} {
		for _, result := range []string{"success", "failure"} {
			mt.results.WithLabelValues(kind, result)
		}
	}
	if err := promreg.Register(reg, mt.orders, mt.results, statusCollector{m}); err != nil {
		return nil, err
	}
	return mt, nil
}

// statusCollector reads expiries from the certificate cache at scrape time, so a name that
// is dropped loses its series with it.
type statusCollector struct{ m *Manager }

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- expiryDesc
	ch <- namesDesc
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.m.Status()
	ch <- prometheus.MustNewConstMetric(namesDesc, prometheus.GaugeValue, float64(len(st.Names)))
	for _, n := range st.Names {
		if !n.NotAfter.IsZero() {
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(n.NotAfter.Unix()), n.Name)
		}
	}
}
