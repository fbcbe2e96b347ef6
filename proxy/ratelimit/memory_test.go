package ratelimit_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/veloflux/veloflux/proxy/ratelimit"
)

func heapInuse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// TestMemoryBounded feeds a million distinct clients to a limiter that may track 100000.
//
// The bound: a tracked client is one 24-byte slot, and the table keeps a quarter of its slots
// free, so the Limiter needs 32 bytes per client (3.2 MB for 100000), all allocated in New.
// We allow 64 bytes per client in total, twice that, for shard headers and heap-span
// rounding, and 1 MiB for growth after New, which must be none: the million clients that do
// not fit must cost nothing.
func TestMemoryBounded(t *testing.T) {
	const (
		maxClients = 100000
		clients    = 1000000
		totalBound = 64 * maxClients
		growBound  = 1 << 20
	)
	before := heapInuse()
	l, err := ratelimit.New(ratelimit.Config{RequestsPerSecond: 10, MaxClients: maxClients})
	if err != nil {
		t.Fatal(err)
	}
	afterNew := heapInuse()
	peak := afterNew
	for i := range uint32(clients) {
		now := t0.Add(time.Duration(i) * time.Microsecond)
		ip := v4(0x0B000000 + i)
		if i%2 == 1 {
			ip = v6(i) // a distinct /64 each, so a distinct client
		}
		if ok, _ := l.Allow(ip, now); !ok {
			t.Fatalf("new client %v rejected", ip)
		}
		if i%100000 == 99999 {
			if got := l.Len(); got > maxClients {
				t.Fatalf("Len() = %d after %d clients, want <= %d", got, i+1, maxClients)
			}
			peak = max(peak, heapInuse())
		}
	}
	tracked := l.Len()
	if tracked > maxClients || tracked < maxClients*9/10 {
		t.Errorf("Len() = %d, want between %d and %d", tracked, maxClients*9/10, maxClients)
	}
	total, grown := peak-before, peak-afterNew
	t.Logf("peak heap growth %.2f MiB (%d B per tracked client, %d tracked); growth after New %d B",
		float64(total)/(1<<20), total/int64(tracked), tracked, grown)
	if total > totalBound {
		t.Errorf("heap grew by %d B, want < %d B (64 B per tracked client)", total, totalBound)
	}
	if grown > growBound {
		t.Errorf("heap grew by %d B while feeding clients after New, want < %d B: per-client allocation", grown, growBound)
	}
	runtime.KeepAlive(l)
}
