package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/proxy/h1"
	"github.com/veloflux/veloflux/proxy/h1fast"
)

// TestMain fails the package when any test leaves a goroutine behind: every proxy, backend
// and client a test starts must be closed by its cleanups, idle connections included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testBackend is a real HTTP server on 127.0.0.1:0 that records every request reaching it
// before its handler runs, so a test can tell which backend served what.
type testBackend struct {
	name string
	srv  *httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct {
	Method string
	Host   string
	URI    string
	Header http.Header
	Body   string
}

// newBackend starts a backend that records requests and then runs h. A nil h answers 200
// with the backend's name as body and in the X-Backend header.
func newBackend(t testing.TB, name string, h http.HandlerFunc) *testBackend {
	t.Helper()
	b := &testBackend{name: name}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			_, _ = io.WriteString(w, name)
		}
	}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.seen = append(b.seen, seenRequest{Method: r.Method, Host: r.Host, URI: r.RequestURI, Header: r.Header.Clone(), Body: string(body)})
		b.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *testBackend) addr() string { return b.srv.Listener.Addr().String() }

func (b *testBackend) hits() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.seen)
}

func (b *testBackend) last(t testing.TB) seenRequest {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) == 0 {
		t.Fatalf("backend %s saw no request", b.name)
	}
	return b.seen[len(b.seen)-1]
}

// hijackClose answers nothing: it takes the connection over and closes it, the way a
// crashing backend process looks from the proxy.
func hijackClose(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err) // the test server always supports Hijack; anything else is a broken test
	}
	_ = conn.Close()
}

// deadAddr returns an address nothing listens on: a listener's port, closed again.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return addr
}

func member(id, addr string, weight int) discovery.Backend {
	return discovery.Backend{ID: id, Address: addr, Weight: weight}
}

// onePoolSnapshot routes every request to one pool named "web".
func onePoolSnapshot(algorithm string, sticky bool, backends ...discovery.Backend) *discovery.Snapshot {
	return &discovery.Snapshot{
		Source: "test",
		Pools:  []discovery.Pool{{Name: "web", Algorithm: algorithm, Sticky: sticky, Backends: backends}},
		Routes: []discovery.Route{{Pool: "web"}},
	}
}

// testFastPath runs the package's tests on the HTTP/1.1 fast path: VELOFLUX_TEST_HTTP1=fast
// serves every test proxy with h1fast and sends to plain backends through h1client, so the
// same tests prove both paths (make unit runs them both ways).
var testFastPath = os.Getenv("VELOFLUX_TEST_HTTP1") == "fast"

// serveTest serves p on 127.0.0.1:0 the way the tests are run: net/http's httptest server, or
// the fast path's server behind the HTTP/1 guard. It returns the base URL.
func serveTest(t testing.TB, p *Proxy) string {
	t.Helper()
	if !testFastPath {
		srv := httptest.NewServer(p)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	return serveFast(t, p)
}

// serveFast serves p with the HTTP/1.1 fast path's server on 127.0.0.1:0, whatever
// VELOFLUX_TEST_HTTP1 says, and returns its URL.
func serveFast(t testing.TB, p *Proxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	fs := &h1fast.Server{
		Handler: p,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return withConn(ctx, &connInfo{h1: h1.From(c)})
		},
	}
	done := make(chan error, 1)
	go func() { done <- fs.Serve(ln) }()
	t.Cleanup(func() {
		_ = fs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout())
		defer cancel()
		if err := fs.Shutdown(ctx); err != nil {
			t.Errorf("fast-path server: connections left after Close: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("fast-path server: Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// testProxy is a Proxy served by an httptest server on 127.0.0.1:0, with its own registry.
type testProxy struct {
	*Proxy
	reg *prometheus.Registry
	url string
}

// startProxy builds a proxy with cfg and opts (its Registerer replaced by a fresh registry),
// applies snap when it is not nil, and serves it. Cleanups close the server and the proxy's
// idle backend connections, which goleak would otherwise report.
func startProxy(t testing.TB, cfg Config, opts Options, snap *discovery.Snapshot) *testProxy {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	p := newProxy(t, cfg, opts, snap)
	return &testProxy{Proxy: p, reg: reg, url: serveTest(t, p)}
}

func newProxy(t testing.TB, cfg Config, opts Options, snap *discovery.Snapshot) *Proxy {
	t.Helper()
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if testFastPath {
		opts.Transport.FastHTTP1 = true
	}
	p, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	if snap != nil {
		if err := p.Apply(snap); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	return p
}

// newClient returns a client with its own connection pool, closed when the test ends, that
// does not follow redirects.
func newClient(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// sendConcurrently sends workers × perWorker requests from workers goroutines at once, each
// one after another, and fails the test on any error or status but 200.
func sendConcurrently(t testing.TB, c *http.Client, workers, perWorker int, method, url, host, body string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range perWorker {
				r, err := trySend(c, method, url, host, nil, body)
				if err == nil && r.status != http.StatusOK {
					err = fmt.Errorf("status %d", r.status)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// response is what a test keeps of an answer.
type response struct {
	status int
	header http.Header
	body   string
	close  bool // the server asked to close the connection
}

// send issues one request and reads the whole answer; a transport error fails the test.
func send(t testing.TB, c *http.Client, method, url, host string, hdr http.Header, body string) response {
	t.Helper()
	resp, err := trySend(c, method, url, host, hdr, body)
	if err != nil {
		t.Fatalf("%s %s (Host %q): %v", method, url, host, err)
	}
	return resp
}

func trySend(c *http.Client, method, url, host string, hdr http.Header, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return response{}, err
	}
	if host != "" {
		req.Host = host
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b), close: resp.Close}, nil
}

var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// checkErrorAnswer asserts the shape of an answer the proxy writes itself: the status, a
// plain-text body naming the request ID of the X-Request-Id header, and no Go error text or
// backend address that would tell a client about the inside.
func checkErrorAnswer(t testing.TB, r response, status int, wantText string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d (body %q)", r.status, status, r.body)
	}
	id := r.header.Get("X-Request-Id")
	if !requestIDPattern.MatchString(id) {
		t.Fatalf("X-Request-Id = %q, want 32 hex digits", id)
	}
	if !strings.HasSuffix(r.body, "(request id "+id+")\n") {
		t.Fatalf("body %q does not end with the request id %s", r.body, id)
	}
	if !strings.Contains(r.body, wantText) {
		t.Fatalf("body %q does not contain %q", r.body, wantText)
	}
	for _, leak := range []string{"dial tcp", "EOF", "connection refused", "reset by peer", "127.0.0.1", "context", "<nil>", "%!"} {
		if strings.Contains(r.body, leak) {
			t.Fatalf("body %q leaks %q", r.body, leak)
		}
	}
	if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Fatalf("Content-Type = %q", ct)
	}
}

// backendStatus returns the status of backend id of pool as Pools reports it.
func backendStatus(t testing.TB, p *Proxy, pool, id string) BackendStatus {
	t.Helper()
	for _, ps := range p.Pools() {
		if ps.Name != pool {
			continue
		}
		for _, b := range ps.Backends {
			if b.ID == id {
				return b
			}
		}
	}
	t.Fatalf("backend %s/%s not in Pools()", pool, id)
	return BackendStatus{}
}

func activeOf(t testing.TB, p *Proxy, pool, id string) int64 {
	t.Helper()
	return backendStatus(t, p, pool, id).Active
}

// metricValue returns the value of the series of name whose labels include labels, and
// whether there is one.
func metricValue(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := make(map[string]string, len(m.GetLabel()))
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetUntyped() != nil:
				return m.GetUntyped().GetValue(), true
			}
		}
	}
	return 0, false
}

// counterValue is metricValue for a counter that reads 0 before its first increment.
func counterValue(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := metricValue(t, g, name, labels)
	return v
}

// downSet is a HealthView whose down backends a test switches at will. The set is an
// immutable map behind an atomic pointer, as the request path expects of a health view.
type downSet struct {
	down atomic.Pointer[map[string]bool]
}

func (d *downSet) Healthy(id string) bool {
	m := d.down.Load()
	return m == nil || !(*m)[id]
}

func (d *downSet) setDown(ids ...string) {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	d.down.Store(&m)
}

// runServer listens with cfg on 127.0.0.1:0 and serves p until the test ends or stop is
// called; stop returns Serve's result.
func runServer(t testing.TB, cfg ServerConfig, p *Proxy) (s *Server, addr string, stop func() error) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.HTTP1FastPath = cfg.HTTP1FastPath || testFastPath
	s, err := NewServer(cfg, p, nil)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var once sync.Once
	var serveErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(testutil.Timeout()):
				serveErr = fmt.Errorf("Serve did not return within %v of its context ending", testutil.Timeout())
			}
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, s.Addrs()[0].String(), stop
}

// testServerConfig is DefaultServerConfig with a drain short enough for tests.
func testServerConfig() ServerConfig {
	cfg := DefaultServerConfig()
	cfg.DrainTimeout = 5 * time.Second
	return cfg
}
