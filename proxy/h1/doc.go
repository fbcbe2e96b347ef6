// Package h1 frames HTTP/1.x requests as they arrive on a client connection, strictly, before
// net/http reads them.
//
// net/http is lenient where an edge proxy must not be: it serves a request carrying both
// Content-Length and Transfer-Encoding (dropping the length), and on HTTP/1.0 it ignores
// Transfer-Encoding. A front end that frames the same bytes by the other header then sees a
// different request boundary than VeloFlux does, and an attacker's bytes become a second
// request on a connection shared with other users (request smuggling). net/http removes the
// evidence before a handler runs, so the check has to sit below it, on the byte stream.
//
// Conn wraps a client connection. It holds back each request head until the head is complete,
// parses it (RFC 9112, with the recipient's options taken in the strict direction), and only
// then hands it on; it follows the body's framing (Content-Length or chunked) byte by byte, so
// it always knows where the next head starts. A head that breaks a rule never reaches
// net/http: in its place Conn hands on a synthetic request whose target carries the Guard's
// secret token, which the proxy's handler recognises (Conn.Rejected), answers with the
// rejection's status, and closes the connection. Because the synthetic request travels the
// ordinary path, responses to the requests before it on a pipelined connection go out first
// and in order. A malformed chunked body ends in a read error (ErrMalformedBody) that the
// handler sees while reading the body.
//
// Rules, each a rejection:
//   - request line: method a token, single spaces, target without controls, spaces or '#',
//     version HTTP/1.0 or HTTP/1.1 (505 for another HTTP version), CRLF line ends only;
//     CONNECT (405); "*" only with OPTIONS; absolute-form only for http and https;
//   - fields: name a token directly followed by ':', value without NUL, CR, LF or other
//     controls but tab; no obs-fold continuation lines; at most Limits.MaxHeaderCount fields
//     and Limits.MaxHeaderBytes for the whole head (431; 414 when the request line alone is
//     longer);
//   - framing: exactly one Host on HTTP/1.1 and at most one on HTTP/1.0; at most one
//     Content-Length, all digits; Transfer-Encoding only on HTTP/1.1, only once, only
//     "chunked", never with Content-Length; no body on an upgrade request;
//   - chunked bodies: hex sizes of at most 15 digits, CRLF after every size line and every
//     chunk's data, extensions without controls, trailers by the field rules above.
//
// After an upgrade request (Connection: upgrade with an Upgrade field) Conn stops framing and
// passes bytes through: the connection then belongs to the upgraded protocol, and the proxy
// closes it after any answer but 101. After a request that closes the connection, or after a
// rejection, Conn discards what the client sends.
package h1
