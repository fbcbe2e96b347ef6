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
	return FreeAddrOn(t, "127.0.0.1")
}

// FreeAddrOn is FreeAddr on another local address, such as 127.0.0.2 for a second node that
// shares the host with the first.
func FreeAddrOn(t testing.TB, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("free address on %s: %v", ip, err)
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

// ListenSamePort returns TCP listeners on one port at each of ips, in order: nodes of a
// cluster that share a host serve on the same port at their own addresses (the admin API's
// peers). The caller closes them. Where the listeners can be handed to the servers, prefer this
// to SharedPort: a released port may be taken before it is bound again.
func ListenSamePort(t testing.TB, ips ...string) []net.Listener {
	t.Helper()
	if len(ips) == 0 {
		t.Fatal("ListenSamePort: no addresses")
	}
	// The first bind picks a port; one busy at another address means another try. Fifty
	// tries that all collide would mean the addresses are not usable at all.
	for range 50 {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatalf("listen on %s: %v", ips[0], err)
		}
		_, port, _ := net.SplitHostPort(first.Addr().String())
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			return lns
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	t.Fatalf("no port free on all of %v", ips)
	return nil
}

// SharedPort returns a port that was free for TCP at each of ips a moment ago, for child
// processes told to serve on the same port at their own addresses.
func SharedPort(t testing.TB, ips ...string) string {
	t.Helper()
	lns := ListenSamePort(t, ips...)
	for _, ln := range lns {
		ln.Close()
	}
	_, port, _ := net.SplitHostPort(lns[0].Addr().String())
	return port
}
