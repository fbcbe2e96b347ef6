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
		wantErr []string // each must appear; none means valid
	}{
		{name: "defaults with database and node region", mutate: func(*Config) {}},
		{name: "everything set", mutate: func(c *Config) {
			c.Regions = []Region{{"eu", 50.11, 8.68}, {"dc-north", 59.33, 18.07}}
			c.NodeRegion = "dc-north"
			c.CountryRegions = map[string]string{"DE": "eu", "SE": "dc-north"}
			c.ContinentRegions = map[string]string{"EU": "eu", "NA": "us-east-1"}
		}},
		{name: "database missing", mutate: func(c *Config) { c.Database = "" }, wantErr: []string{"geo.database: required"}},
		{name: "node region missing", mutate: func(c *Config) { c.NodeRegion = "" }, wantErr: []string{"geo.node_region: required"}},
		{name: "node region unknown", mutate: func(c *Config) { c.NodeRegion = "eu-central-2" }, wantErr: []string{`geo.node_region: unknown region "eu-central-2"`}},
		{name: "node region added by regions", mutate: func(c *Config) {
			c.Regions = []Region{{"moon-1", 0, 0}}
			c.NodeRegion = "moon-1"
		}},
		{name: "region name missing", mutate: func(c *Config) { c.Regions = []Region{{"", 1, 1}} }, wantErr: []string{"geo.regions[0].name: required"}},
		{name: "region name syntax", mutate: func(c *Config) { c.Regions = []Region{{"EU West", 1, 1}} }, wantErr: []string{`geo.regions[0].name: "EU West": use lower-case`}},
		{name: "region listed twice", mutate: func(c *Config) { c.Regions = []Region{{"a", 1, 1}, {"b", 1, 1}, {"a", 2, 2}} }, wantErr: []string{`geo.regions[2].name: "a" is also geo.regions[0]`}},
		{name: "latitude out of range", mutate: func(c *Config) { c.Regions = []Region{{"a", 90.5, 0}} }, wantErr: []string{"geo.regions[0].lat: 90.5 is outside -90..90"}},
		{name: "longitude out of range", mutate: func(c *Config) { c.Regions = []Region{{"a", 0, -181}} }, wantErr: []string{"geo.regions[0].lon: -181 is outside -180..180"}},
		{name: "NaN coordinates", mutate: func(c *Config) { c.Regions = []Region{{"a", math.NaN(), math.NaN()}} }, wantErr: []string{"geo.regions[0].lat: NaN", "geo.regions[0].lon: NaN"}},
		{name: "edges of the range", mutate: func(c *Config) { c.Regions = []Region{{"a", -90, 180}, {"b", 90, -180}} }},
		{name: "country code lower case", mutate: func(c *Config) { c.CountryRegions = map[string]string{"de": "eu"} }, wantErr: []string{`geo.country_regions["de"]: country code must be two upper-case letters`}},
		{name: "country code too long", mutate: func(c *Config) { c.CountryRegions = map[string]string{"DEU": "eu"} }, wantErr: []string{`geo.country_regions["DEU"]: country code`}},
		{name: "country override to an unknown region", mutate: func(c *Config) { c.CountryRegions = map[string]string{"DE": "eu-centrl-1"} }, wantErr: []string{`geo.country_regions["DE"]: unknown region "eu-centrl-1"`}},
		{name: "continent code unknown", mutate: func(c *Config) { c.ContinentRegions = map[string]string{"EUR": "eu"} }, wantErr: []string{`geo.continent_regions["EUR"]: continent code must be one of AF AN AS EU NA OC SA`}},
		{name: "continent override to an unknown region", mutate: func(c *Config) { c.ContinentRegions = map[string]string{"OC": "au"} }, wantErr: []string{`geo.continent_regions["OC"]: unknown region "au"`}},
		{name: "every problem at once, in a stable order", mutate: func(c *Config) {
			c.Database = ""
			c.NodeRegion = "x"
			c.CountryRegions = map[string]string{"ZZ": "y", "AA": "z"}
		}, wantErr: []string{"geo.database: required\ngeo.node_region: unknown region \"x\"", `geo.country_regions["AA"]: unknown region "z"`, `geo.country_regions["ZZ"]: unknown region "y"`}},
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

func TestNewAppliesDefaultCacheSize(t *testing.T) {
	cfg := threeRegions(testDB(t))
	cfg.CacheSize = 0
	l, _ := newLocator(t, cfg)
	if got := len(l.state.Load().cache.buckets) * cacheWays; got != DefaultCacheSize {
		t.Errorf("cache holds %d entries, want the default %d", got, DefaultCacheSize)
	}
}
