package geo

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
)

func TestAddrCache(t *testing.T) {
	entry := func(country string) *locEntry { return &locEntry{loc: Location{Country: country}, ok: true} }
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")

	t.Run("disabled", func(t *testing.T) {
		for _, size := range []int{0, -1} {
			c := newAddrCache(size)
			c.put(a, entry("DE"))
			if c.get(a) != nil {
				t.Errorf("size %d: a disabled cache answered", size)
			}
		}
	})
	t.Run("get what was put, per address", func(t *testing.T) {
		c := newAddrCache(16)
		de, us := entry("DE"), entry("US")
		c.put(a, de)
		c.put(b, us)
		if c.get(a) != de || c.get(b) != us {
			t.Error("wrong entries")
		}
		if c.get(netip.MustParseAddr("192.0.2.2")) != nil {
			t.Error("an address never put was found")
		}
		jp := entry("JP")
		c.put(a, jp)
		if c.get(a) != jp {
			t.Error("put did not replace the address's entry")
		}
	})
	t.Run("size rounds up to a power of two of buckets", func(t *testing.T) {
		for size, want := range map[int]int{1: 4, 4: 4, 5: 8, 100: 128, 65536: 65536} {
			if got := len(newAddrCache(size).buckets) * cacheWays; got != want {
				t.Errorf("size %d holds %d, want %d", size, got, want)
			}
		}
	})
	t.Run("bounded, newest kept", func(t *testing.T) {
		c := newAddrCache(64)
		e := entry("DE")
		for i := range 10_000 {
			ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			c.put(ip, e)
			if c.get(ip) != e {
				t.Fatalf("%s missing right after put", ip)
			}
		}
		held := 0
		for i := range 10_000 {
			if c.get(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})) != nil {
				held++
			}
		}
		if held > 64 {
			t.Errorf("a 64-entry cache holds %d addresses", held)
		}
		// A decent hash fills most of the ways with 10,000 neighbouring addresses.
		if held < 48 {
			t.Errorf("only %d of 64 ways used: the hash clusters neighbouring addresses", held)
		}
	})
	t.Run("concurrent use", func(t *testing.T) {
		c := newAddrCache(128)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 1))
				for range 20_000 {
					n := r.IntN(512)
					ip := netip.AddrFrom4([4]byte{198, 51, byte(n >> 8), byte(n)})
					if e := c.get(ip); e != nil && e.loc.Country != ip.String() {
						t.Errorf("%s answered with the entry of %s", ip, e.loc.Country)
						return
					}
					c.put(ip, &locEntry{loc: Location{Country: ip.String()}})
				}
			})
		}
		wg.Wait()
	})
}
