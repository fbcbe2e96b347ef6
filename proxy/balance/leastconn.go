package balance

import "math/rand/v2"

// leastConn is least connections by the power of two choices: compare two distinct random
// candidates and take the less loaded. Scanning every candidate would herd all concurrent
// picks onto the same momentarily idle backend; two random choices avoid that, need no lock,
// and still keep the maximum load exponentially closer to the mean than one random choice.
//
// Load is in-flight requests per unit of weight, compared by cross-multiplying so no floats
// are needed. On equal load the heavier backend wins, as it has more capacity left.
type leastConn struct{}

func (leastConn) Pick(cands []*Backend, _ uint64) int {
	n := len(cands)
	switch n {
	case 0:
		return -1
	case 1:
		return 0
	}
	// math/rand/v2's top-level functions use the runtime's per-thread generator: no lock,
	// no allocation, no shared state of ours.
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++ // distinct from i, and uniform over the other n-1
	}
	a, b := cands[i], cands[j]
	aw, bw := a.weight64(), b.weight64()
	// active/weight compared as active_a*weight_b vs active_b*weight_a. A negative active
	// cannot happen (Release panics first), and MaxWeight keeps the products small.
	la, lb := a.Active()*bw, b.Active()*aw
	switch {
	case la < lb:
		return i
	case lb < la:
		return j
	case bw > aw:
		return j
	}
	return i
}
