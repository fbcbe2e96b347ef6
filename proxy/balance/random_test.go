package balance_test

import (
	"math"
	"testing"
)

func TestRandomWeightedShares(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{name: "equal", weights: []int{1, 1, 1, 1}},
		{name: "skewed", weights: []int{1, 2, 7}},
		{name: "one heavy", weights: []int{100, 1}},
	}
	const picks = 100000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, "random")
			bs := newBackends(tt.weights...)
			counts := make([]int, len(bs))
			for range picks {
				counts[p.Pick(bs, 0)]++
			}
			assertShares(t, counts, tt.weights, picks)
		})
	}
}

// assertShares fails unless counts are proportional to weights within six standard
// deviations of a binomial, loose enough never to flake and tight enough (well under 1% of
// picks at these sizes) to catch an unweighted or biased choice.
func assertShares(t *testing.T, counts, weights []int, n int) {
	t.Helper()
	var total int
	for _, w := range weights {
		total += w
	}
	for i, w := range weights {
		p := float64(w) / float64(total)
		want := p * float64(n)
		sigma := math.Sqrt(float64(n) * p * (1 - p))
		if math.Abs(float64(counts[i])-want) > 6*sigma+1 {
			t.Errorf("candidate %d (weight %d): %d of %d, want %.0f ± %.0f (all: %v)", i, w, counts[i], n, want, 6*sigma+1, counts)
		}
	}
}
