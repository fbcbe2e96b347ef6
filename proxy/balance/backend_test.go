package balance_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/veloflux/veloflux/proxy/balance"
)

func TestBackendInit(t *testing.T) {
	tests := []struct {
		name       string
		id         string
		weight     int
		wantWeight int
	}{
		{name: "positive weight kept", id: "web-1", weight: 3, wantWeight: 3},
		{name: "zero weight is one", id: "web-2", weight: 0, wantWeight: 1},
		{name: "negative weight is one", id: "web-3", weight: -7, wantWeight: 1},
		{name: "max weight kept", id: "web-4", weight: balance.MaxWeight, wantWeight: balance.MaxWeight},
		{name: "huge weight clamped", id: "web-5", weight: 1 << 40, wantWeight: balance.MaxWeight},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b balance.Backend
			b.Init(tt.id, tt.weight)
			if got := b.Weight(); got != tt.wantWeight {
				t.Errorf("Weight() = %d, want %d", got, tt.wantWeight)
			}
			if got, want := b.Hash(), balance.HashString(tt.id); got != want {
				t.Errorf("Hash() = %#x, want HashString(%q) = %#x", got, tt.id, want)
			}
			if got := b.Active(); got != 0 {
				t.Errorf("Active() = %d, want 0", got)
			}
		})
	}
}

func TestBackendSetWeight(t *testing.T) {
	tests := []struct {
		name string
		set  int
		want int
	}{
		{name: "raise", set: 10, want: 10},
		{name: "lower", set: 1, want: 1},
		{name: "zero is one", set: 0, want: 1},
		{name: "over max clamped", set: balance.MaxWeight + 1, want: balance.MaxWeight},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b balance.Backend
			b.Init("web", 5)
			b.SetWeight(tt.set)
			if got := b.Weight(); got != tt.want {
				t.Errorf("Weight() after SetWeight(%d) = %d, want %d", tt.set, got, tt.want)
			}
		})
	}
}

func TestBackendInitKeepsActive(t *testing.T) {
	var b balance.Backend
	b.Init("web", 1)
	b.Acquire()
	b.Acquire()
	b.Init("web", 4) // a re-init must not forget requests still in flight
	if got := b.Active(); got != 2 {
		t.Fatalf("Active() after re-Init = %d, want 2", got)
	}
}

func TestBackendAcquireRelease(t *testing.T) {
	var b balance.Backend
	b.Init("web", 1)
	for want := int64(1); want <= 3; want++ {
		b.Acquire()
		if got := b.Active(); got != want {
			t.Fatalf("Active() after %d Acquire = %d", want, got)
		}
	}
	for want := int64(2); want >= 0; want-- {
		b.Release()
		if got := b.Active(); got != want {
			t.Fatalf("Active() after Release = %d, want %d", got, want)
		}
	}
}

func TestBackendReleaseWithoutAcquirePanics(t *testing.T) {
	var b balance.Backend
	b.Init("web", 1)
	func() {
		defer func() {
			r := recover()
			if r == nil {
				t.Fatal("Release without Acquire did not panic")
			}
			if msg, _ := r.(string); !strings.Contains(msg, "without matching Acquire") {
				t.Errorf("panic = %v, want a message about the missing Acquire", r)
			}
		}()
		b.Release()
	}()
	if got := b.Active(); got != 0 {
		t.Fatalf("Active() after the failed Release = %d, want 0", got)
	}
}

// TestConcurrentAcquirePickRelease drives every policy the way the proxy does, from many
// goroutines at once, while weights change underneath. Run with -race.
func TestConcurrentAcquirePickRelease(t *testing.T) {
	const (
		workers = 16
		iters   = 2000
	)
	for _, algo := range balance.Algorithms() {
		t.Run(algo, func(t *testing.T) {
			p := mustNew(t, algo)
			bs := newBackends(1, 2, 3, 4, 5, 6, 7, 8)
			// Half the workers see a smaller candidate set, as when some backends are down.
			subset := []*balance.Backend{bs[1], bs[3], bs[6]}

			done := make(chan struct{})
			var watchers sync.WaitGroup
			watchers.Add(2)
			negative := make(chan int64, 1)
			go func() { // watcher: Active must never be seen below zero
				defer watchers.Done()
				for {
					for _, b := range bs {
						if a := b.Active(); a < 0 {
							select {
							case negative <- a:
							default:
							}
						}
					}
					select {
					case <-done:
						return
					default:
					}
				}
			}()
			go func() { // Consul changing weights live
				defer watchers.Done()
				for w := 0; ; w++ {
					bs[w%len(bs)].SetWeight(1 + w%9)
					select {
					case <-done:
						return
					default:
					}
				}
			}()

			var workersWG sync.WaitGroup
			errs := make(chan string, workers)
			for g := range workers {
				cands := bs
				if g%2 == 1 {
					cands = subset
				}
				workersWG.Go(func() {
					for i := range iters {
						idx := p.Pick(cands, uint64(g*iters+i))
						if idx < 0 || idx >= len(cands) {
							errs <- "Pick returned out-of-range index"
							return
						}
						b := cands[idx]
						b.Acquire()
						if b.Active() < 1 {
							errs <- "Active below 1 while holding an Acquire"
							b.Release()
							return
						}
						b.Release()
					}
				})
			}
			workersWG.Wait()
			close(done)
			watchers.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			select {
			case a := <-negative:
				t.Errorf("watcher saw Active() = %d", a)
			default:
			}
			for i, b := range bs {
				if a := b.Active(); a != 0 {
					t.Errorf("backend %d: Active() = %d after all releases, want 0", i, a)
				}
			}
		})
	}
}
