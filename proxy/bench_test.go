package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/veloflux/veloflux/discovery"
)

// discardWriter is the cheapest http.ResponseWriter that still behaves like one, so the
// benchmark measures the proxy rather than a recorder's buffers.
type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.n += len(b)
	return len(b), nil
}
func (w *discardWriter) Flush() {}

func (w *discardWriter) reset() {
	clear(w.header)
	w.code, w.n = 0, 0
}

// BenchmarkServeHTTP measures one proxied GET over a kept-alive backend connection,
// access log off. The allocations reported are the proxy's plus net/http's client side.
func BenchmarkServeHTTP(b *testing.B) {
	be := newBackend(b, "ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	cfg := DefaultConfig()
	cfg.AccessLog = false
	p := newProxy(b, cfg, Options{}, onePoolSnapshot("round_robin", false, member("ok", be.addr(), 1)))
	req := httptest.NewRequest(http.MethodGet, "http://app.example.com/api/v1/users?id=7", nil)
	w := &discardWriter{header: make(http.Header)}
	p.ServeHTTP(w, req) // open the backend connection outside the timed loop
	if w.code != http.StatusOK || w.n != 2 {
		b.Fatalf("warm-up answered %d with %d bytes", w.code, w.n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.reset()
		p.ServeHTTP(w, req)
	}
	b.StopTimer()
	if w.code != http.StatusOK {
		b.Fatalf("last answer %d", w.code)
	}
}

// BenchmarkServeHTTPGeo is BenchmarkServeHTTP on a geo: nearest route whose pool spans two
// regions, with a locator answering from memory as a cache hit does. Its allocations must
// equal BenchmarkServeHTTP's: locating, narrowing and the region header add none.
func BenchmarkServeHTTPGeo(b *testing.B) {
	be := newBackend(b, "ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	loc := &fakeLocator{node: "eu", unknown: []string{"eu", "us", "ap"}}
	geoSnap := func(mode string) *discovery.Snapshot {
		near, far := member("ok", be.addr(), 1), member("far", deadAddr(b), 1)
		near.Region, far.Region = "eu", "us"
		snap := onePoolSnapshot("round_robin", false, far, near)
		snap.Routes[0].Geo = mode
		return snap
	}
	for _, bc := range []struct {
		name   string
		mode   string
		header string
	}{
		{"nearest", "nearest", ""},
		{"nearest+header", "nearest", "X-VeloFlux-Region"},
		{"redirect_proxied", "redirect", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.AccessLog = false
			p := newProxy(b, cfg, Options{Locator: loc, GeoResponseHeader: bc.header, RedirectHosts: map[string]string{"us": "us.example.com"}}, geoSnap(bc.mode))
			req := httptest.NewRequest(http.MethodGet, "http://app.example.com/api/v1/users?id=7", nil)
			w := &discardWriter{header: make(http.Header)}
			p.ServeHTTP(w, req)
			if w.code != http.StatusOK || w.n != 2 {
				b.Fatalf("warm-up answered %d with %d bytes", w.code, w.n)
			}
			if bc.header != "" && w.header.Get(bc.header) != "eu" {
				b.Fatalf("warm-up answered %s %q, want eu", bc.header, w.header.Get(bc.header))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				w.reset()
				p.ServeHTTP(w, req)
			}
			b.StopTimer()
			if w.code != http.StatusOK {
				b.Fatalf("last answer %d", w.code)
			}
		})
	}
}

func BenchmarkRouterMatch(b *testing.B) {
	rt := benchRouter(b)
	b.ReportAllocs()
	for b.Loop() {
		if rt.match("api.example.com", "/v1/users") == nil {
			b.Fatal("no route")
		}
	}
}
