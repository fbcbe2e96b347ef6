// Package acme obtains and renews the TLS listener's certificates with ACME (certmagic), for
// the exact host names VeloFlux routes and no others.
//
// Names come from the routing table (SetNames): a name is ordered when it appears, in the
// background, and renewed in the background before it expires; a client's SNI never starts
// an order, so a client cannot exhaust the CA's rate limits by asking for names. Challenges are
// HTTP-01, answered on the plain listener (HandleHTTPChallenge), and TLS-ALPN-01, answered by
// the TLS listener's GetCertificate (TLSConfig). A failed renewal keeps the old certificate in
// use; it is counted in veloflux_acme_* metrics and shown in Status.
//
// With a shared certmagic.Storage (acme/consulkv) the nodes of a cluster share certificates,
// account keys, challenge tokens and locks: one node orders a name, every node serves it, and a
// challenge request that reaches another node is answered from the shared tokens.
package acme
