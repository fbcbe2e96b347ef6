// Package splice moves a body of known length from one TCP socket to another with splice(2)
// through a pipe, so that the kernel copies it and the bytes never enter user space.
//
// The two halves of each step, socket to pipe and pipe to socket, run separately through
// each connection's syscall.RawConn, so a failure is reported as the source's (a read error:
// the sender broke off, its deadline passed) or the destination's (a write error: the
// receiver went away), never as one error of the copy: a proxy answers those two differently.
// Both sockets keep their deadlines, and closing either ends a copy blocked on it, as with
// Read and Write; the runtime's poller does the waiting, so a blocked copy holds no thread.
//
// Pipes are pooled by a Copier; one that still holds bytes after a failed write is closed,
// never pooled. Only Linux splices (Available); elsewhere Copy moves nothing and callers keep
// their buffer copy.
package splice
