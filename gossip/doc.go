// Package gossip will run the memberlist cluster that VeloFlux nodes use to share backend
// health observations and sticky-session pins without a central store (issue 4). It imports
// none of the other VeloFlux packages; health and cmd build on it.
package gossip
