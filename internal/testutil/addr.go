package testutil

import (
	"net"
	"testing"
)

// FreeAddr returns "127.0.0.1:port" with a port that was free for TCP a moment ago, for a
// component that must be told its address before it binds (a gossip node's seed, a child
// process's config). Anything that can listen on port 0 itself should: another process may
// take the port between this call and the bind.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free address: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreePorts returns n distinct ports on 127.0.0.1 that were free for TCP a moment ago (all held
// at once, so none repeats). A port free for TCP on loopback is in practice free for UDP too,
// which gossip and Consul's serf ports also bind.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
