package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/veloflux/veloflux/discovery"
	vftracing "github.com/veloflux/veloflux/telemetry/tracing"
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

// serveHTTPAllocBudget is what one proxied GET allocated before tracing existed, net/http's
// client side included, as testing.AllocsPerRun counts it with go1.26.8 (BenchmarkServeHTTP
// reports 93: it averages more runs). Tracing off must not raise it.
const serveHTTPAllocBudget = 94

// TestServeHTTPAllocBudget guards the request path's allocations: with tracing off, one
// proxied GET allocates no more than before tracing existed.
func TestServeHTTPAllocBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates; the budget is checked by the run without -race")
	}
	be := newBackend(t, "ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	cfg := DefaultConfig()
	cfg.AccessLog = false
	p := newProxy(t, cfg, Options{}, onePoolSnapshot("round_robin", false, member("ok", be.addr(), 1)))
	req := httptest.NewRequest(http.MethodGet, "http://app.example.com/api/v1/users?id=7", nil)
	w := &discardWriter{header: make(http.Header)}
	p.ServeHTTP(w, req)
	n := testing.AllocsPerRun(500, func() {
		w.reset()
		p.ServeHTTP(w, req)
	})
	if w.code != http.StatusOK {
		t.Fatalf("answered %d", w.code)
	}
	if n > serveHTTPAllocBudget {
		t.Errorf("one proxied GET allocates %v times, over the budget of %d", n, serveHTTPAllocBudget)
	}
}

// BenchmarkServeHTTPTracing is BenchmarkServeHTTP with tracing off and on, through the real
// tracer provider exporting over OTLP/HTTP to an in-process collector that accepts and
// discards. It reports cpu-ns/op: user+system CPU of the whole process (client, proxy,
// backend and exporter) per request.
func BenchmarkServeHTTPTracing(b *testing.B) {
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer col.Close()
	be := newBackend(b, "ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	for _, bc := range []struct {
		name  string
		on    bool
		ratio float64
	}{
		{"off", false, 0},
		{"ratio_0.01", true, 0.01},
		{"ratio_1", true, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			opts := Options{}
			if bc.on {
				tc := vftracing.DefaultConfig()
				tc.Enabled, tc.Protocol, tc.Endpoint, tc.SampleRatio = true, vftracing.ProtocolHTTP, col.URL, bc.ratio
				tc.QueueSize = 1 << 16
				prov, err := vftracing.New(b.Context(), tc, vftracing.Options{LookupEnv: func(string) (string, bool) { return "", false }})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- prov.Run(ctx) }()
				defer func() { cancel(); <-done }()
				opts.TracerProvider, opts.TraceSampler = prov.TracerProvider(), prov.HeadSampler()
			}
			cfg := DefaultConfig()
			cfg.AccessLog = false
			p := newProxy(b, cfg, opts, onePoolSnapshot("round_robin", false, member("ok", be.addr(), 1)))
			req := httptest.NewRequest(http.MethodGet, "http://app.example.com/api/v1/users?id=7", nil)
			w := &discardWriter{header: make(http.Header)}
			p.ServeHTTP(w, req)
			b.ReportAllocs()
			before := cpuTime(b)
			b.ResetTimer()
			for b.Loop() {
				w.reset()
				p.ServeHTTP(w, req)
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
			if w.code != http.StatusOK {
				b.Fatalf("last answer %d", w.code)
			}
		})
	}
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTracingHooks measures what tracing adds to one request apart from the rest of the
// round trip: the server span, the attempt's context readied for the fast client and the end
// of the span, through the real tracer provider at sample_ratio 0 (every request unsampled),
// 0.01 and 1.
func BenchmarkTracingHooks(b *testing.B) {
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer col.Close()
	for _, ratio := range []float64{0, 0.01, 1} {
		b.Run(fmt.Sprintf("ratio_%g", ratio), func(b *testing.B) {
			tc := vftracing.DefaultConfig()
			tc.Enabled, tc.Protocol, tc.Endpoint, tc.SampleRatio, tc.QueueSize = true, vftracing.ProtocolHTTP, col.URL, ratio, 1<<16
			prov, err := vftracing.New(b.Context(), tc, vftracing.Options{LookupEnv: func(string) (string, bool) { return "", false }})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- prov.Run(ctx) }()
			defer func() { cancel(); <-done }()
			p := newProxy(b, DefaultConfig(), Options{TracerProvider: prov.TracerProvider(), TraceSampler: prov.HeadSampler()},
				onePoolSnapshot("round_robin", false, member("ok", "127.0.0.1:1", 1)))
			tbl := p.table.Load()
			rt, pl := tbl.router.match("app.example.com", "/api"), tbl.pools[0]
			in := httptest.NewRequest(http.MethodGet, "http://app.example.com/api/v1/users?id=7", nil)
			out := in.Clone(context.Background())
			b.ReportAllocs()
			for b.Loop() {
				st := p.getState()
				st.reqID, st.route, st.pool, st.backend, st.forwarded = "id", rt, pl, pl.backends[0], true
				st.markTried(st.backend)
				p.tracing.startRequest(st, in)
				span := p.tracing.startAttempt(st, out)
				st.traceFields(out, true)
				if span != nil {
					endAttempt(st, out, span, &http.Response{StatusCode: http.StatusOK}, nil)
				}
				p.tracing.endRequest(st, in, http.StatusOK)
				p.putState(st)
			}
		})
	}
}
