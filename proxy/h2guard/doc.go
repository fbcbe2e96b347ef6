// Package h2guard closes HTTP/2 connections whose client opens streams only to reset them:
// the "rapid reset" attack (CVE-2023-44487). Each HEADERS frame makes the server start a
// request to a backend, and the RST_STREAM right behind it abandons that request, so the
// client spends two small frames for every backend request it costs the proxy.
//
// Wrap goes around a connection whose TLS handshake is done, before it is handed to the
// HTTP/2 server, and follows the client's frames as the server reads them. The rule is
// Envoy's premature-reset defence, defaults included, because it has held up in production
// since the attack became known: once a connection has opened Config.MinStreams
// streams (500), it is abusive when more than half of them were reset by the client less
// than Config.PrematureWindow (1s) after they opened. Fewer streams say too little (a
// browser leaving a page cancels everything it had in flight), and a stream reset after
// the window was cancelled by someone who waited for it.
//
// The server cannot be told to send a GOAWAY, so the guard writes one itself, with
// ENHANCE_YOUR_CALM and the highest stream id the client used. It follows frame boundaries
// in the server's output as well, and puts the GOAWAY between two of the server's frames:
// never inside a frame, which the server's buffered writer may flush in parts, and never
// inside a header block, which must reach the client in one piece. It then stops passing
// the client's frames to the server, gives the client up to a second to read the GOAWAY
// (as x/net does before closing after its own), and closes the connection. The server's
// reads fail with ErrAbusive, which it takes for a closed connection.
//
// The guard reads frame headers and skips payloads; malformed input is the server's to
// reject. It allocates nothing per read or write. To date resets it keeps the open times
// of recent streams in a ring of at most 1024 (12 KiB); the ring starts at 16 and grows
// only while its oldest stream is still unreset and younger than the window, so a client
// that resets at once never grows it.
//
// Two limits, both shared with Envoy's defence: the ratio runs over the connection's whole
// life, so completed requests buy a client some resets; and a reset goes uncounted when
// more than 1024 streams opened after its stream, all within the window. The server runs
// at most its MaxConcurrentStreams (x/net's default is 250) of those at once and refuses
// the rest, so that evasion costs the client most of its flood.
package h2guard
