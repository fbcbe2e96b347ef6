// Package consensus is the health verdict a cluster of VeloFlux nodes agrees on: the View the
// proxy reads.
//
// Sharded probing: every node computes, from the same member list, which k members probe each
// backend (rendezvous hashing, among the members of the backend's region when it has any), and
// hands its own health.Checker only its share. Observations: each prober writes its verdict on
// a backend as a KindHealth entry of the gossip store, with an absolute expiry, refreshed at half
// of it while its Checker keeps probing; the passive checks' ejections are shared the same way,
// for the admin API only. Consensus: a backend is down when a quorum (a strict majority) of its
// assigned probers have a fresh observation saying down; every node judges from the same store,
// so all reach the same view without coordination. View.Healthy answers from an immutable
// snapshot, without a lock or an allocation, and View.Status explains each verdict.
//
// Without a gossip store, or with no peer in sight, a View is standalone: this node probes
// every backend and its own Checker's verdicts are the view.
//
// Callbacks never block: the store's change hook, on the gossip receive path, and ReportLocal,
// the passive checks' OnChange hook on the path of the request that ejected a backend, only
// enqueue; Run does the work under the View's lock. This is the only health package that
// imports gossip; health itself knows nothing of other nodes.
package consensus
