//go:build !unix

package proxy

// DefaultMaxClientConns is the cap where there is no open-files limit to derive it from
// (Windows has no RLIMIT_NOFILE): no practical cap, as on Unix with an unlimited one.
// global.limits.max_client_conns sets one.
func DefaultMaxClientConns() int { return 1 << 20 }
