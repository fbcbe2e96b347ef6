package geo

import (
	"math"
	"slices"
	"testing"
)

func TestDistance(t *testing.T) {
	tests := []struct {
		name                   string
		aLat, aLon, bLat, bLon float64
		want, tolerance        float64 // km
	}{
		// The textbook haversine example (BNA to LAX), 2886.44 km on a 6371 km sphere.
		{"Nashville to Los Angeles", 36.12, -86.67, 33.94, -118.40, 2886.44, 0.01},
		{"same point", 50.11, 8.68, 50.11, 8.68, 0, 0},
		{"a quarter meridian", 0, 0, 90, 0, math.Pi / 2 * 6371, 1e-6},
		{"antipodes: half the circumference, not NaN", 0, 0, 0, 180, math.Pi * 6371, 1e-6},
		{"antipodes off the equator", 40, -100, -40, 80, math.Pi * 6371, 1e-6},
		{"across the antimeridian is short", 0, 179.5, 0, -179.5, math.Pi / 180 * 6371, 1e-6},
		{"one degree of longitude on the equator", 0, 10, 0, 11, 2 * math.Pi * 6371 / 360, 1e-6},
		{"one degree of longitude at 60°N is about half as long", 60, 10, 60, 11, 55.597, 0.001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Distance(tt.aLat, tt.aLon, tt.bLat, tt.bLon)
			if math.IsNaN(got) || math.Abs(got-tt.want) > tt.tolerance {
				t.Errorf("Distance = %.4f km, want %.4f ± %v", got, tt.want, tt.tolerance)
			}
			if back := Distance(tt.bLat, tt.bLon, tt.aLat, tt.aLon); math.Abs(back-got) > 1e-9 {
				t.Errorf("not symmetric: %.6f one way, %.6f back", got, back)
			}
		})
	}
}

func TestBuiltinRegions(t *testing.T) {
	regions := BuiltinRegions()
	want := []string{
		"us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1", "eu-west-1", "eu-west-2",
		"eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
		"ap-southeast-1", "ap-southeast-2", "ap-south-1", "me-south-1", "af-south-1",
		"us-central1", "us-east1", "us-east4", "us-west1", "europe-west1", "europe-west2", "europe-west3", "europe-west4",
		"europe-north1", "asia-east1", "asia-northeast1", "asia-southeast1", "australia-southeast1", "southamerica-east1",
		"eastus", "westus2", "westeurope", "northeurope", "southeastasia", "japaneast", "australiaeast",
		"us-east", "us-west", "eu", "eu-west", "eu-central", "asia", "ap-southeast", "sa", "af", "me",
	}
	if got := names(regions); !slices.Equal(got, want) {
		t.Errorf("built-in regions = %v, want %v", got, want)
	}
	for _, r := range regions {
		if !ValidRegionName(r.Name) || r.Lat < -90 || r.Lat > 90 || r.Lon < -180 || r.Lon > 180 {
			t.Errorf("%+v: invalid name or coordinates", r)
		}
	}
	regions[0].Name = "changed"
	if BuiltinRegions()[0].Name != "us-east-1" {
		t.Error("changing the returned slice changed the built-in table")
	}
	regions = BuiltinRegions()

	// Spot checks that the coordinates are in the right place, each against a city the region
	// must be closer to than to any other listed here.
	near := []struct {
		region   string
		lat, lon float64 // a well-known point of the metro
	}{
		{"eu-central-1", 50.05, 8.57},      // Frankfurt airport
		{"us-east-1", 38.95, -77.45},       // Washington Dulles airport
		{"ap-southeast-1", 1.36, 103.99},   // Changi airport
		{"ap-southeast-2", -33.95, 151.18}, // Sydney airport
		{"sa-east-1", -23.43, -46.47},      // Guarulhos airport
		{"af-south-1", -33.97, 18.60},      // Cape Town airport
		{"ap-northeast-1", 35.55, 139.78},  // Haneda airport
		{"eu-west-1", 53.42, -6.27},        // Dublin airport
	}
	for _, n := range near {
		var best Region
		bestD := math.Inf(1)
		for _, r := range regions {
			if d := Distance(n.lat, n.lon, r.Lat, r.Lon); d < bestD {
				best, bestD = r, d
			}
		}
		if self := regions[slices.IndexFunc(regions, func(r Region) bool { return r.Name == n.region })]; Distance(n.lat, n.lon, self.Lat, self.Lon) > bestD || bestD > 50 {
			t.Errorf("%s: nearest region to its airport is %s at %.0f km", n.region, best.Name, bestD)
		}
	}
}

func TestRegionTableOverrides(t *testing.T) {
	table := newRegionTable([]Region{{Name: "eu", Lat: 48.86, Lon: 2.35}, {Name: "moon-1", Lat: 0, Lon: 0}})
	builtins := len(BuiltinRegions())
	if len(table.regions) != builtins+1 {
		t.Fatalf("%d regions, want the %d built-ins plus one", len(table.regions), builtins)
	}
	if i := table.index["eu"]; table.regions[i] != (Region{Name: "eu", Lat: 48.86, Lon: 2.35}) || !table.configured[i] || i >= builtins {
		t.Errorf("eu = %+v (configured %v, position %d): want the override in the built-in's place", table.regions[i], table.configured[i], i)
	}
	if i := table.index["moon-1"]; i != builtins || !table.configured[i] {
		t.Errorf("moon-1 at %d (configured %v), want appended at %d", i, table.configured[i], builtins)
	}
	if table.configured[table.index["eu-central-1"]] {
		t.Error("a built-in region counts as configured")
	}
}
