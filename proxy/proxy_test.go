package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/internal/pace"
	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/proxy/ratelimit"
)

const generatedID = "<generated>"

func TestForwardedHeaders(t *testing.T) {
	b := newBackend(t, "app", nil)
	snap := onePoolSnapshot("round_robin", false, member("app", b.addr(), 1))
	untrusted := startProxy(t, DefaultConfig(), Options{}, snap)
	cfg := DefaultConfig()
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	trusted := startProxy(t, cfg, Options{}, snap)
	c := newClient(t)

	// Everything a client could list in Connection to make the proxy drop what it sets.
	const stripAttempt = "close, X-Forwarded-For, X-Real-Ip, X-Request-Id, X-Forwarded-Proto, X-Forwarded-Host"
	tests := []struct {
		name    string
		trusted bool
		header  http.Header
		want    map[string]string // header values the backend must see; generatedID: 32 fresh hex digits
	}{
		{
			name: "untrusted peer: client forwarding headers replaced",
			header: http.Header{
				"X-Forwarded-For": {"203.0.113.7"}, "X-Real-Ip": {"203.0.113.7"}, "X-Request-Id": {"client-chosen"},
				"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.test"},
			},
			want: map[string]string{
				"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "X-Request-Id": generatedID,
				"X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.test:8080",
			},
		},
		{
			name:    "trusted peer: chain appended, client resolved, id kept",
			trusted: true,
			header: http.Header{
				"X-Forwarded-For": {"198.51.100.1, 203.0.113.7"}, "X-Request-Id": {"trace-42"},
				"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"public.test"},
			},
			want: map[string]string{
				"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 127.0.0.1", "X-Real-Ip": "203.0.113.7", "X-Request-Id": "trace-42",
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.test",
			},
		},
		{
			name:    "trusted peer without forwarding headers",
			trusted: true,
			want: map[string]string{
				"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "X-Request-Id": generatedID,
				"X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.test:8080",
			},
		},
		{
			name:    "trusted peer with unsafe request id",
			trusted: true,
			header:  http.Header{"X-Request-Id": {"two words"}},
			want:    map[string]string{"X-Request-Id": generatedID},
		},
		{
			name:   "untrusted client cannot strip via Connection",
			header: http.Header{"Connection": {stripAttempt}, "X-Forwarded-For": {"203.0.113.7"}, "X-Request-Id": {"client-chosen"}},
			want: map[string]string{
				"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "X-Request-Id": generatedID,
				"X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.test:8080",
			},
		},
		{
			name:    "trusted client cannot strip via Connection",
			trusted: true,
			header:  http.Header{"Connection": {stripAttempt}, "X-Forwarded-For": {"203.0.113.7"}, "X-Request-Id": {"trace-7"}},
			want: map[string]string{
				"X-Forwarded-For": "203.0.113.7, 127.0.0.1", "X-Real-Ip": "203.0.113.7", "X-Request-Id": "trace-7",
				"X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.test:8080",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := untrusted
			if tt.trusted {
				tp = trusted
			}
			r := send(t, c, http.MethodGet, tp.url+"/path?x=1", "app.test:8080", tt.header, "")
			if r.status != http.StatusOK {
				t.Fatalf("status %d, body %q", r.status, r.body)
			}
			seen := b.last(t)
			if seen.Host != "app.test:8080" {
				t.Fatalf("backend saw Host %q, want the client's app.test:8080", seen.Host)
			}
			if seen.URI != "/path?x=1" {
				t.Fatalf("backend saw URI %q", seen.URI)
			}
			for k, want := range tt.want {
				got := seen.Header.Values(k)
				if len(got) != 1 {
					t.Fatalf("backend saw %s = %q, want exactly one value", k, got)
				}
				if want == generatedID {
					if !requestIDPattern.MatchString(got[0]) {
						t.Fatalf("backend saw %s = %q, want 32 hex digits", k, got[0])
					}
					continue
				}
				if got[0] != want {
					t.Fatalf("backend saw %s = %q, want %q", k, got[0], want)
				}
			}
			if id := r.header.Get("X-Request-Id"); id != seen.Header.Get("X-Request-Id") {
				t.Fatalf("response X-Request-Id %q differs from the backend's %q", id, seen.Header.Get("X-Request-Id"))
			}
		})
	}
}

func TestForwardedHeadersFreshRequestIDs(t *testing.T) {
	b := newBackend(t, "app", nil)
	tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", b.addr(), 1)))
	c := newClient(t)
	ids := map[string]bool{}
	for i := 0; i < 20; i++ {
		r := send(t, c, http.MethodGet, tp.url+"/", "", nil, "")
		ids[r.header.Get("X-Request-Id")] = true
	}
	if len(ids) != 20 {
		t.Fatalf("20 requests got %d distinct request ids", len(ids))
	}
}

func TestUpgradeOtherThanWebSocketRefused(t *testing.T) {
	b := newBackend(t, "app", nil)
	tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", b.addr(), 1)))
	c := newClient(t)
	tests := []struct {
		name   string
		header http.Header
	}{
		{"h2c", http.Header{"Upgrade": {"h2c"}, "Connection": {"Upgrade, HTTP2-Settings"}, "Http2-Settings": {"AAMAAABkAARAAAAAAAIAAAAA"}}},
		{"h2c lower-case token", http.Header{"Upgrade": {"h2c"}, "Connection": {"upgrade"}}},
		{"unknown protocol", http.Header{"Upgrade": {"tls/1.3"}, "Connection": {"Upgrade"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, c, http.MethodGet, tp.url+"/", "", tt.header, "")
			checkErrorAnswer(t, r, http.StatusBadRequest, "websocket")
		})
	}
	if n := b.hits(); n != 0 {
		t.Fatalf("backend saw %d refused upgrades", n)
	}
}

func TestBalancing(t *testing.T) {
	t.Run("round_robin weights 3:1 split exactly", func(t *testing.T) {
		heavy, light := newBackend(t, "heavy", nil), newBackend(t, "light", nil)
		tp := startProxy(t, DefaultConfig(), Options{},
			onePoolSnapshot("round_robin", false, member("heavy", heavy.addr(), 3), member("light", light.addr(), 1)))
		c := newClient(t)
		// Concurrent clients still get the exact split: it depends on the sequence of picks,
		// not on which request receives which pick.
		sendConcurrently(t, c, 8, 50, http.MethodGet, tp.url+"/", "", "")
		if h, l := heavy.hits(), light.hits(); h != 300 || l != 100 {
			t.Fatalf("heavy %d, light %d: want exactly 300 and 100", h, l)
		}
	})

	t.Run("ip_hash keeps a client and spreads clients", func(t *testing.T) {
		bs := []*testBackend{newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "c", nil)}
		cfg := DefaultConfig()
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		tp := startProxy(t, cfg, Options{}, onePoolSnapshot("ip_hash", false,
			member("a", bs[0].addr(), 1), member("b", bs[1].addr(), 1), member("c", bs[2].addr(), 1)))
		c := newClient(t)
		used := map[string]bool{}
		for i := 0; i < 32; i++ {
			client := http.Header{"X-Forwarded-For": {fmt.Sprintf("198.51.100.%d", i+1)}}
			first := send(t, c, http.MethodGet, tp.url+"/", "", client, "").header.Get("X-Backend")
			for j := 0; j < 5; j++ {
				if got := send(t, c, http.MethodGet, tp.url+"/", "", client, "").header.Get("X-Backend"); got != first {
					t.Fatalf("client %s moved from %s to %s", client.Get("X-Forwarded-For"), first, got)
				}
			}
			used[first] = true
		}
		if len(used) < 2 {
			t.Fatalf("32 clients all hashed to %v: affinity is not keyed by client", used)
		}
	})
}

func TestErrorResponses(t *testing.T) {
	slowTransport := DefaultTransportConfig()
	slowTransport.ResponseHeaderTimeout = 100 * time.Millisecond
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		down      bool
		transport TransportConfig
		status    int
		text      string
	}{
		{name: "all backends unhealthy", down: true, status: http.StatusServiceUnavailable, text: "no healthy backend"},
		{
			name: "backend slower than ResponseHeaderTimeout",
			handler: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			},
			transport: slowTransport,
			status:    http.StatusGatewayTimeout,
			text:      "did not answer in time",
		},
		{name: "backend closes the connection", handler: hijackClose, status: http.StatusBadGateway, text: "failed to answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b1, b2 := newBackend(t, "b1", tt.handler), newBackend(t, "b2", tt.handler)
			health := &downSet{}
			if tt.down {
				health.setDown("b1", "b2")
			}
			tp := startProxy(t, DefaultConfig(), Options{Health: health, Transport: tt.transport},
				onePoolSnapshot("round_robin", false, member("b1", b1.addr(), 1), member("b2", b2.addr(), 1)))
			start := time.Now()
			r := send(t, newClient(t), http.MethodGet, tp.url+"/", "", nil, "")
			checkErrorAnswer(t, r, tt.status, tt.text)
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("answer took %v", d)
			}
			if tt.down && b1.hits()+b2.hits() != 0 {
				t.Fatalf("unhealthy backends got traffic")
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	tests := []struct {
		name        string
		limit       ratelimit.Config
		want        []int
		wantLimited float64
	}{
		{
			name:        "burst then 429",
			limit:       ratelimit.Config{RequestsPerSecond: 0.01, Burst: 2}, // no refill within the test, however slow the machine
			want:        []int{200, 200, 429},
			wantLimited: 1,
		},
		{
			name:  "exempt network never limited",
			limit: ratelimit.Config{RequestsPerSecond: 1, Burst: 2, Rules: []ratelimit.Rule{{Prefix: loopback, Exempt: true}}},
			want:  []int{200, 200, 200, 200, 200, 200, 200, 200},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, "app", nil)
			cfg := DefaultConfig()
			cfg.RateLimit = tt.limit
			tp := startProxy(t, cfg, Options{}, onePoolSnapshot("round_robin", false, member("app", b.addr(), 1)))
			c := newClient(t)
			for i, want := range tt.want {
				r := send(t, c, http.MethodGet, tp.url+"/", "", nil, "")
				if r.status != want {
					t.Fatalf("request %d: status %d, want %d", i+1, r.status, want)
				}
				if want != http.StatusTooManyRequests {
					continue
				}
				checkErrorAnswer(t, r, http.StatusTooManyRequests, "too many requests")
				if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
					t.Fatalf("Retry-After = %q, want whole seconds >= 1", r.header.Get("Retry-After"))
				}
			}
			if got := counterValue(t, tp.reg, "veloflux_rate_limited_total", nil); got != tt.wantLimited {
				t.Fatalf("veloflux_rate_limited_total = %v, want %v", got, tt.wantLimited)
			}
			if want := countStatus(tt.want, 200); b.hits() != want {
				t.Fatalf("backend saw %d requests, want %d", b.hits(), want)
			}
		})
	}
}

func countStatus(codes []int, code int) int {
	n := 0
	for _, c := range codes {
		if c == code {
			n++
		}
	}
	return n
}

// TestConnectionCountsDoNotDrift sends concurrent requests over backends that fail in the
// middle of a response, answer slowly or answer well: afterwards no in-flight count may be
// left over, or least_conn would shun a backend for ever.
func TestConnectionCountsDoNotDrift(t *testing.T) {
	truncating := newBackend(t, "truncating", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(make([]byte, 500))
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		conn, _, err := rc.Hijack()
		if err != nil {
			panic(err)
		}
		_ = conn.Close()
	})
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		_, _ = io.WriteString(w, "slow")
	})
	fine := newBackend(t, "fine", nil)
	tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false,
		member("truncating", truncating.addr(), 1), member("slow", slow.addr(), 1), member("fine", fine.addr(), 1)))
	c := newClient(t)

	const requests = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	var complete, cut int
	start := make(chan struct{})
	for i := 0; i < requests; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := trySend(c, http.MethodGet, tp.url+"/", "", nil, "")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				complete++
			case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
				// Cut mid-body, or before the buffered headers ever left the proxy.
				cut++
			default:
				t.Errorf("unexpected client error: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	// Round robin gives each backend a third; the truncated third must really have been cut.
	if cut == 0 || complete == 0 || truncating.hits() == 0 || slow.hits() == 0 || fine.hits() == 0 {
		t.Fatalf("scenario did not happen: %d complete, %d cut, hits %d/%d/%d",
			complete, cut, truncating.hits(), slow.hits(), fine.hits())
	}
	testutil.Eventually(t, "in-flight requests to reach 0", func() bool { return tp.InFlight() == 0 })
	for _, id := range []string{"truncating", "slow", "fine"} {
		testutil.Eventually(t, id+" active count to reach 0", func() bool { return activeOf(t, tp.Proxy, "web", id) == 0 })
	}
	// Polling stops at the first 0; a negative drift would show here.
	for _, id := range []string{"truncating", "slow", "fine"} {
		if a := activeOf(t, tp.Proxy, "web", id); a != 0 {
			t.Fatalf("backend %s active = %d, want 0", id, a)
		}
	}
	if v, ok := metricValue(t, tp.reg, "veloflux_inflight_requests", nil); !ok || v != 0 {
		t.Fatalf("veloflux_inflight_requests = %v (present %v), want 0", v, ok)
	}
	if v, ok := metricValue(t, tp.reg, "veloflux_active_connections", map[string]string{"backend": "truncating"}); !ok || v != 0 {
		t.Fatalf("veloflux_active_connections for the truncating backend = %v (present %v), want 0", v, ok)
	}
}

func TestApplyKeepsInFlightCount(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "b")
	})
	other := newBackend(t, "c", nil)
	tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("least_conn", false, member("b", slow.addr(), 1)))
	c := newClient(t)
	// Registered after the servers, so it runs before they close: a failing assertion must
	// not leave the handler blocked and the cleanups waiting for it.
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)

	done := make(chan response, 1)
	go func() {
		r, err := trySend(c, http.MethodGet, tp.url+"/", "", nil, "")
		if err != nil {
			r.body = err.Error()
		}
		done <- r
	}()
	testutil.Receive(t, started, "the request to reach the backend")
	if a := activeOf(t, tp.Proxy, "web", "b"); a != 1 {
		t.Fatalf("active before Apply = %d, want 1", a)
	}
	// The new table keeps b (with a new weight) and adds c: b's count must carry over.
	if err := tp.Apply(onePoolSnapshot("least_conn", false, member("b", slow.addr(), 5), member("c", other.addr(), 1))); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	st := backendStatus(t, tp.Proxy, "web", "b")
	if st.Active != 1 || st.Weight != 5 {
		t.Fatalf("after Apply b has active %d weight %d, want 1 and 5", st.Active, st.Weight)
	}
	unblock()
	if r := <-done; r.status != http.StatusOK || r.body != "b" {
		t.Fatalf("in-flight request got %d %q", r.status, r.body)
	}
	testutil.Eventually(t, "b's active count to return to 0", func() bool { return activeOf(t, tp.Proxy, "web", "b") == 0 })
	if a := activeOf(t, tp.Proxy, "web", "c"); a != 0 {
		t.Fatalf("c active = %d, want 0", a)
	}
}

// TestApplyStepsAside: building a table steps aside with the Pacer of Options once per pool,
// so that a table of thousands of backends does not hold up the requests.
func TestApplyStepsAside(t *testing.T) {
	pc, err := pace.New(time.Nanosecond) // steps aside at every call
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	p, err := New(DefaultConfig(), Options{Pacer: pc})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	snap := &discovery.Snapshot{Source: "test"}
	for i := range 50 {
		name := fmt.Sprintf("p%d", i)
		snap.Pools = append(snap.Pools, discovery.Pool{Name: name, Backends: []discovery.Backend{member("b", fmt.Sprintf("10.0.0.%d:80", i+1), 1)}})
		snap.Routes = append(snap.Routes, discovery.Route{Host: name + ".test", Pool: name})
	}
	if err := p.Apply(snap); err != nil {
		t.Fatal(err)
	}
	if n := pc.Steps(); n < 50 {
		t.Fatalf("Apply stepped aside %d times for 50 pools, want at least 50", n)
	}
}

// TestApplyReusesUnchangedPools: a new table shares the compiled pools whose definition did
// not change, and rebuilds the one that did, which then sends to its new backend.
func TestApplyReusesUnchangedPools(t *testing.T) {
	a, b, c := newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "c", nil)
	snapshot := func(api discovery.Backend) *discovery.Snapshot {
		return &discovery.Snapshot{
			Source: "test",
			Pools: []discovery.Pool{
				{Name: "web", Backends: []discovery.Backend{member("a", a.addr(), 1)}},
				{Name: "api", Backends: []discovery.Backend{api}},
			},
			Routes: []discovery.Route{{Host: "api.test", Pool: "api"}, {Pool: "web"}},
		}
	}
	tp := startProxy(t, DefaultConfig(), Options{}, snapshot(member("b", b.addr(), 1)))
	cl := newClient(t)
	before := tp.table.Load()
	if err := tp.Apply(snapshot(member("c", c.addr(), 1))); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	after := tp.table.Load()
	if after.pools[0] != before.pools[0] {
		t.Error("the unchanged pool web was compiled again")
	}
	if after.pools[1] == before.pools[1] {
		t.Error("the changed pool api kept its old compiled pool")
	}
	if r := send(t, cl, http.MethodGet, tp.url+"/", "api.test", nil, ""); r.body != "c" {
		t.Errorf("api answered %q, want c", r.body)
	}
	if r := send(t, cl, http.MethodGet, tp.url+"/", "", nil, ""); r.body != "a" {
		t.Errorf("web answered %q, want a", r.body)
	}
}

func TestApplyRemovesBackendSeries(t *testing.T) {
	a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
	tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("a", a.addr(), 1), member("b", b.addr(), 1)))
	for _, name := range []string{"veloflux_active_connections", "veloflux_backend_health", "veloflux_backend_weight"} {
		if _, ok := metricValue(t, tp.reg, name, map[string]string{"pool": "web", "backend": "b"}); !ok {
			t.Fatalf("%s has no series for b before removal", name)
		}
	}
	if err := tp.Apply(onePoolSnapshot("round_robin", false, member("a", a.addr(), 1))); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, name := range []string{"veloflux_active_connections", "veloflux_backend_health", "veloflux_backend_weight"} {
		if _, ok := metricValue(t, tp.reg, name, map[string]string{"pool": "web", "backend": "b"}); ok {
			t.Fatalf("%s still has a series for removed backend b", name)
		}
		if _, ok := metricValue(t, tp.reg, name, map[string]string{"pool": "web", "backend": "a"}); !ok {
			t.Fatalf("%s lost the series of kept backend a", name)
		}
	}
}

func TestApplyInvalidSnapshotKeepsServing(t *testing.T) {
	a := newBackend(t, "a", nil)
	good := onePoolSnapshot("round_robin", false, member("a", a.addr(), 1))
	tp := startProxy(t, DefaultConfig(), Options{}, good)
	c := newClient(t)
	version := tp.TableVersion()
	tests := []struct {
		name string
		snap *discovery.Snapshot
	}{
		{"route to missing pool", &discovery.Snapshot{
			Pools:  []discovery.Pool{{Name: "web", Backends: []discovery.Backend{member("a", a.addr(), 1)}}},
			Routes: []discovery.Route{{Pool: "web"}, {Host: "x.test", Pool: "missing"}},
		}},
		{"unknown algorithm", onePoolSnapshot("fastest", false, member("a", a.addr(), 1))},
		{"duplicate backend", onePoolSnapshot("round_robin", false, member("a", a.addr(), 1), member("a", a.addr(), 1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tp.Apply(tt.snap)
			if !errors.Is(err, ErrInvalidSnapshot) {
				t.Fatalf("Apply = %v, want ErrInvalidSnapshot", err)
			}
			if v := tp.TableVersion(); v != version {
				t.Fatalf("table version moved from %d to %d", version, v)
			}
			if r := send(t, c, http.MethodGet, tp.url+"/", "", nil, ""); r.status != http.StatusOK || r.body != "a" {
				t.Fatalf("old table stopped serving: %d %q", r.status, r.body)
			}
		})
	}
}

// TestApplyRejectedSnapshotChangesNothing: a rejected snapshot must leave the backends it
// names exactly as they were, not only the routing table.
func TestApplyRejectedSnapshotChangesNothing(t *testing.T) {
	a := newBackend(t, "a", nil)
	snap := func(region string, routes ...discovery.Route) *discovery.Snapshot {
		return &discovery.Snapshot{
			Pools:  []discovery.Pool{{Name: "web", Backends: []discovery.Backend{{ID: "a", Address: a.addr(), Weight: 2, Region: region}}}},
			Routes: append([]discovery.Route{{Pool: "web"}}, routes...),
		}
	}
	tp := startProxy(t, DefaultConfig(), Options{}, snap("eu-west"))
	bad := snap("us-east", discovery.Route{Host: "x.test", Pool: "missing"})
	bad.Pools[0].Backends[0].Weight = 7
	if err := tp.Apply(bad); !errors.Is(err, ErrInvalidSnapshot) {
		t.Fatalf("Apply = %v, want ErrInvalidSnapshot", err)
	}
	st := backendStatus(t, tp.Proxy, "web", "a")
	if st.Weight != 2 || st.Region != "eu-west" {
		t.Fatalf("rejected snapshot changed backend a to weight %d region %q; want 2 and eu-west", st.Weight, st.Region)
	}
}

// TestBackendSeriesByID: two backends of one pool at the same address (one process
// registered twice in Consul) must not break the scrape with duplicate series.
func TestBackendSeriesByID(t *testing.T) {
	be := newBackend(t, "shared", nil)
	tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false,
		member("dc1/n1/web-1", be.addr(), 1), member("dc1/n1/web-2", be.addr(), 1)))
	for _, id := range []string{"dc1/n1/web-1", "dc1/n1/web-2"} {
		if _, ok := metricValue(t, tp.reg, "veloflux_backend_health", map[string]string{"pool": "web", "backend": id}); !ok {
			t.Errorf("no veloflux_backend_health series for %s", id)
		}
	}
}
