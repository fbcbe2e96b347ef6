package geo

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
)

func TestOrderFailoverByDistance(t *testing.T) {
	l, _ := newLocator(t, threeRegions(testDB(t)))
	tests := []struct {
		name, ip    string
		wantCountry string
		want        []string // the three configured regions, nearest first
		inMetro     bool     // the client is in the metro of want[0], with built-ins at the same distance
	}{
		{"Frankfurt", "80.128.1.7", "DE", []string{"eu", "us", "ap"}, true},
		{"Frankfurt over IPv6", "2003:1::1", "DE", []string{"eu", "us", "ap"}, true},
		{"Frankfurt as IPv4-mapped IPv6", "::ffff:80.128.1.7", "DE", []string{"eu", "us", "ap"}, true},
		{"Paris", "185.0.0.9", "FR", []string{"eu", "us", "ap"}, false},
		{"Virginia", "3.80.4.5", "US", []string{"us", "eu", "ap"}, true},
		{"Singapore", "13.228.0.1", "SG", []string{"ap", "eu", "us"}, true},
		{"Tokyo", "133.11.0.1", "JP", []string{"ap", "eu", "us"}, false},
		{"Sydney: Virginia is nearer than Frankfurt", "1.1.1.1", "AU", []string{"ap", "us", "eu"}, false},
		{"São Paulo", "200.160.0.1", "BR", []string{"us", "eu", "ap"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			order, country := l.Order(netip.MustParseAddr(tt.ip))
			if country != tt.wantCountry {
				t.Errorf("country = %q, want %q", country, tt.wantCountry)
			}
			if got := only(order, "eu", "us", "ap"); !slices.Equal(got, tt.want) {
				t.Errorf("order of the configured regions = %v, want %v", got, tt.want)
			}
			if tt.inMetro && order[0] != tt.want[0] {
				t.Errorf("first region = %q, want %q: a configured region wins a tie with the built-ins in its metro", order[0], tt.want[0])
			}
		})
	}
}

func TestOrderBuiltinRegions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Database = testDB(t)
	cfg.NodeRegion = "us-east-1"
	l, _ := newLocator(t, cfg)

	t.Run("an IP in Frankfurt orders eu-central-1 first", func(t *testing.T) {
		order, _ := l.Order(netip.MustParseAddr("80.128.1.7"))
		// Four regions are in Frankfurt; at equal distance table order decides, AWS first.
		if want := []string{"eu-central-1", "europe-west3", "eu", "eu-central"}; !slices.Equal(order[:4], want) {
			t.Errorf("first four = %v, want %v", order[:4], want)
		}
	})
	t.Run("every known region exactly once", func(t *testing.T) {
		for _, ip := range []string{"80.128.1.7", "1.1.1.1", "10.0.0.1", "81.2.69.1"} {
			order, _ := l.Order(netip.MustParseAddr(ip))
			want := names(BuiltinRegions())
			got := slices.Clone(order)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: order holds %v, want each built-in region once", ip, order)
			}
		}
	})
	t.Run("distance never decreases along the order", func(t *testing.T) {
		order, _ := l.Order(netip.MustParseAddr("133.11.0.1"))
		prev := -1.0
		for _, name := range order {
			r := BuiltinRegions()[slices.IndexFunc(BuiltinRegions(), func(r Region) bool { return r.Name == name })]
			d := Distance(tokyo.lat, tokyo.lon, r.Lat, r.Lon)
			if d < prev {
				t.Fatalf("%s at %.0f km comes after a region at %.0f km: %v", name, d, prev, order)
			}
			prev = d
		}
	})
	t.Run("a configured region wins a tie with built-ins wherever it is listed", func(t *testing.T) {
		cfg := cfg
		cfg.Regions = []Region{{Name: "fra-edge", Lat: 50.11, Lon: 8.68}}
		l, _ := newLocator(t, cfg)
		order, _ := l.Order(netip.MustParseAddr("80.128.1.7"))
		if want := []string{"fra-edge", "eu-central-1", "europe-west3"}; !slices.Equal(order[:3], want) {
			t.Errorf("first three = %v, want %v", order[:3], want)
		}
	})
}

func names(rs []Region) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name
	}
	return out
}

func TestOrderOverrides(t *testing.T) {
	db := testDB(t)
	tests := []struct {
		name                string
		country, continent  map[string]string
		ip                  string
		wantFirst           string
		wantOrder           []string // of eu, us, ap
		wantCountryReported string
	}{
		{
			name:    "country override goes first, the rest by distance from the client",
			country: map[string]string{"DE": "ap"}, ip: "80.128.1.7",
			wantFirst: "ap", wantOrder: []string{"ap", "eu", "us"}, wantCountryReported: "DE",
		},
		{
			name: "continent override", continent: map[string]string{"EU": "us"}, ip: "185.0.0.1",
			wantFirst: "us", wantOrder: []string{"us", "eu", "ap"}, wantCountryReported: "FR",
		},
		{
			name:    "country override wins over continent override",
			country: map[string]string{"DE": "ap"}, continent: map[string]string{"EU": "us"}, ip: "80.128.1.7",
			wantFirst: "ap", wantOrder: []string{"ap", "eu", "us"}, wantCountryReported: "DE",
		},
		{
			name:    "continent override applies to a country without its own",
			country: map[string]string{"DE": "ap"}, continent: map[string]string{"EU": "us"}, ip: "185.0.0.1",
			wantFirst: "us", wantOrder: []string{"us", "eu", "ap"}, wantCountryReported: "FR",
		},
		{
			name: "override of another continent does not apply", continent: map[string]string{"AS": "us"}, ip: "80.128.1.7",
			wantFirst: "eu", wantOrder: []string{"eu", "us", "ap"}, wantCountryReported: "DE",
		},
		{
			name: "no coordinates: the override first, then by distance from it", continent: map[string]string{"EU": "us"}, ip: "81.2.69.1",
			wantFirst: "us", wantOrder: []string{"us", "eu", "ap"}, wantCountryReported: "GB",
		},
		{
			name: "no coordinates, no override: the node's region first, then by distance from it", ip: "81.2.69.1",
			wantFirst: "ap", wantOrder: []string{"ap", "eu", "us"}, wantCountryReported: "GB",
		},
		{
			name: "continent-only record takes the continent override", continent: map[string]string{"AF": "eu"}, ip: "41.0.0.1",
			wantFirst: "eu", wantOrder: []string{"eu", "us", "ap"}, wantCountryReported: "",
		},
		{
			name: "registered country stands in for a missing country", country: map[string]string{"NL": "us"}, ip: "5.0.0.1",
			wantFirst: "us", wantOrder: []string{"us", "eu", "ap"}, wantCountryReported: "NL",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := threeRegions(db)
			cfg.CountryRegions, cfg.ContinentRegions = tt.country, tt.continent
			l, _ := newLocator(t, cfg)
			order, country := l.Order(netip.MustParseAddr(tt.ip))
			if order[0] != tt.wantFirst {
				t.Errorf("first = %q, want %q (order %v)", order[0], tt.wantFirst, order)
			}
			if got := only(order, "eu", "us", "ap"); !slices.Equal(got, tt.wantOrder) {
				t.Errorf("order = %v, want %v", got, tt.wantOrder)
			}
			if country != tt.wantCountryReported {
				t.Errorf("country = %q, want %q", country, tt.wantCountryReported)
			}
		})
	}
}

func TestUnknownClientsGetNodeRegionFirst(t *testing.T) {
	l, _ := newLocator(t, threeRegions(testDB(t)))
	// Every address here except the not-in-database ones is mapped to Frankfurt in the test
	// database: only the locator's own refusal keeps them unknown.
	tests := []struct{ name, ip string }{
		{"private 10/8", "10.1.2.3"},
		{"private 172.16/12", "172.16.0.1"},
		{"private 172.16/12, last address", "172.31.255.255"},
		{"private 192.168/16", "192.168.1.1"},
		{"CGNAT 100.64/10", "100.64.0.1"},
		{"CGNAT 100.64/10, last address", "100.127.255.255"},
		{"loopback", "127.0.0.1"},
		{"IPv6 loopback", "::1"},
		{"link-local", "169.254.1.1"},
		{"IPv6 link-local", "fe80::1"},
		{"IPv6 link-local with zone", "fe80::1%eth0"},
		{"IPv6 unique local", "fc00::1"},
		{"unspecified", "0.0.0.0"},
		{"IPv6 unspecified", "::"},
		{"multicast", "224.0.0.1"},
		{"IPv6 multicast", "ff02::1"},
		{"IPv4-mapped private", "::ffff:10.0.0.1"},
		{"public, not in the database", "9.9.9.9"},
		{"public IPv6, not in the database", "2a00:1450::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.ip)
			for range 2 { // the second answer may come from the cache
				if loc, ok := l.Locate(ip); ok {
					t.Fatalf("Locate = %+v, true; want unknown", loc)
				}
				order, country := l.Order(ip)
				if country != "" {
					t.Errorf("country = %q, want \"\"", country)
				}
				if want := []string{"ap", "eu", "us"}; !slices.Equal(only(order, "eu", "us", "ap"), want) || order[0] != "ap" {
					t.Errorf("order = %v, want the node's region ap first, then %v", order, want[1:])
				}
			}
		})
	}
	t.Run("invalid address", func(t *testing.T) {
		if _, ok := l.Locate(netip.Addr{}); ok {
			t.Error("the zero Addr was located")
		}
		if order, _ := l.Order(netip.Addr{}); order[0] != "ap" {
			t.Errorf("order = %v, want ap first", order)
		}
	})
	t.Run("neighbours of the special ranges are located", func(t *testing.T) {
		for _, ip := range []string{"100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0"} {
			if loc, ok := l.Locate(netip.MustParseAddr(ip)); !ok || loc.Country != "DE" {
				t.Errorf("Locate(%s) = %+v, %v; want DE", ip, loc, ok)
			}
		}
	})
}

func TestLocate(t *testing.T) {
	l, _ := newLocator(t, threeRegions(testDB(t)))
	tests := []struct {
		ip   string
		want Location
	}{
		{"80.128.1.7", Location{Country: "DE", Continent: "EU", Lat: 50.11, Lon: 8.68, HasCoords: true}},
		{"2003:1::1", Location{Country: "DE", Continent: "EU", Lat: 50.11, Lon: 8.68, HasCoords: true}},
		{"1.1.1.1", Location{Country: "AU", Continent: "OC", Lat: -33.87, Lon: 151.21, HasCoords: true}},
		{"81.2.69.1", Location{Country: "GB", Continent: "EU"}},
		{"41.0.0.1", Location{Continent: "AF"}},
		{"5.0.0.1", Location{Country: "NL", Continent: "EU"}},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			got, ok := l.Locate(netip.MustParseAddr(tt.ip))
			if !ok || got != tt.want {
				t.Errorf("Locate = %+v, %v; want %+v, true", got, ok, tt.want)
			}
		})
	}
}

func TestOrderSharing(t *testing.T) {
	db := testDB(t)
	for _, size := range []int{0, -1} {
		name := map[int]string{0: "default cache", -1: "address cache disabled"}[size]
		t.Run(name, func(t *testing.T) {
			cfg := threeRegions(db)
			cfg.CacheSize = size
			l, _ := newLocator(t, cfg)
			a, _ := l.Order(netip.MustParseAddr("80.128.1.7"))
			b, _ := l.Order(netip.MustParseAddr("80.128.1.200"))
			c, _ := l.Order(netip.MustParseAddr("2003:1::5"))
			if unsafe.SliceData(a) != unsafe.SliceData(b) || unsafe.SliceData(a) != unsafe.SliceData(c) {
				t.Error("addresses of one location got separate order slices")
			}
			d, _ := l.Order(netip.MustParseAddr("185.0.0.1"))
			if unsafe.SliceData(a) == unsafe.SliceData(d) {
				t.Error("Frankfurt and Paris share an order slice")
			}
			u1, _ := l.Order(netip.MustParseAddr("10.0.0.1"))
			u2, _ := l.Order(netip.MustParseAddr("81.2.69.1")) // no coordinates, no override: the node's order
			if unsafe.SliceData(u1) != unsafe.SliceData(u2) || unsafe.SliceData(u1) != unsafe.SliceData(l.nodeOrder) {
				t.Error("clients answered with the node's order got copies of it")
			}
		})
	}
}

func TestCacheHitDoesNotAllocate(t *testing.T) {
	l, _ := newLocator(t, threeRegions(testDB(t)))
	located, private, notInDB := netip.MustParseAddr("80.128.1.7"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("9.9.9.9")
	for _, ip := range []netip.Addr{located, private, notInDB} {
		l.Order(ip) // fill the cache
	}
	tests := []struct {
		name string
		f    func()
	}{
		{"Order, located", func() { l.Order(located) }},
		{"Locate, located", func() { l.Locate(located) }},
		{"Order, private", func() { l.Order(private) }},
		{"Order, not in the database", func() { l.Order(notInDB) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(200, tt.f); n != 0 {
				t.Errorf("%v allocations per call, want 0", n)
			}
		})
	}
}

func TestLookupMetrics(t *testing.T) {
	l, _ := newLocator(t, threeRegions(testDB(t)))
	steps := []struct {
		name, ip string
		result   string
	}{
		{"first lookup reads the database", "80.128.1.7", "miss"},
		{"second lookup is cached", "80.128.1.7", "hit"},
		{"another address of the city reads the database", "80.128.1.8", "miss"},
		{"private", "10.0.0.1", "unknown"},
		{"not in the database", "9.9.9.9", "unknown"},
		{"not in the database, cached", "9.9.9.9", "unknown"},
	}
	want := map[string]float64{}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			l.Order(netip.MustParseAddr(s.ip))
			want[s.result]++
			for _, r := range []string{"hit", "miss", "unknown"} {
				if got := lookups(l, r); got != want[r] {
					t.Errorf("veloflux_geo_lookups_total{result=%q} = %v, want %v", r, got, want[r])
				}
			}
		})
	}
}

func TestCacheEviction(t *testing.T) {
	cfg := threeRegions(testDB(t))
	cfg.CacheSize = 8
	l, _ := newLocator(t, cfg)
	for i := range 256 {
		l.Locate(netip.AddrFrom4([4]byte{3, 80, 0, byte(i)}))
	}
	// 256 distinct addresses through an 8-entry cache: the first one must have been evicted.
	before := lookups(l, "miss")
	l.Locate(netip.MustParseAddr("3.80.0.0"))
	if lookups(l, "miss") != before+1 {
		t.Error("an 8-entry cache still held the first of 256 addresses")
	}
	if got := len(l.state.Load().cache.buckets) * cacheWays; got != 8 {
		t.Errorf("cache holds %d entries, want 8", got)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := buildDB(t, "GeoLite2-City", v1Epoch, v1Networks())
	tests := []struct {
		name    string
		path    string
		mutate  func(*Config)
		wantErr []string
	}{
		{name: "missing file", path: filepath.Join(dir, "nope.mmdb"), wantErr: []string{"nope.mmdb", "no such file"}},
		{name: "directory", path: dir, wantErr: []string{dir, "not a regular file"}},
		{name: "empty file", path: write("empty.mmdb", nil), wantErr: []string{"empty.mmdb"}},
		{name: "garbage", path: write("garbage.mmdb", []byte(strings.Repeat("not a database ", 100))), wantErr: []string{"garbage.mmdb", "invalid MaxMind DB"}},
		{name: "truncated", path: write("truncated.mmdb", good[:len(good)/2]), wantErr: []string{"truncated.mmdb"}},
		{name: "ASN database", path: write("asn.mmdb", buildDB(t, "GeoLite2-ASN", v1Epoch, v1Networks())), wantErr: []string{"asn.mmdb", "GeoLite2-ASN"}},
		{name: "unknown node region", path: write("ok1.mmdb", good), mutate: func(c *Config) { c.NodeRegion = "mars-1" },
			wantErr: []string{`geo: invalid config: node_region: unknown region "mars-1"`}},
		{name: "unknown override region", path: write("ok2.mmdb", good), mutate: func(c *Config) { c.CountryRegions = map[string]string{"DE": "eu-centrall-1"} },
			wantErr: []string{`geo: invalid config: country_regions["DE"]: unknown region "eu-centrall-1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := threeRegions(tt.path)
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			l, err := New(cfg, nil, nil)
			if err == nil {
				l.close()
				t.Fatal("New succeeded")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("Country database", func(t *testing.T) {
		cfg := threeRegions(write("country.mmdb", buildDB(t, "GeoLite2-Country", v1Epoch, v1Networks())))
		l, err := New(cfg, nil, nil)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		defer l.close()
		if loc, ok := l.Locate(netip.MustParseAddr("80.128.1.7")); !ok || loc.Country != "DE" {
			t.Errorf("Locate = %+v, %v; want DE", loc, ok)
		}
	})
}

func TestBuildTimestampMetric(t *testing.T) {
	l, _ := newLocator(t, threeRegions(testDB(t)))
	if got := testutilGauge(l); got != v1Epoch {
		t.Errorf("veloflux_geo_database_build_timestamp_seconds = %v, want %v", got, v1Epoch)
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, err := New(threeRegions(testDB(t)), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	want := []string{"veloflux_geo_database_build_timestamp_seconds", "veloflux_geo_database_reloads_total", "veloflux_geo_lookups_total"}
	if !slices.Equal(got, want) {
		t.Errorf("registered %v, want %v", got, want)
	}
	// Two locators (two nodes in one process) each register into their own registry.
	if _, err := New(threeRegions(testDB(t)), nil, reg); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Errorf("a second registration into the same registry: err = %v, want a register error", err)
	}
}
