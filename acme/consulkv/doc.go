// Package consulkv keeps certmagic's storage in Consul KV, so that every VeloFlux node of a
// cluster shares one set of ACME certificates, account keys, HTTP-01 challenge tokens and
// locks: a name is ordered by one node and served by all, and a challenge request that lands
// on another node than the one that ordered is still answered.
//
// Keys are certmagic's, under a prefix: prefix/certificates/…/example.com.crt. Values are
// stored as they are (a certificate stays readable with `consul kv get`); the time a value was
// written is kept in the pair's flags, in Unix nanoseconds, for Stat.
//
// Locks are Consul sessions that the holder renews. Consul drops a session that is not renewed
// somewhere between its TTL and twice its TTL after the last renewal, so the session's TTL is
// half the configured lock TTL (20s by default, session 10s, renewed every 5s): a holder that
// dies stops renewing, and its lock is gone at most the lock TTL later, Consul deleting it with
// the session; a node waiting for it is woken by its blocking query on the lock key and takes
// it at once. The session's lock-delay is 1 ms rather than Consul's 15 s, which would otherwise
// be added to every takeover: certmagic checks storage again after taking a lock, so a lock
// taken right after a holder was cut off costs at most a duplicate order.
package consulkv
