package health

import "testing"

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
