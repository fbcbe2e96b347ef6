// Package hostrule holds the rules for host names, ports and route hosts that the config file,
// Consul tags and the router share, so that a host valid in one place is valid in every other.
package hostrule

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Port returns why port is not a decimal port number from minPort to 65535, or "".
func Port(port string, minPort int) string {
	if port == "" || len(port) > 5 || strings.IndexFunc(port, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return fmt.Sprintf("invalid port %s", quote(port))
	}
	n, _ := strconv.Atoi(port)
	if n < minPort || n > 65535 {
		return fmt.Sprintf("port %d out of range %d-65535", n, minPort)
	}
	return ""
}

// Name returns why h is not a DNS name, or "": labels of letters (either case), digits, "-"
// and "_", at most 63 characters each and 253 in all.
// Underscores are allowed because container and Consul service names use them.
func Name(h string) string {
	if len(h) > 253 {
		return "longer than 253 characters"
	}
	for label := range strings.SplitSeq(h, ".") {
		switch {
		case label == "":
			return "empty label"
		case len(label) > 63:
			return "label longer than 63 characters"
		case label[0] == '-' || label[len(label)-1] == '-':
			return "a label must not start or end with \"-\""
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Sprintf("invalid character %q (internationalized names must be written in punycode)", r)
			}
		}
	}
	return ""
}

// Route returns why h cannot be a route host, or "": "" (every host), a DNS name, "*." and
// a name (every subdomain), an IPv4 address, or an IPv6 address in brackets, each with an
// optional ":port". Case does not matter: hosts are compared in lower case (NormalizeRoute).
// "*" alone is refused; callers say what to write instead.
func Route(h string) string {
	if h == "" {
		return ""
	}
	if h == "*" {
		return "\"*\" is not a host"
	}
	host := h
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return fmt.Sprintf("invalid host %s: missing \"]\"", quote(h))
		}
		host = h[1:end]
		if rest := h[end+1:]; rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return fmt.Sprintf("invalid host %s: unexpected text after \"]\"", quote(h))
			}
			if msg := Port(rest[1:], 1); msg != "" {
				return msg
			}
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Sprintf("%s in brackets is not an IPv6 address", quote(host))
		}
		return ""
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if msg := Port(h[i+1:], 1); msg != "" {
			return msg
		}
		host = h[:i]
	}
	name, wildcard := strings.CutPrefix(host, "*.")
	if strings.Contains(name, "*") {
		return fmt.Sprintf("invalid host %s: a wildcard must be the whole leftmost label, e.g. \"*.example.com\"", quote(h))
	}
	if a, err := netip.ParseAddr(name); err == nil && a.Is4() {
		if wildcard {
			return fmt.Sprintf("invalid host %s: an IP address cannot have a wildcard", quote(h))
		}
		return ""
	}
	if msg := Name(name); msg != "" {
		return fmt.Sprintf("invalid host %s: %s", quote(h), msg)
	}
	return ""
}

// HostPort returns why addr is not a usable host:port, or "". Listeners pass minPort 0 (port 0
// picks a free port, which tests rely on) and allow an empty host (all interfaces).
func HostPort(addr string, minPort int, hostRequired bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			switch ae.Err {
			case "missing port in address":
				return "missing port"
			case "too many colons in address":
				return "IPv6 addresses must be in brackets, e.g. \"[::1]:8080\""
			}
			return ae.Err
		}
		return err.Error()
	}
	if msg := Port(port, minPort); msg != "" {
		return msg
	}
	switch {
	case host == "":
		if hostRequired {
			return "missing host"
		}
	case strings.HasPrefix(addr, "["):
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return fmt.Sprintf("%s in brackets is not an IPv6 address", quote(host))
		}
	default:
		if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
			return ""
		}
		if msg := Name(host); msg != "" {
			return fmt.Sprintf("invalid host %s: %s", quote(host), msg)
		}
	}
	return ""
}

// HostOrIP returns why h is not a bare host name or IP address, or "". Ports and brackets are
// refused because the value is used where only a host fits (a TLS server name, a registered
// service address).
func HostOrIP(h string) string {
	if _, _, err := net.SplitHostPort(h); err == nil {
		return fmt.Sprintf("must be a host name or IP address without a port, got %s", quote(h))
	}
	if strings.HasPrefix(h, "[") {
		return fmt.Sprintf("write an IPv6 address without brackets, got %s", quote(h))
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return fmt.Sprintf("an address with a zone means nothing to other machines, got %s", quote(h))
		}
		return ""
	}
	if msg := Name(h); msg != "" {
		return fmt.Sprintf("invalid host %s: %s", quote(h), msg)
	}
	return ""
}

// NormalizeRoute is the form route hosts are compared in: lower case, without a trailing dot.
func NormalizeRoute(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	if host, port, err := net.SplitHostPort(h); err == nil {
		return net.JoinHostPort(strings.TrimSuffix(host, "."), port)
	}
	return strings.TrimSuffix(h, ".")
}

// quote shows a value in a message, cut at 64 bytes so a huge value cannot flood a log line.
func quote(s string) string {
	const maxShown = 64
	if len(s) > maxShown {
		return strconv.Quote(s[:maxShown]) + "..."
	}
	return strconv.Quote(s)
}
