package geo

import (
	"math"
)

// Region is a named place backends can run in. Regions are compared by great-circle distance
// between their coordinates and the client's, so the coordinates should be those of the
// data-center metro, not of the country.
type Region struct {
	// Name is [a-z0-9._-]+, e.g. "eu-central-1": the name backends carry
	// (pools[].backends[].region). Required.
	Name string `koanf:"name"`
	// Lat and Lon are degrees, WGS84 as in the GeoIP database; south and west are negative.
	// Lat -90..90, Lon -180..180, both required in the file: 0 is a real place, so a
	// forgotten coordinate would silently move the region into the Gulf of Guinea.
	Lat float64 `koanf:"lat"`
	Lon float64 `koanf:"lon"`
	// RedirectHost is host[:port] that routes with geo redirect send this region's clients
	// to. Default "" = this region's clients are proxied, never redirected. The proxy uses
	// it; the Locator does not.
	RedirectHost string `koanf:"redirect_host"`
}

// BuiltinRegions returns the regions every Locator knows without configuration: the common
// AWS, GCP and Azure regions under their provider names, and a few generic names. Each call
// returns a new slice, so callers may modify it.
//
// Coordinates are those of the city the data centers are in or next to, rounded to two
// decimals (about 1 km), which is finer than GeoIP can place a client. Regions in one metro
// (eu-central-1 and europe-west3 in Frankfurt) share coordinates on purpose: which of them is
// "nearer" is then decided by table order (see Locator.Order), not by a few km of noise.
func BuiltinRegions() []Region {
	return []Region{
		// AWS
		{Name: "us-east-1", Lat: 39.04, Lon: -77.49},       // Ashburn, Virginia
		{Name: "us-east-2", Lat: 39.96, Lon: -83.00},       // Columbus, Ohio
		{Name: "us-west-1", Lat: 37.34, Lon: -121.89},      // San Jose, California
		{Name: "us-west-2", Lat: 45.84, Lon: -119.70},      // Boardman, Oregon
		{Name: "ca-central-1", Lat: 45.50, Lon: -73.57},    // Montréal
		{Name: "sa-east-1", Lat: -23.55, Lon: -46.63},      // São Paulo
		{Name: "eu-west-1", Lat: 53.35, Lon: -6.26},        // Dublin
		{Name: "eu-west-2", Lat: 51.51, Lon: -0.13},        // London
		{Name: "eu-west-3", Lat: 48.86, Lon: 2.35},         // Paris
		{Name: "eu-central-1", Lat: 50.11, Lon: 8.68},      // Frankfurt
		{Name: "eu-north-1", Lat: 59.33, Lon: 18.07},       // Stockholm
		{Name: "eu-south-1", Lat: 45.46, Lon: 9.19},        // Milan
		{Name: "ap-northeast-1", Lat: 35.68, Lon: 139.69},  // Tokyo
		{Name: "ap-northeast-2", Lat: 37.57, Lon: 126.98},  // Seoul
		{Name: "ap-northeast-3", Lat: 34.69, Lon: 135.50},  // Osaka
		{Name: "ap-southeast-1", Lat: 1.35, Lon: 103.82},   // Singapore
		{Name: "ap-southeast-2", Lat: -33.87, Lon: 151.21}, // Sydney
		{Name: "ap-south-1", Lat: 19.08, Lon: 72.88},       // Mumbai
		{Name: "me-south-1", Lat: 26.23, Lon: 50.59},       // Manama, Bahrain
		{Name: "af-south-1", Lat: -33.92, Lon: 18.42},      // Cape Town

		// GCP
		{Name: "us-central1", Lat: 41.26, Lon: -95.86},           // Council Bluffs, Iowa
		{Name: "us-east1", Lat: 33.20, Lon: -80.01},              // Moncks Corner, South Carolina
		{Name: "us-east4", Lat: 39.04, Lon: -77.49},              // Ashburn, Virginia
		{Name: "us-west1", Lat: 45.59, Lon: -121.18},             // The Dalles, Oregon
		{Name: "europe-west1", Lat: 50.45, Lon: 3.82},            // Saint-Ghislain, Belgium
		{Name: "europe-west2", Lat: 51.51, Lon: -0.13},           // London
		{Name: "europe-west3", Lat: 50.11, Lon: 8.68},            // Frankfurt
		{Name: "europe-west4", Lat: 53.44, Lon: 6.83},            // Eemshaven, Netherlands
		{Name: "europe-north1", Lat: 60.57, Lon: 27.20},          // Hamina, Finland
		{Name: "asia-east1", Lat: 24.05, Lon: 120.52},            // Changhua County, Taiwan
		{Name: "asia-northeast1", Lat: 35.68, Lon: 139.69},       // Tokyo
		{Name: "asia-southeast1", Lat: 1.34, Lon: 103.71},        // Jurong West, Singapore
		{Name: "australia-southeast1", Lat: -33.87, Lon: 151.21}, // Sydney
		{Name: "southamerica-east1", Lat: -23.53, Lon: -46.79},   // Osasco, São Paulo

		// Azure
		{Name: "eastus", Lat: 36.67, Lon: -78.39},         // Boydton, Virginia
		{Name: "westus2", Lat: 47.23, Lon: -119.85},       // Quincy, Washington
		{Name: "westeurope", Lat: 52.37, Lon: 4.90},       // Amsterdam
		{Name: "northeurope", Lat: 53.35, Lon: -6.26},     // Dublin
		{Name: "southeastasia", Lat: 1.35, Lon: 103.82},   // Singapore
		{Name: "japaneast", Lat: 35.68, Lon: 139.69},      // Tokyo
		{Name: "australiaeast", Lat: -33.87, Lon: 151.21}, // Sydney

		// Generic names, for deployments that name regions by area rather than by provider.
		{Name: "us-east", Lat: 39.04, Lon: -77.49},     // Ashburn, Virginia
		{Name: "us-west", Lat: 37.34, Lon: -121.89},    // San Jose, California
		{Name: "eu", Lat: 50.11, Lon: 8.68},            // Frankfurt
		{Name: "eu-west", Lat: 53.35, Lon: -6.26},      // Dublin
		{Name: "eu-central", Lat: 50.11, Lon: 8.68},    // Frankfurt
		{Name: "asia", Lat: 22.32, Lon: 114.17},        // Hong Kong
		{Name: "ap-southeast", Lat: 1.35, Lon: 103.82}, // Singapore
		{Name: "sa", Lat: -23.55, Lon: -46.63},         // São Paulo
		{Name: "af", Lat: -26.20, Lon: 28.05},          // Johannesburg
		{Name: "me", Lat: 25.20, Lon: 55.27},           // Dubai
	}
}

// earthRadiusKm is the mean Earth radius. The sphere is off by up to 0.5% against the
// ellipsoid, far less than the error of a GeoIP position.
const earthRadiusKm = 6371

// Distance returns the great-circle distance in km between two points given in degrees,
// by the haversine formula on a sphere of radius 6371 km.
func Distance(aLat, aLon, bLat, bLon float64) float64 {
	const rad = math.Pi / 180
	φ1, φ2 := aLat*rad, bLat*rad
	dφ, dλ := (bLat-aLat)*rad, (bLon-aLon)*rad
	s1, s2 := math.Sin(dφ/2), math.Sin(dλ/2)
	h := s1*s1 + math.Cos(φ1)*math.Cos(φ2)*s2*s2
	// Rounding can push h a hair above 1 for antipodal points, where Asin would give NaN.
	return 2 * earthRadiusKm * math.Asin(math.Sqrt(math.Min(h, 1)))
}

// regionTable is the built-in regions with Config.Regions applied: a same-named entry
// replaces the built-in coordinates in place, a new name is appended. Its order is the
// tie-break of Order among regions at the same distance.
type regionTable struct {
	regions    []Region
	index      map[string]int // name -> position in regions
	configured []bool         // named in Config.Regions: wins ties against built-ins
}

func newRegionTable(extra []Region) regionTable {
	regions := BuiltinRegions()
	t := regionTable{index: make(map[string]int, len(regions)+len(extra))}
	for i, r := range regions {
		t.index[r.Name] = i
	}
	t.configured = make([]bool, len(regions), len(regions)+len(extra))
	for _, r := range extra {
		if i, ok := t.index[r.Name]; ok {
			regions[i] = r
			t.configured[i] = true
			continue
		}
		t.index[r.Name] = len(regions)
		regions = append(regions, r)
		t.configured = append(t.configured, true)
	}
	t.regions = regions
	return t
}

func (t regionTable) known(name string) bool {
	_, ok := t.index[name]
	return ok
}
