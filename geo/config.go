package geo

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Config says where the database is, where this node runs and which regions exist. The
// config loader fills it from the geo section (keys in docs/geo-routing.md).
type Config struct {
	// Database is the path of a GeoLite2/GeoIP2 City or Country .mmdb file. Required. It is
	// memory-mapped, and Locator.Run reloads it when it is replaced. Key: geo.database.
	Database string
	// NodeRegion is the region this node runs in: first for clients that cannot be located.
	// Required; must be a built-in region or one of Regions. Key: geo.node_region.
	NodeRegion string
	// Regions are added to the built-in table (BuiltinRegions); an entry with a built-in
	// name replaces its coordinates. Default none. Key: geo.regions.
	Regions []Region
	// CountryRegions maps ISO 3166-1 alpha-2 country codes (upper case, "DE") to the region
	// their clients go to first, whatever the distance. Default none. Key:
	// geo.country_regions.
	CountryRegions map[string]string
	// ContinentRegions maps continent codes (AF AN AS EU NA OC SA) to the region their
	// clients go to first; a CountryRegions entry wins over it. Default none. Key:
	// geo.continent_regions.
	ContinentRegions map[string]string
	// CacheSize is how many client addresses keep their answer in memory, rounded up to a
	// power of two. Default 65536; 0 means the default; negative disables the per-address
	// cache, so every call decodes the database (for benchmarks). Key: geo.cache_size.
	CacheSize int
}

// DefaultCacheSize is Config.CacheSize when unset: enough for the distinct clients of a busy
// node over minutes, at about 40 bytes per address plus one order per distinct location.
const DefaultCacheSize = 65536

// DefaultConfig returns the defaults; Database and NodeRegion have none and must be set.
func DefaultConfig() Config {
	return Config{
		CacheSize: DefaultCacheSize, // a few MB; see Config.CacheSize
	}
}

// Validate returns every problem with c at once, each prefixed with its config key. Region
// names must be known: built in or in c.Regions.
func (c Config) Validate() error {
	var errs []error
	if c.Database == "" {
		errs = append(errs, errors.New("geo.database: required"))
	}
	seen := make(map[string]int, len(c.Regions))
	for i, r := range c.Regions {
		key := fmt.Sprintf("geo.regions[%d]", i)
		switch {
		case r.Name == "":
			errs = append(errs, fmt.Errorf("%s.name: required", key))
		case !validRegionName(r.Name):
			errs = append(errs, fmt.Errorf("%s.name: %q: use lower-case letters, digits, \".\", \"_\" and \"-\" only", key, r.Name))
		default:
			if j, dup := seen[r.Name]; dup {
				errs = append(errs, fmt.Errorf("%s.name: %q is also geo.regions[%d]", key, r.Name, j))
			}
			seen[r.Name] = i
		}
		if math.IsNaN(r.Lat) || r.Lat < -90 || r.Lat > 90 {
			errs = append(errs, fmt.Errorf("%s.lat: %v is outside -90..90", key, r.Lat))
		}
		if math.IsNaN(r.Lon) || r.Lon < -180 || r.Lon > 180 {
			errs = append(errs, fmt.Errorf("%s.lon: %v is outside -180..180", key, r.Lon))
		}
	}
	table := newRegionTable(c.Regions)
	switch {
	case c.NodeRegion == "":
		errs = append(errs, errors.New("geo.node_region: required"))
	case !table.known(c.NodeRegion):
		errs = append(errs, fmt.Errorf("geo.node_region: %s", unknownRegion(c.NodeRegion)))
	}
	for _, code := range sortedKeys(c.CountryRegions) {
		key := fmt.Sprintf("geo.country_regions[%q]", code)
		if !validCountryCode(code) {
			errs = append(errs, fmt.Errorf("%s: country code must be two upper-case letters", key))
		}
		if region := c.CountryRegions[code]; !table.known(region) {
			errs = append(errs, fmt.Errorf("%s: %s", key, unknownRegion(region)))
		}
	}
	for _, code := range sortedKeys(c.ContinentRegions) {
		key := fmt.Sprintf("geo.continent_regions[%q]", code)
		if !validContinentCode(code) {
			errs = append(errs, fmt.Errorf("%s: continent code must be one of AF AN AS EU NA OC SA", key))
		}
		if region := c.ContinentRegions[code]; !table.known(region) {
			errs = append(errs, fmt.Errorf("%s: %s", key, unknownRegion(region)))
		}
	}
	return errors.Join(errs...)
}

func unknownRegion(name string) string {
	return fmt.Sprintf("unknown region %q: not built in (see docs/geo-routing.md) and not in geo.regions", name)
}

// validRegionName is the syntax the config loader and Consul tags allow for region names.
func validRegionName(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

func validCountryCode(s string) bool {
	return len(s) == 2 && 'A' <= s[0] && s[0] <= 'Z' && 'A' <= s[1] && s[1] <= 'Z'
}

// validContinentCode accepts the seven codes GeoIP databases use in continent.code.
func validContinentCode(s string) bool {
	switch s {
	case "AF", "AN", "AS", "EU", "NA", "OC", "SA":
		return true
	}
	return false
}

// sortedKeys makes Validate's report stable: map order would shuffle it run to run.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
