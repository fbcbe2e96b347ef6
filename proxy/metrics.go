package proxy

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/veloflux/veloflux/internal/promreg"
)

// metrics are the proxy's Prometheus series. Per-backend gauges are produced at scrape time
// from the current table (backendCollector), so a removed backend's series disappear with it;
// per-pool series are deleted when their pool leaves the table (poolSeries).
type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	rateLimited prometheus.Counter
	geoRequests *prometheus.CounterVec
	sticky      *prometheus.CounterVec

	// Client connection defences, fed by Server.
	rejections   *prometheus.CounterVec
	acceptErrors *prometheus.CounterVec
	clientConns  *prometheus.GaugeVec
	connLimit    prometheus.Gauge
	connsClosed  *prometheus.CounterVec
	redirects    prometheus.Counter
}

func newMetrics(p *Proxy, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_requests_total",
			Help: "Requests answered, by method, status code and pool (pool is empty when no route matched).",
		}, []string{"method", "code", "pool"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "veloflux_request_duration_seconds",
			Help:    "Time from receiving a request to the end of its response, by pool.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"pool"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_retries_total",
			Help: "Requests tried again on another backend, by pool.",
		}, []string{"pool"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veloflux_rate_limited_total",
			Help: "Requests refused with 429 by the per-client rate limit.",
		}),
		geoRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_geo_requests_total",
			Help: "Requests on geo routes, by client country (unknown when not located) and region served or redirected to (none when no backend was healthy).",
		}, []string{"country", "region"}),
		sticky: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_sticky_requests_total",
			Help: "Requests to sticky pools, by pool and outcome: new (no valid cookie: a new session), hit (sent where the cookie says), moved (sent where a stored move says), repin (the session's backend was down, drained or gone: moved and the move stored).",
		}, []string{"pool", "outcome"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_client_rejections_total",
			Help: "Requests and connections refused by a protocol defence, by protocol (http1, http2) and reason.",
		}, []string{"protocol", "reason"}),
		acceptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_accept_errors_total",
			Help: "Failed accepts of client connections (out of descriptors, aborted), retried with backoff, by listener.",
		}, []string{"listener"}),
		clientConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veloflux_client_connections",
			Help: "Open client connections, by listener.",
		}, []string{"listener"}),
		connLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "veloflux_client_connections_limit",
			Help: "The cap on open client connections over all listeners (global.limits.max_client_conns).",
		}),
		connsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_client_connections_closed_total",
			Help: "Client connections the proxy asked to close after a response, by reason (max_requests, rejected).",
		}, []string{"reason"}),
		redirects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veloflux_https_redirects_total",
			Help: "Plain-HTTP requests answered with 308 to https (global.tls.redirect_http).",
		}),
	}
	if err := promreg.Register(reg,
		poolSeries{p: p, vecs: m.byPool()}, m.rateLimited, m.geoRequests, backendCollector{p},
		m.rejections, m.acceptErrors, m.clientConns, m.connLimit, m.connsClosed, m.redirects,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "veloflux_draining",
			Help: "1 while this node is draining, else 0.",
		}, func() float64 { return boolFloat(p.Draining()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "veloflux_inflight_requests",
			Help: "Requests being served now, upgraded connections included.",
		}, func() float64 { return float64(p.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "veloflux_routing_table_version",
			Help: "Version of the routing table in use; it grows by one with every accepted change.",
		}, func() float64 { return float64(p.table.Load().version) }),
	); err != nil {
		return nil, fmt.Errorf("register proxy metrics: %w", err)
	}
	return m, nil
}

// poolVec is a metric vector with a pool label.
type poolVec interface {
	prometheus.Collector
	DeletePartialMatch(prometheus.Labels) int
}

// byPool returns the vectors with a pool label.
func (m *metrics) byPool() []poolVec {
	return []poolVec{m.requests, m.duration, m.retries, m.sticky}
}

// forgetPool deletes every series of a pool that left the routing table.
func (m *metrics) forgetPool(name string) {
	for _, v := range m.byPool() {
		v.DeletePartialMatch(prometheus.Labels{"pool": name})
	}
}

// poolSeries exports the vectors with a pool label for the pools of the table in use, and the
// empty pool of requests no route matched. Apply deletes a removed pool's series when it swaps
// the table, but a request still in flight on the old table counts after that and brings them
// back; a scrape drops and deletes such series again, under the lock Apply takes, so a pool
// that left the table is never exported.
type poolSeries struct {
	p    *Proxy
	vecs []poolVec
}

func (c poolSeries) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range c.vecs {
		v.Describe(ch)
	}
}

func (c poolSeries) Collect(ch chan<- prometheus.Metric) {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	live := map[string]bool{"": true}
	for _, pl := range c.p.table.Load().pools {
		live[pl.name] = true
	}
	for _, v := range c.vecs {
		all := make(chan prometheus.Metric)
		go func() {
			v.Collect(all)
			close(all)
		}()
		var gone []string
		for m := range all {
			pool := poolLabel(m)
			if live[pool] {
				ch <- m
			} else if !slices.Contains(gone, pool) {
				gone = append(gone, pool)
			}
		}
		for _, name := range gone {
			v.DeletePartialMatch(prometheus.Labels{"pool": name})
		}
	}
}

// poolLabel is the value of m's pool label.
func poolLabel(m prometheus.Metric) string {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return ""
	}
	for _, l := range d.GetLabel() {
		if l.GetName() == "pool" {
			return l.GetValue()
		}
	}
	return ""
}

// observe counts a finished request. A traceID (sampled requests only) becomes the exemplar
// of its duration bucket, so a slow bucket on a dashboard links to a trace of it.
func (m *metrics) observe(method string, code int, pool string, d time.Duration, traceID string) {
	m.record(m.requests.WithLabelValues(methodLabel(method), codeLabel(code), pool),
		m.duration.WithLabelValues(pool), d, traceID)
}

// observePool is observe for a request a pool served, through the series the pool's last
// request counted in when the method and status are the same (as they nearly always are):
// finding them by their labels hashes and checks every label value on each request. A
// request still in flight on a pool that left the table counts in the series it cached,
// which Apply has deleted, and so does not bring them back.
func (m *metrics) observePool(method string, code int, pl *pool, d time.Duration, traceID string) {
	ml := methodLabel(method)
	o := pl.series.Load()
	if o == nil || o.method != ml || o.code != code {
		dur := m.duration.WithLabelValues(pl.name)
		if o != nil {
			dur = o.duration
		}
		o = &poolSeriesCache{method: ml, code: code,
			requests: m.requests.WithLabelValues(ml, codeLabel(code), pl.name), duration: dur}
		pl.series.Store(o)
	}
	m.record(o.requests, o.duration, d, traceID)
}

// poolSeriesCache holds the series a pool's last request counted in.
type poolSeriesCache struct {
	method   string // methodLabel's
	code     int
	requests prometheus.Counter
	duration prometheus.Observer
}

func (m *metrics) record(c prometheus.Counter, h prometheus.Observer, d time.Duration, traceID string) {
	c.Inc()
	if traceID != "" {
		h.(prometheus.ExemplarObserver).ObserveWithExemplar(d.Seconds(), prometheus.Labels{"trace_id": traceID})
		return
	}
	h.Observe(d.Seconds())
}

var (
	activeDesc = prometheus.NewDesc("veloflux_active_connections",
		"Requests in flight to a backend, upgraded connections included.", []string{"pool", "backend"}, nil)
	healthDesc = prometheus.NewDesc("veloflux_backend_health",
		"1 when the backend may receive traffic, 0 when the health view calls it down.", []string{"pool", "backend"}, nil)
	weightDesc = prometheus.NewDesc("veloflux_backend_weight",
		"Configured balancing weight of a backend.", []string{"pool", "backend"}, nil)
	queueWaitsDesc = prometheus.NewDesc("veloflux_backend_queue_waits_total",
		"Requests that found every connection slot of the backend taken and waited for one.", []string{"pool", "backend"}, nil)
	queueTimeoutsDesc = prometheus.NewDesc("veloflux_backend_queue_timeouts_total",
		"Requests that waited backend_queue_timeout for a connection slot of the backend in vain (answered 503 unless retried elsewhere).", []string{"pool", "backend"}, nil)
	queuedDesc = prometheus.NewDesc("veloflux_backend_queued_requests",
		"Requests waiting for a connection slot of the backend now.", []string{"pool", "backend"}, nil)
)

// backendCollector reports per-backend series from the table in use at scrape time, the
// queue counters included: they live on the backend's upstream, so they survive reloads and
// disappear with the backend.
type backendCollector struct{ p *Proxy }

func (c backendCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- activeDesc
	ch <- healthDesc
	ch <- weightDesc
	ch <- queueWaitsDesc
	ch <- queueTimeoutsDesc
	ch <- queuedDesc
}

func (c backendCollector) Collect(ch chan<- prometheus.Metric) {
	for _, pl := range c.p.table.Load().pools {
		for _, u := range pl.backends {
			ch <- prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(u.lb.Active()), pl.name, u.id)
			ch <- prometheus.MustNewConstMetric(healthDesc, prometheus.GaugeValue, boolFloat(c.p.health.Healthy(u.id)), pl.name, u.id)
			ch <- prometheus.MustNewConstMetric(weightDesc, prometheus.GaugeValue, float64(u.lb.Weight()), pl.name, u.id)
			ch <- prometheus.MustNewConstMetric(queueWaitsDesc, prometheus.CounterValue, float64(u.conns.waits.Load()), pl.name, u.id)
			ch <- prometheus.MustNewConstMetric(queueTimeoutsDesc, prometheus.CounterValue, float64(u.conns.timeouts.Load()), pl.name, u.id)
			ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(u.conns.queued.Load()), pl.name, u.id)
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// codeLabels holds the label strings of all valid status codes, so a request does not
// format one.
var codeLabels = func() (l [600]string) {
	for i := 100; i < len(l); i++ {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

func codeLabel(code int) string {
	if code >= 100 && code < len(codeLabels) {
		return codeLabels[code]
	}
	return strconv.Itoa(code)
}
