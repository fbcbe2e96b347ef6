package telemetry

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// scrape fetches /metrics over a real socket and parses the text exposition.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	status, _, body := get(t, base+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics status %d: %s", status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse scrape: %v\n%s", err, body)
	}
	return mfs
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func TestMetricsMuxScrape(t *testing.T) {
	srv := httptest.NewServer(MetricsMux(newRegistry("1.2.3", "abc123"), nil))
	defer srv.Close()
	mfs := scrape(t, srv.URL)

	t.Run("build info", func(t *testing.T) {
		mf, ok := mfs["veloflux_build_info"]
		if !ok {
			t.Fatal("veloflux_build_info missing from scrape")
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("got %d build_info series, want 1", len(mf.GetMetric()))
		}
		m := mf.GetMetric()[0]
		want := map[string]string{"version": "1.2.3", "revision": "abc123", "goversion": runtime.Version()}
		got := labels(m)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("label %s = %q, want %q", k, got[k], v)
			}
		}
		if v := m.GetGauge().GetValue(); v != 1 {
			t.Errorf("value = %v, want 1", v)
		}
	})
	for _, name := range []string{
		"go_goroutines",                        // Go collector
		"go_memstats_alloc_bytes",              // Go collector
		"process_cpu_seconds_total",            // process collector
		"promhttp_metric_handler_errors_total", // registry's own scrape error counting
		"promhttp_metric_handler_requests_total",
	} {
		t.Run(name, func(t *testing.T) {
			if runtime.GOOS != "linux" && name == "process_cpu_seconds_total" {
				t.Skip("process collector only reports on linux")
			}
			if _, ok := mfs[name]; !ok {
				t.Errorf("%s missing from scrape", name)
			}
		})
	}
}

func TestNewRegistryDefaultsLabels(t *testing.T) {
	srv := httptest.NewServer(MetricsMux(NewRegistry(""), nil))
	defer srv.Close()
	mf, ok := scrape(t, srv.URL)["veloflux_build_info"]
	if !ok {
		t.Fatal("veloflux_build_info missing from scrape")
	}
	got := labels(mf.GetMetric()[0])
	if got["version"] != "unknown" {
		t.Errorf("version = %q, want unknown", got["version"])
	}
	info, ok := debug.ReadBuildInfo()
	if want := buildRevision(info, ok); got["revision"] != want {
		t.Errorf("revision = %q, want %q", got["revision"], want)
	}
}

func TestBuildRevision(t *testing.T) {
	tests := []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build info", nil, false, "unknown"},
		{"nil but ok", nil, true, "unknown"},
		{"no vcs settings", &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "GOOS", Value: "linux"}}}, true, "unknown"},
		{"empty revision", &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: ""}}}, true, "unknown"},
		{"revision", &debug.BuildInfo{Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "066f655"}, {Key: "vcs.modified", Value: "true"},
		}}, true, "066f655"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildRevision(tt.info, tt.ok); got != tt.want {
				t.Errorf("buildRevision = %q, want %q", got, tt.want)
			}
		})
	}
}

// failingCollector always fails to collect, standing in for a broken exporter.
type failingCollector struct{ desc *prometheus.Desc }

func (c failingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c failingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(c.desc, errors.New("backend unreachable"))
}

func TestMetricsMuxCountsScrapeErrors(t *testing.T) {
	reg := newRegistry("v", "r")
	reg.MustRegister(failingCollector{prometheus.NewDesc("test_broken", "always fails", nil, nil)})
	srv := httptest.NewServer(MetricsMux(reg, nil))
	defer srv.Close()

	scrape(t, srv.URL) // the failing scrape still answers 200 with the healthy metrics
	mfs := scrape(t, srv.URL)
	if _, ok := mfs["go_goroutines"]; !ok {
		t.Error("healthy metrics dropped because one collector failed")
	}
	var gathering float64
	for _, m := range mfs["promhttp_metric_handler_errors_total"].GetMetric() {
		if labels(m)["cause"] == "gathering" {
			gathering = m.GetCounter().GetValue()
		}
	}
	// The second scrape reports the first scrape's error (and possibly its own).
	if gathering < 1 {
		t.Errorf("promhttp_metric_handler_errors_total{cause=gathering} = %v, want >= 1", gathering)
	}
}

func TestMetricsMuxHealthz(t *testing.T) {
	srv := httptest.NewServer(MetricsMux(newRegistry("v", "r"), func() (bool, string) { return false, "draining" }))
	defer srv.Close()
	// Liveness must not follow readiness: a draining node is alive.
	status, hdr, body := get(t, srv.URL+"/healthz")
	if status != http.StatusOK || body != "ok" {
		t.Errorf("/healthz = %d %q, want 200 \"ok\"", status, body)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", hdr.Get("Cache-Control"))
	}
}

func TestMetricsMuxReadyz(t *testing.T) {
	var (
		mu     sync.Mutex
		ready  bool
		reason string
	)
	set := func(r bool, why string) {
		mu.Lock()
		defer mu.Unlock()
		ready, reason = r, why
	}
	srv := httptest.NewServer(MetricsMux(newRegistry("v", "r"), func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return ready, reason
	}))
	defer srv.Close()

	// Steps run in order against one server, so each proves /readyz follows the latest state.
	steps := []struct {
		name       string
		ready      bool
		reason     string
		wantStatus int
		wantBody   string
	}{
		{"starting", false, "", http.StatusServiceUnavailable, "not ready"},
		{"up", true, "", http.StatusOK, "ready"},
		{"draining", false, "draining", http.StatusServiceUnavailable, "draining"},
		{"undrained", true, "ignored when ready", http.StatusOK, "ready"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			set(st.ready, st.reason)
			status, _, body := get(t, srv.URL+"/readyz")
			if status != st.wantStatus || body != st.wantBody {
				t.Errorf("/readyz = %d %q, want %d %q", status, body, st.wantStatus, st.wantBody)
			}
		})
	}
}

func TestMetricsMuxNilReadyIsReady(t *testing.T) {
	srv := httptest.NewServer(MetricsMux(newRegistry("v", "r"), nil))
	defer srv.Close()
	status, _, body := get(t, srv.URL+"/readyz")
	if status != http.StatusOK || body != "ready" {
		t.Errorf("/readyz = %d %q, want 200 \"ready\"", status, body)
	}
}

func TestMetricsMuxTwiceOnOneRegistry(t *testing.T) {
	// cmd may rebuild the mux (say on a listener change); the registry's handler counters are
	// already registered then and must be reused, not panic.
	reg := newRegistry("v", "r")
	MetricsMux(reg, nil)
	srv := httptest.NewServer(MetricsMux(reg, nil))
	defer srv.Close()
	if _, ok := scrape(t, srv.URL)["promhttp_metric_handler_requests_total"]; !ok {
		t.Error("promhttp_metric_handler_requests_total missing")
	}
}

// Exemplars exist only in OpenMetrics: a scraper that asks for it gets the trace ID that a
// histogram observation carried; one that does not gets the text format without it.
func TestMetricsMuxOpenMetricsExemplars(t *testing.T) {
	reg := newRegistry("v", "r")
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "test_duration_seconds", Help: "h", Buckets: []float64{1}})
	reg.MustRegister(h)
	h.(prometheus.ExemplarObserver).ObserveWithExemplar(0.5, prometheus.Labels{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
	srv := httptest.NewServer(MetricsMux(reg, nil))
	defer srv.Close()
	for _, tt := range []struct {
		name, accept, wantType string
		wantExemplar           bool
	}{
		{"openmetrics", "application/openmetrics-text; version=1.0.0", "application/openmetrics-text", true},
		{"text", "text/plain", "text/plain", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
			req.Header.Set("Accept", tt.accept)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("Content-Type %q, want %s", ct, tt.wantType)
			}
			has := strings.Contains(string(body), `test_duration_seconds_bucket{le="1.0"} 1 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.5`)
			if has != tt.wantExemplar {
				t.Errorf("exemplar in exposition: %v, want %v\n%s", has, tt.wantExemplar, body)
			}
		})
	}
}
