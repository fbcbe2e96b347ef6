package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/veloflux/veloflux/discovery"
)

// Clients in documentation address ranges, placed by fakeLocator. The node runs in "eu".
const (
	deClient      = "198.51.100.7" // Frankfurt: eu, us, ap
	usClient      = "203.0.113.9"  // Virginia: us, eu, ap
	sgClient      = "192.0.2.33"   // Singapore: ap, us, eu
	unknownClient = "192.0.2.200"  // not in the database
)

// fakeLocator orders regions by a fixed table keyed by client address; unknown clients get
// the node's region first, as the Locator contract asks. It records the addresses it was
// asked about, so a test can tell which address the proxy trusted.
type fakeLocator struct {
	node    string
	unknown []string
	places  map[netip.Addr]fakePlace

	mu    sync.Mutex
	asked []netip.Addr
}

type fakePlace struct {
	order   []string
	country string
}

func newFakeLocator() *fakeLocator {
	return &fakeLocator{
		node:    "eu",
		unknown: []string{"eu", "us", "ap"},
		places: map[netip.Addr]fakePlace{
			netip.MustParseAddr(deClient): {[]string{"eu", "us", "ap"}, "DE"},
			netip.MustParseAddr(usClient): {[]string{"us", "eu", "ap"}, "US"},
			netip.MustParseAddr(sgClient): {[]string{"ap", "us", "eu"}, "SG"},
		},
	}
}

func (l *fakeLocator) Order(client netip.Addr) ([]string, string) {
	l.mu.Lock()
	l.asked = append(l.asked, client)
	l.mu.Unlock()
	if p, ok := l.places[client]; ok {
		return p.order, p.country
	}
	return l.unknown, ""
}

func (l *fakeLocator) NodeRegion() string { return l.node }

func (l *fakeLocator) lastAsked(t *testing.T) netip.Addr {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.asked) == 0 {
		t.Fatal("the locator was never asked")
	}
	return l.asked[len(l.asked)-1]
}

// geoWorld is three regions of backends in one pool "web": eu1 in "eu", eu2 without a region
// (so in the node's region, eu), us1 and us2 in "us", ap1 in "ap". Each answers with its name;
// a request with X-Forge-Region gets that value back in X-Veloflux-Region, as a backend
// trying to name its own region would.
type geoWorld struct {
	backends map[string]*testBackend
	regions  map[string]string // backend name -> region in the snapshot
}

var geoRegions = map[string]string{"eu1": "eu", "eu2": "", "us1": "us", "us2": "us", "ap1": "ap"}

func newGeoWorld(t *testing.T) *geoWorld {
	t.Helper()
	w := &geoWorld{backends: map[string]*testBackend{}, regions: geoRegions}
	for name := range geoRegions {
		w.backends[name] = newBackend(t, name, func(rw http.ResponseWriter, r *http.Request) {
			if v := r.Header.Get("X-Forge-Region"); v != "" {
				rw.Header().Set("X-Veloflux-Region", v)
			}
			_, _ = io.WriteString(rw, name)
		})
	}
	return w
}

// snapshot routes "/" with geo mode, and "/off" and "/plain" to the same pool with geo off
// and unset. addr overrides backend addresses by name.
func (w *geoWorld) snapshot(mode string, sticky bool, addr map[string]string) *discovery.Snapshot {
	names := make([]string, 0, len(w.backends))
	for name := range w.backends {
		names = append(names, name)
	}
	sort.Strings(names)
	var members []discovery.Backend
	for _, name := range names {
		a := w.backends[name].addr()
		if v, ok := addr[name]; ok {
			a = v
		}
		b := member(name, a, 1)
		b.Region = w.regions[name]
		members = append(members, b)
	}
	return &discovery.Snapshot{
		Source: "test",
		Pools:  []discovery.Pool{{Name: "web", Algorithm: "round_robin", Sticky: sticky, Backends: members}},
		Routes: []discovery.Route{
			{Pool: "web", Geo: mode},
			{Pool: "web", PathPrefix: "/off", Geo: "off"},
			{Pool: "web", PathPrefix: "/plain"},
		},
	}
}

func (w *geoWorld) hits() map[string]int {
	out := map[string]int{}
	for name, b := range w.backends {
		out[name] = b.hits()
	}
	return out
}

// geoConfig trusts the X-Forwarded-For of 127.0.0.1, so each test request can play a client.
func geoConfig() Config {
	cfg := stickyConfig()
	cfg.AccessLog = false
	return cfg
}

func from(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }

// servedBy sends n requests and returns the set of backends that answered, failing on any
// answer that is not 200.
func servedBy(t *testing.T, c *http.Client, url string, hdr http.Header, n int) []string {
	t.Helper()
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		r := send(t, c, http.MethodGet, url, "", hdr, "")
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: status %d, body %q", url, r.status, r.body)
		}
		seen[r.body] = true
	}
	out := make([]string, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func TestGeoNearest(t *testing.T) {
	w := newGeoWorld(t)
	tp := startProxy(t, geoConfig(), Options{Locator: newFakeLocator()}, w.snapshot("nearest", false, nil))
	c := newClient(t)
	tests := []struct {
		name string
		hdr  http.Header
		want []string // exactly these backends answer (round robin reaches each)
	}{
		{"client in eu gets eu, the region-less backend included", from(deClient), []string{"eu1", "eu2"}},
		{"client in us gets us", from(usClient), []string{"us1", "us2"}},
		{"client in ap gets ap", from(sgClient), []string{"ap1"}},
		{"unknown client gets the node's region", from(unknownClient), []string{"eu1", "eu2"}},
		{"no forwarded address: the peer is an unknown client", nil, []string{"eu1", "eu2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := servedBy(t, c, tp.url+"/", tt.hdr, 20); !slices.Equal(got, tt.want) {
				t.Fatalf("served by %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGeoOffBalancesOverAllRegions(t *testing.T) {
	w := newGeoWorld(t)
	all := []string{"ap1", "eu1", "eu2", "us1", "us2"}
	tests := []struct {
		name    string
		locator Locator
		path    string
	}{
		{"geo: off", newFakeLocator(), "/off"},
		{"geo unset", newFakeLocator(), "/plain"},
		{"geo: nearest without a locator", nil, "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := startProxy(t, geoConfig(), Options{Locator: tt.locator, GeoResponseHeader: "X-Veloflux-Region"}, w.snapshot("nearest", false, nil))
			c := newClient(t)
			if got := servedBy(t, c, tp.url+tt.path, from(deClient), 25); !slices.Equal(got, all) {
				t.Fatalf("served by %v, want all of %v", got, all)
			}
			r := send(t, c, http.MethodGet, tp.url+tt.path, "", from(deClient), "")
			if v, ok := r.header["X-Veloflux-Region"]; ok {
				t.Fatalf("a route without geo routing answered X-Veloflux-Region %q", v)
			}
			if n := geoRequestCount(t, tp); n != 0 {
				t.Fatalf("veloflux_geo_requests_total counts %v requests of a route without geo routing", n)
			}
		})
	}
}

// geoRequestCount sums veloflux_geo_requests_total over all its series.
func geoRequestCount(t *testing.T, tp *testProxy) float64 {
	t.Helper()
	mfs, err := tp.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "veloflux_geo_requests_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestGeoFailover walks one client through its region going down and coming back.
func TestGeoFailover(t *testing.T) {
	w := newGeoWorld(t)
	hv := &downSet{}
	tp := startProxy(t, geoConfig(), Options{Health: hv, Locator: newFakeLocator()}, w.snapshot("nearest", false, nil))
	c := newClient(t)
	steps := []struct {
		name string
		down []string
		hdr  http.Header
		want []string
	}{
		{"eu is up", nil, from(deClient), []string{"eu1", "eu2"}},
		{"one eu backend down: the other takes all", []string{"eu1"}, from(deClient), []string{"eu2"}},
		{"eu down: next region by order, not any", []string{"eu1", "eu2"}, from(deClient), []string{"us1", "us2"}},
		{"eu and us down: ap", []string{"eu1", "eu2", "us1", "us2"}, from(deClient), []string{"ap1"}},
		{"another client's order is its own", []string{"eu1", "eu2"}, from(sgClient), []string{"ap1"}},
		{"eu recovers: back to eu", nil, from(deClient), []string{"eu1", "eu2"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			hv.setDown(s.down...)
			if got := servedBy(t, c, tp.url+"/", s.hdr, 20); !slices.Equal(got, s.want) {
				t.Fatalf("served by %v, want %v", got, s.want)
			}
		})
	}
	t.Run("every region down: 503", func(t *testing.T) {
		hv.setDown("eu1", "eu2", "us1", "us2", "ap1")
		r := send(t, c, http.MethodGet, tp.url+"/", "", from(deClient), "")
		checkErrorAnswer(t, r, http.StatusServiceUnavailable, "no healthy backend")
	})
}

// TestGeoUnknownRegions: backends in regions the locator does not know are used only when no
// region of the client's order has a healthy backend.
func TestGeoUnknownRegions(t *testing.T) {
	euB, marsB, venusB := newBackend(t, "eu1", nil), newBackend(t, "mars1", nil), newBackend(t, "venus1", nil)
	regional := func(b *testBackend, region string) discovery.Backend {
		m := member(b.name, b.addr(), 1)
		m.Region = region
		return m
	}
	snap := &discovery.Snapshot{
		Pools: []discovery.Pool{{Name: "web", Backends: []discovery.Backend{
			regional(euB, "eu"), regional(marsB, "mars"), regional(venusB, "venus"),
		}}},
		Routes: []discovery.Route{{Pool: "web", Geo: "nearest"}},
	}
	tests := []struct {
		name string
		down []string
		want []string
	}{
		{"a known region wins over unknown ones", nil, []string{"eu1"}},
		{"no known region left: all the unknown ones", []string{"eu1"}, []string{"mars1", "venus1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hv := &downSet{}
			hv.setDown(tt.down...)
			tp := startProxy(t, geoConfig(), Options{Health: hv, Locator: newFakeLocator()}, snap)
			if got := servedBy(t, newClient(t), tp.url+"/", from(usClient), 20); !slices.Equal(got, tt.want) {
				t.Fatalf("served by %v, want %v", got, tt.want)
			}
		})
	}
}

// TestGeoClientAddressNotSpoofable: only an address the proxy trusts chooses the region.
func TestGeoClientAddressNotSpoofable(t *testing.T) {
	w := newGeoWorld(t)
	untrusted := geoConfig()
	untrusted.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name      string
		cfg       Config
		xff       string
		wantAsked string
		want      []string
	}{
		{"trusted peer: its X-Forwarded-For places the client", geoConfig(), sgClient, sgClient, []string{"ap1"}},
		{"untrusted peer: its X-Forwarded-For is ignored", untrusted, sgClient, "127.0.0.1", []string{"eu1", "eu2"}},
		{"trusted peer: an entry the client prepended is ignored", geoConfig(), sgClient + ", " + deClient, deClient, []string{"eu1", "eu2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := newFakeLocator()
			tp := startProxy(t, tt.cfg, Options{Locator: loc}, w.snapshot("nearest", false, nil))
			if got := servedBy(t, newClient(t), tp.url+"/", from(tt.xff), 10); !slices.Equal(got, tt.want) {
				t.Fatalf("served by %v, want %v", got, tt.want)
			}
			if got := loc.lastAsked(t); got != netip.MustParseAddr(tt.wantAsked) {
				t.Fatalf("locator asked about %v, want %s", got, tt.wantAsked)
			}
		})
	}
}

// TestGeoRetryStaysInRegion: a failed try moves to another backend of the same region first,
// then to the next region by the client's order.
func TestGeoRetryStaysInRegion(t *testing.T) {
	w := newGeoWorld(t)
	tests := []struct {
		name string
		dead []string
		want []string
	}{
		{"one eu backend dead: its retries stay in eu", []string{"eu1"}, []string{"eu2"}},
		{"every eu backend dead: retries fail over to us, not ap", []string{"eu1", "eu2"}, []string{"us1", "us2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addrs := map[string]string{}
			for _, name := range tt.dead {
				addrs[name] = deadAddr(t)
			}
			cfg := geoConfig()
			cfg.Retry.Attempts = 3
			tp := startProxy(t, cfg, Options{Locator: newFakeLocator()}, w.snapshot("nearest", false, addrs))
			if got := servedBy(t, newClient(t), tp.url+"/", from(deClient), 12); !slices.Equal(got, tt.want) {
				t.Fatalf("served by %v, want %v", got, tt.want)
			}
			if n := counterValue(t, tp.reg, "veloflux_retries_total", map[string]string{"pool": "web"}); n == 0 {
				t.Fatal("no retry counted: the test did not exercise retries")
			}
		})
	}
	t.Run("a sticky session on a far region retries in that region", func(t *testing.T) {
		cfg := geoConfig()
		cfg.Retry.Attempts = 3
		hv := &downSet{}
		loc := newFakeLocator()
		tp := startProxy(t, cfg, Options{Health: hv, Locator: loc}, w.snapshot("nearest", true, nil))
		c := newClient(t)
		// Pin a session to a us backend, then present it from Frankfurt: it stays in us.
		r := send(t, c, http.MethodGet, tp.url+"/", "", from(usClient), "")
		ck := stickyCookie(r, "vf_session")
		if ck == nil || !strings.HasPrefix(r.body, "us") {
			t.Fatalf("first answer from %q with cookie %v, want a us backend and a cookie", r.body, ck)
		}
		pinned := r.body
		// The pinned backend stops listening but the health view has not noticed yet.
		if err := tp.Apply(w.snapshot("nearest", true, map[string]string{pinned: deadAddr(t)})); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		other := map[string]string{"us1": "us2", "us2": "us1"}[pinned]
		for i := 0; i < 6; i++ {
			r := send(t, c, http.MethodGet, tp.url+"/", "", withCookie(ck.Value, deClient), "")
			if r.status != http.StatusOK || r.body != other {
				t.Fatalf("request %d: %d from %q, want 200 from %s (the pin's region, not the client's)", i, r.status, r.body, other)
			}
		}
	})
}

// TestGeoSticky follows one session through the sticky rules of geo routes.
func TestGeoSticky(t *testing.T) {
	w := newGeoWorld(t)
	hv := &downSet{}
	tp := startProxy(t, geoConfig(), Options{Health: hv, Locator: newFakeLocator()}, w.snapshot("nearest", true, nil))
	c := newClient(t)

	r := send(t, c, http.MethodGet, tp.url+"/", "", from(deClient), "")
	ck := stickyCookie(r, "vf_session")
	if ck == nil {
		t.Fatal("no sticky cookie")
	}
	if r.body != "eu1" && r.body != "eu2" {
		t.Fatalf("new session from Frankfurt pinned to %q, want an eu backend", r.body)
	}
	pinned := r.body
	otherEU := map[string]string{"eu1": "eu2", "eu2": "eu1"}[pinned]

	steps := []struct {
		name   string
		down   []string
		client string
		want   string
	}{
		{"the session keeps its backend", nil, deClient, pinned},
		{"a pinned backend that is up is kept when the client's nearest region changes", nil, usClient, pinned},
		{"pinned backend down: re-pinned in its own region, not the client's", []string{pinned}, usClient, otherEU},
		{"the old backend returns: the new pin stays", nil, deClient, otherEU},
		{"the pin's region down: re-pinned in the client's nearest region with a backend up", []string{"eu1", "eu2"}, sgClient, "ap1"},
		{"eu returns: the session stays in ap while ap is up", nil, deClient, "ap1"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			hv.setDown(s.down...)
			for i := 0; i < 6; i++ {
				r := send(t, c, http.MethodGet, tp.url+"/", "", withCookie(ck.Value, s.client), "")
				if r.status != http.StatusOK || r.body != s.want {
					t.Fatalf("request %d: %d from %q, want 200 from %s", i, r.status, r.body, s.want)
				}
			}
		})
	}
	t.Run("new sessions start in the client's nearest region", func(t *testing.T) {
		hv.setDown()
		for _, tc := range []struct{ client, want string }{{sgClient, "ap"}, {usClient, "us"}, {deClient, "eu"}} {
			for i := 0; i < 4; i++ {
				r := send(t, c, http.MethodGet, tp.url+"/", "", from(tc.client), "")
				if !strings.HasPrefix(r.body, tc.want) || stickyCookie(r, "vf_session") == nil {
					t.Fatalf("new session of %s pinned to %q, want a %s backend and a cookie", tc.client, r.body, tc.want)
				}
			}
		}
	})
}

func TestGeoRedirect(t *testing.T) {
	w := newGeoWorld(t)
	hv := &downSet{}
	hosts := map[string]string{"us": "us.example.com", "eu": "eu.example.com"} // ap has none
	opts := func(loc Locator) Options {
		return Options{Health: hv, Locator: loc, RedirectHosts: hosts, GeoResponseHeader: "X-VeloFlux-Region"}
	}
	trusted := startProxy(t, geoConfig(), opts(newFakeLocator()), w.snapshot("redirect", false, nil))
	// Seen from a proxy that trusts nobody, the peer 127.0.0.1 itself is the client; this
	// locator puts it in Virginia.
	peerInUS := newFakeLocator()
	peerInUS.places[netip.MustParseAddr("127.0.0.1")] = peerInUS.places[netip.MustParseAddr(usClient)]
	untrusted := startProxy(t, DefaultConfig(), opts(peerInUS), w.snapshot("redirect", false, nil))
	c := newClient(t)

	tests := []struct {
		name         string
		tp           *testProxy
		down         []string
		hdr          http.Header
		path         string
		wantStatus   int
		wantLocation string
		wantRegion   string
		wantBackend  []string // for 200: the answer comes from one of these
	}{
		{"client nearer another region with a redirect host: 307", trusted, nil, from(usClient),
			"/a/b?x=1&y=%20z", http.StatusTemporaryRedirect, "http://us.example.com/a/b?x=1&y=%20z", "us", nil},
		{"scheme from a trusted X-Forwarded-Proto", trusted, nil,
			http.Header{"X-Forwarded-For": {usClient}, "X-Forwarded-Proto": {"https"}},
			"/login", http.StatusTemporaryRedirect, "https://us.example.com/login", "us", nil},
		{"X-Forwarded-Proto of an untrusted peer is ignored", untrusted, nil,
			http.Header{"X-Forwarded-Proto": {"https"}},
			"/login", http.StatusTemporaryRedirect, "http://us.example.com/login", "us", nil},
		{"client of the node's region is proxied", trusted, nil, from(deClient),
			"/", http.StatusOK, "", "eu", []string{"eu1", "eu2"}},
		{"unknown client is proxied in the node's region", trusted, nil, from(unknownClient),
			"/", http.StatusOK, "", "eu", []string{"eu1", "eu2"}},
		{"nearest region without a redirect host is proxied", trusted, nil, from(sgClient),
			"/", http.StatusOK, "", "ap", []string{"ap1"}},
		{"nearest region down: the next by order is the node's, proxied", trusted, []string{"us1", "us2"}, from(usClient),
			"/", http.StatusOK, "", "eu", []string{"eu1", "eu2"}},
		{"node's region down: redirected to the next by order", trusted, []string{"eu1", "eu2"}, from(deClient),
			"/x", http.StatusTemporaryRedirect, "http://us.example.com/x", "us", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hv.setDown(tt.down...)
			before := w.hits()
			r := send(t, c, http.MethodGet, tt.tp.url+tt.path, "", tt.hdr, "")
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %q)", r.status, tt.wantStatus, r.body)
			}
			if got := r.header.Get("Location"); got != tt.wantLocation {
				t.Fatalf("Location %q, want %q", got, tt.wantLocation)
			}
			if got := r.header.Values("X-Veloflux-Region"); !slices.Equal(got, []string{tt.wantRegion}) {
				t.Fatalf("X-VeloFlux-Region %q, want [%s]", got, tt.wantRegion)
			}
			if tt.wantStatus == http.StatusTemporaryRedirect {
				if cc := r.header.Get("Cache-Control"); cc != "no-store" {
					t.Fatalf("Cache-Control %q, want no-store", cc)
				}
				if !requestIDPattern.MatchString(r.header.Get("X-Request-Id")) {
					t.Fatalf("X-Request-Id %q", r.header.Get("X-Request-Id"))
				}
				if after := w.hits(); !mapsEqual(after, before) {
					t.Fatalf("a redirected request reached a backend: hits %v -> %v", before, after)
				}
				return
			}
			if !slices.Contains(tt.wantBackend, r.body) {
				t.Fatalf("served by %q, want one of %v", r.body, tt.wantBackend)
			}
		})
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestGeoResponseHeader(t *testing.T) {
	w := newGeoWorld(t)
	hv := &downSet{}
	tp := startProxy(t, geoConfig(), Options{Health: hv, Locator: newFakeLocator(), GeoResponseHeader: "x-veloflux-region"}, w.snapshot("nearest", false, nil))
	bare := startProxy(t, geoConfig(), Options{Health: hv, Locator: newFakeLocator()}, w.snapshot("nearest", false, nil))
	c := newClient(t)
	forged := func(ip string) http.Header {
		h := from(ip)
		h.Set("X-Forge-Region", "mars")
		return h
	}
	tests := []struct {
		name string
		tp   *testProxy
		down []string
		hdr  http.Header
		want []string // the header's values; nil: absent
	}{
		{"region served", tp, nil, from(usClient), []string{"us"}},
		{"a backend without a region is in the node's region", tp, []string{"eu1"}, from(deClient), []string{"eu"}},
		{"after failover: the region that served", tp, []string{"eu1", "eu2"}, from(deClient), []string{"us"}},
		{"the backend's own value is replaced", tp, nil, forged(sgClient), []string{"ap"}},
		{"no header configured: none added", bare, nil, from(usClient), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hv.setDown(tt.down...)
			for i := 0; i < 4; i++ { // both backends of a region, and a reused header slice
				r := send(t, c, http.MethodGet, tt.tp.url+"/", "", tt.hdr, "")
				if r.status != http.StatusOK {
					t.Fatalf("status %d", r.status)
				}
				if got := r.header.Values("X-Veloflux-Region"); !slices.Equal(got, tt.want) {
					t.Fatalf("X-VeloFlux-Region %q from %s, want %q", got, r.body, tt.want)
				}
			}
		})
	}
}

func TestGeoRequestsMetric(t *testing.T) {
	w := newGeoWorld(t)
	hv := &downSet{}
	tp := startProxy(t, geoConfig(), Options{Health: hv, Locator: newFakeLocator(), RedirectHosts: map[string]string{"us": "us.example.com"}},
		&discovery.Snapshot{
			Pools: w.snapshot("", false, nil).Pools,
			Routes: []discovery.Route{
				{Pool: "web", Geo: "nearest"},
				{Pool: "web", PathPrefix: "/go", Geo: "redirect"},
				{Pool: "web", PathPrefix: "/off", Geo: "off"},
			},
		})
	c := newClient(t)
	steps := []struct {
		name    string
		down    []string
		hdr     http.Header
		path    string
		status  int
		country string
		region  string
	}{
		{"located client served at home", nil, from(deClient), "/", http.StatusOK, "DE", "eu"},
		{"unknown client", nil, from(unknownClient), "/", http.StatusOK, "unknown", "eu"},
		{"failover counts the region that served", []string{"eu1", "eu2"}, from(deClient), "/", http.StatusOK, "DE", "us"},
		{"redirect counts the region redirected to", nil, from(usClient), "/go", http.StatusTemporaryRedirect, "US", "us"},
		{"no healthy backend", []string{"eu1", "eu2", "us1", "us2", "ap1"}, from(sgClient), "/", http.StatusServiceUnavailable, "SG", "none"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			hv.setDown(s.down...)
			labels := map[string]string{"country": s.country, "region": s.region}
			before := counterValue(t, tp.reg, "veloflux_geo_requests_total", labels)
			total := geoRequestCount(t, tp)
			for i := 0; i < 3; i++ {
				if r := send(t, c, http.MethodGet, tp.url+s.path, "", s.hdr, ""); r.status != s.status {
					t.Fatalf("status %d, want %d", r.status, s.status)
				}
			}
			if got := counterValue(t, tp.reg, "veloflux_geo_requests_total", labels) - before; got != 3 {
				t.Fatalf("veloflux_geo_requests_total%v grew by %v, want 3", labels, got)
			}
			if got := geoRequestCount(t, tp) - total; got != 3 {
				t.Fatalf("veloflux_geo_requests_total grew by %v over all series, want 3", got)
			}
		})
	}
	t.Run("a route without geo routing is not counted", func(t *testing.T) {
		hv.setDown()
		total := geoRequestCount(t, tp)
		send(t, c, http.MethodGet, tp.url+"/off", "", from(deClient), "")
		if got := geoRequestCount(t, tp); got != total {
			t.Fatalf("veloflux_geo_requests_total went from %v to %v", total, got)
		}
	})
}

func TestGeoOptionsValidation(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string // "" means New succeeds
	}{
		{"all set", Options{Locator: newFakeLocator(), GeoResponseHeader: "X-VeloFlux-Region",
			RedirectHosts: map[string]string{"us": "us.example.com", "ap": "ap.example.com:8443", "v6": "[2001:db8::1]:443", "ip": "192.0.2.1"}}, ""},
		{"nothing set", Options{}, ""},
		{"header with a space", Options{GeoResponseHeader: "X Region"}, `geo response header "X Region": not a valid header name`},
		{"header the proxy manages", Options{GeoResponseHeader: "content-length"}, `geo response header "content-length": managed by the proxy`},
		{"redirect host with a path", Options{RedirectHosts: map[string]string{"us": "us.example.com/x"}}, `redirect host of region "us": "us.example.com/x" is not host[:port]`},
		{"redirect host with user info", Options{RedirectHosts: map[string]string{"us": "me@us.example.com"}}, `"me@us.example.com" is not host[:port]`},
		{"redirect host with a bad port", Options{RedirectHosts: map[string]string{"us": "us.example.com:http"}}, `is not host[:port]`},
		{"redirect host empty", Options{RedirectHosts: map[string]string{"us": ""}}, `redirect host of region "us": "" is not host[:port]`},
		{"redirect host without host", Options{RedirectHosts: map[string]string{"us": ":443"}}, `":443" is not host[:port]`},
		{"redirect for an empty region", Options{RedirectHosts: map[string]string{"": "x.example.com"}}, `empty region name`},
		{"locator without a node region", Options{Locator: &fakeLocator{}}, "node region is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(DefaultConfig(), tt.opts)
			if p != nil {
				t.Cleanup(p.Close)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestApplyRejectsUnknownGeoMode(t *testing.T) {
	w := newGeoWorld(t)
	tp := startProxy(t, geoConfig(), Options{Locator: newFakeLocator()}, w.snapshot("nearest", false, nil))
	for _, mode := range []string{"closest", "Nearest", "on"} {
		t.Run(mode, func(t *testing.T) {
			err := tp.Apply(w.snapshot(mode, false, nil))
			if !errors.Is(err, ErrInvalidSnapshot) || !strings.Contains(err.Error(), `unknown geo mode "`+mode+`"`) {
				t.Fatalf("Apply(geo %q) = %v, want ErrInvalidSnapshot naming the mode", mode, err)
			}
			if got := servedBy(t, newClient(t), tp.url+"/", from(usClient), 6); !slices.Equal(got, []string{"us1", "us2"}) {
				t.Fatalf("after the rejected update served by %v, want the old table's [us1 us2]", got)
			}
		})
	}
}

// TestGeoSelectionDoesNotAllocate guards the request path of geo routes: choosing the region,
// narrowing the candidates, the redirect decision and the metric reuse the pooled state.
func TestGeoSelectionDoesNotAllocate(t *testing.T) {
	w := newGeoWorld(t)
	loc := newFakeLocator()
	p := newProxy(t, geoConfig(), Options{Locator: loc, RedirectHosts: map[string]string{"us": "us.example.com"}}, w.snapshot("redirect", false, nil))
	rt := p.table.Load().router.match("app.example.com", "/")
	client := netip.MustParseAddr(usClient)
	st := p.getState()
	defer p.putState(st)
	run := func() {
		st.ntried = 0
		st.route, st.pool = rt, rt.pool
		st.geo, st.node = true, p.geo.node.name
		st.order, st.country = loc.Order(client)
		st.candidates(p.health)
		if _, _, ok := p.redirectTarget(st); !ok {
			t.Fatal("no redirect for a client in us")
		}
		st.narrow("")
		if len(st.ups) != 2 || st.regionOf(st.ups[0]) != "us" {
			t.Fatalf("narrowed to %d candidates in %q, want the 2 of us", len(st.ups), st.regionOf(st.ups[0]))
		}
		st.markTried(st.ups[0])
		st.candidates(p.health)
		st.narrow("us")
		p.metrics.geoRequests.WithLabelValues(countryLabel(st.country), st.regionOf(st.ups[0])).Inc()
	}
	run() // the metric series exists from now on, as it does after a node's first requests
	loc.mu.Lock()
	loc.asked = make([]netip.Addr, 0, 1000) // the fake's own record must not count
	loc.mu.Unlock()
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Fatalf("geo selection allocates %v times per request, want 0", n)
	}
}

// A backend's region follows the table: set, changed and removed again by reloads, the same
// upstream keeps answering with the region in force.
func TestBackendRegionFollowsReloads(t *testing.T) {
	withRegion := func(region string) *discovery.Snapshot {
		b := member("a", "127.0.0.1:1", 1)
		b.Region = region
		return onePoolSnapshot("round_robin", false, b)
	}
	p := newProxy(t, DefaultConfig(), Options{}, withRegion(""))
	for _, region := range []string{"eu-west", "us-east", "", "eu-west"} {
		if err := p.Apply(withRegion(region)); err != nil {
			t.Fatal(err)
		}
		if got := p.table.Load().pools[0].backends[0].Region(); got != region {
			t.Fatalf("after a reload to region %q the backend's region is %q", region, got)
		}
	}
}
