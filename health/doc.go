// Package health judges backends from this node: it decides which backends its own checks
// let receive traffic.
//
// Active checks: a Checker probes each Target (HTTP with a method, Host and expected
// statuses, or a bare TCP connect) on its own jittered schedule, backing off while a backend
// is down, flips a backend down after Fall consecutive failures and up again after Rise
// consecutive successes, and publishes the result as an immutable snapshot read lock-free
// through Healthy. A Target may override the Checker's Config, as a pool's own health_check
// settings do. OnResult hands every result to whoever builds on the Checker.
//
// Passive checks: a Passive takes the outcome of every request the proxy sends (Report),
// ejects a backend after consecutive failures, within a per-pool limit, and returns it after
// a growing ejection time, through an immediate active probe when it has one. Ejected reads
// an immutable snapshot too; OnChange reports every ejection and return.
//
// What the cluster makes of these verdicts (who probes which backend, the quorum of their
// observations, sharing them over gossip) is package health/consensus, which drives a Checker
// and listens to a Passive. This package knows nothing of gossip or of other nodes.
//
// The package knows nothing about the proxy either: the proxy declares the small interfaces
// it needs. *Passive satisfies proxy.PassiveHealth as it is, because Outcome is an alias of
// internal/attempt's type, which proxy.Outcome aliases too; cmd composes the proxy's health
// view from Passive.Ejected, the consensus and the operators' drains.
package health
