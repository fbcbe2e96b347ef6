package proxy

import (
	"net/netip"
	"strings"
)

// trustedSet is the list of proxy networks whose X-Forwarded-For we believe.
type trustedSet []netip.Prefix

func (t trustedSet) contains(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP returns the address a request really comes from. The socket peer is the client
// unless it is a trusted proxy; then X-Forwarded-For is read right to left and the first
// address that is not itself a trusted proxy is the client. An unparsable entry ends the walk
// at the last address we could verify, so a client can never choose its identity by sending
// a header through a trusted proxy that appends to it.
func (t trustedSet) clientIP(peer netip.Addr, xff []string) (client netip.Addr, peerTrusted bool) {
	if len(t) == 0 || !t.contains(peer) {
		return peer, false
	}
	client = peer
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for len(line) > 0 {
			var entry string
			if c := strings.LastIndexByte(line, ','); c >= 0 {
				entry, line = line[c+1:], line[:c]
			} else {
				entry, line = line, ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			a, ok := parseForwardedAddr(entry)
			if !ok {
				return client, true
			}
			client = a
			if !t.contains(a) {
				return client, true
			}
		}
	}
	return client, true
}

// parseForwardedAddr parses one X-Forwarded-For entry: an IPv4 or IPv6 address, optionally
// with a port ("1.2.3.4:80", "[2001:db8::1]:80") as some proxies write it.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return normalizeAddr(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalizeAddr(ap.Addr()), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return normalizeAddr(a), true
		}
	}
	return netip.Addr{}, false
}

// normalizeAddr drops zones and turns IPv4-mapped IPv6 into IPv4, so one client has one key.
func normalizeAddr(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// peerString is peer (parsed from remote by peerAddr) as text: for IPv4, the host part of
// remote itself, which the parser accepted in canonical form, so no string is made.
func peerString(remote string, peer netip.Addr) string {
	if peer.Is4() {
		if i := strings.LastIndexByte(remote, ':'); i > 0 && strings.IndexByte(remote[:i], ':') < 0 {
			return remote[:i]
		}
	}
	return peer.String()
}

// peerAddr parses http.Request.RemoteAddr ("ip:port").
func peerAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		// Unix sockets and test transports have no IP; they are their own single client.
		return netip.IPv6Unspecified()
	}
	return normalizeAddr(ap.Addr())
}
