package balance

import "sync"

// roundRobin is nginx's smooth weighted round robin (ngx_http_upstream_get_peer): on every
// pick each candidate's current weight grows by its weight, the largest current wins, and the
// winner pays back the total. With weights 5,1,1 that yields a a b a c a a: exact shares per
// cycle, and a heavy backend's turns interleaved with the others instead of five in a row.
//
// It runs over the candidates it is given, not over the whole pool, so a backend that is down
// simply stops taking part; its current weight is kept for when it returns. Across one pick
// the sum of the candidates' current weights is unchanged, which keeps them bounded.
type roundRobin struct {
	// mu makes each pick's add-to-all, choose, pay-back sequence atomic, so concurrent picks
	// still produce the exact smooth sequence.
	mu sync.Mutex
}

func (p *roundRobin) Pick(cands []*Backend, _ uint64) int {
	switch len(cands) {
	case 0:
		return -1
	case 1:
		// A lone candidate would gain and pay back its own weight: no state change.
		return 0
	}
	p.mu.Lock()
	best, bestCur, total := -1, int64(0), int64(0)
	for i, b := range cands {
		w := b.weight64()
		total += w
		// Strict > keeps the first of equal currents, as nginx does.
		if cur := b.current.Add(w); best < 0 || cur > bestCur {
			best, bestCur = i, cur
		}
	}
	cands[best].current.Add(-total)
	p.mu.Unlock()
	return best
}
