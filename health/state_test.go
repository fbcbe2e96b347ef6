package health

import (
	"testing"
	"time"
)

func TestStateObserve(t *testing.T) {
	const fall, rise = 3, 2
	tests := []struct {
		name        string
		start       state
		probes      []bool
		wantHealthy bool
		wantFlips   []int // indexes of probes after which healthy flipped
	}{
		{
			name:        "stays up below fall",
			start:       state{healthy: true},
			probes:      []bool{false, false},
			wantHealthy: true,
		},
		{
			name:        "down exactly at fall",
			start:       state{healthy: true},
			probes:      []bool{false, false, false},
			wantHealthy: false,
			wantFlips:   []int{2},
		},
		{
			name:        "one success resets the failure count",
			start:       state{healthy: true},
			probes:      []bool{false, false, true, false, false},
			wantHealthy: true,
		},
		{
			name:        "further failures while down do not flip again",
			start:       state{healthy: true},
			probes:      []bool{false, false, false, false, false, false},
			wantHealthy: false,
			wantFlips:   []int{2},
		},
		{
			name:        "stays down below rise",
			start:       state{healthy: false},
			probes:      []bool{true},
			wantHealthy: false,
		},
		{
			name:        "up exactly at rise",
			start:       state{healthy: false},
			probes:      []bool{true, true, true},
			wantHealthy: true,
			wantFlips:   []int{1},
		},
		{
			name:        "a failure resets the success count",
			start:       state{healthy: false},
			probes:      []bool{true, false, true},
			wantHealthy: false,
		},
		{
			name:        "full cycle down and up",
			start:       state{healthy: true},
			probes:      []bool{false, false, false, true, true},
			wantHealthy: true,
			wantFlips:   []int{2, 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.start
			var flips []int
			for i, ok := range tt.probes {
				if s.observe(ok, fall, rise) {
					flips = append(flips, i)
				}
			}
			if s.healthy != tt.wantHealthy {
				t.Errorf("healthy = %v, want %v", s.healthy, tt.wantHealthy)
			}
			if len(flips) != len(tt.wantFlips) {
				t.Fatalf("flips after probes %v, want %v", flips, tt.wantFlips)
			}
			for i := range flips {
				if flips[i] != tt.wantFlips[i] {
					t.Fatalf("flips after probes %v, want %v", flips, tt.wantFlips)
				}
			}
		})
	}
}

func TestStateObserveCounters(t *testing.T) {
	s := state{healthy: true}
	s.observe(false, 3, 2)
	s.observe(false, 3, 2)
	if s.failures != 2 || s.successes != 0 {
		t.Fatalf("after 2 failures: failures=%d successes=%d, want 2, 0", s.failures, s.successes)
	}
	s.observe(true, 3, 2)
	if s.failures != 0 || s.successes != 1 {
		t.Fatalf("after a success: failures=%d successes=%d, want 0, 1", s.failures, s.successes)
	}
}

func TestStateDownFailures(t *testing.T) {
	const fall, rise = 2, 2
	tests := []struct {
		name   string
		probes []bool
		want   int
	}{
		{name: "up target never backs off", probes: []bool{false}, want: 0},
		{name: "the probe that takes it down does not count", probes: []bool{false, false}, want: 0},
		{name: "each failure after it went down counts", probes: []bool{false, false, false, false, false}, want: 3},
		{name: "a success while down resets it", probes: []bool{false, false, false, false, true}, want: 0},
		{name: "failures after that success count again from 1", probes: []bool{false, false, false, true, false}, want: 1},
		{name: "back up and failing below fall", probes: []bool{false, false, false, true, true, false}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := state{healthy: true}
			for _, ok := range tt.probes {
				s.observe(ok, fall, rise)
			}
			if s.downFailures != tt.want {
				t.Fatalf("downFailures = %d, want %d (state %+v)", s.downFailures, tt.want, s)
			}
		})
	}
}

func TestNextDelay(t *testing.T) {
	const (
		interval = 10 * time.Second
		maxIv    = time.Minute
	)
	none := func(time.Duration) time.Duration { return 0 }
	// full returns the largest jitter jitter(d) can: just under d.
	full := func(d time.Duration) time.Duration { return max(d-1, 0) }
	tests := []struct {
		name         string
		downFailures int
		jitter       func(time.Duration) time.Duration
		want         time.Duration
	}{
		{name: "up: the interval", downFailures: 0, jitter: none, want: interval},
		{name: "up: jitter adds up to a tenth", downFailures: 0, jitter: full, want: interval + interval/10 - 1},
		{name: "first failure after down: doubled", downFailures: 1, jitter: none, want: 20 * time.Second},
		{name: "second: quadrupled", downFailures: 2, jitter: none, want: 40 * time.Second},
		{name: "third: capped at max", downFailures: 3, jitter: none, want: maxIv},
		{name: "far beyond: still the cap", downFailures: 1000, jitter: none, want: maxIv},
		{name: "jitter only shortens a backed-off delay", downFailures: 3, jitter: full, want: maxIv - maxIv/10 + 1},
		{name: "jitter on a doubled delay", downFailures: 1, jitter: full, want: 20*time.Second - 2*time.Second + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextDelay(interval, maxIv, tt.downFailures, tt.jitter); got != tt.want {
				t.Fatalf("nextDelay(%s, %s, %d) = %s, want %s", interval, maxIv, tt.downFailures, got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name            string
		interval, limit time.Duration
		n               int
		want            time.Duration
	}{
		{name: "no failures", interval: time.Second, limit: time.Minute, n: 0, want: time.Second},
		{name: "doubling", interval: time.Second, limit: time.Minute, n: 5, want: 32 * time.Second},
		{name: "cap", interval: time.Second, limit: time.Minute, n: 6, want: time.Minute},
		{name: "no overflow", interval: time.Second, limit: time.Duration(1<<63 - 1), n: 200, want: time.Duration(1<<63 - 1)},
		{name: "limit below interval keeps the interval", interval: time.Minute, limit: time.Second, n: 3, want: time.Minute},
		{name: "limit equal to interval: no backoff", interval: time.Second, limit: time.Second, n: 4, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoff(tt.interval, tt.limit, tt.n); got != tt.want {
				t.Fatalf("backoff(%s, %s, %d) = %s, want %s", tt.interval, tt.limit, tt.n, got, tt.want)
			}
		})
	}
}
