package telemetry

import (
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsMux returns a mux serving the operational endpoints:
//
//   - /metrics: the Prometheus exposition of reg, or OpenMetrics with exemplars when the
//     scraper accepts it. Scrape errors are counted in reg itself
//     (promhttp_metric_handler_errors_total) next to the scrape request counters.
//   - /healthz: 200 "ok" for as long as the process can serve HTTP at all (liveness).
//   - /readyz: 200 "ready" while ready reports true; otherwise 503 with the reason ready gave
//     ("draining", say), or "not ready" when the reason is empty (readiness).
//
// ready is called on every /readyz request, so it must be cheap and safe for concurrent use.
// A nil ready means the node is always ready.
func MetricsMux(reg *prometheus.Registry, ready func() (bool, string)) *http.ServeMux {
	metrics := promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry: reg,
		// One failing collector should cost its own series, not the whole scrape: the rest of
		// the metrics are what an operator needs while debugging the failing one, and the
		// error counter above records that something was dropped.
		ErrorHandling: promhttp.ContinueOnError,
		// OpenMetrics when the scraper asks for it (Accept: application/openmetrics-text):
		// the only format that carries exemplars, the trace IDs on duration buckets.
		EnableOpenMetrics: true,
	}))

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready == nil {
			writeText(w, http.StatusOK, "ready")
			return
		}
		ok, reason := ready()
		if ok {
			writeText(w, http.StatusOK, "ready")
			return
		}
		if reason == "" {
			reason = "not ready"
		}
		writeText(w, http.StatusServiceUnavailable, reason)
	})
	return mux
}

func writeText(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	// A cached "ready" from before a drain would keep traffic flowing to a draining node.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// The client going away mid-write is its problem; there is nobody to report it to.
	_, _ = io.WriteString(w, body)
}
