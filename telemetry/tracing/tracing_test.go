package tracing

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/veloflux/veloflux/internal/fielderr"
	"github.com/veloflux/veloflux/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // keys with a problem, in the order of the fields
	}{
		{"defaults", func(c *Config) {}, nil},
		{"host:port endpoint", func(c *Config) { c.Endpoint = "collector:4317" }, nil},
		{"url endpoint", func(c *Config) { c.Endpoint = "https://otlp.example.com/v1/traces" }, nil},
		{"endpoint without port", func(c *Config) { c.Endpoint = "collector" }, []string{"endpoint"}},
		{"endpoint with other scheme", func(c *Config) { c.Endpoint = "ftp://collector:21" }, []string{"endpoint"}},
		{"endpoint with credentials", func(c *Config) { c.Endpoint = "https://u:p@collector" }, []string{"endpoint"}},
		{"protocol", func(c *Config) { c.Protocol = "http/json" }, []string{"protocol"}},
		{"header name", func(c *Config) { c.Headers = map[string]string{"bad name": "v"} }, []string{`headers["bad name"]`}},
		{"header value", func(c *Config) { c.Headers = map[string]string{"X-Key": "a\nb"} }, []string{`headers["X-Key"]`}},
		{"ratio above 1", func(c *Config) { c.SampleRatio = 1.5 }, []string{"sample_ratio"}},
		{"ratio negative", func(c *Config) { c.SampleRatio = -0.1 }, []string{"sample_ratio"}},
		{"service name", func(c *Config) { c.ServiceName = " " }, []string{"service_name"}},
		{"trust", func(c *Config) { c.TrustIncoming = "some" }, []string{"trust_incoming"}},
		{"every problem at once", func(c *Config) {
			c.QueueSize, c.BatchTimeout, c.ExportTimeout = 0, 0, -time.Second
		}, []string{"queue_size", "batch_timeout", "export_timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			var got []string
			if err != nil {
				var errs fielderr.Errors
				if !errors.As(err, &errs) {
					t.Fatalf("Validate = %v, not fielderr.Errors", err)
				}
				for _, fe := range errs {
					got = append(got, fe.Path)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("problems at %v, want %v (%v)", got, tt.want, err)
			}
		})
	}
	t.Run("secret header value not shown", func(t *testing.T) {
		c := DefaultConfig()
		c.Headers = map[string]string{"Authorization": "Bearer s3cret\n"}
		if err := c.Validate(); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Validate = %v; want a problem that does not show the value", err)
		}
	})
}

// collector is an OTLP/HTTP receiver on a real socket: it decodes every export request and
// keeps the spans' names and the service name they came from. Block holds exports until
// released, as a stuck collector would.
type collector struct {
	srv     *httptest.Server
	mu      sync.Mutex
	spans   []string
	batches []int // spans per export, in the order they arrived
	service string
	got     chan struct{}
	block   chan struct{}
	entered chan struct{} // one value per export request that reached the handler
}

func newCollector(t *testing.T, blocked bool) *collector {
	c := &collector{got: make(chan struct{}, 100), entered: make(chan struct{}, 100)}
	if blocked {
		c.block = make(chan struct{})
	}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.entered <- struct{}{}
		if c.block != nil {
			select {
			case <-c.block:
			case <-r.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		n := 0
		for _, rs := range req.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					c.service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					c.spans = append(c.spans, s.GetName())
					n++
				}
			}
		}
		c.batches = append(c.batches, n)
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		_, _ = w.Write(b)
		c.got <- struct{}{}
	}))
	t.Cleanup(func() {
		c.entered <- struct{}{}
		if c.block != nil {
			select {
			case <-c.block:
			default:
				close(c.block)
			}
		}
		c.srv.Close()
	})
	return c
}

func (c *collector) received() ([]string, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.spans...), c.service
}

// start builds a provider and runs it until the test ends.
func start(t *testing.T, cfg Config, opts Options) *Provider {
	t.Helper()
	p, err := New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := testutil.Receive(t, done, "provider Run to return"); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}

func httpConfig(endpoint string) Config {
	c := DefaultConfig()
	c.Enabled = true
	c.Protocol = ProtocolHTTP
	c.Endpoint = endpoint
	c.SampleRatio = 1
	return c
}

func emit(p *Provider, names ...string) {
	tr := p.TracerProvider().Tracer("test")
	for _, n := range names {
		_, s := tr.Start(context.Background(), n)
		s.End()
	}
}

func TestExportOverHTTP(t *testing.T) {
	col := newCollector(t, false)
	reg := prometheus.NewRegistry()
	cfg := httpConfig(col.srv.URL)
	cfg.ServiceName = "edge"
	p := start(t, cfg, Options{Registerer: reg, LookupEnv: noEnv})
	emit(p, "one", "two")
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, service := col.received()
	if strings.Join(spans, ",") != "one,two" || service != "edge" {
		t.Errorf("collector got spans %v of service %q, want one,two of edge", spans, service)
	}
	if got := promtest.ToFloat64(p.queue.metrics.exported); got != 2 {
		t.Errorf("veloflux_tracing_spans_exported_total = %v, want 2", got)
	}
}

func noEnv(string) (string, bool) { return "", false }

// Spans leave in batches of at most maxBatch, so that few finished spans are kept alive
// waiting for their export.
func TestExportBatches(t *testing.T) {
	col := newCollector(t, false)
	p := start(t, httpConfig(col.srv.URL), Options{LookupEnv: noEnv})
	names := make([]string, 2*maxBatch+22)
	for i := range names {
		names[i] = "s" + strconv.Itoa(i)
	}
	emit(p, names...)
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.spans) != len(names) {
		t.Fatalf("collector got %d spans, want %d", len(col.spans), len(names))
	}
	if want := []int{maxBatch, maxBatch, 22}; !slices.Equal(col.batches, want) {
		t.Errorf("spans per export %v, want %v", col.batches, want)
	}
}

func TestSampleRatioZeroExportsNothing(t *testing.T) {
	col := newCollector(t, false)
	cfg := httpConfig(col.srv.URL)
	cfg.SampleRatio = 0
	p := start(t, cfg, Options{LookupEnv: noEnv})
	tr := p.TracerProvider().Tracer("test")
	_, s := tr.Start(context.Background(), "unsampled")
	if s.SpanContext().IsSampled() || !s.SpanContext().IsValid() {
		t.Errorf("span context %v: want a valid, unsampled one", s.SpanContext())
	}
	s.End()
	// Parent-based: a sampled parent from upstream is followed even at ratio 0.
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	_, child := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "child")
	child.End()
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if spans, _ := col.received(); strings.Join(spans, ",") != "child" {
		t.Errorf("collector got %v, want only the child of a sampled parent", spans)
	}
}

// A stuck collector must cost spans, counted, and never block the code that ends them.
func TestFullQueueDropsAndCounts(t *testing.T) {
	col := newCollector(t, true)
	cfg := httpConfig(col.srv.URL)
	cfg.QueueSize = 4
	cfg.BatchTimeout = time.Millisecond
	reg := prometheus.NewRegistry()
	p := start(t, cfg, Options{Registerer: reg, LookupEnv: noEnv})
	emit(p, "first")
	// The first span goes out in an export that hangs in the collector.
	testutil.Receive(t, col.entered, "the first export to reach the collector")
	ended := make(chan struct{})
	go func() {
		emit(p, "a", "b", "c", "d", "e", "f", "g")
		close(ended)
	}()
	testutil.Receive(t, ended, "ending spans while the collector hangs")
	// The export loop is stuck in the first export: the queue takes 4 of the 7.
	if got := promtest.ToFloat64(p.queue.metrics.droppedQueueFull); got != 3 {
		t.Errorf(`veloflux_tracing_spans_dropped_total{reason="queue_full"} = %v, want 3`, got)
	}
	n, err := promtest.GatherAndCount(reg, "veloflux_tracing_spans_dropped_total", "veloflux_tracing_queue_length", "veloflux_tracing_spans_exported_total")
	if err != nil || n != 5 {
		t.Errorf("gathered %d series (%v), want 3 drop reasons, the queue length and the export count", n, err)
	}
	close(col.block)
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if spans, _ := col.received(); len(spans) != 5 {
		t.Errorf("collector got %v once released, want the first span and the 4 queued", spans)
	}
}

func TestEnvironmentWins(t *testing.T) {
	fileCol, envCol := newCollector(t, false), newCollector(t, false)
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": envCol.srv.URL + "/v1/traces",
		"OTEL_SERVICE_NAME":                  "from-env",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg := httpConfig(fileCol.srv.URL)
	cfg.ServiceName = "from-file"
	p := start(t, cfg, Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	emit(p, "span")
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if spans, service := envCol.received(); len(spans) != 1 || service != "from-env" {
		t.Errorf("the environment's collector got %v of %q, want one span of from-env", spans, service)
	}
	if spans, _ := fileCol.received(); len(spans) != 0 {
		t.Errorf("the file's collector got %v, want nothing", spans)
	}
}

func TestEnvironmentProtocol(t *testing.T) {
	cfg := httpConfig("")
	_, err := New(context.Background(), cfg, Options{LookupEnv: func(k string) (string, bool) {
		if k == "OTEL_EXPORTER_OTLP_PROTOCOL" {
			return "http/json", true
		}
		return "", false
	}})
	if err == nil || !strings.Contains(err.Error(), "http/json") {
		t.Errorf("New with OTEL_EXPORTER_OTLP_PROTOCOL=http/json: %v, want an error naming it", err)
	}
}
