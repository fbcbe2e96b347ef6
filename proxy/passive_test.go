package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/internal/testutil"
)

// outcomeRecorder is a PassiveHealth that keeps every report.
type outcomeRecorder struct {
	mu      sync.Mutex
	reports []string // "backend:outcome"
}

func (r *outcomeRecorder) Report(id string, o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, fmt.Sprintf("%s:%s", id, outcomeName(o)))
}

func (r *outcomeRecorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reports...)
}

func outcomeName(o Outcome) string {
	switch o {
	case OutcomeSuccess:
		return "success"
	case Outcome5xx:
		return "5xx"
	case OutcomeConnectFailure:
		return "connect"
	case OutcomeTimeout:
		return "timeout"
	}
	return fmt.Sprint("unknown-", int(o))
}

func TestPassiveReports(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
	}
	const dead = "dead" // marks a backend nothing listens on
	tests := []struct {
		name     string
		backends []string // handler names, in pick order
		attempts int
		method   string
		want     []string
		status   int
	}{
		{name: "200 is a success", backends: []string{"ok"}, want: []string{"b0:success"}, status: 200},
		{name: "404 is a success: the backend answered", backends: []string{"404"}, want: []string{"b0:success"}, status: 404},
		{name: "503 is a 5xx", backends: []string{"503"}, want: []string{"b0:5xx"}, status: 503},
		{name: "500 is a 5xx", backends: []string{"500"}, want: []string{"b0:5xx"}, status: 500},
		{name: "refused connection", backends: []string{dead}, attempts: 1, want: []string{"b0:connect"}, status: 502},
		{name: "connection closed before the response", backends: []string{"close"}, attempts: 1, want: []string{"b0:connect"}, status: 502},
		{name: "response header timeout", backends: []string{"slow"}, attempts: 1, want: []string{"b0:timeout"}, status: 504},
		{name: "every attempt of a retry is reported", backends: []string{dead, "ok"}, attempts: 2, want: []string{"b0:connect", "b1:success"}, status: 200},
		{name: "a retry after a dropped connection", backends: []string{"close", "503"}, attempts: 2, want: []string{"b0:connect", "b1:5xx"}, status: 503},
	}
	handlers := map[string]http.HandlerFunc{
		"ok": nil, "404": status(404), "500": status(500), "503": status(503), "close": hijackClose, "slow": slow,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var members []discovery.Backend
			for i, h := range tt.backends {
				id := fmt.Sprint("b", i)
				if h == dead {
					members = append(members, member(id, deadAddr(t), 1))
					continue
				}
				members = append(members, member(id, newBackend(t, id, handlers[h]).addr(), 1))
			}
			cfg := DefaultConfig()
			if tt.attempts > 0 {
				cfg.Retry.Attempts = tt.attempts
			}
			tr := DefaultTransportConfig()
			if slices.Contains(tt.backends, "slow") {
				// Only the slow backend's case waits for the timeout; in the others a short
				// one would turn a dropped connection seen late on a busy machine into a 504.
				tr.ResponseHeaderTimeout = 100 * time.Millisecond
			}
			rec := &outcomeRecorder{}
			tp := startProxy(t, cfg, Options{Passive: rec, Transport: tr}, onePoolSnapshot("round_robin", false, members...))
			r := send(t, newClient(t), http.MethodGet, tp.url+"/", "", nil, "")
			if r.status != tt.status {
				t.Fatalf("status %d, want %d", r.status, tt.status)
			}
			if got := rec.get(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("reports %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPassiveNotReportedWhenClientLeaves checks that a client giving up on a slow backend is
// not blamed on the backend.
func TestPassiveNotReportedWhenClientLeaves(t *testing.T) {
	reached := make(chan struct{}, 1)
	be := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		reached <- struct{}{}
		<-r.Context().Done()
	})
	rec := &outcomeRecorder{}
	tp := startProxy(t, DefaultConfig(), Options{Passive: rec}, onePoolSnapshot("round_robin", false, member("slow", be.addr(), 1)))
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tp.url+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := newClient(t).Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	testutil.Receive(t, reached, "the request to reach the backend")
	cancel()
	<-done
	testutil.Eventually(t, "the proxy to finish the request", func() bool { return tp.InFlight() == 0 })
	if got := rec.get(); len(got) != 0 {
		t.Fatalf("reports %v after the client left, want none", got)
	}
}

// TestAllDownPoolAnswers503Fast sends concurrent requests to a pool whose every backend the
// health view calls down. The backends would hold a request for 10s: each request must
// instead get 503 at once, and none may reach a backend.
func TestAllDownPoolAnswers503Fast(t *testing.T) {
	var reached atomic.Int64
	hang := func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}
	tests := []struct {
		name string
		down []string
		snap func(addrs []string) *discovery.Snapshot
	}{
		{
			name: "every backend down",
			down: []string{"b0", "b1", "b2"},
			snap: func(addrs []string) *discovery.Snapshot {
				return onePoolSnapshot("round_robin", false, member("b0", addrs[0], 1), member("b1", addrs[1], 1), member("b2", addrs[2], 1))
			},
		},
		{
			// What a Consul pool whose instances are all critical looks like.
			name: "pool without backends",
			snap: func([]string) *discovery.Snapshot { return onePoolSnapshot("round_robin", false) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addrs []string
			for i := range 3 {
				addrs = append(addrs, newBackend(t, fmt.Sprint("b", i), hang).addr())
			}
			health := &downSet{}
			health.setDown(tt.down...)
			rec := &outcomeRecorder{}
			tp := startProxy(t, DefaultConfig(), Options{Health: health, Passive: rec}, tt.snap(addrs))
			client := newClient(t)
			const n = 20
			start := time.Now()
			var wg sync.WaitGroup
			results := make(chan response, n)
			for range n {
				wg.Go(func() {
					r, err := trySend(client, http.MethodGet, tp.url+"/", "", nil, "")
					if err != nil {
						t.Errorf("request: %v", err)
						return
					}
					results <- r
				})
			}
			wg.Wait()
			close(results)
			took := time.Since(start)
			for r := range results {
				checkErrorAnswer(t, r, http.StatusServiceUnavailable, "no healthy backend")
			}
			// 20 local requests answered without a backend take milliseconds; a request that
			// waited on a hanging backend would take 10s.
			if took > 2*time.Second {
				t.Fatalf("%d requests took %s to be refused", n, took)
			}
			if got := reached.Load(); got != 0 {
				t.Fatalf("%d requests reached a backend that is down", got)
			}
			if got := rec.get(); len(got) != 0 {
				t.Fatalf("passive reports %v for requests that reached no backend", got)
			}
			if tp.InFlight() != 0 {
				t.Fatalf("%d requests still in flight", tp.InFlight())
			}
		})
	}
}

// countingPassive is the cheapest PassiveHealth: an atomic counter, so the benchmark shows
// what reporting costs the proxy itself.
type countingPassive struct{ n atomic.Int64 }

func (c *countingPassive) Report(string, Outcome) { c.n.Add(1) }

// BenchmarkServeHTTPPassive is BenchmarkServeHTTP with a PassiveHealth: its allocations must
// equal BenchmarkServeHTTP's, since reporting an outcome allocates nothing.
func BenchmarkServeHTTPPassive(b *testing.B) {
	be := newBackend(b, "ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	cfg := DefaultConfig()
	cfg.AccessLog = false
	passive := &countingPassive{}
	p := newProxy(b, cfg, Options{Passive: passive}, onePoolSnapshot("round_robin", false, member("ok", be.addr(), 1)))
	req := httptest.NewRequest(http.MethodGet, "http://app.example.com/api/v1/users?id=7", nil)
	w := &discardWriter{header: make(http.Header)}
	p.ServeHTTP(w, req)
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
	if got := passive.n.Load(); got < int64(b.N) {
		b.Fatalf("%d outcomes reported for %d requests", got, b.N)
	}
}
