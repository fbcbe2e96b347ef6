package localerr

import (
	"errors"
	"net"
	"strings"
	"syscall"
)

// local are the errnos that only this process or host can cause.
var local = [...]syscall.Errno{
	syscall.EMFILE,        // this process is at its open-files limit (RLIMIT_NOFILE)
	syscall.ENFILE,        // the host is at its open-files limit
	syscall.ENOBUFS,       // the kernel has no socket buffer space left
	syscall.ENOMEM,        // the kernel could not allocate memory for the socket
	syscall.EADDRNOTAVAIL, // no free local port (ephemeral range used up) or no such local address
}

// Is reports whether err was caused by this process or host rather than by the peer: one of
// EMFILE, ENFILE, ENOBUFS, ENOMEM or EADDRNOTAVAIL, found with errors.Is through the
// *url.Error, *net.OpError and *os.SyscallError wrappers that net and net/http put around it.
//
// A DNS lookup that failed for one of these reasons counts too. net keeps only the text of
// the underlying error in a *net.DNSError, so that case is recognised by the errno's message
// ending DNSError.Err.
//
// A context that ended is not a local error, even when it ran out before a dial started: net
// reports a deadline that passed before connect and one that passed during it with the same
// error, and the second is the peer's slowness. Callers keep local waits (a queue, a
// semaphore) out of the context they dial with, so an expired dial context means the peer
// or the path to it was slow.
func Is(err error) bool {
	if err == nil {
		return false
	}
	for _, errno := range local {
		if errors.Is(err, errno) {
			return true
		}
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		for _, errno := range local {
			if strings.HasSuffix(dns.Err, errno.Error()) {
				return true
			}
		}
	}
	return false
}
