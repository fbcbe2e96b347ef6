package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

func TestReadEndpoints(t *testing.T) {
	env := newEnv(t, credsConfig())
	auth := withAuth("admin", "s3cret-pass")
	tests := []struct {
		path string
		want any
	}{
		{"/admin/status", env.ctrl.Status()},
		{"/admin/pools", env.ctrl.Pools()},
		{"/admin/routes", env.ctrl.Routes()},
		{"/admin/config", env.ctrl.Config()},
		{"/admin/health", env.ctrl.Health()},
		{"/admin/stats", env.ctrl.Stats()},
		{"/admin/sessions", env.ctrl.Sessions()},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := do(t, env.http.Client(), http.MethodGet, env.http.URL+tt.path, auth)
			if r.status != http.StatusOK {
				t.Fatalf("status = %d, body %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			want, err := json.Marshal(tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(r.body) != string(want) {
				t.Errorf("body = %s, want %s", r.body, want)
			}

			head := do(t, env.http.Client(), http.MethodHead, env.http.URL+tt.path, auth)
			if head.status != http.StatusOK || head.body != "" {
				t.Errorf("HEAD = %d %q, want 200 with no body", head.status, head.body)
			}
		})
	}
	if d, u := env.ctrl.calls(); d != 0 || u != 0 {
		t.Errorf("reads called Drain %d / Undrain %d times", d, u)
	}
}

func TestDrainUndrain(t *testing.T) {
	env := newEnv(t, credsConfig())
	auth := withAuth("admin", "s3cret-pass")
	steps := []struct {
		path                     string
		wantDrains, wantUndrains int
		wantDraining             bool
	}{
		{"/admin/drain", 1, 0, true},
		{"/admin/undrain", 1, 1, false},
		{"/admin/drain", 2, 1, true},
	}
	for i, st := range steps {
		t.Run(fmt.Sprintf("%d %s", i, st.path), func(t *testing.T) {
			r := do(t, env.http.Client(), http.MethodPost, env.http.URL+st.path, auth)
			if r.status != http.StatusOK {
				t.Fatalf("status = %d, body %s", r.status, r.body)
			}
			var status struct {
				Node     string `json:"node"`
				Draining bool   `json:"draining"`
			}
			if err := json.Unmarshal([]byte(r.body), &status); err != nil {
				t.Fatalf("body %q: %v", r.body, err)
			}
			// The reply is Status() taken after the call, so it shows the new state.
			if status.Node != "n1" || status.Draining != st.wantDraining {
				t.Errorf("reply = %+v, want node n1 draining=%v", status, st.wantDraining)
			}
			if d, u := env.ctrl.calls(); d != st.wantDrains || u != st.wantUndrains {
				t.Errorf("Drain/Undrain calls = %d/%d, want %d/%d", d, u, st.wantDrains, st.wantUndrains)
			}
		})
	}
	var infos int
	for _, l := range env.logs.Records() {
		if l["level"] == "INFO" && strings.Contains(l["msg"].(string), "drained via admin API") {
			infos++
		}
	}
	if infos != len(steps) {
		t.Errorf("logged %d drain/undrain actions, want %d:\n%s", infos, len(steps), env.logs.String())
	}
}

func TestMethodNotAllowed(t *testing.T) {
	env := newEnv(t, credsConfig())
	auth := withAuth("admin", "s3cret-pass")
	tests := []struct {
		method, path, wantAllow string
	}{
		{http.MethodPost, "/admin/status", "GET, HEAD"},
		{http.MethodPut, "/admin/pools", "GET, HEAD"},
		{http.MethodDelete, "/admin/routes", "GET, HEAD"},
		{http.MethodPatch, "/admin/config", "GET, HEAD"},
		{http.MethodGet, "/admin/drain", "POST"},
		{http.MethodHead, "/admin/undrain", "POST"},
		{http.MethodPut, "/admin/drain", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := do(t, env.http.Client(), tt.method, env.http.URL+tt.path, auth)
			if r.status != http.StatusMethodNotAllowed {
				t.Fatalf("status = %d, want 405", r.status)
			}
			if got := r.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
			}
			if tt.method != http.MethodHead {
				if msg := r.errorMessage(t); !strings.Contains(msg, tt.method) || !strings.Contains(msg, tt.wantAllow) {
					t.Errorf("error %q should name the method and the allowed ones", msg)
				}
			}
		})
	}
	if d, u := env.ctrl.calls(); d != 0 || u != 0 {
		t.Errorf("refused methods reached the controller: Drain %d, Undrain %d", d, u)
	}
}

func TestNotFound(t *testing.T) {
	env := newEnv(t, credsConfig())
	for _, path := range []string{"/admin", "/admin/", "/admin/status/", "/admin/STATUS", "/admin/nope", "/metrics"} {
		t.Run(path, func(t *testing.T) {
			r := do(t, env.http.Client(), http.MethodGet, env.http.URL+path, withAuth("admin", "s3cret-pass"))
			if r.status != http.StatusNotFound {
				t.Fatalf("status = %d, want 404", r.status)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
			}
			if msg := r.errorMessage(t); !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the path", msg)
			}
		})
	}
}

func TestNoCredentialsOnLoopback(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Address = "127.0.0.1:0"
	env := newEnv(t, cfg)
	tests := []struct {
		name       string
		opts       []reqOpt
		wantStatus int
	}{
		{"no auth needed", nil, http.StatusOK},
		{"any auth ignored", []reqOpt{withAuth("x", "y")}, http.StatusOK},
		{"localhost host", []reqOpt{withHost("localhost:9000")}, http.StatusOK},
		{"IPv6 loopback host", []reqOpt{withHost("[::1]:9000")}, http.StatusOK},
		{"rebinding host refused", []reqOpt{withHost("attacker.example:9000")}, http.StatusForbidden},
		{"lookalike host refused", []reqOpt{withHost("127.0.0.1.attacker.example")}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, env.http.Client(), http.MethodPost, env.http.URL+"/admin/drain", tt.opts...)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", r.status, tt.wantStatus, r.body)
			}
			if r.header.Get("WWW-Authenticate") != "" {
				t.Errorf("challenged for credentials with auth off")
			}
			if tt.wantStatus != http.StatusOK {
				r.errorMessage(t)
			}
		})
	}
	if d, _ := env.ctrl.calls(); d != 4 {
		t.Errorf("Drain called %d times, want 4 (refused hosts must not reach it)", d)
	}
}

func TestCrossOriginPostRefused(t *testing.T) {
	for _, auth := range []bool{true, false} {
		t.Run(fmt.Sprintf("credentials=%v", auth), func(t *testing.T) {
			cfg := DefaultConfig()
			var opts []reqOpt
			if auth {
				cfg = credsConfig()
				opts = append(opts, withAuth("admin", "s3cret-pass"))
			}
			env := newEnv(t, cfg)
			tests := []struct {
				name       string
				headers    []reqOpt
				wantStatus int
			}{
				{"cross-site fetch", []reqOpt{withHeader("Sec-Fetch-Site", "cross-site")}, http.StatusForbidden},
				{"same-site other origin", []reqOpt{withHeader("Sec-Fetch-Site", "same-site")}, http.StatusForbidden},
				{"foreign Origin without Sec-Fetch-Site", []reqOpt{withHeader("Origin", "https://evil.example")}, http.StatusForbidden},
				{"same-origin browser", []reqOpt{withHeader("Sec-Fetch-Site", "same-origin")}, http.StatusOK},
				{"user typed URL", []reqOpt{withHeader("Sec-Fetch-Site", "none")}, http.StatusOK},
				{"non-browser client", nil, http.StatusOK},
			}
			wantDrains := 0
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					r := do(t, env.http.Client(), http.MethodPost, env.http.URL+"/admin/drain", append(append([]reqOpt{}, opts...), tt.headers...)...)
					if r.status != tt.wantStatus {
						t.Fatalf("status = %d, want %d (body %s)", r.status, tt.wantStatus, r.body)
					}
					if tt.wantStatus == http.StatusOK {
						wantDrains++
					} else {
						r.errorMessage(t)
					}
					if d, _ := env.ctrl.calls(); d != wantDrains {
						t.Errorf("Drain calls = %d, want %d", d, wantDrains)
					}
				})
			}
		})
	}
}

// badController returns a value encoding/json cannot encode.
type badController struct{ fakeController }

func (*badController) Status() any { return map[string]any{"f": func() {}} }

func TestEncodeFailureIs500(t *testing.T) {
	cfg := DefaultConfig()
	srv, err := New(cfg, &badController{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := newHTTPTestServer(t, srv)
	r := do(t, hs.Client(), http.MethodGet, hs.URL+"/admin/status")
	if r.status != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500 (body %s)", r.status, r.body)
	}
	if msg := r.errorMessage(t); !strings.Contains(msg, "encode response") {
		t.Errorf("error %q does not say what failed", msg)
	}
}

// listenServer builds a Server on 127.0.0.1:0 and binds it.
func listenServer(t *testing.T, ctrl Controller) *Server {
	t.Helper()
	cfg := credsConfig()
	cfg.Address = "127.0.0.1:0"
	cfg.ShutdownTimeout = 5 * time.Second
	srv, err := New(cfg, ctrl, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if srv.Addr() != nil {
		t.Fatalf("Addr before Listen = %v, want nil", srv.Addr())
	}
	if err := srv.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	return srv
}

func TestServeAndShutdown(t *testing.T) {
	srv := listenServer(t, &fakeController{})
	addr := srv.Addr()
	if addr == nil {
		t.Fatal("Addr after Listen is nil")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	url := "http://" + addr.String() + "/admin/status"
	if r := do(t, client, http.MethodGet, url, withAuth("admin", "s3cret-pass")); r.status != http.StatusOK {
		t.Fatalf("status = %d, body %s", r.status, r.body)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", addr.String()); err == nil {
		t.Error("still accepting connections after shutdown")
	}
	if err := srv.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Serve = %v, want an error", err)
	}
}

// blockingController holds Status calls until release is closed, to keep a request in flight.
type blockingController struct {
	fakeController
	entered chan struct{}
	release chan struct{}
}

func (b *blockingController) Status() any {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeController.Status()
}

// waitRefused waits until addr stops accepting connections: the sign Shutdown has begun.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	testutil.Eventually(t, addr+" to refuse connections", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
}

func TestShutdownWaitsForInFlightRequests(t *testing.T) {
	ctrl := &blockingController{entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv := listenServer(t, ctrl)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	replies := make(chan reply, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		replies <- do(t, client, http.MethodGet, "http://"+srv.Addr().String()+"/admin/status", withAuth("admin", "s3cret-pass"))
	})
	<-ctrl.entered
	cancel()
	waitRefused(t, srv.Addr().String())
	close(ctrl.release)
	wg.Wait()

	// A hard close would have cut the in-flight request off instead.
	if r := <-replies; r.status != http.StatusOK {
		t.Errorf("in-flight request got %d, want 200", r.status)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
}

func TestShutdownTimeout(t *testing.T) {
	ctrl := &blockingController{entered: make(chan struct{}, 1), release: make(chan struct{})}
	cfg := credsConfig()
	cfg.Address = "127.0.0.1:0"
	cfg.ShutdownTimeout = 50 * time.Millisecond
	srv, err := New(cfg, ctrl, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var addr net.Addr
	testutil.Eventually(t, "Run to bind its address", func() bool { addr = srv.Addr(); return addr != nil })

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(ctrl.release) // let the stuck handler go before the leak check
	wg.Go(func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr.String()+"/admin/status", nil)
		req.SetBasicAuth("admin", "s3cret-pass")
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	<-ctrl.entered
	cancel()
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want a shutdown error wrapping context.DeadlineExceeded", err)
	}
}

func TestListenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	cfg := credsConfig()
	cfg.Address = busy.Addr().String()
	srv, err := New(cfg, &fakeController{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Run(context.Background())
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Run on a busy address = %v, want EADDRINUSE", err)
	}
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Errorf("error %v does not name the address", err)
	}

	other := listenServer(t, &fakeController{})
	if err := other.Listen(); err == nil {
		t.Error("second Listen succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := other.Serve(ctx); err != nil { // releases the listener
		t.Errorf("Serve with a done context = %v", err)
	}

	fresh, err := New(credsConfig(), &fakeController{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), "before Listen") {
		t.Errorf("Serve before Listen = %v, want an error", err)
	}
}

func TestDrainBackend(t *testing.T) {
	env := newEnv(t, credsConfig())
	auth := withAuth("admin", "s3cret-pass")
	tests := []struct {
		name, path string
		wantStatus int
		wantBody   string
	}{
		{"drain", "/admin/backends/drain?backend=b1", http.StatusOK, `[{"backend":"b1","drained":true},{"backend":"b2","drained":false}]`},
		{"undrain", "/admin/backends/undrain?backend=b1", http.StatusOK, `[{"backend":"b1","drained":false},{"backend":"b2","drained":false}]`},
		{"unknown backend", "/admin/backends/drain?backend=nope", http.StatusNotFound, `{"error":"no backend \"nope\" in any pool"}`},
		{"no backend given", "/admin/backends/drain", http.StatusBadRequest, `{"error":"missing query parameter backend (a backend ID as /admin/pools shows it)"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, env.http.Client(), http.MethodPost, env.http.URL+tt.path, auth)
			if r.status != tt.wantStatus || strings.TrimSpace(r.body) != tt.wantBody {
				t.Errorf("POST %s = %d %s, want %d %s", tt.path, r.status, r.body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	if r := do(t, env.http.Client(), http.MethodGet, env.http.URL+"/admin/backends/drain?backend=b1", auth); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET drain = %d, want 405", r.status)
	}
	if r := do(t, env.http.Client(), http.MethodPost, env.http.URL+"/admin/backends/drain?backend=b2"); r.status != http.StatusUnauthorized {
		t.Errorf("drain without credentials = %d, want 401", r.status)
	}
}
