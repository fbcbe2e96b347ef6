package gcfloor

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"

	"github.com/veloflux/veloflux/internal/testutil"
)

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(int64(s[0].Value.Uint64()))
}

var sink []byte

// churn allocates n bytes of short-lived garbage in 64 KiB pieces and returns how many
// collections ran meanwhile.
func churn(n int) uint32 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n / (64 << 10) {
		sink = make([]byte, 64<<10)
	}
	sink = nil
	runtime.ReadMemStats(&after)
	return after.NumGC - before.NumGC
}

// With a small live heap, the floor spaces collections by its size instead of by the live
// heap, and GOGC is back to what it was once the floor stops.
func TestFloorSpacesCollections(t *testing.T) {
	const floor = 256 << 20
	runtime.GC()
	without := churn(1 << 30)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(floor).Run(ctx) }()
	testutil.Eventually(t, "GOGC raised for the floor", func() bool { return gogc() > 100 })
	runtime.GC() // the first cycle under the raised percentage
	with := churn(1 << 30)
	t.Logf("collections while allocating 1 GiB: %d without the floor, %d with a %d MiB floor", without, with, floor>>20)
	// 1 GiB over a 256 MiB floor is about 4 cycles; the slack covers the pacer starting a
	// cycle before its goal and the cycle the floor's own adjustment follows.
	if with < 2 || with > 8 || with*4 > without {
		t.Errorf("%d collections with the floor against %d without, want 2 to 8 and at most a quarter", with, without)
	}

	cancel()
	if err := testutil.Receive(t, done, "Run returns"); err != nil {
		t.Fatal(err)
	}
	if got := gogc(); got != 100 {
		t.Errorf("GOGC %d after the floor stopped, want 100 back", got)
	}
}

func TestFloorLeavesGOGCOffAlone(t *testing.T) {
	prev := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(prev)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(64 << 20).Run(ctx) }()
	runtime.GC()
	cancel()
	testutil.Receive(t, done, "Run returns")
	if got := gogc(); got != -1 {
		t.Errorf("GOGC %d, want off (-1) as set", got)
	}
}

func TestPercent(t *testing.T) {
	for _, tt := range []struct {
		name  string
		base  int
		floor uint64
		live  Live
		want  int
	}{
		{"small live heap: next cycle at the floor", 100, 64 << 20, Live{Heap: 8 << 20}, 700},
		{"roots count toward the goal", 100, 64 << 20, Live{Heap: 6 << 20, Roots: 2 << 20}, 725},
		{"the runtime's own minimum, scaled, stays at the floor", 100, 32 << 20, Live{Heap: 2 << 20}, 800},
		{"live heap above half the floor: as configured", 100, 32 << 20, Live{Heap: 20 << 20}, 100},
		{"live heap above the floor", 100, 32 << 20, Live{Heap: 40 << 20}, 100},
		{"configured GOGC below what the floor needs", 800, 32 << 20, Live{Heap: 3 << 20}, 800},
		{"configured GOGC above what the floor needs", 1000, 32 << 20, Live{Heap: 3 << 20}, 1000},
		{"nothing live yet", 100, 32 << 20, Live{}, 100},
		{"a tiny heap", 100, 1 << 30, Live{Heap: 1}, 25600},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percent(tt.base, tt.floor, tt.live); got != tt.want {
				t.Errorf("Percent(%d, %d, %d) = %d, want %d", tt.base, tt.floor, tt.live, got, tt.want)
			}
		})
	}
}
