package balance

import (
	"math"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// ipHash sends each client key to the backend Rendezvous chooses.
type ipHash struct{}

func (ipHash) Pick(cands []*Backend, key uint64) int { return Rendezvous(cands, key) }

// HashString returns the 64-bit xxHash (XXH64, seed 0) of s. It is the same on every process
// and machine, so nodes of a cluster agree on backend identities and client keys.
func HashString(s string) uint64 { return xxhash.Sum64String(s) }

// HashBytes is HashString for a byte slice, e.g. a client IP's 4 or 16 bytes.
func HashBytes(b []byte) uint64 { return xxhash.Sum64(b) }

// Rendezvous returns the index of the candidate with the highest random weight for key, or -1
// when cands is empty. Each candidate's score depends only on key, its own Hash and its own
// weight, never on the other candidates or their order. So when a backend leaves, exactly
// the keys it won move (each to its runner-up), every other key stays put, and when it returns
// it wins back exactly those keys.
//
// Weights use the logarithmic method: score = w / -ln(u) with u in (0,1) drawn from
// hash(key, backend), which gives each backend a share of keys proportional to its weight. When all weights are equal the score is monotone in u, so the
// raw hash is compared and no logarithm is computed.
//
// The choice is a pure function of (key, IDs, weights): the same on every node and restart.
// The weighted path uses float64 math.Log, whose last bit may differ between CPU
// architectures; that can only flip keys whose top two scores agree to about 1e-15.
func Rendezvous(cands []*Backend, key uint64) int {
	switch len(cands) {
	case 0:
		return -1
	case 1:
		return 0
	}
	w0 := cands[0].weight64()
	equal := true
	for _, b := range cands[1:] {
		if b.weight64() != w0 {
			equal = false
			break
		}
	}
	best := 0
	if equal {
		// u is derived from the top 52 bits, so compare those: the same order the weighted
		// path gives for equal weights.
		bestH := pairHash(key, cands[0].hash) >> 12
		for i := 1; i < len(cands); i++ {
			h := pairHash(key, cands[i].hash) >> 12
			if h > bestH || (h == bestH && cands[i].hash > cands[best].hash) {
				best, bestH = i, h
			}
		}
		return best
	}
	bestS := score(key, cands[0])
	for i := 1; i < len(cands); i++ {
		b := cands[i]
		u := unitFloat(pairHash(key, b.hash))
		w := float64(b.weight64())
		// -ln(u) >= 1-u, so w/(1-u) bounds the score from above. Most candidates cannot beat
		// the best so far even at that bound, and skipping their logarithm makes large pools
		// several times cheaper. The bound is widened far beyond rounding error so a pruned
		// candidate could never have won with its exactly computed score.
		if w/(1-u)*(1+0x1p-40) < bestS {
			continue
		}
		s := w / -math.Log(u)
		// Ties, however unlikely, go to the larger backend hash so the order of cands cannot
		// decide them.
		if s > bestS || (s == bestS && b.hash > cands[best].hash) {
			best, bestS = i, s
		}
	}
	return best
}

// score is the weighted rendezvous score w / -ln(u).
func score(key uint64, b *Backend) float64 {
	return float64(b.weight64()) / -math.Log(unitFloat(pairHash(key, b.hash)))
}

// unitFloat maps the top 52 bits of h into the open interval (0,1), centred in their
// sub-interval: (k+0.5)/2^52 is exact in a float64, never 0 or 1, so -ln(u) is finite and
// positive.
func unitFloat(h uint64) float64 {
	return (float64(h>>12) + 0.5) * 0x1p-52
}

// pairHash mixes a client key and a backend hash into one well-distributed 64-bit value
// (wyhash's 64-bit pair hash). It multiplies the two inputs together, so it avoids the
// structure of xor- or add-combined hashes, where key pairs can swap backends; and it is
// pure integer arithmetic, so it is identical on every machine.
func pairHash(key, backend uint64) uint64 {
	const (
		s0 = 0xa0761d6478bd642f
		s1 = 0xe7037ed1a0b428db
	)
	hi, lo := bits.Mul64(key^s0, backend^s1)
	hi, lo = bits.Mul64(lo^s0, hi^s1)
	return hi ^ lo
}
