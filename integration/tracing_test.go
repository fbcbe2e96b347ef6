//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// jaeger is a Jaeger all-in-one on loopback, on the configuration the demo and the benchmarks
// use (tools/jaeger/config.yaml): OTLP receivers and the query API on free ports, spans kept in
// memory.
type jaeger struct {
	otlpGRPC, otlpHTTP, query string
}

func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := tool(t, "VELOFLUX_JAEGER_BIN", "jaeger")
	p := testutil.FreePorts(t, 4)
	j := &jaeger{
		otlpGRPC: fmt.Sprintf("127.0.0.1:%d", p[0]),
		otlpHTTP: fmt.Sprintf("127.0.0.1:%d", p[1]),
		query:    fmt.Sprintf("127.0.0.1:%d", p[2]),
	}
	env := []string{
		"JAEGER_OTLP_PORT=" + strconv.Itoa(p[0]), "JAEGER_OTLP_HTTP_PORT=" + strconv.Itoa(p[1]),
		"JAEGER_QUERY_PORT=" + strconv.Itoa(p[2]), "JAEGER_QUERY_GRPC_PORT=" + strconv.Itoa(p[3]),
		"JAEGER_BATCH_TIMEOUT=50ms", // traces are read back at once
	}
	startProcess(t, "jaeger", env, bin, "--config", "file:../tools/jaeger/config.yaml")
	testutil.Eventually(t, "Jaeger's query API to answer", func() bool {
		resp, err := http.Get("http://" + j.query + "/api/services")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return j
}

// jaegerSpan is a span as Jaeger's query API returns it.
type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
	ProcessID string `json:"processID"`
}

func (s jaegerSpan) tag(key string) string {
	for _, tg := range s.Tags {
		if tg.Key == key {
			return fmt.Sprint(tg.Value)
		}
	}
	return ""
}

func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// trace reads one trace back from the query API; it answers 404 until the trace is stored.
func (j *jaeger) trace(t *testing.T, traceID string) ([]jaegerSpan, map[string]map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + j.query + "/api/traces/" + traceID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil
	}
	var out struct {
		Data []struct {
			Spans     []jaegerSpan `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
				Tags        []struct {
					Key   string `json:"key"`
					Value any    `json:"value"`
				} `json:"tags"`
			} `json:"processes"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode trace %s: %v", traceID, err)
	}
	if len(out.Data) == 0 {
		return nil, nil
	}
	procs := map[string]map[string]any{}
	for id, p := range out.Data[0].Processes {
		tags := map[string]any{"service.name": p.ServiceName}
		for _, tg := range p.Tags {
			tags[tg.Key] = tg.Value
		}
		procs[id] = tags
	}
	return out.Data[0].Spans, procs
}

// TestTracesInJaeger sends a request that fails on a dead backend and is retried on a live
// one, over each OTLP protocol, and reads the trace back from a real Jaeger: one server span,
// one attempt span per try under it, and the live backend's received traceparent naming the
// second attempt.
func TestTracesInJaeger(t *testing.T) {
	j := startJaeger(t)
	for _, tt := range []struct{ protocol, endpoint string }{
		{"grpc", j.otlpGRPC},
		{"http", j.otlpHTTP},
	} {
		t.Run(tt.protocol, func(t *testing.T) {
			live := newRecordingBackend(t)
			dead := testutil.FreeAddr(t) // nothing listens: the dial is refused
			liveAddr := strings.TrimPrefix(live.URL, "http://")
			service := "veloflux-it-" + tt.protocol
			cfg := singlePool(testconfig.WebPool(dead, liveAddr))
			cfg.Tracing = &testconfig.Tracing{
				Enabled: true, Endpoint: tt.endpoint, Protocol: tt.protocol, Insecure: true,
				SampleRatio: 1, BatchTimeout: testconfig.Duration(50 * time.Millisecond), ServiceName: service,
			}
			n := startNode(t, cfg.YAML(t))
			code, body, _ := get(t, n.url("/api/users?id=7"))
			if code != http.StatusOK || body != "ok" {
				t.Fatalf("request answered %d %q, want 200 from the live backend after a retry", code, body)
			}
			got := live.traceparents()
			if len(got) != 1 {
				t.Fatalf("live backend got %d requests, want 1", len(got))
			}
			parts := strings.Split(got[0], "-")
			if len(parts) != 4 || parts[3] != "01" {
				t.Fatalf("live backend got traceparent %q, want a sampled W3C one", got[0])
			}
			traceID, parentID := parts[1], parts[2]

			var spans []jaegerSpan
			var procs map[string]map[string]any
			testutil.Eventually(t, "the trace's three spans in Jaeger", func() bool {
				spans, procs = j.trace(t, traceID)
				return len(spans) == 3
			})
			var server jaegerSpan
			var attempts []jaegerSpan
			for _, s := range spans {
				switch s.tag("span.kind") {
				case "server":
					server = s
				case "client":
					attempts = append(attempts, s)
				}
			}
			if server.SpanID == "" || server.parent() != "" || len(attempts) != 2 {
				t.Fatalf("want a root server span and two client spans, got %+v", spans)
			}
			if p := procs[server.ProcessID]; p["service.name"] != service || p["service.version"] == nil {
				t.Errorf("process of the server span: %v, want service %s with a version", p, service)
			}
			if server.OperationName != "GET /" || server.tag("http.route") != "/" || server.tag("http.response.status_code") != "200" ||
				server.tag("url.path") != "/api/users" || server.tag("veloflux.attempt") != "2" || server.tag("veloflux.backend") != liveAddr {
				t.Errorf("server span %q: route %q status %q path %q attempts %q backend %q", server.OperationName, server.tag("http.route"),
					server.tag("http.response.status_code"), server.tag("url.path"), server.tag("veloflux.attempt"), server.tag("veloflux.backend"))
			}
			byTry := map[string]jaegerSpan{}
			for _, a := range attempts {
				if a.parent() != server.SpanID {
					t.Errorf("attempt span %s has parent %s, want the server span %s", a.SpanID, a.parent(), server.SpanID)
				}
				byTry[a.tag("veloflux.attempt")] = a
			}
			first, second := byTry["1"], byTry["2"]
			if first.tag("veloflux.backend") != dead || first.tag("error.type") != "connect_failed" || first.tag("error") != "true" {
				t.Errorf("first attempt: backend %q error.type %q error %q, want %s, connect_failed, true",
					first.tag("veloflux.backend"), first.tag("error.type"), first.tag("error"), dead)
			}
			if second.tag("veloflux.backend") != liveAddr || second.tag("http.response.status_code") != "200" {
				t.Errorf("second attempt: backend %q status %q", second.tag("veloflux.backend"), second.tag("http.response.status_code"))
			}
			if second.SpanID != parentID {
				t.Errorf("the live backend's traceparent names span %s, want the second attempt %s", parentID, second.SpanID)
			}
			access := n.logs.Find("access")
			if len(access) != 1 || access[0]["trace_id"] != traceID || access[0]["span_id"] != server.SpanID {
				t.Errorf("access log %v, want trace_id %s span_id %s", access, traceID, server.SpanID)
			}
		})
	}
}
