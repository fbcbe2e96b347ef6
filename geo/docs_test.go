package geo_test

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/geo"
)

// The examples of docs/geo-routing.md are checked here as cmd will use them: each YAML block
// must load with the config package, and its geo section must make a valid geo.Config whose
// regions are all known, backends' regions included.

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/geo-routing.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

func TestDocsExamples(t *testing.T) {
	doc := readDoc(t)
	blocks := yamlBlock.FindAllStringSubmatchIndex(doc, -1)
	if len(blocks) < 4 {
		t.Fatalf("found %d YAML examples, want the snippets and two complete configs", len(blocks))
	}
	complete := 0
	for i, m := range blocks {
		text := doc[m[2]:m[3]]
		isComplete := strings.HasSuffix(strings.TrimSpace(doc[:m[0]]), "<!-- example:config -->")
		line := strings.Count(doc[:m[0]], "\n") + 1
		t.Run(fmt.Sprintf("line %d", line), func(t *testing.T) {
			cfg, err := config.Parse([]byte(text), nil)
			if err != nil {
				t.Fatalf("example %d does not load:\n%v", i, err)
			}
			gc := cfg.Geo
			if !isComplete {
				// A snippet shows one part of the section; the rest is filled in here.
				gc.Database, gc.NodeRegion = "/var/lib/GeoIP/GeoLite2-City.mmdb", "eu-central-1"
			} else {
				complete++
				// A Consul example sets its geo mode with the veloflux.geo tag, outside the
				// YAML, so only the static example must show one in the file.
				if !usesGeo(cfg) && !cfg.Discovery.Consul.Enabled {
					t.Error("a complete example without a route using geo")
				}
			}
			if err := gc.Validate(); err != nil {
				t.Errorf("example %d: its geo section is invalid for the geo package:\n%v", i, err)
			}
			known := map[string]bool{}
			for _, r := range geo.BuiltinRegions() {
				known[r.Name] = true
			}
			for _, r := range gc.Regions {
				known[r.Name] = true
			}
			for pi, p := range cfg.Pools {
				for bi, b := range p.Backends {
					if b.Region != "" && !known[b.Region] {
						t.Errorf("pools[%d].backends[%d].region: unknown region %q", pi, bi, b.Region)
					}
				}
			}
		})
	}
	if complete != 2 {
		t.Errorf("%d complete examples, want 2 (static backends, Consul datacenters)", complete)
	}
}

func usesGeo(cfg *config.Config) bool {
	for _, r := range cfg.Routes {
		if r.Geo == config.GeoNearest || r.Geo == config.GeoRedirect {
			return true
		}
	}
	return false
}

var tableRow = regexp.MustCompile("(?m)^\\| `([a-z0-9.-]+)` \\| [^|]+ \\| [^|]+ \\| (-?[0-9.]+) \\| (-?[0-9.]+) \\|$")

func TestDocsBuiltinTable(t *testing.T) {
	doc := readDoc(t)
	start := strings.Index(doc, "<!-- example:builtin-regions -->")
	if start < 0 {
		t.Fatal("the built-in regions table is missing")
	}
	section := doc[start:]
	section = section[:strings.Index(section, "\n## ")]
	rows := tableRow.FindAllStringSubmatch(section, -1)
	want := geo.BuiltinRegions()
	if len(rows) != len(want) {
		t.Fatalf("the docs list %d built-in regions, the code %d", len(rows), len(want))
	}
	for i, r := range want {
		lat, _ := strconv.ParseFloat(rows[i][2], 64)
		lon, _ := strconv.ParseFloat(rows[i][3], 64)
		if rows[i][1] != r.Name || lat != r.Lat || lon != r.Lon {
			t.Errorf("docs row %d is %s %v,%v; the code has %s %v,%v", i, rows[i][1], lat, lon, r.Name, r.Lat, r.Lon)
		}
	}
}

func TestDocsDistanceTable(t *testing.T) {
	// The clients of the example table, at their city centres.
	cities := map[string][2]float64{
		"Madrid": {40.42, -3.70}, "New York": {40.71, -74.01}, "São Paulo": {-23.55, -46.63},
		"Tokyo": {35.69, 139.69}, "Sydney": {-33.87, 151.21}, "Mumbai": {19.08, 72.88},
		"Johannesburg": {-26.20, 28.05},
	}
	regions := []geo.Region{{Name: "eu", Lat: 50.11, Lon: 8.68}, {Name: "us", Lat: 39.04, Lon: -77.49}, {Name: "ap", Lat: 1.35, Lon: 103.82}}
	row := regexp.MustCompile(`(?m)^\| ([^|]+) \| (\d+) \| (\d+) \| (\d+) \| ([a-z, ]+) \|$`)
	rows := row.FindAllStringSubmatch(readDoc(t), -1)
	if len(rows) != len(cities) {
		t.Fatalf("found %d rows of the distance table, want %d", len(rows), len(cities))
	}
	for _, r := range rows {
		c, ok := cities[r[1]]
		if !ok {
			t.Errorf("unexpected city %q", r[1])
			continue
		}
		type near struct {
			name string
			d    float64
		}
		var got []near
		for i, reg := range regions {
			d := geo.Distance(c[0], c[1], reg.Lat, reg.Lon)
			if doc, _ := strconv.Atoi(r[2+i]); math.Round(d) != float64(doc) {
				t.Errorf("%s to %s: docs say %d km, Distance gives %.0f", r[1], reg.Name, doc, d)
			}
			got = append(got, near{reg.Name, d})
		}
		for i := 1; i < len(got); i++ {
			for j := i; j > 0 && got[j].d < got[j-1].d; j-- {
				got[j], got[j-1] = got[j-1], got[j]
			}
		}
		if order := got[0].name + ", " + got[1].name + ", " + got[2].name; order != r[5] {
			t.Errorf("%s: docs order %q, by distance %q", r[1], r[5], order)
		}
	}
}
