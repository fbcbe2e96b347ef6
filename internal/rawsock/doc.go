// Package rawsock reads and writes TCP sockets without telling the Go runtime that a system
// call is under way.
//
// A read or write on a non-blocking socket never blocks, but Go's net package makes it like
// any system call: it marks the goroutine as in a system call, and when the runtime's monitor
// thread sleeps because every processor was idle, wakes it. A proxy at a moderate request rate
// goes idle between requests, so every request woke the monitor, which then ticked every 20 us
// until the processors were idle again: at 5,000 requests/s on one CPU, perf put the monitor
// at 18% of the proxy's CPU samples, on the same CPU as the requests. Conn makes the same
// reads and writes as raw system calls, and waits for readiness in the runtime's poller as
// before, so deadlines, Close and the rest of net.TCPConn behave as they do.
package rawsock
