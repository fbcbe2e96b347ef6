package geo

import (
	"math"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.Database = "/var/lib/veloflux/GeoLite2-City.mmdb"
		c.NodeRegion = "eu-central-1"
		return c
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr []string // each must appear, in this order; none means valid
	}{
		{name: "defaults with database and node region", mutate: func(*Config) {}},
		{name: "defaults alone: no geolocation", mutate: func(c *Config) { *c = DefaultConfig() }},
		{name: "everything set", mutate: func(c *Config) {
			c.Regions = []Region{{Name: "eu", Lat: 50.11, Lon: 8.68, RedirectHost: "eu.example.com"}, {Name: "dc-north", Lat: 59.33, Lon: 18.07}}
			c.NodeRegion = "dc-north"
			c.ResponseHeader = "X-VeloFlux-Region"
			c.CountryRegions = map[string]string{"DE": "eu", "SE": "dc-north"}
			c.ContinentRegions = map[string]string{"EU": "eu", "NA": "us-east-1"}
		}},
		{name: "node region missing with a database", mutate: func(c *Config) { c.NodeRegion = "" }, wantErr: []string{"node_region: required with a database"}},
		{name: "node region unknown with a database", mutate: func(c *Config) { c.NodeRegion = "eu-central-2" }, wantErr: []string{`node_region: unknown region "eu-central-2"`}},
		{name: "node region unknown without a database only names the node", mutate: func(c *Config) { c.Database, c.NodeRegion = "", "lab-7" }},
		{name: "node region spelling checked without a database too", mutate: func(c *Config) { c.Database, c.NodeRegion = "", "Lab 7" },
			wantErr: []string{`node_region: invalid region name "Lab 7"`}},
		{name: "node region added by regions", mutate: func(c *Config) {
			c.Regions = []Region{{Name: "moon-1"}}
			c.NodeRegion = "moon-1"
		}},
		{name: "cache size 0", mutate: func(c *Config) { c.CacheSize = 0 }, wantErr: []string{"cache_size: must be between 1 and 10000000, got 0"}},
		{name: "cache size too big", mutate: func(c *Config) { c.CacheSize = 10_000_001 }, wantErr: []string{"cache_size: must be between 1 and 10000000, got 10000001"}},
		{name: "response header not a token", mutate: func(c *Config) { c.ResponseHeader = "X Region" }, wantErr: []string{`response_header: invalid header name "X Region"`}},
		{name: "region name missing", mutate: func(c *Config) { c.Regions = []Region{{Lat: 1, Lon: 1}} }, wantErr: []string{"regions[0].name: required"}},
		{name: "region name syntax", mutate: func(c *Config) { c.Regions = []Region{{Name: "EU West", Lat: 1, Lon: 1}} }, wantErr: []string{`regions[0].name: invalid region name "EU West": use lower-case`}},
		{name: "region listed twice", mutate: func(c *Config) { c.Regions = []Region{{Name: "a"}, {Name: "b"}, {Name: "a"}} }, wantErr: []string{`regions[2].name: duplicate region name "a", also used by regions[0]`}},
		{name: "latitude out of range", mutate: func(c *Config) { c.Regions = []Region{{Name: "a", Lat: 90.5}} }, wantErr: []string{"regions[0].lat: must be between -90 and 90 degrees, got 90.5"}},
		{name: "longitude out of range", mutate: func(c *Config) { c.Regions = []Region{{Name: "a", Lon: -181}} }, wantErr: []string{"regions[0].lon: must be between -180 and 180 degrees, got -181"}},
		{name: "NaN coordinates", mutate: func(c *Config) { c.Regions = []Region{{Name: "a", Lat: math.NaN(), Lon: math.NaN()}} }, wantErr: []string{"regions[0].lat: must be between -90 and 90 degrees, got NaN", "regions[0].lon: must be between -180 and 180 degrees, got NaN"}},
		{name: "edges of the range", mutate: func(c *Config) {
			c.Regions = []Region{{Name: "a", Lat: -90, Lon: 180}, {Name: "b", Lat: 90, Lon: -180}}
		}},
		{name: "redirect host with a scheme", mutate: func(c *Config) { c.Regions = []Region{{Name: "a", RedirectHost: "https://a.example.com"}} }, wantErr: []string{`regions[0].redirect_host: must be host[:port] without a scheme`}},
		{name: "redirect host with a port", mutate: func(c *Config) { c.Regions = []Region{{Name: "a", RedirectHost: "[2001:db8::1]:8443"}} }},
		{name: "country code lower case", mutate: func(c *Config) { c.CountryRegions = map[string]string{"de": "eu-central-1"} }, wantErr: []string{`country_regions["de"]: country code must be two upper-case letters`}},
		{name: "country code too long", mutate: func(c *Config) { c.CountryRegions = map[string]string{"DEU": "eu-central-1"} }, wantErr: []string{`country_regions["DEU"]: country code`}},
		{name: "country override to an unknown region", mutate: func(c *Config) { c.CountryRegions = map[string]string{"DE": "eu-centrl-1"} }, wantErr: []string{`country_regions["DE"]: unknown region "eu-centrl-1"`}},
		{name: "country override to no region", mutate: func(c *Config) { c.CountryRegions = map[string]string{"DE": ""} }, wantErr: []string{`country_regions["DE"]: must name a region`}},
		{name: "continent code unknown", mutate: func(c *Config) { c.ContinentRegions = map[string]string{"EUR": "eu-central-1"} }, wantErr: []string{`continent_regions["EUR"]: continent code must be one of AF, AN, AS, EU, NA, OC, SA, got "EUR"`}},
		{name: "continent override to an unknown region", mutate: func(c *Config) { c.ContinentRegions = map[string]string{"OC": "au"} }, wantErr: []string{`continent_regions["OC"]: unknown region "au"`}},
		{name: "every problem at once, in a stable order", mutate: func(c *Config) {
			c.NodeRegion = "x"
			c.CountryRegions = map[string]string{"ZZ": "y", "AA": "z"}
		}, wantErr: []string{"node_region: unknown region \"x\"", `country_regions["AA"]: unknown region "z"`, `country_regions["ZZ"]: unknown region "y"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tt.wantErr)
			}
			last := -1
			for _, w := range tt.wantErr {
				i := strings.Index(err.Error(), w)
				if i < 0 {
					t.Errorf("Validate = %q, want it to contain %q", err, w)
				} else if i < last {
					t.Errorf("Validate = %q: %q out of order", err, w)
				}
				last = i
			}
		})
	}
}

// New takes what the file does not: no cache (a negative size) for benchmarks, and 0 for the
// default; and it needs a database, which the file may leave out.
func TestNewValidates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeRegion = "eu-central-1"
	if _, err := New(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "geo: invalid config: database: required") {
		t.Errorf("New without a database: %v, want database: required", err)
	}
	cfg = threeRegions(testDB(t))
	cfg.CacheSize = -1
	if _, err := New(cfg, nil, nil); err != nil {
		t.Errorf("New with cache_size -1: %v, want a Locator without a cache", err)
	}
}

func TestNewAppliesDefaultCacheSize(t *testing.T) {
	cfg := threeRegions(testDB(t))
	cfg.CacheSize = 0
	l, _ := newLocator(t, cfg)
	if got := len(l.state.Load().cache.buckets) * cacheWays; got != DefaultCacheSize {
		t.Errorf("cache holds %d entries, want the default %d", got, DefaultCacheSize)
	}
}
