package proxy

import (
	"context"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/veloflux/veloflux/discovery"
)

// TestLocalDialFailureIsNotTheBackends: when this node cannot open a connection for lack of
// its own resources (here socket() failing with EMFILE, wrapped as net wraps it), the client
// gets 503 and the passive checks hear nothing against the backend.
func TestLocalDialFailureIsNotTheBackends(t *testing.T) {
	tests := []struct {
		name     string
		backends int
		attempts int
	}{
		{name: "one backend", backends: 1, attempts: 1},
		{name: "retried on a second backend that fails the same way", backends: 2, attempts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var members []discovery.Backend
			var bes []*testBackend
			for i := range tt.backends {
				be := newBackend(t, "b", nil)
				bes = append(bes, be)
				members = append(members, member(string(rune('a'+i)), be.addr(), 1))
			}
			cfg := DefaultConfig()
			cfg.Retry.Attempts = tt.attempts
			rec := &outcomeRecorder{}
			tp := startProxy(t, cfg, Options{Passive: rec}, onePoolSnapshot("round_robin", false, members...))
			var dials atomic.Int64
			// Set before the first request, so no request reads it while it changes.
			failing := func(_ context.Context, network, _ string) (net.Conn, error) {
				dials.Add(1)
				return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("socket", syscall.EMFILE)}
			}
			tp.transports.http.DialContext = failing
			if tp.transports.fast != nil {
				tp.transports.fast.DialContext = failing
			}
			r := send(t, newClient(t), http.MethodGet, tp.url+"/", "", nil, "")
			checkErrorAnswer(t, r, http.StatusServiceUnavailable, errOverloaded.Error())
			if got := rec.get(); len(got) != 0 {
				t.Fatalf("passive reports %v for local failures, want none", got)
			}
			if got := dials.Load(); got != int64(tt.attempts) {
				t.Fatalf("%d dials, want %d", got, tt.attempts)
			}
			for _, be := range bes {
				if be.hits() != 0 {
					t.Fatalf("backend %s was reached through a failing dialer", be.name)
				}
			}
		})
	}
}
