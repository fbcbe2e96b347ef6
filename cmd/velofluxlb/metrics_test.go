package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// A reload that removes a pool removes every series that names it or its backends from the
// node's registry (proxy, active and passive health checks), and the pool that stays keeps
// its series.
func TestReloadDeletesSeriesOfRemovedPool(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(be.Close)
	dead := testutil.FreeAddr(t)
	check := &testconfig.HealthCheck{Path: "/", Interval: testconfig.Duration(50 * time.Millisecond), Timeout: testconfig.Duration(40 * time.Millisecond)}
	pools := func(withB bool) string {
		c := testconfig.Config{
			Global: testconfig.Global{BindAddress: "127.0.0.1:0", MetricsAddress: testconfig.Ptr(""), AdminAddress: testconfig.Ptr("")},
			Pools: []testconfig.Pool{{Name: "a", StickySessions: true, HealthCheck: check,
				Backends: []testconfig.Backend{{Address: be.Listener.Addr().String()}}}},
			Routes: []testconfig.Route{{PathPrefix: "/a", Pool: "a"}},
		}
		if withB {
			c.Pools = append(c.Pools, testconfig.Pool{Name: "b", StickySessions: true, HealthCheck: check,
				Passive: &testconfig.Passive{ConsecutiveFailures: 1}, Backends: []testconfig.Backend{{Address: dead}}})
			c.Routes = append(c.Routes, testconfig.Route{PathPrefix: "/b", Pool: "b"})
		}
		return c.YAML(t)
	}
	n := startNode(t, pools(true))
	url := "http://" + n.a.server.Addrs()[0].String()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	for _, path := range []string{"/a", "/b"} {
		resp, err := c.Get(url + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	want := []string{"veloflux_requests_total", "veloflux_sticky_requests_total", "veloflux_backend_health",
		"veloflux_health_checks_total", "veloflux_health_check_duration_seconds", "veloflux_health_ejected_backends",
		"veloflux_health_ejections_skipped_total"} // b's only backend is kept in: its pool is at max_ejection_percent
	testutil.Eventually(t, "series of pool b from the proxy, the probes and the passive checks", func() bool {
		got := testutil.MetricNames(testutil.SeriesWith(t, n.a.reg, "b", "pool"))
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	})
	testutil.Eventually(t, "series of pool a from the proxy and the probes", func() bool {
		got := testutil.MetricNames(testutil.SeriesWith(t, n.a.reg, "a", "pool"))
		return slices.Contains(got, "veloflux_requests_total") && slices.Contains(got, "veloflux_health_checks_total")
	})
	keptA := testutil.MetricNames(testutil.SeriesWith(t, n.a.reg, "a", "pool"))

	if err := os.WriteFile(n.a.path, []byte(pools(false)), 0o600); err != nil {
		t.Fatal(err)
	}
	n.a.reload("test")
	if _, last := n.a.running(); !last.OK {
		t.Fatalf("reload: %s", last.Error)
	}
	testutil.Eventually(t, "no series naming pool b or its backend", func() bool {
		return len(testutil.SeriesWith(t, n.a.reg, "b", "pool"))+len(testutil.SeriesWith(t, n.a.reg, dead, "backend")) == 0
	})
	// Pool a's probes keep running: its series are all still there.
	if got := testutil.MetricNames(testutil.SeriesWith(t, n.a.reg, "a", "pool")); !slices.Equal(got, keptA) {
		t.Errorf("pool a's series after the reload: %v, want %v", got, keptA)
	}
}
