package testconfig_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// fixtures together set every field of Config (TestFixturesSetEveryField checks that), each
// one a valid file; auto_cert and certificate files cannot be in one file.
func fixtures() map[string]testconfig.Config {
	sec := func(n int) testconfig.Duration { return testconfig.Duration(time.Duration(n) * time.Second) }
	files := testconfig.Config{
		Global: testconfig.Global{
			BindAddress: "127.0.0.1:8081", TLSBindAddress: "127.0.0.1:8443",
			MetricsAddress: testconfig.Ptr("127.0.0.1:9101"), AdminAddress: testconfig.Ptr(""),
			DrainTimeout: sec(7), HTTP3: testconfig.Ptr(false), HTTP1FastPath: testconfig.Ptr(false),
			AccessLog: testconfig.Ptr(false), LogLevel: "warn", TrustedProxies: []string{"10.0.0.0/8"},
			HealthCheck: &testconfig.HealthCheck{Type: "http", Method: "HEAD", Host: "probe.internal", ExpectStatus: "200-299",
				Interval: sec(3), Timeout: sec(2), Retries: 4, Rise: 5, MaxInterval: sec(90)},
			Passive: &testconfig.Passive{ConsecutiveFailures: 6, EjectionTime: sec(11), MaxEjectionTime: sec(120), MaxEjectionPercent: 30},
			Limits:  &testconfig.Limits{MaxClientConns: 777, MaxConnsPerBackend: 55, BackendQueueTimeout: sec(13)},
			TLS: &testconfig.TLS{CertFile: "/certs/a.pem", KeyFile: "/certs/a.key",
				Certificates: []testconfig.CertPair{{CertFile: "/certs/b.pem", KeyFile: "/certs/b.key"}}},
		},
		Sticky: &testconfig.Sticky{Secret: strings.Repeat("k", 40)},
		Discovery: &testconfig.Discovery{Consul: testconfig.Consul{
			Enabled: true, Address: "127.0.0.1:8599", Token: "consul-token", Datacenters: []string{"dc1", "dc2"},
			Coalesce: sec(2), MinBackoff: sec(3), MaxBackoff: sec(40),
			Register: &testconfig.ConsulRegister{Enabled: true, Name: "vf-test", ID: "vf-test-1", CheckInterval: sec(4)},
		}},
		Geo: &testconfig.Geo{Database: "/geo/City.mmdb", NodeRegion: "eu-west", ResponseHeader: "X-Test-Region"},
		Cluster: &testconfig.Cluster{
			Enabled: true, Name: "node-x", BindAddress: "127.0.0.1:7999",
			GossipKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", GossipKeys: []string{"Tn8mrmNZxRPN9PrNJ5pKN2kVtn5pDHqXMrSN/w2ZMak="},
			Seeds: []string{"127.0.0.1:7998"}, JoinConsul: true, Label: "prod", ReconnectInterval: sec(8),
			MaxEntriesPerKind: 5000, TombstoneTTL: sec(3600),
		},
		Tracing: &testconfig.Tracing{Enabled: true, Endpoint: "127.0.0.1:4318", Protocol: "http", Insecure: true,
			SampleRatio: 0.25, BatchTimeout: sec(6), ServiceName: "vf-test"},
		Pools: []testconfig.Pool{{
			Name: "web", Algorithm: config.AlgorithmLeastConn, StickySessions: true, MaxConnsPerBackend: 9,
			HealthCheck: &testconfig.HealthCheck{Type: "http", Path: "/health", Method: "GET", Host: "web.internal", ExpectStatus: "204",
				Interval: sec(9), Timeout: sec(1), Retries: 2, Rise: 3, MaxInterval: sec(60)},
			Passive: &testconfig.Passive{ConsecutiveFailures: 2, EjectionTime: sec(12), MaxEjectionTime: sec(50), MaxEjectionPercent: 40},
			Backends: []testconfig.Backend{{Address: "10.0.0.1:80", Weight: 3, Region: "us-east",
				HealthCheck: &testconfig.BackendHealthCheck{Path: "/own", Method: "GET", Host: "one.internal", ExpectStatus: "200,301"}}},
		}},
		Routes: []testconfig.Route{{Host: "shop.example", PathPrefix: "/cart", Pool: "web", Geo: config.GeoNearest}},
	}
	acme := testconfig.Config{
		Global: testconfig.Global{
			BindAddress: "127.0.0.1:8081", TLSBindAddress: "127.0.0.1:8443",
			TLS: &testconfig.TLS{AutoCert: true, ACMEEmail: "ops@example.com", CertDir: "/var/lib/vf",
				ACMEDirectory: "https://127.0.0.1:14000/dir", ACMECARoot: "/certs/pebble.pem",
				ACMEChallenges: []string{config.ACMEChallengeTLSALPN01}, Storage: config.ACMEStorageFile},
		},
	}
	return map[string]testconfig.Config{"certificate files": files, "ACME": acme}
}

// TestRoundTrip writes each fixture, loads it with the real loader (which refuses unknown
// keys), and checks that every key written reads back as the value set.
func TestRoundTrip(t *testing.T) {
	for name, c := range fixtures() {
		t.Run(name, func(t *testing.T) {
			text := c.YAML(t)
			cfg, err := config.Parse([]byte(text), nil)
			if err != nil {
				t.Fatalf("the real loader refused the file:\n%v\n%s", err, text)
			}
			var tree any
			if err := yaml.Unmarshal([]byte(text), &tree); err != nil {
				t.Fatal(err)
			}
			compare(t, "", tree, reflect.ValueOf(*cfg))
		})
	}
}

// TestUnknownKeyRefused: a key the product does not read, written through Extra, stops the
// load, so a misspelt field tag in Config fails TestRoundTrip instead of being ignored.
func TestUnknownKeyRefused(t *testing.T) {
	c := testconfig.Config{Global: testconfig.Global{BindAddress: "127.0.0.1:0", Extra: map[string]any{"bind_adress": "127.0.0.1:1"}}}
	_, err := config.Parse([]byte(c.YAML(t)), nil)
	if err == nil || !strings.Contains(err.Error(), "global.bind_adress") || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("error %v, want an unknown key global.bind_adress", err)
	}
}

// compare checks the YAML value written at path against the loaded configuration's field.
func compare(t *testing.T, path string, written any, loaded reflect.Value) {
	t.Helper()
	for loaded.Kind() == reflect.Pointer {
		loaded = loaded.Elem()
	}
	switch w := written.(type) {
	case map[string]any:
		for k, v := range w {
			f, ok := field(loaded, k)
			if !ok {
				t.Errorf("%s: no field of %s has key %q", join(path, k), loaded.Type(), k)
				continue
			}
			compare(t, join(path, k), v, f)
		}
	case []any:
		if loaded.Kind() != reflect.Slice || loaded.Len() != len(w) {
			t.Errorf("%s: wrote %d elements, loaded %v", path, len(w), loaded)
			return
		}
		for i, v := range w {
			compare(t, path+"["+strconv.Itoa(i)+"]", v, loaded.Index(i))
		}
	default:
		var got, want string
		switch l := loaded.Interface().(type) {
		case time.Duration:
			d, err := time.ParseDuration(fmt.Sprint(w))
			if err != nil {
				t.Errorf("%s: wrote %v, not a duration", path, w)
			}
			got, want = l.String(), d.String()
		case netip.Prefix:
			got, want = l.String(), fmt.Sprint(w)
		default:
			got, want = fmt.Sprint(l), fmt.Sprint(w)
		}
		if got != want {
			t.Errorf("%s: wrote %s, loaded %s", path, want, got)
		}
	}
}

// field is the field of struct v whose koanf key is key, looking into squashed embedded
// structs as the loader does.
func field(v reflect.Value, key string) (reflect.Value, bool) {
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	for i := range v.NumField() {
		tag := v.Type().Field(i).Tag.Get("koanf")
		name, opts, _ := strings.Cut(tag, ",")
		if name == key {
			return v.Field(i), true
		}
		if name == "" && opts == "squash" {
			if f, ok := field(v.Field(i), key); ok {
				return f, true
			}
		}
	}
	return reflect.Value{}, false
}

// TestFixturesSetEveryField: a field added to Config is covered by TestRoundTrip only once a
// fixture sets it.
func TestFixturesSetEveryField(t *testing.T) {
	set := map[string]bool{}
	for _, c := range fixtures() {
		setPaths(reflect.ValueOf(c), "", set)
	}
	for _, p := range fieldPaths(reflect.TypeOf(testconfig.Config{}), "") {
		// HealthCheck serves global.health_check and pools[].health_check; only the pool's
		// has a path, and TestUnknownKeyRefused shows the loader refusing one elsewhere.
		if !set[p] && p != "global.health_check.path" {
			t.Errorf("no fixture sets %s", p)
		}
	}
}

// fieldPaths lists the leaf fields of t by their keys, [] standing for any element; Extra,
// for keys the type does not know, is left out.
func fieldPaths(t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice {
			if t.Elem().Kind() != reflect.Struct {
				return []string{path}
			}
			path += "[]"
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(testconfig.Duration(0)) {
		return []string{path}
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" {
			continue // Extra
		}
		out = append(out, fieldPaths(f.Type, join(path, key))...)
	}
	return out
}

// setPaths adds to set the leaf fields of v that hold a non-zero value.
func setPaths(v reflect.Value, path string, set map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		switch {
		case v.IsNil():
		case v.Elem().Kind() == reflect.Struct:
			setPaths(v.Elem(), path, set)
		default:
			set[path] = true // a pointer to a scalar is written even when it points to zero
		}
	case reflect.Slice:
		if v.Len() == 0 {
			return
		}
		if v.Type().Elem().Kind() != reflect.Struct {
			set[path] = true
			return
		}
		for i := range v.Len() {
			setPaths(v.Index(i), path+"[]", set)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if key != "" {
				setPaths(v.Field(i), join(path, key), set)
			}
		}
	default:
		if !v.IsZero() {
			set[path] = true
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
