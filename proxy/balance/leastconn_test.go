package balance_test

import "testing"

func TestLeastConnPair(t *testing.T) {
	type load struct{ active, weight int }
	tests := []struct {
		name string
		a, b load
		want int // index of the expected winner
	}{
		{name: "fewer active wins", a: load{5, 1}, b: load{2, 1}, want: 1},
		{name: "idle beats busy", a: load{0, 1}, b: load{1, 1}, want: 0},
		{name: "per-weight load", a: load{10, 10}, b: load{2, 1}, want: 0},
		{name: "per-weight load fractional", a: load{3, 1}, b: load{5, 2}, want: 1},
		{name: "equal load heavier wins", a: load{2, 1}, b: load{4, 2}, want: 1},
		{name: "both idle heavier wins", a: load{0, 3}, b: load{0, 1}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, "least_conn")
			bs := newBackends(tt.a.weight, tt.b.weight)
			for range tt.a.active {
				bs[0].Acquire()
			}
			for range tt.b.active {
				bs[1].Acquire()
			}
			// The two random choices come in either order; the answer must not depend on it,
			// and with two candidates they must be distinct.
			for i := range 200 {
				if got := p.Pick(bs, 0); got != tt.want {
					t.Fatalf("pick %d: got %d, want %d", i, got, tt.want)
				}
			}
		})
	}
}

func TestLeastConnAvoidsBusyBackend(t *testing.T) {
	p := mustNew(t, "least_conn")
	bs := newBackends(1, 1, 1, 1)
	const busy = 2
	for range 100 {
		bs[busy].Acquire()
	}
	const picks = 30000
	counts := make([]int, len(bs))
	for range picks {
		counts[p.Pick(bs, 0)]++
	}
	// Two distinct choices always include an idle backend, so the busy one never wins.
	if counts[busy] != 0 {
		t.Errorf("busy backend got %d of %d picks, want 0", counts[busy], picks)
	}
	// The idle three share the rest evenly (expected 10000 each, sigma about 80).
	for i, n := range counts {
		if i != busy && (n < 9500 || n > 10500) {
			t.Errorf("idle backend %d got %d picks, want about 10000", i, n)
		}
	}
}

// TestLeastConnBalancesLoad holds every picked request open for a time that depends on the
// backend, as a slow upstream would. least_conn must send the slow backend far fewer requests
// than the even share random would give it.
func TestLeastConnBalancesLoad(t *testing.T) {
	p := mustNew(t, "least_conn")
	bs := newBackends(1, 1, 1, 1)
	const slow = 0
	// holdTicks is how many later picks a request stays in flight.
	holdTicks := []int{40, 4, 4, 4}
	type inflight struct{ b, until int }
	var open []inflight
	counts := make([]int, len(bs))
	const picks = 20000
	for tick := range picks {
		kept := open[:0]
		for _, r := range open {
			if r.until <= tick {
				bs[r.b].Release()
			} else {
				kept = append(kept, r)
			}
		}
		open = kept
		i := p.Pick(bs, 0)
		bs[i].Acquire()
		counts[i]++
		open = append(open, inflight{b: i, until: tick + holdTicks[i]})
	}
	for _, r := range open {
		bs[r.b].Release()
	}
	// An even share would be 5000; a backend ten times slower should get well under half.
	if counts[slow] >= picks/8 {
		t.Errorf("slow backend got %d of %d picks (%v), want fewer than %d", counts[slow], picks, counts, picks/8)
	}
	for i, b := range bs {
		if b.Active() != 0 {
			t.Errorf("backend %d: Active() = %d after releasing all", i, b.Active())
		}
	}
}
