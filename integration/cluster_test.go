//go:build integration

package integration

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/discovery/consul/consultest"
)

// freeAddr returns a loopback address with a free port (for gossip, which binds TCP and UDP).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func clusterConfig(name, bind, seed string, backends []*backend) string {
	pool := "  - name: web\n    sticky_sessions: true\n    backends:\n"
	for _, b := range backends {
		pool += "      - address: \"" + b.addr() + "\"\n"
	}
	seeds := "[]"
	if seed != "" {
		seeds = "[\"" + seed + "\"]"
	}
	return `global:
  bind_address: "127.0.0.1:0"
  metrics_address: "127.0.0.1:0"
  admin_address: "127.0.0.1:0"
sticky:
  secret: "cluster-test-secret-cluster-test-secret-42"
cluster:
  enabled: true
  name: ` + name + `
  bind_address: "` + bind + `"
  gossip_key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
  seeds: ` + seeds + `
pools:
` + pool + `routes:
  - pool: web
`
}

// TestClusterSharesStickySessions runs two veloflux processes joined by gossip: sessions
// pinned through node A go to the same backend through node B.
func TestClusterSharesStickySessions(t *testing.T) {
	var backends []*backend
	for i := 0; i < 5; i++ {
		backends = append(backends, newBackend(t, fmt.Sprintf("b%d", i), 0))
	}
	bindA := freeAddr(t)
	a := startNode(t, clusterConfig("node-a", bindA, "", backends))
	b := startNode(t, clusterConfig("node-b", freeAddr(t), bindA, backends))

	pins := map[string]string{}
	for i := 0; i < 20; i++ {
		_, body, hdr := get(t, a.url("/"))
		pins[cookiePair(t, hdr)] = body
	}
	// Wait until node b holds all 20 pins (asking it earlier would make it pin the session
	// itself, and its newer pin would win everywhere).
	start := time.Now()
	waitFor(t, 10*time.Second, "20 sessions replicated to node b", func() bool {
		_, m, _ := get(t, "http://"+b.metrics+"/metrics")
		return strings.Contains(m, `veloflux_gossip_state_entries{kind="session"} 20`)
	})
	t.Logf("20 sessions pinned on node a reached node b in %v", time.Since(start).Round(time.Millisecond))
	for cookie, want := range pins {
		if _, body, _ := get(t, b.url("/"), "Cookie", cookie); body != want {
			t.Errorf("session %s: node a pinned %s, node b answered from %s", cookie, want, body)
		}
	}
}

// TestClusterJoinsThroughConsul: node a registers in Consul with its gossip address; node b,
// with no static seeds, finds it there and joins.
func TestClusterJoinsThroughConsul(t *testing.T) {
	agent := consultest.Start(t, "dc1")
	be := newBackend(t, "b0", 0)
	cfg := func(name string) string {
		c := clusterConfig(name, freeAddr(t), "", []*backend{be})
		c = strings.Replace(c, "  seeds: []\n", "  seeds: []\n  join_consul: true\n", 1)
		return c + `discovery:
  consul:
    enabled: true
    address: "` + agent.HTTPAddr + `"
    register:
      enabled: true
      id: veloflux-` + name + `
      check_interval: 1s
`
	}
	a := startNode(t, cfg("node-a"))
	c := consulClient(t, agent, "")
	waitFor(t, 10*time.Second, "node a registered with its gossip address", func() bool {
		svcs, _, err := c.Catalog().Service("veloflux", "", nil)
		return err == nil && len(svcs) == 1 && svcs[0].ServiceMeta["gossip_addr"] != ""
	})
	b := startNode(t, cfg("node-b"))
	members := func(n *node) int {
		_, body, _ := get(t, "http://"+n.admin+"/admin/status")
		return strings.Count(body, `"Name":"node-`)
	}
	waitFor(t, 10*time.Second, "both nodes see two members", func() bool { return members(a) == 2 && members(b) == 2 })
}
