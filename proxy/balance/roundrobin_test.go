package balance_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/veloflux/veloflux/proxy/balance"
)

// letters renders pick indexes as a, b, c, ... to compare with nginx's documented sequences.
func letters(p balance.Policy, bs []*balance.Backend, n int) string {
	var sb strings.Builder
	for range n {
		sb.WriteByte(byte('a' + p.Pick(bs, 0)))
	}
	return sb.String()
}

func TestRoundRobinSequence(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    string // two full cycles
	}{
		{name: "nginx 5 1 1", weights: []int{5, 1, 1}, want: "aabacaa" + "aabacaa"},
		{name: "equal weights", weights: []int{1, 1, 1}, want: "abc" + "abc"},
		{name: "3 2", weights: []int{3, 2}, want: "ababa" + "ababa"},
		{name: "2 1", weights: []int{2, 1}, want: "aba" + "aba"},
		{name: "zero weight counts as 1", weights: []int{0, 1}, want: "ab" + "ab"},
	}
	for _, algo := range []string{"round_robin", "weighted"} {
		for _, tt := range tests {
			t.Run(algo+"/"+tt.name, func(t *testing.T) {
				p := mustNew(t, algo)
				bs := newBackends(tt.weights...)
				if got := letters(p, bs, len(tt.want)); got != tt.want {
					t.Errorf("sequence = %s, want %s", got, tt.want)
				}
			})
		}
	}
}

func TestRoundRobinExactShares(t *testing.T) {
	many := make([]int, 32)
	for i := range many {
		many[i] = 1 + i%7
	}
	tests := []struct {
		name    string
		weights []int
		workers int
		cycles  int // picks = cycles * sum(weights)
	}{
		{name: "nginx 5 1 1", weights: []int{5, 1, 1}, workers: 1, cycles: 1000},
		// Exactness under concurrency proves each pick is atomic: from the zero state, any
		// sum(weights) consecutive picks, from whichever goroutines, form one full cycle.
		// Many candidates make the critical section long enough for picks to overlap.
		{name: "nginx 5 1 1 concurrent", weights: []int{5, 1, 1}, workers: 7, cycles: 1000},
		{name: "32 candidates concurrent", weights: many, workers: 8, cycles: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, "round_robin")
			bs := newBackends(tt.weights...)
			var sumW int
			for _, w := range tt.weights {
				sumW += w
			}
			picks := tt.cycles * sumW
			counts := make([][]int, tt.workers)
			var wg sync.WaitGroup
			for w := range tt.workers {
				counts[w] = make([]int, len(bs))
				n := picks / tt.workers
				if w == 0 {
					n += picks % tt.workers
				}
				wg.Go(func() {
					for range n {
						counts[w][p.Pick(bs, 0)]++
					}
				})
			}
			wg.Wait()
			for i, w := range tt.weights {
				var got int
				for _, c := range counts {
					got += c[i]
				}
				if want := tt.cycles * w; got != want {
					t.Errorf("candidate %d (weight %d): %d of %d picks, want exactly %d", i, w, got, picks, want)
				}
			}
		})
	}
}

// TestRoundRobinConcurrentPicksSerialise checks that concurrent picks behave as if made one at
// a time: the pick algorithm is a deterministic state machine, so after N concurrent picks the
// counts must equal those of the first N picks of the sequential sequence. (Shares at whole
// cycles cannot show this; they come out exact even when picks interleave.)
func TestRoundRobinConcurrentPicksSerialise(t *testing.T) {
	weights := make([]int, 32)
	for i := range weights {
		weights[i] = 1 + i%7
	}
	const (
		workers = 8
		picks   = 997 // not a multiple of the cycle length, so counts depend on the exact order
		rounds  = 100
	)
	ref := newBackends(weights...)
	refPolicy := mustNew(t, "round_robin")
	want := make([]int, len(ref))
	for range picks {
		want[refPolicy.Pick(ref, 0)]++
	}
	for round := range rounds {
		p := mustNew(t, "round_robin")
		bs := newBackends(weights...)
		counts := make([][]int, workers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			counts[w] = make([]int, len(bs))
			n := picks / workers
			if w == 0 {
				n += picks % workers
			}
			wg.Go(func() {
				<-start
				for range n {
					counts[w][p.Pick(bs, 0)]++
				}
			})
		}
		close(start)
		wg.Wait()
		for i := range bs {
			var got int
			for _, c := range counts {
				got += c[i]
			}
			if got != want[i] {
				t.Fatalf("round %d: candidate %d picked %d times in %d concurrent picks, sequential order gives %d",
					round, i, got, picks, want[i])
			}
		}
	}
}

// TestRoundRobinCandidateChanges checks that shares stay within one cycle of exact when
// backends drop out, return, or change weight, which is what running the algorithm over the
// live candidate set (instead of the whole pool) must guarantee.
func TestRoundRobinCandidateChanges(t *testing.T) {
	p := mustNew(t, "round_robin")
	bs := newBackends(5, 1, 1)
	a, b, c := bs[0], bs[1], bs[2]

	within := func(t *testing.T, cands []*balance.Backend, picks int) {
		t.Helper()
		counts := make([]int, len(cands))
		for range picks {
			counts[p.Pick(cands, 0)]++
		}
		var total int
		for _, cb := range cands {
			total += cb.Weight()
		}
		for i, cb := range cands {
			want := picks * cb.Weight() / total
			if d := counts[i] - want; d < -total || d > total {
				t.Errorf("candidate %d (weight %d): %d picks, want %d ± %d", i, cb.Weight(), counts[i], want, total)
			}
		}
	}

	letters(p, bs, 3) // leave the cycle part way through
	t.Run("a down", func(t *testing.T) { within(t, []*balance.Backend{b, c}, 1000) })
	t.Run("a back", func(t *testing.T) { within(t, bs, 7000) })
	t.Run("c down", func(t *testing.T) { within(t, []*balance.Backend{a, b}, 6000) })
	t.Run("a reweighted", func(t *testing.T) {
		a.SetWeight(2)
		within(t, bs, 4000)
	})
	t.Run("order changed", func(t *testing.T) { within(t, []*balance.Backend{c, a, b}, 4000) })
}
