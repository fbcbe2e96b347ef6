package proxy

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/internal/testutil"
)

// TestRetry runs one request against a pool of two backends. Round robin over a fresh pool
// picks the first listed backend first, so each case knows which backend failed first.
func TestRetry(t *testing.T) {
	const (
		dead   = "dead"   // nothing listens: the dial fails, nothing was sent
		closer = "closer" // reads the request, then drops the connection without answering
		good   = "good"
	)
	tests := []struct {
		name        string
		attempts    int
		backends    [2]string
		method      string
		body        string
		wantStatus  int
		wantRetries float64
		wantGood    int // requests the good backend must have seen
	}{
		{"dial failure retried", 2, [2]string{dead, good}, http.MethodGet, "", http.StatusOK, 1, 1},
		{"dial failure retried with body intact", 2, [2]string{dead, good}, http.MethodPost, "payload", http.StatusOK, 1, 1},
		{"dropped connection retried for GET", 2, [2]string{closer, good}, http.MethodGet, "", http.StatusOK, 1, 1},
		{"dropped connection not retried for POST with body", 2, [2]string{closer, good}, http.MethodPost, "payload", http.StatusBadGateway, 0, 0},
		{"dropped connection not retried for POST without body", 2, [2]string{closer, good}, http.MethodPost, "", http.StatusBadGateway, 0, 0},
		{"one attempt disables retries", 1, [2]string{dead, good}, http.MethodGet, "", http.StatusBadGateway, 0, 0},
		{"all backends dead", 2, [2]string{dead, dead}, http.MethodGet, "", http.StatusBadGateway, 1, 0},
		{"attempts beyond the pool size", 5, [2]string{dead, dead}, http.MethodGet, "", http.StatusBadGateway, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var members []discovery.Backend
			var goodB, closerB *testBackend
			for i, kind := range tt.backends {
				id := fmt.Sprintf("%s%d", kind, i)
				switch kind {
				case dead:
					members = append(members, member(id, deadAddr(t), 1))
				case closer:
					closerB = newBackend(t, id, hijackClose)
					members = append(members, member(id, closerB.addr(), 1))
				case good:
					goodB = newBackend(t, id, nil)
					members = append(members, member(id, goodB.addr(), 1))
				}
			}
			cfg := DefaultConfig()
			cfg.Retry.Attempts = tt.attempts
			tp := startProxy(t, cfg, Options{}, onePoolSnapshot("round_robin", false, members...))

			r := send(t, newClient(t), tt.method, tp.url+"/x", "", nil, tt.body)
			if tt.wantStatus == http.StatusOK {
				if r.status != http.StatusOK || r.body != goodB.name {
					t.Fatalf("got %d %q, want 200 from %s", r.status, r.body, goodB.name)
				}
			} else {
				checkErrorAnswer(t, r, tt.wantStatus, "failed to answer")
			}
			if got := counterValue(t, tp.reg, "veloflux_retries_total", map[string]string{"pool": "web"}); got != tt.wantRetries {
				t.Fatalf("veloflux_retries_total = %v, want %v", got, tt.wantRetries)
			}
			if closerB != nil && closerB.hits() != 1 {
				t.Fatalf("the failing backend saw %d requests, want 1", closerB.hits())
			}
			if goodB != nil {
				if goodB.hits() != tt.wantGood {
					t.Fatalf("the healthy backend saw %d requests, want %d", goodB.hits(), tt.wantGood)
				}
				if tt.wantGood > 0 {
					if seen := goodB.last(t); seen.Method != tt.method || seen.Body != tt.body {
						t.Fatalf("the healthy backend saw %s with body %q, want %s %q", seen.Method, seen.Body, tt.method, tt.body)
					}
				}
			}
			// A retry moves the request's in-flight count; none may be left behind.
			for _, m := range members {
				testutil.Eventually(t, m.ID+" active count to reach 0", func() bool { return activeOf(t, tp.Proxy, "web", m.ID) == 0 })
			}
		})
	}
}
