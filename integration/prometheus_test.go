//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// promQuery runs a GET against Prometheus' HTTP API and decodes its data field into out;
// false while Prometheus is not ready or answers an error.
func promQuery(t *testing.T, base, path string, params url.Values, out any) bool {
	t.Helper()
	resp, err := http.Get(base + path + "?" + params.Encode())
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil || body.Status != "success" {
		return false
	}
	if err := json.Unmarshal(body.Data, out); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return true
}

// TestPrometheusScrapesVeloFlux lets a real Prometheus scrape a node with tracing on, then
// reads back through Prometheus' API the request count and an exemplar whose trace ID is one
// the node logged; promtool checks the exposition.
func TestPrometheusScrapesVeloFlux(t *testing.T) {
	promBin := tool(t, "VELOFLUX_PROMETHEUS_BIN", "prometheus")
	promtool := tool(t, "VELOFLUX_PROMTOOL_BIN", "prometheus")
	be := newRecordingBackend(t)
	// Spans go nowhere (nothing listens there) and are counted as dropped; the exemplars are
	// made from the sampled spans all the same.
	nodeCfg := singlePool(testconfig.WebPool(strings.TrimPrefix(be.URL, "http://")))
	nodeCfg.Tracing = &testconfig.Tracing{Enabled: true, Endpoint: testutil.FreeAddr(t), Insecure: true, SampleRatio: 1}
	n := startNode(t, nodeCfg.YAML(t))
	const requests = 5
	for i := 0; i < requests; i++ {
		if code, _, _ := get(t, n.url("/")); code != http.StatusOK {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	// The access line is written once the response is out: the last may still be on its way.
	testutil.Eventually(t, "an access line per request", func() bool { return len(n.logs.Find("access")) == requests })
	var traceIDs []string
	for _, l := range n.logs.Find("access") {
		id, _ := l["trace_id"].(string)
		traceIDs = append(traceIDs, id)
	}
	if len(traceIDs) != requests || slices.Contains(traceIDs, "") {
		t.Fatalf("access log trace IDs %v, want %d", traceIDs, requests)
	}

	t.Run("promtool check metrics", func(t *testing.T) {
		_, text, _ := get(t, "http://"+n.metrics+"/metrics")
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out.String())
		}
		if !strings.Contains(text, "veloflux_tracing_spans_dropped_total") {
			t.Error("the exposition of a node with tracing lacks veloflux_tracing_spans_dropped_total")
		}
		assertMetricsDocumented(t, text)
	})

	dir := t.TempDir()
	port := testutil.FreePorts(t, 1)[0]
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: veloflux\n    static_configs:\n      - targets: [%q]\n", n.metrics)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "prometheus", nil, promBin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--enable-feature=exemplar-storage",
	)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	t.Run("request count", func(t *testing.T) {
		var got struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		}
		testutil.EventuallyWithNote(t, "veloflux_requests_total in Prometheus", func() (bool, string) {
			ok := promQuery(t, base, "/api/v1/query", url.Values{"query": {`sum(veloflux_requests_total{pool="web",code="200"})`}}, &got)
			return ok && len(got.Result) == 1 && got.Result[0].Value[1] == fmt.Sprint(requests), fmt.Sprintf("result %v", got.Result)
		})
	})
	t.Run("exemplar", func(t *testing.T) {
		now := time.Now()
		var got []struct {
			Exemplars []struct {
				Labels map[string]string `json:"labels"`
			} `json:"exemplars"`
		}
		var seen []string
		testutil.EventuallyWithNote(t, "an exemplar with a logged trace ID in Prometheus", func() (bool, string) {
			ok := promQuery(t, base, "/api/v1/query_exemplars", url.Values{
				"query": {`veloflux_request_duration_seconds_bucket{pool="web"}`},
				"start": {fmt.Sprint(now.Add(-time.Hour).Unix())},
				"end":   {fmt.Sprint(now.Add(time.Hour).Unix())},
			}, &got)
			seen = seen[:0]
			for _, s := range got {
				for _, e := range s.Exemplars {
					seen = append(seen, e.Labels["trace_id"])
				}
			}
			return ok && slices.ContainsFunc(seen, func(id string) bool { return slices.Contains(traceIDs, id) }),
				fmt.Sprintf("exemplar trace IDs %v", seen)
		})
	})
}
