package balance

import "math/rand/v2"

// weightedRandom picks each candidate with probability weight/total. It keeps no state, so it
// is the policy with the least coordination between concurrent picks.
type weightedRandom struct{}

func (weightedRandom) Pick(cands []*Backend, _ uint64) int {
	switch len(cands) {
	case 0:
		return -1
	case 1:
		return 0
	}
	var total int64
	for _, b := range cands {
		total += b.weight64()
	}
	r := rand.Int64N(total)
	for i, b := range cands {
		// Weights are re-read here; if one changed since the sum, r may run past the end and
		// the last candidate takes the remainder. That skews only picks racing a weight change.
		if r -= b.weight64(); r < 0 {
			return i
		}
	}
	return len(cands) - 1
}
