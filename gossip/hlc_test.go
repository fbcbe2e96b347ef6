package gossip

import (
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

var testEpoch = time.Unix(1_800_000_000, 0)

func TestTimestampCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b Timestamp
		want int
	}{
		{"equal", Timestamp{5, 1}, Timestamp{5, 1}, 0},
		{"earlier wall", Timestamp{4, 9}, Timestamp{5, 0}, -1},
		{"later wall", Timestamp{6, 0}, Timestamp{5, 9}, 1},
		{"same wall lower logical", Timestamp{5, 0}, Timestamp{5, 1}, -1},
		{"same wall higher logical", Timestamp{5, 2}, Timestamp{5, 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Fatalf("%s.Compare(%s) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestClockNow(t *testing.T) {
	tests := []struct {
		name string
		// step moves physical time between the first and second reading.
		step time.Duration
		want func(first Timestamp) Timestamp
	}{
		{"physical advances: logical resets", time.Millisecond, func(f Timestamp) Timestamp {
			return Timestamp{WallNanos: f.WallNanos + int64(time.Millisecond)}
		}},
		{"physical stalls: logical counts", 0, func(f Timestamp) Timestamp {
			return Timestamp{WallNanos: f.WallNanos, Logical: 1}
		}},
		{"physical goes back: stays monotonic", -time.Second, func(f Timestamp) Timestamp {
			return Timestamp{WallNanos: f.WallNanos, Logical: 1}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := testutil.NewClock(testEpoch)
			c := NewClock(ft.Now, 0)
			first := c.Now()
			if first != (Timestamp{WallNanos: testEpoch.UnixNano()}) {
				t.Fatalf("first reading %s, want physical time %d.0", first, testEpoch.UnixNano())
			}
			ft.Add(tt.step)
			if got, want := c.Now(), tt.want(first); got != want {
				t.Fatalf("second reading %s, want %s", got, want)
			}
		})
	}
}

func TestClockLogicalOverflowAdvancesWall(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	c := NewClock(ft.Now, 0)
	wall := testEpoch.UnixNano()
	if err := c.Observe(Timestamp{WallNanos: wall, Logical: math.MaxUint32 - 1}); err != nil {
		t.Fatal(err)
	}
	// The clock now reads (wall, MaxUint32); the next reading cannot count further.
	if got, want := c.Now(), (Timestamp{WallNanos: wall + 1}); got != want {
		t.Fatalf("after logical overflow got %s, want %s", got, want)
	}
}

func TestClockObserve(t *testing.T) {
	now := testEpoch.UnixNano()
	tests := []struct {
		name    string
		local   Timestamp // stamp the clock is brought to before observing (zero: fresh clock)
		remote  Timestamp
		wantErr error
		want    Timestamp // next Now() after the observation
	}{
		{"remote behind physical is absorbed by physical", Timestamp{}, Timestamp{now - 10, 7}, nil,
			Timestamp{now, 1}},
		{"remote ahead within drift is adopted", Timestamp{}, Timestamp{now + int64(time.Second), 3}, nil,
			Timestamp{now + int64(time.Second), 5}},
		{"same wall takes max logical", Timestamp{now + 50, 9}, Timestamp{now + 50, 4}, nil,
			Timestamp{now + 50, 11}},
		{"same wall remote logical higher", Timestamp{now + 50, 2}, Timestamp{now + 50, 8}, nil,
			Timestamp{now + 50, 10}},
		{"local ahead of remote keeps counting", Timestamp{now + 80, 1}, Timestamp{now + 40, 6}, nil,
			Timestamp{now + 80, 3}},
		{"remote beyond drift is refused and ignored", Timestamp{}, Timestamp{now + int64(2*time.Minute), 0},
			ErrClockDrift, Timestamp{now, 0}},
		{"remote exactly at drift is accepted", Timestamp{}, Timestamp{now + int64(time.Minute), 0}, nil,
			Timestamp{now + int64(time.Minute), 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := testutil.NewClock(testEpoch)
			c := NewClock(ft.Now, time.Minute)
			if tt.local != (Timestamp{}) {
				if err := c.Observe(tt.local); err != nil {
					t.Fatal(err)
				}
				// Observe moved the clock to local.next(); bring it back to exactly tt.local.
				c.mu.Lock()
				c.last = tt.local
				c.mu.Unlock()
			}
			err := c.Observe(tt.remote)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Observe(%s) error %v, want %v", tt.remote, err, tt.wantErr)
			}
			if got := c.Now(); got != tt.want {
				t.Fatalf("Now after Observe(%s) = %s, want %s", tt.remote, got, tt.want)
			}
		})
	}
}

func TestClockConcurrentReadingsAreUnique(t *testing.T) {
	ft := testutil.NewClock(testEpoch) // frozen: uniqueness must come from the logical counter
	c := NewClock(ft.Now, 0)
	const workers, per = 8, 500
	out := make(chan Timestamp, workers*per)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := Timestamp{}
			for range per {
				ts := c.Now()
				if ts.Compare(prev) <= 0 {
					t.Errorf("reading %s not after previous %s", ts, prev)
				}
				prev = ts
				out <- ts
				if err := c.Observe(Timestamp{WallNanos: testEpoch.UnixNano(), Logical: ts.Logical / 2}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	close(out)
	seen := make(map[Timestamp]bool, workers*per)
	for ts := range out {
		if seen[ts] {
			t.Fatalf("timestamp %s handed out twice", ts)
		}
		seen[ts] = true
	}
}
