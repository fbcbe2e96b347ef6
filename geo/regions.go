package geo

import (
	"math"
)

// Region is a named place backends can run in. Regions are compared by great-circle distance
// between their coordinates and the client's, so the coordinates should be those of the
// data-center metro, not of the country.
type Region struct {
	Name     string  // e.g. "eu-central-1"; the name backends carry (pools[].backends[].region)
	Lat, Lon float64 // degrees, WGS84 as in the GeoIP database; south and west are negative
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
		{"us-east-1", 39.04, -77.49},       // Ashburn, Virginia
		{"us-east-2", 39.96, -83.00},       // Columbus, Ohio
		{"us-west-1", 37.34, -121.89},      // San Jose, California
		{"us-west-2", 45.84, -119.70},      // Boardman, Oregon
		{"ca-central-1", 45.50, -73.57},    // Montréal
		{"sa-east-1", -23.55, -46.63},      // São Paulo
		{"eu-west-1", 53.35, -6.26},        // Dublin
		{"eu-west-2", 51.51, -0.13},        // London
		{"eu-west-3", 48.86, 2.35},         // Paris
		{"eu-central-1", 50.11, 8.68},      // Frankfurt
		{"eu-north-1", 59.33, 18.07},       // Stockholm
		{"eu-south-1", 45.46, 9.19},        // Milan
		{"ap-northeast-1", 35.68, 139.69},  // Tokyo
		{"ap-northeast-2", 37.57, 126.98},  // Seoul
		{"ap-northeast-3", 34.69, 135.50},  // Osaka
		{"ap-southeast-1", 1.35, 103.82},   // Singapore
		{"ap-southeast-2", -33.87, 151.21}, // Sydney
		{"ap-south-1", 19.08, 72.88},       // Mumbai
		{"me-south-1", 26.23, 50.59},       // Manama, Bahrain
		{"af-south-1", -33.92, 18.42},      // Cape Town

		// GCP
		{"us-central1", 41.26, -95.86},           // Council Bluffs, Iowa
		{"us-east1", 33.20, -80.01},              // Moncks Corner, South Carolina
		{"us-east4", 39.04, -77.49},              // Ashburn, Virginia
		{"us-west1", 45.59, -121.18},             // The Dalles, Oregon
		{"europe-west1", 50.45, 3.82},            // Saint-Ghislain, Belgium
		{"europe-west2", 51.51, -0.13},           // London
		{"europe-west3", 50.11, 8.68},            // Frankfurt
		{"europe-west4", 53.44, 6.83},            // Eemshaven, Netherlands
		{"europe-north1", 60.57, 27.20},          // Hamina, Finland
		{"asia-east1", 24.05, 120.52},            // Changhua County, Taiwan
		{"asia-northeast1", 35.68, 139.69},       // Tokyo
		{"asia-southeast1", 1.34, 103.71},        // Jurong West, Singapore
		{"australia-southeast1", -33.87, 151.21}, // Sydney
		{"southamerica-east1", -23.53, -46.79},   // Osasco, São Paulo

		// Azure
		{"eastus", 36.67, -78.39},         // Boydton, Virginia
		{"westus2", 47.23, -119.85},       // Quincy, Washington
		{"westeurope", 52.37, 4.90},       // Amsterdam
		{"northeurope", 53.35, -6.26},     // Dublin
		{"southeastasia", 1.35, 103.82},   // Singapore
		{"japaneast", 35.68, 139.69},      // Tokyo
		{"australiaeast", -33.87, 151.21}, // Sydney

		// Generic names, for deployments that name regions by area rather than by provider.
		{"us-east", 39.04, -77.49},     // Ashburn, Virginia
		{"us-west", 37.34, -121.89},    // San Jose, California
		{"eu", 50.11, 8.68},            // Frankfurt
		{"eu-west", 53.35, -6.26},      // Dublin
		{"eu-central", 50.11, 8.68},    // Frankfurt
		{"asia", 22.32, 114.17},        // Hong Kong
		{"ap-southeast", 1.35, 103.82}, // Singapore
		{"sa", -23.55, -46.63},         // São Paulo
		{"af", -26.20, 28.05},          // Johannesburg
		{"me", 25.20, 55.27},           // Dubai
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
