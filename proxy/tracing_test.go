package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/traceid"
	vftracing "github.com/veloflux/veloflux/telemetry/tracing"
)

// traced returns Options with a tracer provider that records every span in memory, and its
// head sampler, as cmd wires them.
func traced(t testing.TB, opts Options) (Options, *tracetest.SpanRecorder) {
	return tracedBy(t, opts, sdktrace.AlwaysSample(), true)
}

// tracedBy returns Options with a tracer provider that samples with s and records the spans
// in memory. With head, the proxy asks s through a TraceSampler before it starts any span;
// without, the provider decides for each span the proxy starts.
func tracedBy(t testing.TB, opts Options, s sdktrace.Sampler, head bool) (Options, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	hs := vftracing.NewHeadSampler(s)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s), sdktrace.WithIDGenerator(hs.IDGenerator()), sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	opts.TracerProvider = tp
	if head {
		opts.TraceSampler = hs
	}
	return opts, rec
}

// samplingModes are the two ways a sampling decision is taken: ahead of any span by a
// TraceSampler (as cmd wires the node), or by the tracer provider for every span.
var samplingModes = []struct {
	name string
	head bool
}{{"head sampler", true}, {"provider decides", false}}

func attrOf(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func attrString(s sdktrace.ReadOnlySpan, key string) string {
	v, _ := attrOf(s, key)
	return v.String()
}

// spansOf waits for the server span of one request (it ends after the response is written)
// and returns it with its attempt spans in the order they started.
func spansOf(t *testing.T, rec *tracetest.SpanRecorder) (server sdktrace.ReadOnlySpan, attempts []sdktrace.ReadOnlySpan) {
	t.Helper()
	testutil.Eventually(t, "the server span to end", func() bool {
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindServer {
				return true
			}
		}
		return false
	})
	for _, s := range rec.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindClient:
			attempts = append(attempts, s)
		}
	}
	for _, a := range attempts {
		if a.Parent().SpanID() != server.SpanContext().SpanID() || a.SpanContext().TraceID() != server.SpanContext().TraceID() {
			t.Errorf("attempt span %s is not a child of the server span", a.SpanContext().SpanID())
		}
	}
	return server, attempts
}

// A retry is two attempt spans under one server span; the backend that answered received the
// second attempt's context, and the access log names the server span.
func TestTracingRetrySpanTree(t *testing.T) {
	good := newBackend(t, "good", nil)
	logs := &testutil.LogBuffer{}
	opts, rec := traced(t, Options{AccessLogger: slog.New(slog.NewJSONHandler(logs, nil))})
	tp := startProxy(t, DefaultConfig(), opts,
		onePoolSnapshot("round_robin", false, member("dead", deadAddr(t), 1), member("good", good.addr(), 1)))

	r := send(t, newClient(t), http.MethodGet, tp.url+"/api/users?id=7", "app.example.com", nil, "")
	if r.status != http.StatusOK || r.body != "good" {
		t.Fatalf("got %d %q, want 200 from good", r.status, r.body)
	}
	server, attempts := spansOf(t, rec)
	t.Run("server span", func(t *testing.T) {
		want := map[string]string{
			"http.request.method":       "GET",
			"http.route":                "/",
			"http.response.status_code": "200",
			"url.path":                  "/api/users",
			"url.query":                 "id=7",
			"server.address":            "app.example.com",
			"client.address":            "127.0.0.1",
			"veloflux.pool":             "web",
			"veloflux.backend":          "good",
			"veloflux.attempt":          "2",
		}
		for k, v := range want {
			if got := attrString(server, k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if server.Name() != "GET /" {
			t.Errorf("name %q, want %q", server.Name(), "GET /")
		}
		if server.Status().Code == codes.Error {
			t.Errorf("status %v on a 200", server.Status())
		}
	})
	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2", len(attempts))
	}
	t.Run("failed attempt", func(t *testing.T) {
		a := attempts[0]
		if attrString(a, "veloflux.backend") != "dead" || attrString(a, "veloflux.attempt") != "1" ||
			attrString(a, "error.type") != "connect_failed" || a.Status().Code != codes.Error {
			t.Errorf("first attempt: backend %q attempt %q error.type %q status %v; want dead, 1, connect_failed, error",
				attrString(a, "veloflux.backend"), attrString(a, "veloflux.attempt"), attrString(a, "error.type"), a.Status())
		}
	})
	t.Run("answered attempt", func(t *testing.T) {
		a := attempts[1]
		if attrString(a, "veloflux.backend") != "good" || attrString(a, "http.response.status_code") != "200" ||
			attrString(a, "server.address") != "127.0.0.1" {
			t.Errorf("second attempt: backend %q status %q server.address %q",
				attrString(a, "veloflux.backend"), attrString(a, "http.response.status_code"), attrString(a, "server.address"))
		}
		tpHeader := good.last(t).Header.Get("Traceparent")
		want := "00-" + a.SpanContext().TraceID().String() + "-" + a.SpanContext().SpanID().String() + "-01"
		if tpHeader != want {
			t.Errorf("backend got traceparent %q, want the answered attempt's %q", tpHeader, want)
		}
	})
	t.Run("access log", func(t *testing.T) {
		lines := logs.Find("access")
		if len(lines) != 1 {
			t.Fatalf("%d access lines", len(lines))
		}
		if lines[0]["trace_id"] != server.SpanContext().TraceID().String() || lines[0]["span_id"] != server.SpanContext().SpanID().String() {
			t.Errorf("access line has trace_id %v span_id %v, want the server span's %s %s", lines[0]["trace_id"], lines[0]["span_id"],
				server.SpanContext().TraceID(), server.SpanContext().SpanID())
		}
	})
	t.Run("exemplar", func(t *testing.T) {
		if got := durationExemplar(t, tp.reg); got != server.SpanContext().TraceID().String() {
			t.Errorf("duration exemplar trace_id %q, want %s", got, server.SpanContext().TraceID())
		}
	})
}

// durationExemplar returns the trace_id of the newest exemplar of the pool web's duration
// histogram.
func durationExemplar(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var newest *dto.Exemplar
	for _, mf := range mfs {
		if mf.GetName() != "veloflux_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, b := range m.GetHistogram().GetBucket() {
				if e := b.GetExemplar(); e != nil && (newest == nil || e.GetTimestamp().AsTime().After(newest.GetTimestamp().AsTime())) {
					newest = e
				}
			}
		}
	}
	for _, l := range newest.GetLabel() {
		if l.GetName() == "trace_id" {
			return l.GetValue()
		}
	}
	return ""
}

// Whose trace context is continued, and what the backend receives in its place.
func TestTracingTrustIncoming(t *testing.T) {
	const (
		incomingTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		incomingSpan  = "00f067aa0ba902b7"
	)
	incoming := http.Header{
		"Traceparent": {"00-" + incomingTrace + "-" + incomingSpan + "-01"},
		"Tracestate":  {"vendor=opaque"},
		"Baggage":     {"tenant=acme"},
	}
	trustLoopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		name      string
		trust     TraceTrust
		trusted   []netip.Prefix
		continued bool
	}{
		{"trusted peer, trust trusted", TraceTrustTrusted, trustLoopback, true},
		{"untrusted peer, trust trusted", TraceTrustTrusted, nil, false},
		{"untrusted peer, trust all", TraceTrustAll, nil, true},
		{"trusted peer, trust none", TraceTrustNone, trustLoopback, false},
	}
	for _, mode := range samplingModes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				be := newBackend(t, "b", nil)
				cfg := DefaultConfig()
				cfg.TrustedProxies = tt.trusted
				opts, rec := tracedBy(t, Options{TraceTrust: tt.trust}, sdktrace.AlwaysSample(), mode.head)
				tp := startProxy(t, cfg, opts, onePoolSnapshot("round_robin", false, member("b", be.addr(), 1)))
				if r := send(t, newClient(t), http.MethodGet, tp.url+"/", "", incoming.Clone(), ""); r.status != http.StatusOK {
					t.Fatalf("status %d", r.status)
				}
				server, attempts := spansOf(t, rec)
				got := be.last(t).Header
				if tt.continued {
					if server.SpanContext().TraceID().String() != incomingTrace || server.Parent().SpanID().String() != incomingSpan {
						t.Errorf("server span in trace %s under %s, want the incoming %s under %s", server.SpanContext().TraceID(),
							server.Parent().SpanID(), incomingTrace, incomingSpan)
					}
					if got.Get("Tracestate") != "vendor=opaque" || got.Get("Baggage") != "tenant=acme" {
						t.Errorf("backend got tracestate %q baggage %q, want the caller's passed on", got.Get("Tracestate"), got.Get("Baggage"))
					}
				} else {
					if server.SpanContext().TraceID().String() == incomingTrace || server.Parent().IsValid() {
						t.Errorf("server span continues the client's trace (%s, parent %s)", server.SpanContext().TraceID(), server.Parent().SpanID())
					}
					if got.Get("Tracestate") != "" || got.Get("Baggage") != "" {
						t.Errorf("backend got the untrusted client's tracestate %q baggage %q", got.Get("Tracestate"), got.Get("Baggage"))
					}
				}
				a := attempts[0].SpanContext()
				if want := "00-" + a.TraceID().String() + "-" + a.SpanID().String() + "-01"; got.Get("Traceparent") != want {
					t.Errorf("backend got traceparent %q, want %q", got.Get("Traceparent"), want)
				}
			})
		}
	}
}

// With tracing off the proxy passes the caller's trace headers through as it does any other.
func TestTracingOffPassesHeaders(t *testing.T) {
	be := newBackend(t, "b", nil)
	tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("b", be.addr(), 1)))
	const tpHeader = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	send(t, newClient(t), http.MethodGet, tp.url+"/", "", http.Header{"Traceparent": {tpHeader}, "Baggage": {"k=v"}}, "")
	if got := be.last(t).Header; got.Get("Traceparent") != tpHeader || got.Get("Baggage") != "k=v" {
		t.Errorf("backend got traceparent %q baggage %q, want them untouched", got.Get("Traceparent"), got.Get("Baggage"))
	}
}

// A request refused while draining is a span too, an error with the reason.
func TestTracingDrainSpan(t *testing.T) {
	be := newBackend(t, "b", nil)
	opts, rec := traced(t, Options{})
	tp := startProxy(t, DefaultConfig(), opts, onePoolSnapshot("round_robin", false, member("b", be.addr(), 1)))
	tp.Drain()
	if r := send(t, newClient(t), http.MethodGet, tp.url+"/", "", nil, ""); r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", r.status)
	}
	server, attempts := spansOf(t, rec)
	if len(attempts) != 0 || attrString(server, "http.response.status_code") != "503" || server.Status().Code != codes.Error ||
		!strings.Contains(attrString(server, "veloflux.error"), "draining") || attrString(server, "error.type") != "503" {
		t.Errorf("drain span: %d attempts, status code %q, status %v, veloflux.error %q, error.type %q", len(attempts),
			attrString(server, "http.response.status_code"), server.Status(), attrString(server, "veloflux.error"), attrString(server, "error.type"))
	}
}

// Geo routes say which region served and why; sticky pools say what became of the session.
func TestTracingRegionAndSticky(t *testing.T) {
	eu, us := newBackend(t, "eu1", nil), newBackend(t, "us1", nil)
	snap := func(sticky bool, geo string, euUp bool) *discovery.Snapshot {
		euAddr := eu.addr()
		if !euUp {
			euAddr = deadAddr(t)
		}
		e, u := member("eu1", euAddr, 1), member("us1", us.addr(), 1)
		e.Region, u.Region = "eu", "us"
		s := onePoolSnapshot("round_robin", sticky, e, u)
		s.Routes[0].Geo = geo
		return s
	}
	tests := []struct {
		name              string
		snap              *discovery.Snapshot
		client            string
		redirect          bool
		wantRegion        string
		wantReason        string
		wantSticky        string
		wantCountry       string
		secondWithCookies bool
	}{
		{"nearest", snap(false, "nearest", true), deClient, false, "eu", "nearest", "", "DE", false},
		{"failover after the nearest failed", snap(false, "nearest", false), deClient, false, "us", "failover", "", "DE", false},
		{"redirect", snap(false, "redirect", true), usClient, true, "us", "redirect", "", "US", false},
		{"new sticky session", snap(true, "nearest", true), deClient, false, "eu", "nearest", "new", "DE", false},
		{"sticky hit", snap(true, "nearest", true), usClient, false, "us", "sticky", "hit", "US", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, rec := traced(t, Options{Locator: newFakeLocator()})
			if tt.redirect {
				opts.RedirectHosts = map[string]string{"us": "us.example.com"}
			}
			tp := startProxy(t, geoConfig(), opts, tt.snap)
			c := newClient(t)
			hdr := from(tt.client)
			if tt.secondWithCookies {
				first := send(t, c, http.MethodGet, tp.url+"/", "", hdr, "")
				for _, ck := range first.header["Set-Cookie"] {
					hdr.Add("Cookie", strings.SplitN(ck, ";", 2)[0])
				}
				rec.Reset()
			}
			send(t, c, http.MethodGet, tp.url+"/", "", hdr, "")
			server, _ := spansOf(t, rec)
			got := [4]string{attrString(server, "veloflux.region"), attrString(server, "veloflux.region.reason"),
				attrString(server, "veloflux.sticky"), attrString(server, "veloflux.client.country")}
			if want := [4]string{tt.wantRegion, tt.wantReason, tt.wantSticky, tt.wantCountry}; got != want {
				t.Errorf("region, reason, sticky, country = %q, want %q", got, want)
			}
		})
	}
}

// An unsampled request records nothing, yet the backend continues its trace, unsampled, and
// the access log names it. The trace context an outside client sent is replaced: its
// traceparent by the request's, its trace state and baggage dropped.
func TestTracingUnsampled(t *testing.T) {
	for _, mode := range samplingModes {
		t.Run(mode.name, func(t *testing.T) {
			be := newBackend(t, "b", nil)
			logs := &testutil.LogBuffer{}
			opts, rec := tracedBy(t, Options{AccessLogger: slog.New(slog.NewJSONHandler(logs, nil))}, sdktrace.NeverSample(), mode.head)
			px := startProxy(t, DefaultConfig(), opts, onePoolSnapshot("round_robin", false, member("b", be.addr(), 1)))
			outside := http.Header{
				"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
				"Tracestate":  {"vendor=opaque"},
				"Baggage":     {"tenant=acme"},
			}
			if r := send(t, newClient(t), http.MethodGet, px.url+"/", "", outside, ""); r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			if got := be.last(t).Header; got.Get("Tracestate") != "" || got.Get("Baggage") != "" {
				t.Errorf("backend got the outside client's tracestate %q baggage %q", got.Get("Tracestate"), got.Get("Baggage"))
			}
			testutil.Eventually(t, "the access line", func() bool { return len(logs.Find("access")) == 1 })
			line := logs.Find("access")[0]
			traceID, _ := line["trace_id"].(string)
			spanID, _ := line["span_id"].(string)
			want := "00-" + traceID + "-" + spanID + "-00"
			if got := be.last(t).Header["Traceparent"]; len(got) != 1 || got[0] != want || len(traceID) != 32 || len(spanID) != 16 {
				t.Errorf("backend got traceparent %q, want the unsampled server span's %q alone", got, want)
			}
			if n := len(rec.Ended()) + len(rec.Started()); n != 0 {
				t.Errorf("%d spans started or recorded, want none", n)
			}
			if got := durationExemplar(t, px.reg); got != "" {
				t.Errorf("exemplar %q for an unsampled request", got)
			}
		})
	}
}

// An unsampled request retried from a backend of another scheme (h2c, whose transport takes
// the traceparent from the header) to a plain http one (where the fast client writes it
// itself) reaches the second with one traceparent, the same the first was sent.
func TestTracingUnsampledRetryAcrossSchemes(t *testing.T) {
	good := newBackend(t, "good", nil)
	logs := &testutil.LogBuffer{}
	opts, _ := tracedBy(t, Options{AccessLogger: slog.New(slog.NewJSONHandler(logs, nil))}, sdktrace.NeverSample(), true)
	dead := discovery.Backend{ID: "dead", Address: deadAddr(t), Scheme: "h2c", Weight: 1}
	px := startProxy(t, DefaultConfig(), opts, onePoolSnapshot("round_robin", false, dead, member("good", good.addr(), 1)))
	outside := http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	if r := send(t, newClient(t), http.MethodGet, px.url+"/", "", outside, ""); r.status != http.StatusOK || r.body != "good" {
		t.Fatalf("got %d %q, want 200 from good", r.status, r.body)
	}
	if n := counterValue(t, px.reg, "veloflux_retries_total", map[string]string{"pool": "web"}); n != 1 {
		t.Fatalf("%v retries, want 1: the h2c backend first, then the http one", n)
	}
	testutil.Eventually(t, "the access line", func() bool { return len(logs.Find("access")) == 1 })
	line := logs.Find("access")[0]
	want := fmt.Sprintf("00-%v-%v-00", line["trace_id"], line["span_id"])
	if got := good.last(t).Header["Traceparent"]; len(got) != 1 || got[0] != want {
		t.Errorf("backend got traceparent %q, want %q alone", got, want)
	}
}

// An unsampled caller's trace, continued, stays unsampled: the backend gets the caller's
// trace ID under a new span ID, with the caller's trace state and baggage, and nothing is
// recorded.
func TestTracingContinuedUnsampled(t *testing.T) {
	const (
		incomingTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		incomingSpan  = "00f067aa0ba902b7"
	)
	for _, mode := range samplingModes {
		t.Run(mode.name, func(t *testing.T) {
			be := newBackend(t, "b", nil)
			opts, rec := tracedBy(t, Options{TraceTrust: TraceTrustAll}, sdktrace.ParentBased(sdktrace.AlwaysSample()), mode.head)
			px := startProxy(t, DefaultConfig(), opts, onePoolSnapshot("round_robin", false, member("b", be.addr(), 1)))
			hdr := http.Header{
				"Traceparent": {"00-" + incomingTrace + "-" + incomingSpan + "-00"},
				"Tracestate":  {"vendor=opaque"},
				"Baggage":     {"tenant=acme"},
			}
			if r := send(t, newClient(t), http.MethodGet, px.url+"/", "", hdr, ""); r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			got := be.last(t).Header
			tp := strings.Split(got.Get("Traceparent"), "-")
			if len(tp) != 4 || tp[0] != "00" || tp[1] != incomingTrace || tp[2] == incomingSpan || len(tp[2]) != 16 || tp[3] != "00" {
				t.Errorf("backend got traceparent %q, want 00-%s-<a new span ID>-00", got.Get("Traceparent"), incomingTrace)
			}
			if got.Get("Tracestate") != "vendor=opaque" || got.Get("Baggage") != "tenant=acme" {
				t.Errorf("backend got tracestate %q baggage %q, want the caller's passed on", got.Get("Tracestate"), got.Get("Baggage"))
			}
			if n := len(rec.Ended()) + len(rec.Started()); n != 0 {
				t.Errorf("%d spans started or recorded, want none", n)
			}
		})
	}
}

// The head sampler keeps the trace ID ratio of sample_ratio: whether a request is sampled
// follows from its trace ID alone, so a backend sampling by trace ID at the same ratio
// decides alike. At 0.5 a trace is sampled when the first of the last 8 bytes of its ID is
// under 0x80. Sampled requests are recorded, with the attempt span as the backend's parent;
// unsampled ones are not.
func TestTracingHeadRatio(t *testing.T) {
	be := newBackend(t, "b", nil)
	logs := &testutil.LogBuffer{}
	opts, rec := tracedBy(t, Options{AccessLogger: slog.New(slog.NewJSONHandler(logs, nil))},
		sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.5)), true)
	px := startProxy(t, DefaultConfig(), opts, onePoolSnapshot("round_robin", false, member("b", be.addr(), 1)))
	c := newClient(t)
	const n = 40
	for range n {
		if r := send(t, c, http.MethodGet, px.url+"/", "", nil, ""); r.status != http.StatusOK {
			t.Fatalf("status %d", r.status)
		}
	}
	testutil.Eventually(t, "every access line", func() bool { return len(logs.Find("access")) == n })
	attempts := map[string]string{} // trace ID -> the attempt span's ID, of recorded traces
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			attempts[s.SpanContext().TraceID().String()] = s.SpanContext().SpanID().String()
		}
	}
	be.mu.Lock()
	seen := append([]seenRequest(nil), be.seen...)
	be.mu.Unlock()
	var sampled, unsampled int
	for i, req := range seen {
		tp := strings.Split(req.Header.Get("Traceparent"), "-")
		if len(tp) != 4 || len(tp[1]) != 32 {
			t.Fatalf("request %d: backend got traceparent %q", i, req.Header.Get("Traceparent"))
		}
		wantSampled := tp[1][16] < '8'
		if got := tp[3] == "01"; got != wantSampled {
			t.Errorf("request %d in trace %s: sampled %v, want %v", i, tp[1], got, wantSampled)
		}
		attempt, recorded := attempts[tp[1]]
		switch {
		case wantSampled:
			sampled++
			if !recorded || attempt != tp[2] {
				t.Errorf("request %d, sampled: recorded %v with attempt span %s, want recorded under the backend's parent %s", i, recorded, attempt, tp[2])
			}
		default:
			unsampled++
			if recorded {
				t.Errorf("request %d, unsampled: recorded", i)
			}
		}
	}
	// Each case has 2^-40 odds to be missing from 40 random trace IDs.
	if sampled == 0 || unsampled == 0 || sampled+unsampled != n {
		t.Errorf("%d sampled and %d unsampled of %d requests, want both kinds", sampled, unsampled, n)
	}
	if len(attempts) != sampled {
		t.Errorf("%d traces recorded, want the %d sampled", len(attempts), sampled)
	}
}

// putTraceparentField writes what the W3C propagator writes for the same span context.
func TestTraceparentAsThePropagator(t *testing.T) {
	ts, err := trace.ParseTraceState("vendor=opaque")
	if err != nil {
		t.Fatal(err)
	}
	for _, flags := range []trace.TraceFlags{0, trace.FlagsSampled, trace.FlagsRandom, 0xff} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: traceid.NewTraceID(), SpanID: traceid.NewSpanID(), TraceFlags: flags, TraceState: ts,
		})
		h := http.Header{}
		propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(h))
		var b [traceparentFieldLen]byte
		putTraceparentField(&b, sc)
		if got, want := string(b[:]), "Traceparent: "+h.Get("Traceparent")+"\r\n"; got != want {
			t.Errorf("flags %02x: field %q, the propagator's %q", byte(flags), got, want)
		}
	}
}

// An unsampled request costs tracing no allocation on the fast client, which writes its
// traceparent from the request state, and two on the other transports, the header field and
// its value slice: no span, no context, no attribute either way.
func TestTracingUnsampledAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates; counted by the run without -race")
	}
	for _, tc := range []struct {
		name string
		fast bool
		want float64
	}{
		{"fast client", true, 0},
		{"other transports", false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, rec := tracedBy(t, Options{}, sdktrace.NeverSample(), true)
			p := newProxy(t, DefaultConfig(), opts, onePoolSnapshot("round_robin", false, member("ok", "127.0.0.1:1", 1)))
			tbl := p.table.Load()
			rt, pl := tbl.router.match("app.example.com", "/api"), tbl.pools[0]
			in := httptest.NewRequest(http.MethodGet, "http://app.example.com/api/v1/users?id=7", nil)
			out := in.Clone(context.Background())
			var fields []byte
			n := testing.AllocsPerRun(200, func() {
				st := p.getState()
				st.reqID, st.route, st.pool, st.backend, st.forwarded = "id", rt, pl, pl.backends[0], tc.fast
				st.markTried(st.backend)
				p.tracing.startRequest(st, in)
				if span := p.tracing.startAttempt(st, out); span != nil {
					t.Fatal("an attempt span for an unsampled request")
				}
				fields = st.traceFields(out, tc.fast)
				p.tracing.endRequest(st, in, http.StatusOK)
				p.putState(st)
			})
			if n != tc.want {
				t.Errorf("tracing an unsampled request allocates %v times, want %v", n, tc.want)
			}
			if tp := out.Header.Get("Traceparent"); tc.fast && (len(fields) != traceparentFieldLen || tp != "") ||
				!tc.fast && (fields != nil || len(tp) != traceparentLen) {
				t.Errorf("the transport got field line %q and header traceparent %q", fields, tp)
			}
			if len(rec.Started()) != 0 {
				t.Errorf("%d spans started", len(rec.Started()))
			}
		})
	}
}

// A WebSocket upgrade is a span that lasts as long as the connection: it ends, with status
// 101, only once the client closes.
func TestTracingWebSocketSpan(t *testing.T) {
	be := wsEchoBackend(t)
	opts, rec := traced(t, Options{})
	px := startProxy(t, DefaultConfig(), opts, onePoolSnapshot("round_robin", false, member("ws", be.addr(), 1)))
	c, _ := wsDial(t, strings.TrimPrefix(px.url, "http://"))
	wsExpect(t, c, "welcome")
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindServer {
			t.Fatalf("server span ended while the WebSocket is open")
		}
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	server, attempts := spansOf(t, rec)
	if attrString(server, "veloflux.websocket") != "true" || attrString(server, "http.response.status_code") != "101" || len(attempts) != 1 {
		t.Errorf("upgrade span: websocket %q status %q with %d attempts, want true, 101, 1",
			attrString(server, "veloflux.websocket"), attrString(server, "http.response.status_code"), len(attempts))
	}
}
