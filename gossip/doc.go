// Package gossip shares state between VeloFlux nodes without a central store: a
// memberlist cluster (Node) carries broadcasts of a conflict-free replicated key/value Store, in
// which sticky-session moves, backend health observations and drain flags merge by
// last-writer-wins on a hybrid logical clock, deletes are expiring tombstones, and every message
// is a versioned, size-capped binary encoding. Push/pull exchanges carry a digest of the Store,
// after which two nodes send each other only the entries that differ (catchup.go). It imports
// none of the other VeloFlux packages; health, proxy and cmd build on it.
package gossip
