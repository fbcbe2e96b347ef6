//go:build integration

package integration

import (
	"time"

	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// singlePool is a node on loopback (drain timeout 5s) sending every request to pool, which must
// be named web.
func singlePool(pool testconfig.Pool) testconfig.Config {
	g := testconfig.Loopback()
	g.DrainTimeout = testconfig.Duration(5 * time.Second)
	return testconfig.Config{Global: g, Pools: []testconfig.Pool{pool}, Routes: []testconfig.Route{{Pool: "web"}}}
}

// addrsOf is the addresses of backends, in order.
func addrsOf(backends []*backend) []string {
	var out []string
	for _, b := range backends {
		out = append(out, b.addr())
	}
	return out
}

// tlsNode is singlePool over backend with a TLS listener serving certFile, access log off.
func tlsNode(backend, certFile, keyFile string) testconfig.Config {
	cfg := singlePool(testconfig.WebPool(backend))
	cfg.Global.AccessLog = testconfig.Ptr(false)
	cfg.Global.TLSBindAddress = "127.0.0.1:0"
	cfg.Global.TLS = &testconfig.TLS{CertFile: certFile, KeyFile: keyFile}
	return cfg
}

// clusterNode is a cluster member on loopback named name, gossiping on bind and joining
// through seed (none when empty), with a sticky pool web over backends.
func clusterNode(name, bind, seed string, backends []*backend) testconfig.Config {
	pool := testconfig.WebPool(addrsOf(backends)...)
	pool.StickySessions = true
	c := testconfig.Config{
		Global: testconfig.Loopback(),
		Sticky: &testconfig.Sticky{Secret: "cluster-test-secret-cluster-test-secret-42"},
		Cluster: &testconfig.Cluster{
			Enabled: true, Name: name, BindAddress: bind,
			GossipKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		},
		Pools:  []testconfig.Pool{pool},
		Routes: []testconfig.Route{{Pool: "web"}},
	}
	if seed != "" {
		c.Cluster.Seeds = []string{seed}
	}
	return c
}
