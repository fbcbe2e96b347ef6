//go:build unix

package proxy

import "syscall"

// DefaultMaxClientConns derives a client connection cap from the process's open-files limit:
// half of what is left after a reserve of 256 descriptors, so that every client connection
// can have a backend connection open beside it and health probes, Consul, gossip and the
// admin listener still find descriptors. At least 64.
func DefaultMaxClientConns() int {
	var lim syscall.Rlimit
	// Unlimited (RLIM_INFINITY) or too large to mean anything: no practical cap.
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 1 << 20
	}
	return max(int(lim.Cur)-256, 128) / 2
}
