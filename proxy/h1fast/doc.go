// Package h1fast serves HTTP/1.1 on connections that an h1.Guard frames, with its own
// connection loop instead of net/http's server, for the plain listener's hot path.
//
// The guard hands on request heads only once they are complete and valid, and never more
// than one request's bytes per read, so the loop here parses a head it knows to be well
// formed: one string per head, header keys and values sliced from it, the request, its header
// map and its response writer taken from a pool and given back when the response is out. The
// handler is any http.Handler (the proxy's); the writer supports Flush, Hijack (WebSocket
// upgrades), read and write deadlines through http.ResponseController, trailers and
// 100-continue.
//
// A request body with a length whose bytes the guard does not hold, and the body of a
// response with a length, can be handed to a kernel copy (package splice): the body offers
// the client's socket and the number of bytes left (SpliceSource), the writer sends the head
// and offers the socket for the bytes after it (SpliceTarget), and whoever copies reports
// what moved (Spliced, SplicedOut) so that framing, keep-alive and errors stay as with Read
// and Write.
//
// An idle connection holds no goroutine and no buffer. On Linux every connection whose socket
// can be reached (plain TCP, not TLS) is registered once, edge-triggered, with an epoll
// instance shared by the server (whose own descriptor waits in the Go runtime's poller); when
// a response is out and nothing more is buffered, the connection's goroutine lets it go and
// the connection waits in that epoll set until the client sends again, when it is handed to a
// goroutine that waits for work, or to a new one. The same registration reports a client that
// closes its connection while its request is being served: the request's context ends, and
// the proxy records 499 instead of waiting for the backend. Elsewhere, and for connections
// the epoll set cannot watch, an idle connection waits in a goroutine, as with net/http.
//
// Limits: ReadHeaderTimeout bounds each head from its first byte (and a woken connection's
// wait for the rest of it), ReadTimeout a whole request, IdleTimeout the wait for the next
// request. Shutdown closes idle connections at once and waits for the others to finish their
// response; a connection that has not sent its first request is left NewConnGrace (5 s by
// default) from its accept to send it, and is then served with Connection: close. Once a
// burst of connections is over, the memory that served it goes back to the system
// (ReturnMemoryEvery).
package h1fast
