package balance

import (
	"errors"
	"fmt"
	"strings"
)

// Policy picks one of cands and returns its index, or -1 when cands is empty. Every element of
// cands may take traffic; the caller has already removed unhealthy backends. key identifies
// the client for affinity policies (ip_hash) and is ignored by the others.
//
// Pick is called on the request path: implementations are safe for concurrent use, do not
// block beyond a short critical section, and do not allocate.
type Policy interface {
	Pick(cands []*Backend, key uint64) int
}

// ErrUnknownAlgorithm is returned, wrapped, by New for a name not in Algorithms.
var ErrUnknownAlgorithm = errors.New("balance: unknown algorithm")

// Algorithm names accepted by New.
const (
	algoRoundRobin = "round_robin"
	algoWeighted   = "weighted"
	algoLeastConn  = "least_conn"
	algoIPHash     = "ip_hash"
	algoRandom     = "random"
)

// New returns a fresh Policy for algorithm. "weighted" is an alias of "round_robin", which is
// already weighted. Policies keep little or no state of their own (round robin's position is on
// the Backends), so building a new one on every routing-table rebuild is fine.
func New(algorithm string) (Policy, error) {
	switch algorithm {
	case algoRoundRobin, algoWeighted:
		return &roundRobin{}, nil
	case algoLeastConn:
		return leastConn{}, nil
	case algoIPHash:
		return ipHash{}, nil
	case algoRandom:
		return weightedRandom{}, nil
	}
	return nil, fmt.Errorf("%w %q (valid: %s)", ErrUnknownAlgorithm, algorithm, strings.Join(Algorithms(), ", "))
}

// Algorithms returns the names New accepts, sorted, for config validation and docs. The slice
// is new on every call, so callers may keep or modify it.
func Algorithms() []string {
	return []string{algoIPHash, algoLeastConn, algoRandom, algoRoundRobin, algoWeighted}
}
