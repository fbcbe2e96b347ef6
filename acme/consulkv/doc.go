// Package consulkv keeps certmagic's storage in Consul KV, so that every VeloFlux node of a
// cluster shares one set of ACME certificates, account keys, HTTP-01 challenge tokens and
// locks: a name is ordered by one node and served by all, and a challenge request that lands
// on another node than the one that ordered is still answered.
//
// Keys are certmagic's, under a prefix: prefix/certificates/…/example.com.crt. Values are
// stored as they are (a certificate stays readable with `consul kv get`); the time a value was
// written is kept in the pair's flags, in Unix nanoseconds, for Stat.
//
// Locks are Consul sessions with a TTL (10s by default) that the holder renews; a holder that
// dies stops renewing, and Consul invalidates its session after at most twice the TTL (Consul's
// grace), deleting the lock, so another node takes over within about 20 s. The session's
// lock-delay is 1 ms rather than Consul's 15 s: certmagic checks storage again after taking a
// lock, so a lock taken right after a holder was cut off costs at most a duplicate order.
package consulkv
