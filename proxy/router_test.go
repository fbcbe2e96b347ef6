package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/veloflux/veloflux/discovery"
)

// echoRoute answers "<backend name> <request URI as received>", so a test sees both which
// route matched and what path went upstream.
func echoRoute(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name+" "+r.RequestURI)
	}
}

// routingSnapshot has one single-backend pool per route, named after what the route tests.
// Routes are deliberately listed shortest prefix first, so only the router's ordering can
// make the longest one win.
func routingSnapshot(t *testing.T) *discovery.Snapshot {
	routes := []discovery.Route{
		{Host: "example.com", Pool: "exact"},
		{Host: "example.com", PathPrefix: "/api", Pool: "exact-api"},
		{Host: "example.com", PathPrefix: "/api/v2", Pool: "exact-api-v2"},
		{Host: "example.com:8443", Pool: "port"},
		{Host: "*.example.com", Pool: "wild"},
		{Host: "*.deep.example.com", Pool: "deepwild"},
		{Host: "*.Example.ORG.", Pool: "wildorg"},
		{Host: "shop.example.com", PathPrefix: "/cart", Pool: "shop-cart"},
		{Host: "only.test", PathPrefix: "/only", Pool: "only"},
		{Host: "strip.test", PathPrefix: "/api", StripPrefix: true, Pool: "strip"},
		{Host: "[::1]:8443", Pool: "v6port"},
		{Pool: "default"},
	}
	snap := &discovery.Snapshot{Source: "test", Routes: routes}
	for _, r := range routes {
		b := newBackend(t, r.Pool, echoRoute(r.Pool))
		snap.Pools = append(snap.Pools, discovery.Pool{Name: r.Pool, Backends: []discovery.Backend{member(r.Pool, b.addr(), 1)}})
	}
	return snap
}

func TestRouting(t *testing.T) {
	tp := startProxy(t, DefaultConfig(), Options{}, routingSnapshot(t))
	c := newClient(t)
	tests := []struct {
		name     string
		host     string
		path     string
		wantPool string
		wantURI  string
	}{
		{"exact host", "example.com", "/", "exact", "/"},
		{"exact host with prefix, path not stripped", "example.com", "/api/users", "exact-api", "/api/users"},
		{"longest prefix wins", "example.com", "/api/v2/users", "exact-api-v2", "/api/v2/users"},
		{"prefix matches itself", "example.com", "/api", "exact-api", "/api"},
		{"segment boundary", "example.com", "/apix", "exact", "/apix"},
		{"segment boundary of the longer prefix", "example.com", "/api/v2x", "exact-api", "/api/v2x"},
		{"host with port", "example.com:8443", "/api", "port", "/api"},
		{"other port falls back to the bare host", "example.com:9000", "/api/x", "exact-api", "/api/x"},
		{"wildcard one label", "a.example.com", "/", "wild", "/"},
		{"wildcard two labels", "a.b.example.com", "/x", "wild", "/x"},
		{"wildcard with port", "a.example.com:8080", "/", "wild", "/"},
		{"longest wildcard suffix wins", "x.deep.example.com", "/", "deepwild", "/"},
		{"wildcard does not match its apex", "example.org", "/", "default", "/"},
		{"wildcard configured in upper case with trailing dot", "www.example.org", "/", "wildorg", "/"},
		{"host group without matching prefix falls through to wildcard", "shop.example.com", "/other", "wild", "/other"},
		{"host group with matching prefix", "shop.example.com", "/cart/1", "shop-cart", "/cart/1"},
		{"host group without matching prefix falls through to default", "only.test", "/other", "default", "/other"},
		{"host group prefix", "only.test", "/only/x", "only", "/only/x"},
		{"unknown host takes default", "unknown.test", "/x", "default", "/x"},
		{"case-insensitive host", "EXAMPLE.Com", "/api/x", "exact-api", "/api/x"},
		{"case-insensitive wildcard", "A.Example.COM", "/", "wild", "/"},
		{"path stays case-sensitive", "example.com", "/API", "exact", "/API"},
		{"trailing-dot host", "example.com.", "/api", "exact-api", "/api"},
		{"trailing-dot wildcard", "a.example.org.", "/", "wildorg", "/"},
		{"trailing-dot host with port", "example.com.:8443", "/", "port", "/"},
		{"ipv6 host with port", "[::1]:8443", "/", "v6port", "/"},
		{"strip prefix", "strip.test", "/api/x", "strip", "/x"},
		{"strip prefix to root", "strip.test", "/api", "strip", "/"},
		{"strip prefix with trailing slash", "strip.test", "/api/", "strip", "/"},
		{"strip prefix keeps the query", "strip.test", "/api/x?q=1&r=2", "strip", "/x?q=1&r=2"},
		{"strip prefix keeps escaping", "strip.test", "/api/a%2Fb", "strip", "/a%2Fb"},
		{"strip prefix respects segment boundary", "strip.test", "/apix", "default", "/apix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, c, http.MethodGet, tp.url+tt.path, tt.host, nil, "")
			if r.status != http.StatusOK {
				t.Fatalf("status %d, body %q", r.status, r.body)
			}
			if want := tt.wantPool + " " + tt.wantURI; r.body != want {
				t.Fatalf("Host %q path %q reached %q, want %q", tt.host, tt.path, r.body, want)
			}
		})
	}
}

func TestNoRoute(t *testing.T) {
	b := newBackend(t, "only", nil)
	snap := &discovery.Snapshot{
		Pools:  []discovery.Pool{{Name: "only", Backends: []discovery.Backend{member("only", b.addr(), 1)}}},
		Routes: []discovery.Route{{Host: "only.test", PathPrefix: "/only", Pool: "only"}},
	}
	tp := startProxy(t, DefaultConfig(), Options{}, snap)
	c := newClient(t)
	tests := []struct{ name, host, path string }{
		{"unknown host", "other.test", "/only"},
		{"known host, no matching prefix, no default route", "only.test", "/elsewhere"},
		{"segment boundary", "only.test", "/onlyx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, c, http.MethodGet, tp.url+tt.path, tt.host, nil, "")
			checkErrorAnswer(t, r, http.StatusNotFound, "no route")
			if !strings.HasPrefix(r.body, "404 Not Found: ") {
				t.Fatalf("body %q does not start with the status", r.body)
			}
		})
	}
	if n := b.hits(); n != 0 {
		t.Fatalf("backend saw %d requests for unrouted paths", n)
	}
}

// TestRouterMatchDoesNotAllocate guards the request path: matching a lower-case Host, with
// or without port or trailing dot, must not allocate.
func TestRouterMatchDoesNotAllocate(t *testing.T) {
	rt := benchRouter(t)
	tests := []struct{ name, host, path, wantPool string }{
		{"exact", "api.example.com", "/v1/users", "api-v1"},
		{"exact with port", "api.example.com:8443", "/v1/users", "api-v1"},
		{"trailing dot", "api.example.com.", "/v1/users", "api-v1"},
		{"wildcard", "tenant.apps.example.com", "/x", "apps"},
		{"default", "unknown.test", "/x", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *route
			allocs := testing.AllocsPerRun(200, func() { got = rt.match(tt.host, tt.path) })
			if got == nil || got.pool.name != tt.wantPool {
				t.Fatalf("match(%q, %q) = %v, want pool %s", tt.host, tt.path, got, tt.wantPool)
			}
			if allocs != 0 {
				t.Fatalf("match(%q, %q) allocates %v times per call, want 0", tt.host, tt.path, allocs)
			}
		})
	}
}

// benchRouter is a router shaped like a real edge: many exact hosts, some wildcards, a
// default route.
func benchRouter(t testing.TB) *router {
	t.Helper()
	pools := map[string]*pool{}
	pl := func(name string) *pool {
		if pools[name] == nil {
			pools[name] = &pool{name: name}
		}
		return pools[name]
	}
	var routes []*route
	add := func(host, prefix, poolName string) {
		routes = append(routes, &route{
			spec:   discovery.Route{Host: host, PathPrefix: prefix, Pool: poolName},
			prefix: normalizePrefix(prefix),
			pool:   pl(poolName),
		})
	}
	for _, h := range []string{"www", "shop", "blog", "static", "admin", "auth", "cdn", "mail"} {
		add(h+".example.com", "", h)
		add(h+".example.com", "/api", h+"-api")
	}
	add("api.example.com", "/v1", "api-v1")
	add("api.example.com", "/v2", "api-v2")
	add("api.example.com", "", "api")
	add("*.apps.example.com", "", "apps")
	add("*.example.net", "", "net")
	add("", "", "default")
	rt := newRouter(routes)
	return &rt
}
