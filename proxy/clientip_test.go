package proxy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := trustedSet{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name        string
		peer        string
		xff         []string
		want        string
		wantTrusted bool
	}{
		{"untrusted peer ignores header", "203.0.113.9", []string{"1.1.1.1"}, "203.0.113.9", false},
		{"trusted peer without header", "10.0.0.1", nil, "10.0.0.1", true},
		{"trusted peer one hop", "10.0.0.1", []string{"198.51.100.7"}, "198.51.100.7", true},
		{"right-most untrusted wins over spoofed left", "10.0.0.1", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7", true},
		{"skips trusted hops", "10.0.0.1", []string{"198.51.100.7, 10.2.3.4, 10.9.9.9"}, "198.51.100.7", true},
		{"multiple header lines read as one list", "10.0.0.1", []string{"6.6.6.6", "198.51.100.7, 10.2.3.4"}, "198.51.100.7", true},
		{"all trusted gives left-most", "10.0.0.1", []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1", true},
		{"garbage stops at last verified", "10.0.0.1", []string{"198.51.100.7, nonsense, 10.2.2.2"}, "10.2.2.2", true},
		{"garbage right next to peer", "10.0.0.1", []string{"1.2.3.4, not-an-ip"}, "10.0.0.1", true},
		{"entry with port", "10.0.0.1", []string{"198.51.100.7:4711"}, "198.51.100.7", true},
		{"ipv6 entry with port", "10.0.0.1", []string{"[2001:db8::7]:443"}, "2001:db8::7", true},
		{"ipv6 entry in brackets", "10.0.0.1", []string{"[2001:db8::7]"}, "2001:db8::7", true},
		{"ipv4-mapped entry unmapped", "10.0.0.1", []string{"::ffff:198.51.100.7"}, "198.51.100.7", true},
		{"empty entries skipped", "10.0.0.1", []string{" , 198.51.100.7 ,,"}, "198.51.100.7", true},
		{"ipv6 loopback peer trusted", "::1", []string{"192.0.2.1"}, "192.0.2.1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, tr := trusted.clientIP(netip.MustParseAddr(tt.peer), tt.xff)
			if got != netip.MustParseAddr(tt.want) || tr != tt.wantTrusted {
				t.Fatalf("clientIP = %v, %v; want %v, %v", got, tr, tt.want, tt.wantTrusted)
			}
		})
	}
}

func TestClientIPNoTrustedProxies(t *testing.T) {
	var none trustedSet
	got, tr := none.clientIP(netip.MustParseAddr("10.0.0.1"), []string{"1.2.3.4"})
	if got != netip.MustParseAddr("10.0.0.1") || tr {
		t.Fatalf("got %v %v, want the peer and untrusted", got, tr)
	}
}

func TestPeerAddr(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.1:1234":        "192.0.2.1",
		"[::ffff:192.0.2.1]:80": "192.0.2.1",
		"[fe80::1%eth0]:80":     "fe80::1",
		"@":                     "::",
	} {
		if got := peerAddr(remote); got != netip.MustParseAddr(want) {
			t.Errorf("peerAddr(%q) = %v, want %v", remote, got, want)
		}
	}
}

// FuzzClientIP checks the X-Forwarded-For walk never panics and never returns an address
// that is neither the peer nor one written in the header.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1", "198.51.100.7, 10.2.3.4")
	f.Add("10.0.0.1", "[2001:db8::1]:80,,garbage")
	f.Add("203.0.113.1", "1.1.1.1")
	trusted := trustedSet{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, peer, xff string) {
		p, err := netip.ParseAddr(peer)
		if err != nil {
			return
		}
		p = normalizeAddr(p)
		got, tr := trusted.clientIP(p, []string{xff})
		if tr != trusted.contains(p) {
			t.Fatalf("peerTrusted = %v for %v", tr, p)
		}
		if !tr && got != p {
			t.Fatalf("untrusted peer %v gave client %v", p, got)
		}
		if got != p {
			found := false
			for _, part := range splitComma(xff) {
				if a, ok := parseForwardedAddr(part); ok && a == got {
					found = true
				}
			}
			if !found {
				t.Fatalf("client %v not in header %q", got, xff)
			}
		}
	})
}

func splitComma(s string) []string {
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// TestPeerString holds the text of a peer, taken from RemoteAddr where it can be, to what
// netip.Addr.String says for the parsed address.
func TestPeerString(t *testing.T) {
	for _, remote := range []string{
		"192.0.2.7:443", "127.0.0.1:1", "[::1]:80", "[2001:db8:0:0::1]:8080", "[::ffff:192.0.2.7]:9",
		"[fe80::1%eth0]:80", "@", "", "192.0.2.7",
	} {
		t.Run(remote, func(t *testing.T) {
			peer := peerAddr(remote)
			if got, want := peerString(remote, peer), peer.String(); got != want {
				t.Fatalf("peerString(%q) = %q, want %q", remote, got, want)
			}
		})
	}
}
