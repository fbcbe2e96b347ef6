package proxy

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/internal/testutil"
)

// A pool that leaves the routing table takes its series with it, those of its backends
// included, from the real registry; a pool that stays keeps its own, counts and all. A request
// still in flight on the old table that counts after the swap does not bring them back.
func TestPoolSeriesLeaveWithThePool(t *testing.T) {
	a1, b1 := newBackend(t, "a1", nil), newBackend(t, "b1", nil)
	poolA := discovery.Pool{Name: "a", Algorithm: "round_robin", Sticky: true, Backends: []discovery.Backend{member("a1", a1.addr(), 1)}}
	poolB := discovery.Pool{Name: "b", Algorithm: "round_robin", Sticky: true,
		Backends: []discovery.Backend{member("b0", deadAddr(t), 1), member("b1", b1.addr(), 1)}}
	both := &discovery.Snapshot{Source: "test", Pools: []discovery.Pool{poolA, poolB},
		Routes: []discovery.Route{{PathPrefix: "/a", Pool: "a"}, {PathPrefix: "/b", Pool: "b"}}}
	px := startProxy(t, DefaultConfig(), Options{}, both)
	c := newClient(t)
	for _, path := range []string{"/a", "/b", "/b"} { // round robin: one of the two to b meets b0 and is retried
		if r := send(t, c, http.MethodGet, px.url+path, "", nil, ""); r.status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, r.status)
		}
	}
	before := testutil.MetricNames(testutil.SeriesWith(t, px.reg, "b", "pool"))
	for _, want := range []string{"veloflux_requests_total", "veloflux_request_duration_seconds", "veloflux_retries_total",
		"veloflux_sticky_requests_total", "veloflux_backend_health", "veloflux_active_connections"} {
		if !slices.Contains(before, want) {
			t.Fatalf("before the change, pool b has series of %v; want %s among them", before, want)
		}
	}
	keptBefore := testutil.SeriesWith(t, px.reg, "a", "pool")
	requestsA := counterValue(t, px.reg, "veloflux_requests_total", map[string]string{"pool": "a"})
	var oldB *pool
	for _, pl := range px.table.Load().pools {
		if pl.name == "b" {
			oldB = pl
		}
	}

	if err := px.Apply(&discovery.Snapshot{Source: "test", Pools: []discovery.Pool{poolA},
		Routes: []discovery.Route{{PathPrefix: "/a", Pool: "a"}}}); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T) {
		t.Helper()
		if got := testutil.SeriesWith(t, px.reg, "b", "pool"); len(got) > 0 {
			t.Errorf("series of the removed pool: %v", got)
		}
		for _, id := range []string{"b0", "b1"} {
			if got := testutil.SeriesWith(t, px.reg, id, "backend"); len(got) > 0 {
				t.Errorf("series of the removed backend %s: %v", id, got)
			}
		}
		if got := testutil.SeriesWith(t, px.reg, "a", "pool"); !slices.Equal(got, keptBefore) {
			t.Errorf("pool a's series changed:\n got %v\nwant %v", got, keptBefore)
		}
		if got := counterValue(t, px.reg, "veloflux_requests_total", map[string]string{"pool": "a"}); got != requestsA || got != 1 {
			t.Errorf("veloflux_requests_total{pool=a} = %v, want the 1 counted before", got)
		}
	}
	t.Run("after the table swap", check)

	// What a request that was in flight on the old table records when it ends.
	px.metrics.observe(http.MethodGet, http.StatusOK, "b", time.Millisecond, "")
	px.metrics.observePool(http.MethodGet, http.StatusOK, oldB, time.Millisecond, "")
	px.metrics.observePool(http.MethodPost, http.StatusCreated, oldB, time.Millisecond, "")
	px.metrics.retries.WithLabelValues("b").Inc()
	px.metrics.sticky.WithLabelValues("b", "hit").Inc()
	t.Run("after a late request of the removed pool", check)
	for _, v := range px.metrics.byPool() {
		if n := v.DeletePartialMatch(prometheus.Labels{"pool": "b"}); n != 0 {
			t.Errorf("the scrape left %d series of pool b in a vector", n)
		}
	}
}

// Each request counts in the series of its own method and status, whichever came before it on
// the same pool.
func TestRequestsCountedByMethodAndStatus(t *testing.T) {
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			w.WriteHeader(http.StatusNotFound)
		}
	})
	px := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("be", be.addr(), 1)))
	c := newClient(t)
	for _, step := range []struct{ method, path string }{
		{http.MethodGet, "/ok"}, {http.MethodGet, "/ok"}, {http.MethodGet, "/missing"},
		{http.MethodPost, "/ok"}, {http.MethodGet, "/ok"}, {http.MethodGet, "/missing"},
	} {
		send(t, c, step.method, px.url+step.path, "", nil, "")
	}
	for _, want := range []struct {
		method, code string
		n            float64
	}{{"GET", "200", 3}, {"GET", "404", 2}, {"POST", "200", 1}} {
		labels := map[string]string{"method": want.method, "code": want.code}
		if got := counterValue(t, px.reg, "veloflux_requests_total", labels); got != want.n {
			t.Errorf("veloflux_requests_total%v = %v, want %v", labels, got, want.n)
		}
	}
	mfs, err := px.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var observed uint64
	for _, mf := range mfs {
		if mf.GetName() == "veloflux_request_duration_seconds" {
			for _, m := range mf.GetMetric() {
				observed += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if observed != 6 {
		t.Errorf("veloflux_request_duration_seconds counted %d requests, want 6", observed)
	}
}
