package geo

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/veloflux/veloflux/internal/fielderr"
	"github.com/veloflux/veloflux/internal/hostrule"
)

// Config says where the database is, where this node runs and which regions exist: the geo
// section of the config file (keys in docs/geo-routing.md). The whole section is read once at
// startup.
type Config struct {
	// Database is the path of a GeoLite2/GeoIP2 City or Country .mmdb file. Default "" = no
	// geolocation; New requires it, and the config file does when a route has geo other than
	// off. It is memory-mapped, and Locator.Run reloads it when it is replaced. Validation
	// does not open it.
	Database string `koanf:"database"`
	// NodeRegion is the region this node runs in: first for clients that cannot be located.
	// [a-z0-9._-]+; with a Database, required and a known region (built in or in Regions).
	// Without one it only names the node's region in the cluster and in traces.
	NodeRegion string `koanf:"node_region"`
	// CacheSize is how many client addresses keep their answer in memory, rounded up to a
	// power of two. Default 65536, 1..10000000 (the cap keeps a typo from reserving
	// gigabytes). New also takes 0 for the default, and a negative size to disable the
	// per-address cache, so that every call decodes the database (for benchmarks).
	CacheSize int `koanf:"cache_size"`
	// ResponseHeader names a response header that carries the serving region, e.g.
	// "X-VeloFlux-Region". Default "" = no header. An RFC 9110 token. The proxy adds it; the
	// Locator does not read it.
	ResponseHeader string `koanf:"response_header"`
	// CountryRegions maps ISO 3166-1 alpha-2 country codes (upper case, "DE") to the region
	// their clients go to first, whatever the distance. Default none.
	CountryRegions map[string]string `koanf:"country_regions"`
	// ContinentRegions maps continent codes (AF AN AS EU NA OC SA) to the region their
	// clients go to first; a CountryRegions entry wins over it. Default none.
	ContinentRegions map[string]string `koanf:"continent_regions"`
	// Regions are added to the built-in table (BuiltinRegions); an entry with a built-in
	// name replaces it. Names unique. Default none. Last in the section, so that its
	// sub-table follows the section's table in the docs.
	Regions []Region `koanf:"regions"`
}

// DefaultCacheSize is Config.CacheSize when unset: enough for the distinct clients of a busy
// node over minutes, at about 40 bytes per address plus one order per distinct location.
const DefaultCacheSize = 65536

// maxCacheSize bounds CacheSize in the file.
const maxCacheSize = 10_000_000

// DefaultConfig returns the defaults; Database and NodeRegion have none.
func DefaultConfig() Config {
	return Config{
		CacheSize: DefaultCacheSize, // a few MB; see Config.CacheSize
	}
}

// Validate returns every problem with c at once, with paths relative to the geo section. With
// a Database, region names must be known: built in or in c.Regions.
func (c Config) Validate() error {
	e := c.validate()
	e.Between("cache_size", c.CacheSize, 1, maxCacheSize)
	return e.Err()
}

// validate is Validate without the cache size, whose 0 and negative values New accepts.
func (c Config) validate() fielderr.Errors {
	var e fielderr.Errors
	table := newRegionTable(c.Regions)
	// region checks a region name that c refers to at path.
	region := func(path, name string) {
		switch {
		case name == "":
			e.Add(path, "must name a region")
		case !ValidRegionName(name):
			e.Add(path, "invalid region name %s: use lower-case letters, digits, \".\", \"_\" and \"-\" only", fielderr.Quote(name))
		case c.Database != "" && !table.known(name):
			e.Add(path, "%s", unknownRegion(name))
		}
	}
	switch {
	case c.NodeRegion != "":
		region("node_region", c.NodeRegion)
	case c.Database != "":
		e.Add("node_region", "required with a database")
	}
	if c.ResponseHeader != "" && !isToken(c.ResponseHeader) {
		e.Add("response_header", "invalid header name %s: use letters, digits and !#$%%&'*+-.^_`|~ only", fielderr.Quote(c.ResponseHeader))
	}
	for _, code := range slices.Sorted(maps.Keys(c.CountryRegions)) {
		path := "country_regions[" + strconv.Quote(code) + "]"
		if !validCountryCode(code) {
			e.Add(path, "country code must be two upper-case letters (ISO 3166-1 alpha-2, e.g. \"DE\"), got %s", fielderr.Quote(code))
		}
		region(path, c.CountryRegions[code])
	}
	for _, code := range slices.Sorted(maps.Keys(c.ContinentRegions)) {
		path := "continent_regions[" + strconv.Quote(code) + "]"
		if !slices.Contains(continentCodes, code) {
			e.Add(path, "continent code must be one of %s, got %s", strings.Join(continentCodes, ", "), fielderr.Quote(code))
		}
		region(path, c.ContinentRegions[code])
	}
	byName := make(map[string]int, len(c.Regions))
	for i, r := range c.Regions {
		path := fielderr.Index("regions", i)
		switch {
		case r.Name == "":
			e.Add(path+".name", "required")
		case !ValidRegionName(r.Name):
			e.Add(path+".name", "invalid region name %s: use lower-case letters, digits, \".\", \"_\" and \"-\" only", fielderr.Quote(r.Name))
		default:
			if j, dup := byName[r.Name]; dup {
				e.Add(path+".name", "duplicate region name %s, also used by regions[%d]", fielderr.Quote(r.Name), j)
			} else {
				byName[r.Name] = i
			}
		}
		coordinate(&e, path+".lat", r.Lat, 90)
		coordinate(&e, path+".lon", r.Lon, 180)
		if r.RedirectHost != "" {
			if msg := checkRedirectHost(r.RedirectHost); msg != "" {
				e.Add(path+".redirect_host", "%s", msg)
			}
		}
	}
	return e
}

// Known reports whether name is a region of c's table: built in or in c.Regions.
func (c Config) Known(name string) bool { return newRegionTable(c.Regions).known(name) }

func unknownRegion(name string) string {
	return fmt.Sprintf("unknown region %q: not built in (see docs/geo-routing.md) and not in geo.regions", name)
}

// coordinate checks a latitude or longitude; NaN and infinities can come from YAML (.nan, .inf).
func coordinate(e *fielderr.Errors, path string, deg, limit float64) {
	if !(deg >= -limit && deg <= limit) {
		e.Add(path, "must be between %g and %g degrees, got %g", -limit, limit, deg)
	}
}

// ValidRegionName reports whether s is spelled as the config file and Consul tags allow for
// region names, [a-z0-9._-]+: lower-case only, because names are compared exactly and also
// appear in response headers and metrics.
func ValidRegionName(s string) bool {
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

// continentCodes are the seven codes GeoIP databases use in continent.code.
var continentCodes = []string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"}

// isToken reports whether s is an RFC 9110 token, as header names must be.
func isToken(s string) bool {
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return true
}

// checkRedirectHost returns why h cannot be the host of a redirect Location, or "": a host
// name, an IPv4 address or a bracketed IPv6 address, with an optional port.
func checkRedirectHost(h string) string {
	if strings.Contains(h, "://") {
		return fmt.Sprintf("must be host[:port] without a scheme, got %s", fielderr.Quote(h))
	}
	if strings.ContainsAny(h, "/?#") {
		return fmt.Sprintf("must be host[:port] without a path, got %s", fielderr.Quote(h))
	}
	host := h
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		hp, port, err := net.SplitHostPort(h)
		switch {
		case err == nil:
			if msg := hostrule.Port(port, 1); msg != "" {
				return msg
			}
			host = hp
		case strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]"):
			host = h[1 : len(h)-1]
		default:
			return fmt.Sprintf("invalid host %s", fielderr.Quote(h))
		}
		if strings.HasPrefix(h, "[") {
			if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
				return fmt.Sprintf("%s in brackets is not an IPv6 address", fielderr.Quote(host))
			}
			return ""
		}
	} else if strings.Contains(h, ":") {
		return fmt.Sprintf("IPv6 addresses must be in brackets, e.g. \"[2001:db8::1]\", got %s", fielderr.Quote(h))
	}
	if host == "" {
		return "missing host"
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
		return ""
	}
	if msg := hostrule.Name(host); msg != "" {
		return fmt.Sprintf("invalid host %s: %s", fielderr.Quote(host), msg)
	}
	return ""
}
