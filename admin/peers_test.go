package admin

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/veloflux/veloflux/internal/testutil"
)

// peerPair serves two admin servers on one port, a on 127.0.0.1 and b on 127.0.0.2, as two
// nodes of a cluster serve on the same admin port at their own addresses; a knows b as "peer".
func peerPair(t *testing.T) (a, b *testEnv) {
	t.Helper()
	lns := testutil.ListenSamePort(t, "127.0.0.1", "127.0.0.2")
	a, b = newEnvOn(t, credsConfig(), lns[0]), newEnvOn(t, credsConfig(), lns[1])
	a.ctrl.peers = map[string]string{"peer": "127.0.0.2"}
	b.ctrl.name = "n2"
	return a, b
}

// newEnvOn is newEnv serving on ln.
func newEnvOn(t *testing.T, cfg Config, ln net.Listener) *testEnv {
	t.Helper()
	env := newTestEnv()
	srv, err := New(cfg, env.ctrl, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.now = env.clock.Now
	env.srv = srv
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	t.Cleanup(srv.peers.CloseIdleConnections)
	env.http = hs
	return env
}

// TestPeerForwardToGossipedPort: a peer whose admin API listens on another port than this
// node's (nodes sharing one host) is reached on the port it gossips.
func TestPeerForwardToGossipedPort(t *testing.T) {
	a, b := newEnv(t, credsConfig()), newEnv(t, credsConfig())
	b.ctrl.name = "n2"
	a.ctrl.peers = map[string]string{"peer": b.http.Listener.Addr().String()}
	if a.http.Listener.Addr().String() == b.http.Listener.Addr().String() {
		t.Fatal("both admin servers on one address")
	}
	r := do(t, a.http.Client(), http.MethodGet, a.http.URL+"/admin/peers/peer/status", withAuth("admin", "s3cret-pass"))
	var st map[string]any
	if err := json.Unmarshal([]byte(r.body), &st); r.status != http.StatusOK || err != nil || st["node"] != "n2" {
		t.Fatalf("peer status = %d %s, want 200 with node n2", r.status, r.body)
	}
}

func TestPeerForward(t *testing.T) {
	a, b := peerPair(t)
	auth := withAuth("admin", "s3cret-pass")
	c := a.http.Client()

	r := do(t, c, http.MethodGet, a.http.URL+"/admin/peers/peer/status", auth)
	var st map[string]any
	if err := json.Unmarshal([]byte(r.body), &st); r.status != http.StatusOK || err != nil || st["node"] != "n2" {
		t.Fatalf("peer status = %d %s, want 200 with node n2", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if r := do(t, c, http.MethodHead, a.http.URL+"/admin/peers/peer/pools", auth); r.status != http.StatusOK || r.body != "" {
		t.Errorf("HEAD peer pools = %d %q", r.status, r.body)
	}

	r = do(t, c, http.MethodPost, a.http.URL+"/admin/peers/peer/drain", auth)
	if r.status != http.StatusOK || !strings.Contains(r.body, `"draining":true`) {
		t.Fatalf("peer drain = %d %s", r.status, r.body)
	}
	if d, _ := b.ctrl.calls(); d != 1 {
		t.Errorf("peer drained %d times, want 1", d)
	}
	if d, _ := a.ctrl.calls(); d != 0 {
		t.Errorf("the forwarding node drained itself %d times", d)
	}

	tests := []struct {
		name, method, path string
		opts               []reqOpt
		status             int
		msg                string
	}{
		{"no credentials", http.MethodGet, "/admin/peers/peer/status", nil, http.StatusUnauthorized, "authentication"},
		{"unknown peer", http.MethodGet, "/admin/peers/nobody/status", []reqOpt{auth}, http.StatusNotFound, `no live peer "nobody"`},
		{"backend drain not forwarded", http.MethodPost, "/admin/peers/peer/backends/drain", []reqOpt{auth}, http.StatusNotFound, "not forwarded"},
		{"no forward of a forward", http.MethodGet, "/admin/peers/peer/peers/peer/status", []reqOpt{auth}, http.StatusNotFound, "not forwarded"},
		{"no endpoint", http.MethodGet, "/admin/peers/peer", []reqOpt{auth}, http.StatusNotFound, "NODE/ENDPOINT"},
		{"read with POST", http.MethodPost, "/admin/peers/peer/status", []reqOpt{auth}, http.StatusMethodNotAllowed, "allowed: GET, HEAD"},
		{"drain with GET", http.MethodGet, "/admin/peers/peer/drain", []reqOpt{auth}, http.StatusMethodNotAllowed, "allowed: POST"},
		{"cross-site drain", http.MethodPost, "/admin/peers/peer/undrain", []reqOpt{auth, withHeader("Sec-Fetch-Site", "cross-site")}, http.StatusForbidden, "cross-origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, c, tt.method, a.http.URL+tt.path, tt.opts...)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.status, r.body)
			}
			if msg := r.errorMessage(t); !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q does not say %q", msg, tt.msg)
			}
		})
	}
	if d, u := b.ctrl.calls(); d != 1 || u != 0 {
		t.Errorf("refused forwards reached the peer: Drain %d, Undrain %d", d, u)
	}

	b.http.Close()
	r = do(t, c, http.MethodGet, a.http.URL+"/admin/peers/peer/status", auth)
	if r.status != http.StatusBadGateway || !strings.Contains(r.errorMessage(t), `peer "peer" at 127.0.0.2:`) {
		t.Errorf("peer down: %d %s, want 502 naming the peer's address", r.status, r.body)
	}
}

func TestDashboardFiles(t *testing.T) {
	env := newEnv(t, credsConfig())
	auth := withAuth("admin", "s3cret-pass")
	c := env.http.Client()
	tests := []struct {
		path, contentType, contains string
	}{
		{"/ui/", "text/html; charset=utf-8", `<script src="app.js" defer></script>`},
		{"/ui/app.js", "text/javascript; charset=utf-8", "/admin/peers/"},
		{"/ui/style.css", "text/css; charset=utf-8", "grid-template-columns"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := do(t, c, http.MethodGet, env.http.URL+tt.path, auth)
			if r.status != http.StatusOK || !strings.Contains(r.body, tt.contains) {
				t.Fatalf("status = %d, body does not contain %q", r.status, tt.contains)
			}
			if got := r.header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
			csp := r.header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe") {
				t.Errorf("CSP %q allows unsafe sources", csp)
			}
		})
	}
	if r := do(t, c, http.MethodGet, env.http.URL+"/ui/", nil...); r.status != http.StatusUnauthorized {
		t.Errorf("dashboard without credentials = %d, want 401", r.status)
	}
	if r := do(t, c, http.MethodPost, env.http.URL+"/ui/", auth); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/ = %d, want 405", r.status)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/", "/ui"} {
		if r := do(t, noFollow, http.MethodGet, env.http.URL+p, auth); r.status != http.StatusFound || r.header.Get("Location") != "/ui/" {
			t.Errorf("GET %s = %d to %q, want 302 to /ui/", p, r.status, r.header.Get("Location"))
		}
	}
	// No page of the dashboard writes what it reads as HTML.
	js := do(t, c, http.MethodGet, env.http.URL+"/ui/app.js", auth).body
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(js, sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
}
