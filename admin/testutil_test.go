package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeController records Drain/Undrain calls; Status reflects them so replies can be checked.
type fakeController struct {
	mu       sync.Mutex
	drained  bool
	drains   int
	undrains int
	// backends are the known backend IDs and whether each is drained.
	backends map[string]bool
	// name is the node name Status shows ("n1" when empty); peers are the "host" or "host:port" PeerAdmin
	// answers by node name.
	name  string
	peers map[string]string
}

func (f *fakeController) Health() any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []map[string]any{}
	for _, id := range []string{"b1", "b2"} {
		out = append(out, map[string]any{"backend": id, "drained": f.backends[id]})
	}
	return out
}

func (f *fakeController) DrainBackend(id string, drained bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != "b1" && id != "b2" {
		return fmt.Errorf("drain %q: %w", id, ErrUnknownBackend)
	}
	if f.backends == nil {
		f.backends = map[string]bool{}
	}
	f.backends[id] = drained
	return nil
}

func (f *fakeController) Status() any {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := f.name
	if name == "" {
		name = "n1"
	}
	return map[string]any{"node": name, "draining": f.drained}
}
func (f *fakeController) Stats() any {
	return map[string]any{"requests": 7}
}
func (f *fakeController) Sessions() any {
	return map[string]any{"total": 2}
}

// PeerAdmin knows the peers in f.peers ("host" or "host:port"); it calls every other name
// unknown.
func (f *fakeController) PeerAdmin(node string) (string, int, error) {
	h, ok := f.peers[node]
	if !ok {
		return "", 0, fmt.Errorf("peer %q: %w", node, ErrUnknownPeer)
	}
	if host, port, err := net.SplitHostPort(h); err == nil {
		p, err := strconv.Atoi(port)
		return host, p, err
	}
	return h, 0, nil
}
func (f *fakeController) Pools() any {
	return []map[string]any{{"name": "web", "backends": []map[string]any{{"address": "10.0.0.1:80", "healthy": true, "active": 3, "weight": 2}}}}
}
func (f *fakeController) Routes() any {
	return []map[string]any{{"host": "example.com", "pool": "web"}}
}
func (f *fakeController) Config() any {
	return map[string]any{"admin": map[string]any{"password": "<redacted>"}}
}
func (f *fakeController) Drain() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drained = true
	f.drains++
}
func (f *fakeController) Undrain() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drained = false
	f.undrains++
}
func (f *fakeController) calls() (drains, undrains int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.drains, f.undrains
}

type testEnv struct {
	srv   *Server
	http  *httptest.Server
	ctrl  *fakeController
	clock *testutil.Clock // the lockout's clock, stepped by hand
	logs  *testutil.LogBuffer
}

// newEnv serves a Server built from cfg on a real 127.0.0.1 listener.
func newEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	env := newTestEnv()
	srv, err := New(cfg, env.ctrl, env.logs.Logger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv.now = env.clock.Now
	env.srv = srv
	env.http = newHTTPTestServer(t, srv)
	return env
}

// newTestEnv is a testEnv without its server: a fake controller, a clock and a log buffer.
func newTestEnv() *testEnv {
	return &testEnv{ctrl: &fakeController{}, clock: testutil.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), logs: &testutil.LogBuffer{}}
}

func credsConfig() Config {
	cfg := DefaultConfig()
	cfg.User, cfg.Password = "admin", "s3cret-pass"
	return cfg
}

type reply struct {
	status int
	header http.Header
	body   string
}

// errorMessage decodes an {"error": "..."} body, failing the test if the body is not one.
func (r reply) errorMessage(t *testing.T) string {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	msg, ok := e["error"].(string)
	if !ok || msg == "" || len(e) != 1 {
		t.Fatalf("body %q is not {\"error\": \"...\"}", r.body)
	}
	return msg
}

type reqOpt func(*http.Request)

func withAuth(user, pass string) reqOpt {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func withHeader(k, v string) reqOpt {
	return func(r *http.Request) { r.Header.Set(k, v) }
}

func withHost(h string) reqOpt {
	return func(r *http.Request) { r.Host = h }
}

func do(t *testing.T, c *http.Client, method, url string, opts ...reqOpt) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// clientFrom returns a client whose connections come from the given loopback source IP, so
// one test can be several clients as far as the server's lockout table is concerned.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// newHTTPTestServer serves srv's handler on a real 127.0.0.1 listener.
func newHTTPTestServer(t *testing.T, srv *Server) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs
}
