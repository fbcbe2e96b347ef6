// Package balance chooses which backend of a pool serves a request.
//
// Its one job is the choice itself: health filtering, sticky sessions and retries belong to
// the proxy, which hands a Policy only the candidates that may take traffic right now. A
// Policy is a single method so the proxy can hold any of them behind one field, and every
// Policy is safe for concurrent use and allocation-free, because Pick runs once per request.
//
// Per-backend state (weight, in-flight count, identity hash, round-robin position) lives in a
// Backend that the proxy keeps across routing-table rebuilds. That is what lets a config
// reload or a Consul weight change keep connection counts and the round-robin rhythm instead
// of resetting them.
//
// Algorithms:
//
//   - round_robin (alias weighted): nginx's smooth weighted round robin; exact shares, with
//     heavy backends' turns spread out rather than bunched.
//   - least_conn: power of two random choices on in-flight requests per unit of weight; close
//     to true least-connections without a global scan or lock.
//   - ip_hash: weighted rendezvous hashing of a client key; when a backend leaves, only the
//     clients it served move.
//   - random: weighted random.
package balance
