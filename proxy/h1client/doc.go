// Package h1client is a pooled HTTP/1.1 client for plain-TCP backends, an http.RoundTripper
// that does on the caller's goroutine what net/http's Transport spreads over three: it writes
// the request, reads the response head and hands back a body that reads straight from the
// connection. No goroutine or channel is involved per request or per connection, and bodies of
// any size stream through in both directions; nothing is buffered whole.
//
// A connection goes back to its backend's idle list (last in, first out, at most
// Options.MaxIdlePerHost) as soon as the response body has been read to its end and the
// backend did not ask to close; a body closed early closes the connection. A request sent on
// a reused connection that the backend had closed in the meantime (it read nothing, answered
// nothing) is sent once more on a new connection when nothing of its body was read yet, as
// net/http's Transport does. Interim responses (1xx other than 101: 100 Continue, 103 Early
// Hints) go to Transport.Got1xxResponse, or to the request context's httptrace.ClientTrace,
// before the final one; a request with "Expect: 100-continue" sends its head alone and its
// body once the backend answers 100, or after Options.ExpectContinueTimeout of silence, and
// not at all when the backend answers first. The trailer of a chunked request body is
// announced in the head and sent after the last chunk, with the values the request's Trailer
// holds by then. A 101 response's body is the connection itself (an io.ReadWriteCloser), as
// httputil.ReverseProxy expects of an upgrade.
//
// On Linux, a body of at least splice.MinLength bytes with a length moves between the
// client's and the backend's plain TCP sockets by splice(2), after what was read with its
// head went through the buffer: a request body whose reader offers its socket
// (SpliceSource, as the fast server's body does), and a response body the caller moves with
// SpliceTo. Failures keep their side: a backend that breaks off is a read error of the
// response body, a client that goes away a write error, and the pooled connection is closed
// unless the whole body passed. Options.NoSplice turns this off.
//
// Errors keep their kind for the caller's decisions: a failed connect is a *net.OpError whose
// Op is "dial", a response head that did not arrive within Options.ResponseHeaderTimeout is a
// net.Error whose Timeout is true, and a request whose context ended wraps the context's
// error.
package h1client
