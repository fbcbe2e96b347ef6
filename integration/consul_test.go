//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/veloflux/veloflux/discovery/consul/consultest"
	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// consulNode starts veloflux with Consul discovery against agent, quick to coalesce and back
// off; set, when not nil, adds to the discovery.consul settings.
func consulNode(t *testing.T, agent *consultest.Agent, set func(*testconfig.Consul), env ...string) *node {
	t.Helper()
	cfg := testconfig.Config{Global: testconfig.Loopback(), Discovery: &testconfig.Discovery{Consul: testconfig.Consul{
		Enabled: true, Address: agent.HTTPAddr,
		Coalesce:   testconfig.Duration(20 * time.Millisecond),
		MinBackoff: testconfig.Duration(100 * time.Millisecond),
		MaxBackoff: testconfig.Duration(500 * time.Millisecond),
	}}}
	cfg.Global.DrainTimeout = testconfig.Duration(2 * time.Second)
	if set != nil {
		set(&cfg.Discovery.Consul)
	}
	return startNode(t, cfg.YAML(t), env...)
}

// bodies sends n requests to url and counts the bodies.
func bodies(t *testing.T, url string, n int, hdr ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for i := 0; i < n; i++ {
		code, body, _ := get(t, url, hdr...)
		out[strconv.Itoa(code)+" "+body]++
	}
	return out
}

func TestConsulDrivesRouting(t *testing.T) {
	agent := consultest.Start(t, "dc1")
	c := consulClient(t, agent, "")
	a, b := newBackend(t, "A", 0), newBackend(t, "B", 0)
	n := consulNode(t, agent, nil)

	// A tagged, passing service receives traffic within a second.
	start := time.Now()
	register(t, c, "web-a", "web", a, api.HealthPassing, "veloflux.enable=true", "veloflux.route=/")
	testutil.Eventually(t, "web-a routed", func() bool {
		code, body, _ := get(t, n.url("/"))
		return code == 200 && body == "A"
	})
	if took := time.Since(start); took > time.Second {
		t.Errorf("registration to first routed request took %v, want under 1s", took)
	}

	// A second instance with weight 3 gets three times the traffic of the first.
	register(t, c, "web-b", "web", b, api.HealthPassing, "veloflux.enable=true", "veloflux.route=/", "veloflux.weight=3")
	testutil.Eventually(t, "web-b routed", func() bool { _, body, _ := get(t, n.url("/")); return body == "B" })
	got := bodies(t, n.url("/"), 40)
	if got["200 A"] < 8 || got["200 A"] > 12 || got["200 A"]+got["200 B"] != 40 {
		t.Errorf("weights 1:3 gave %v, want about 10 A and 30 B", got)
	}

	_, scrape, _ := get(t, "http://"+n.metrics+"/metrics")
	if !strings.Contains(scrape, `veloflux_consul_up{datacenter="dc1"} 1`) {
		t.Errorf("metrics lack veloflux_consul_up 1 for dc1")
	}
	assertMetricsDocumented(t, scrape)

	// A failing check takes the instance out.
	if err := c.Agent().UpdateTTL("ttl-web-b", "broken", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "critical web-b out", func() bool { return bodies(t, n.url("/"), 6)["200 A"] == 6 })

	// Maintenance mode takes an instance out too.
	if err := c.Agent().UpdateTTL("ttl-web-b", "", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "web-b back", func() bool { return bodies(t, n.url("/"), 8)["200 B"] > 0 })
	if err := c.Agent().EnableServiceMaintenance("web-b", "test"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "web-b in maintenance out", func() bool { return bodies(t, n.url("/"), 6)["200 A"] == 6 })
	if err := c.Agent().DisableServiceMaintenance("web-b"); err != nil {
		t.Fatal(err)
	}

	// The agent dies: the last table keeps serving.
	agent.Kill()
	// Once the node shows the outage, its source has seen Consul fail.
	testutil.Eventually(t, "consul outage in the admin status", func() bool {
		_, body, _ := get(t, "http://"+n.admin+"/admin/status")
		return strings.Contains(body, `"error"`)
	})
	if got := bodies(t, n.url("/"), 8); got["200 A"]+got["200 B"] != 8 {
		t.Fatalf("with Consul down: %v, want every request served", got)
	}

	// It comes back empty (dev mode): the index starts over, and new registrations flow again.
	agent.Restart()
	c = consulClient(t, agent, "")
	register(t, c, "web-b", "web", b, api.HealthPassing, "veloflux.enable=true", "veloflux.route=/")
	testutil.Eventually(t, "only web-b after the restart", func() bool { return bodies(t, n.url("/"), 6)["200 B"] == 6 })

	// Deregistering the last instance removes the pool: no route any more.
	if err := c.Agent().ServiceDeregister("web-b"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "pool gone", func() bool { code, _, _ := get(t, n.url("/")); return code == 404 })
}

// TestConsulTwoDatacenters joins two dev agents over the WAN: instances of both join one
// pool as backends of two regions.
func TestConsulTwoDatacenters(t *testing.T) {
	dc1, dc2 := consultest.Start(t, "dc1"), consultest.Start(t, "dc2")
	dc1.JoinWAN(dc2)
	a, b := newBackend(t, "A", 0), newBackend(t, "B", 0)
	register(t, consulClient(t, dc1, ""), "web-a", "web", a, api.HealthPassing, "veloflux.enable=true", "veloflux.route=/")
	register(t, consulClient(t, dc2, ""), "web-b", "web", b, api.HealthPassing, "veloflux.enable=true", "veloflux.route=/")
	n := consulNode(t, dc1, func(c *testconfig.Consul) { c.Datacenters = []string{"dc2"} })

	testutil.Eventually(t, "both datacenters routed", func() bool {
		got := bodies(t, n.url("/"), 6)
		return got["200 A"] > 0 && got["200 B"] > 0
	})
	_, body, _ := get(t, "http://"+n.admin+"/admin/pools")
	var pools []struct {
		Name     string `json:"name"`
		Backends []struct {
			Region string `json:"region"`
		} `json:"backends"`
	}
	if err := json.Unmarshal([]byte(body), &pools); err != nil {
		t.Fatalf("admin pools: %v\n%s", err, body)
	}
	if len(pools) != 1 || pools[0].Name != "web" {
		t.Fatalf("pools %s, want the one pool web", body)
	}
	var regions []string
	for _, b := range pools[0].Backends {
		regions = append(regions, b.Region)
	}
	slices.Sort(regions)
	if !slices.Equal(regions, []string{"dc1", "dc2"}) {
		t.Errorf("backend regions %v, want dc1 and dc2", regions)
	}
}

// TestConsulChangeLatency measures the time from a Consul change to the routing change seen
// by a client, over 20 changes, and reports median and max. Each change must arrive through
// the watch's blocking query, well inside the wait guard (60 s, far below the query's 5-minute
// wait_time); the figures are reported, not held to a bound, since the machine's load sets
// them.
func TestConsulChangeLatency(t *testing.T) {
	agent := consultest.Start(t, "dc1")
	c := consulClient(t, agent, "")
	n := consulNode(t, agent, nil)
	var took []time.Duration
	for i := 0; i < 20; i++ {
		b := newBackend(t, fmt.Sprintf("svc%d", i), 0)
		path := fmt.Sprintf("/svc%d", i)
		start := time.Now()
		register(t, c, fmt.Sprintf("svc%d", i), fmt.Sprintf("svc%d", i), b, api.HealthPassing, "veloflux.enable=true", "veloflux.route="+path)
		testutil.Eventually(t, path+" routed", func() bool {
			resp, err := client.Get(n.url(path))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	median, max := took[len(took)/2], took[len(took)-1]
	t.Logf("Consul change to routing change over %d changes: median %v, max %v", len(took), median, max)
}

// TestConsulSelfRegistration: the node registers itself with a /readyz check, goes into
// maintenance the moment it drains, and deregisters when it stops.
func TestConsulSelfRegistration(t *testing.T) {
	agent := consultest.Start(t, "dc1")
	c := consulClient(t, agent, "")
	n := consulNode(t, agent, func(c *testconfig.Consul) {
		c.Register = &testconfig.ConsulRegister{Enabled: true, ID: "vf-test-1", CheckInterval: testconfig.Duration(time.Second)}
	},
		"VF_ADMIN_USER=ops", "VF_ADMIN_PASS=pw")

	status := func() string {
		checks, _, err := c.Health().Checks("veloflux", nil)
		if err != nil || len(checks) == 0 {
			return "missing"
		}
		return checks.AggregatedStatus()
	}
	testutil.Eventually(t, "veloflux registered and passing", func() bool { return status() == api.HealthPassing })
	svcs, _, err := c.Catalog().Service("veloflux", "", nil)
	if err != nil || len(svcs) != 1 {
		t.Fatalf("catalog veloflux: %v %v", svcs, err)
	}
	if _, port, _ := net.SplitHostPort(n.proxy); strconv.Itoa(svcs[0].ServicePort) != port {
		t.Errorf("registered port %d, proxy listens on %s", svcs[0].ServicePort, n.proxy)
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+n.admin+"/admin/drain", nil)
	req.SetBasicAuth("ops", "pw")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := status(); s != api.HealthMaint {
		t.Errorf("right after POST /admin/drain Consul says %s, want %s", s, api.HealthMaint)
	}

	n.signal(syscall.SIGTERM)
	if err := n.wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if s := status(); s != "missing" {
		t.Errorf("after stop the service is %s, want deregistered", s)
	}
}

// TestConsulTokenNeverShown runs with an ACL token through an outage and looks for the token
// everywhere the node shows things: logs, admin API, metrics.
func TestConsulTokenNeverShown(t *testing.T) {
	const token = "3f1d5c1e-token-never-shown-9a7b"
	agent := consultest.Start(t, "dc1")
	n := consulNode(t, agent, func(c *testconfig.Consul) { c.Token = token }, "VF_ADMIN_USER=ops", "VF_ADMIN_PASS=pw")
	agent.Kill() // errors mention the request; none may carry the token
	testutil.Eventually(t, "the outage in the admin status", func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.admin+"/admin/status", nil)
		req.SetBasicAuth("ops", "pw")
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"state":"error"`)
	})
	var shown []string
	for _, path := range []string{"/admin/status", "/admin/config", "/admin/pools"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.admin+path, nil)
		req.SetBasicAuth("ops", "pw")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		shown = append(shown, string(b))
	}
	_, m, _ := get(t, "http://"+n.metrics+"/metrics")
	shown = append(shown, m, n.logs.String())
	for i, s := range shown {
		if strings.Contains(s, token) {
			t.Errorf("output %d shows the Consul token:\n%s", i, s)
		}
	}
	if !strings.Contains(shown[1], "REDACTED") {
		t.Errorf("/admin/config does not show the token as REDACTED:\n%s", shown[1])
	}
}
