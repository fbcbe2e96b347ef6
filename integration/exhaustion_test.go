//go:build integration

package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// healthBackend answers /health and / and counts the probes it answered.
type healthBackend struct {
	*httptest.Server
	probes atomic.Int64
}

func newHealthBackend(t *testing.T, name string) *healthBackend {
	b := &healthBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			b.probes.Add(1)
		}
		fmt.Fprint(w, name)
	}))
	t.Cleanup(b.Close)
	return b
}

// exhaustionConfig is a node limited to openFiles descriptors (through prlimit), probing three
// backends every 500 ms. A probe that fails for want of a descriptor fails at once, whatever its
// timeout; the timeout and the three failures in a row that take a backend down are there so
// that a node starved of CPU by the burst of connections, on a busy machine, does not time
// its probes out and mark a backend down for a reason that is not the one tested (seen with
// 90 ms and two failures under go test -race -count=3 and two busy loops).
func exhaustionConfig(bs []*healthBackend) testconfig.Config {
	pool := testconfig.WebPool()
	pool.HealthCheck = &testconfig.HealthCheck{Path: "/health", Interval: testconfig.Duration(500 * time.Millisecond), Timeout: testconfig.Duration(500 * time.Millisecond), Retries: 3}
	for _, b := range bs {
		pool.Backends = append(pool.Backends, testconfig.Backend{Address: strings.TrimPrefix(b.URL, "http://")})
	}
	cfg := singlePool(pool)
	cfg.Global.AccessLog, cfg.Global.LogLevel = testconfig.Ptr(false), "debug"
	return cfg
}

const openFiles = 256

// holdIdle opens n client connections to addr that send nothing, and closes them at test end
// or when release is called.
func holdIdle(t *testing.T, addr string, n int) (release func()) {
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	done := false
	release = func() {
		if !done {
			done = true
			for _, c := range conns {
				_ = c.Close()
			}
		}
	}
	t.Cleanup(release)
	return release
}

// probesPass waits until every backend answered k more probes than it had: the node kept
// probing, and its probes reached the backends.
func probesPass(t *testing.T, bs []*healthBackend, k int64) {
	t.Helper()
	base := make([]int64, len(bs))
	for i, b := range bs {
		base[i] = b.probes.Load()
	}
	testutil.Eventually(t, fmt.Sprintf("%d more probes of every backend", k), func() bool {
		for i, b := range bs {
			if b.probes.Load() < base[i]+k {
				return false
			}
		}
		return true
	})
}

// firstTryOK sends one request on a fresh connection and reports its status, for a proxy that
// must answer at once once the pressure is gone.
func firstTryOK(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("request after the pressure: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// With the default client connection cap, idle clients beyond the open-files limit wait in
// the backlog: the node never runs out of descriptors, probes keep passing, and no backend is
// marked down.
func TestIdleClientsBeyondOpenFilesLimit(t *testing.T) {
	requirePrlimit(t)
	bs := []*healthBackend{newHealthBackend(t, "a"), newHealthBackend(t, "b"), newHealthBackend(t, "c")}
	n := startNodeWith(t, []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", openFiles, openFiles), "--"}, exhaustionConfig(bs).YAML(t))
	m := newScraper(t, n)
	probesPass(t, bs, 2)
	release := holdIdle(t, n.proxy, 2*openFiles)
	testutil.Eventually(t, "the client connection cap to fill", func() bool {
		return m.value(t, "veloflux_client_connections", `listener="http"`) == 64
	})
	probesPass(t, bs, 10)
	if v := m.value(t, "veloflux_client_connections", `listener="http"`); v != 64 {
		t.Errorf("open client connections at the cap = %v, want 64 ((256-128)/2)", v)
	}
	release()
	if code := firstTryOK(t, n.proxy); code != http.StatusOK {
		t.Fatalf("first request after the idle clients left: %d, want 200", code)
	}
	if down := n.logs.Find("backend down"); len(down) > 0 {
		t.Fatalf("a backend was marked down by the node's own descriptor shortage: %v", down)
	}
	if v := m.value(t, "veloflux_accept_errors_total", `listener="http"`); v != 0 {
		t.Errorf("accept errors under the cap: %v, want 0", v)
	}
}

// Without the cap, the same clients take every descriptor: accepts and probes fail with
// EMFILE. The failures are the node's own: accept errors are counted and logged at warn, at
// most once per 10 s, and no backend is marked down, actively or passively.
func TestOpenFilesExhaustedIsNotABackendFailure(t *testing.T) {
	requirePrlimit(t)
	bs := []*healthBackend{newHealthBackend(t, "a"), newHealthBackend(t, "b"), newHealthBackend(t, "c")}
	cfg := exhaustionConfig(bs)
	cfg.Global.Limits = &testconfig.Limits{MaxClientConns: 100000}
	n := startNodeWith(t, []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", openFiles, openFiles), "--"}, cfg.YAML(t))
	m := newScraper(t, n)
	probesPass(t, bs, 2)
	release := holdIdle(t, n.proxy, 2*openFiles)
	testutil.Eventually(t, "accept errors to be counted", func() bool {
		return m.value(t, "veloflux_accept_errors_total", `listener="http"`) > 0
	})
	testutil.Eventually(t, "probes failing locally", func() bool {
		return m.value(t, "veloflux_health_probe_local_errors_total", "") > 0
	})
	warns := 0
	for _, l := range n.logs.Find("accepting a client connection failed; retrying") {
		if lv, _ := l["level"].(string); strings.EqualFold(lv, "warn") {
			warns++
		}
	}
	if warns == 0 || warns > 3 {
		t.Errorf("%d accept-error warnings, want a few (one per 10 s)", warns)
	}
	t.Logf("under pressure: %v accept errors, %v probes failed locally, %d warnings",
		m.value(t, "veloflux_accept_errors_total", `listener="http"`), m.value(t, "veloflux_health_probe_local_errors_total", ""), warns)
	release()
	freed := time.Now()
	testutil.Eventually(t, "a request to be served after the pressure", func() bool {
		return firstTryOK(t, n.proxy) == http.StatusOK
	})
	t.Logf("first 200 %v after the idle clients left", time.Since(freed).Round(time.Millisecond))
	if code := firstTryOK(t, n.proxy); code != http.StatusOK {
		t.Fatalf("request after the pressure: %d, want 200", code)
	}
	if down := n.logs.Find("backend down"); len(down) > 0 {
		t.Fatalf("a backend was marked down by the node's own descriptor shortage: %v", down)
	}
	if ej := n.logs.Find("backend ejected"); len(ej) > 0 {
		t.Fatalf("a backend was ejected by the node's own descriptor shortage: %v", ej)
	}
}

// scraper reads a node's metrics over one kept-alive connection, opened before any pressure,
// so that scraping needs no new descriptor on a node that has none left.
type scraper struct {
	c   *http.Client
	url string
}

func newScraper(t *testing.T, n *node) *scraper {
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Hour}
	t.Cleanup(tr.CloseIdleConnections)
	s := &scraper{c: &http.Client{Transport: tr, Timeout: 30 * time.Second}, url: "http://" + n.metrics + "/metrics"}
	s.value(t, "veloflux_draining", "") // opens the connection
	return s
}

// value returns the sample of name with exactly the label set labels ("" for none), 0 when
// the series does not exist yet.
func (s *scraper) value(t *testing.T, name, labels string) float64 {
	t.Helper()
	resp, err := s.c.Get(s.url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	series := name
	if labels != "" {
		series += "{" + labels + "}"
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

func requirePrlimit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatalf("prlimit (util-linux) is needed: %v", err)
	}
}
