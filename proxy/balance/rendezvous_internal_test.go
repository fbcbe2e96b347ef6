package balance

import (
	"fmt"
	"math"
	"testing"
)

// referenceRendezvous is the textbook weighted rendezvous: score every candidate, no fast
// path, no pruning. Rendezvous must agree with it on every key.
func referenceRendezvous(cands []*Backend, key uint64) int {
	best, bestS := -1, math.Inf(-1)
	for i, b := range cands {
		s := float64(b.weight64()) / -math.Log(unitFloat(pairHash(key, b.hash)))
		if best < 0 || s > bestS || (s == bestS && b.hash > cands[best].hash) {
			best, bestS = i, s
		}
	}
	return best
}

func TestRendezvousMatchesReference(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{name: "equal weights take the hash path", weights: []int{7, 7, 7, 7, 7, 7, 7, 7}},
		{name: "mixed small", weights: []int{1, 2, 3}},
		{name: "mixed large pool", weights: func() []int {
			ws := make([]int, 64)
			for i := range ws {
				ws[i] = 1 + (i*37)%11
			}
			return ws
		}()},
		{name: "extreme spread", weights: []int{1, MaxWeight, 1, 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := make([]*Backend, len(tt.weights))
			for i, w := range tt.weights {
				bs[i] = new(Backend)
				bs[i].Init(fmt.Sprintf("node-%d", i), w)
			}
			for k := range uint64(20000) {
				key := HashBytes([]byte{byte(k), byte(k >> 8), byte(k >> 16)})
				if got, want := Rendezvous(bs, key), referenceRendezvous(bs, key); got != want {
					t.Fatalf("key %#x: Rendezvous = %d, reference = %d", key, got, want)
				}
			}
		})
	}
}

func TestUnitFloatOpenInterval(t *testing.T) {
	tests := []struct {
		name string
		h    uint64
	}{
		{name: "zero", h: 0},
		{name: "one", h: 1},
		{name: "middle", h: 1 << 63},
		{name: "max", h: math.MaxUint64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := unitFloat(tt.h)
			if !(u > 0 && u < 1) {
				t.Fatalf("unitFloat(%#x) = %v, want in (0,1)", tt.h, u)
			}
			if l := -math.Log(u); math.IsInf(l, 0) || l <= 0 {
				t.Fatalf("-ln(unitFloat(%#x)) = %v, want finite and positive", tt.h, l)
			}
		})
	}
}
