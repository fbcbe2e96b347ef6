//go:build integration

package integration

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// geoConfig is a node in eu-central-1 with a pool over one backend in each of three regions,
// routed to the region nearest the client; trusted, when not empty, is the one peer whose
// X-Forwarded-For is believed. Its backends are not probed: see withProbes.
func geoConfig(db, trusted string, eu, us, ap *switchable) testconfig.Config {
	pool := testconfig.Pool{Name: "web"}
	for _, b := range []struct {
		s      *switchable
		region string
	}{{eu, "eu-central-1"}, {us, "us-east-1"}, {ap, "ap-southeast-1"}} {
		pool.Backends = append(pool.Backends, testconfig.Backend{Address: b.s.addr(), Region: b.region})
	}
	cfg := testconfig.Config{
		Global: testconfig.Loopback(),
		Geo:    &testconfig.Geo{Database: db, NodeRegion: "eu-central-1", ResponseHeader: "X-VeloFlux-Region"},
		Pools:  []testconfig.Pool{pool},
		Routes: []testconfig.Route{{Pool: "web", Geo: "nearest"}},
	}
	if trusted != "" {
		cfg.Global.TrustedProxies = []string{trusted}
	}
	return cfg
}

// withProbes is cfg with its backends probed, for a test that takes one down. A probe that times
// out on a busy machine takes a healthy backend down too, and its clients to another region, so
// the tests that do not take one down leave probing off, and this one gives a probe a whole
// second (the interval, the most a timeout may be) and takes two failures in a row to go down:
// a backend taken down answers its probe with 503 at once, so the failover still comes within
// about two intervals, while a probe merely starved of CPU no longer takes a healthy backend out.
func withProbes(cfg testconfig.Config) testconfig.Config {
	cfg.Pools[0].HealthCheck = &testconfig.HealthCheck{Path: "/health"}
	cfg.Global.HealthCheck = &testconfig.HealthCheck{Interval: testconfig.Duration(time.Second), Timeout: testconfig.Duration(time.Second), Retries: 2}
	return cfg
}

// TestGeoNearestRegionWithFailover sends clients from three continents (their addresses
// through a trusted proxy) and checks each lands in its nearest region, fails over by distance
// when that region's backend dies, and returns when it recovers.
func TestGeoNearestRegionWithFailover(t *testing.T) {
	db := geoDB(t)
	eu, us, ap := newSwitchable(t, "eu"), newSwitchable(t, "us"), newSwitchable(t, "ap")
	n := startNode(t, withProbes(geoConfig(db, "127.0.0.1/32", eu, us, ap)).YAML(t))

	clients := []struct{ ip, want string }{
		{"80.128.0.1", "eu"}, // Deutsche Telekom, near Frankfurt
		{"8.8.8.8", "us"},    // the US centroid
		{"13.228.0.1", "ap"}, // AWS Singapore
		{"133.11.0.1", "ap"}, // University of Tokyo
		{"127.0.0.1", "eu"},  // cannot be located: the node's region
	}
	for _, c := range clients {
		code, body, hdr := get(t, n.url("/"), "X-Forwarded-For", c.ip)
		if code != 200 || body != c.want {
			t.Errorf("client %s: %d %q, want 200 %s", c.ip, code, body, c.want)
		}
		if c.want == "eu" && hdr.Get("X-Veloflux-Region") != "eu-central-1" {
			t.Errorf("client %s: region header %q, want eu-central-1", c.ip, hdr.Get("X-Veloflux-Region"))
		}
	}

	// Frankfurt's backend dies: the German client goes to the next nearest, Virginia.
	eu.down.Store(true)
	testutil.Eventually(t, "German client failed over to us", func() bool {
		_, body, _ := get(t, n.url("/"), "X-Forwarded-For", "80.128.0.1")
		return body == "us"
	})
	// It recovers: back to Frankfurt.
	eu.down.Store(false)
	testutil.Eventually(t, "German client back in eu", func() bool {
		_, body, _ := get(t, n.url("/"), "X-Forwarded-For", "80.128.0.1")
		return body == "eu"
	})

	_, m, _ := get(t, "http://"+n.metrics+"/metrics")
	for _, want := range []string{
		`veloflux_geo_requests_total{country="DE",region="eu-central-1"}`,
		`veloflux_geo_requests_total{country="DE",region="us-east-1"}`,
		`veloflux_geo_requests_total{country="SG",region="ap-southeast-1"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	assertMetricsDocumented(t, m)
}

// TestGeoIgnoresSpoofedHeader: without trusted proxies, X-Forwarded-For cannot move a client.
func TestGeoIgnoresSpoofedHeader(t *testing.T) {
	db := geoDB(t)
	eu, us, ap := newSwitchable(t, "eu"), newSwitchable(t, "us"), newSwitchable(t, "ap")
	n := startNode(t, geoConfig(db, "", eu, us, ap).YAML(t))
	for _, spoof := range []string{"8.8.8.8", "13.228.0.1"} {
		if _, body, _ := get(t, n.url("/"), "X-Forwarded-For", spoof); body != "eu" {
			t.Errorf("loopback client claiming %s went to %q, want the node's region eu", spoof, body)
		}
	}
}

// TestGeoDatabaseHotReload replaces the database file under a running node: the same client
// address moves from Frankfurt to Singapore without a restart.
func TestGeoDatabaseHotReload(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "geo.mmdb")
	writeDB(t, db, 50.11, 8.68, "DE", "EU") // 198.51.100.0/24 in Frankfurt
	eu, us, ap := newSwitchable(t, "eu"), newSwitchable(t, "us"), newSwitchable(t, "ap")
	n := startNode(t, geoConfig(db, "127.0.0.1/32", eu, us, ap).YAML(t))
	if _, body, _ := get(t, n.url("/"), "X-Forwarded-For", "198.51.100.7"); body != "eu" {
		t.Fatalf("before reload: %q, want eu", body)
	}
	writeDB(t, db, 1.35, 103.82, "SG", "AS") // now in Singapore
	testutil.Eventually(t, "client moved to ap after the database changed", func() bool {
		_, body, _ := get(t, n.url("/"), "X-Forwarded-For", "198.51.100.7")
		return body == "ap"
	})
	// A corrupt file is refused; the node keeps answering from the last good one.
	if err := os.WriteFile(db+".tmp", []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(db+".tmp", db); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the corrupt database rejected", func() bool {
		return len(n.logs.Find("geo database update rejected; the loaded database keeps serving")) > 0
	})
	if _, body, _ := get(t, n.url("/"), "X-Forwarded-For", "198.51.100.7"); body != "ap" {
		t.Fatalf("after a corrupt replacement: %q, want ap from the last good database", body)
	}
}

// writeDB atomically writes a City-shaped database placing 198.51.100.0/24 at lat/lon.
func writeDB(t *testing.T, path string, lat, lon float64, country, continent string) {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-City", IncludeReservedNetworks: true, RecordSize: 28})
	if err != nil {
		t.Fatal(err)
	}
	_, network, _ := net.ParseCIDR("198.51.100.0/24")
	err = w.Insert(network, mmdbtype.Map{
		"country":   mmdbtype.Map{"iso_code": mmdbtype.String(country)},
		"continent": mmdbtype.Map{"code": mmdbtype.String(continent)},
		"location":  mmdbtype.Map{"latitude": mmdbtype.Float64(lat), "longitude": mmdbtype.Float64(lon), "accuracy_radius": mmdbtype.Uint16(10)},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}
