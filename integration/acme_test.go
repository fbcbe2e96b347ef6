//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/veloflux/veloflux/discovery/consul/consultest"
	"github.com/veloflux/veloflux/internal/pebbletest"
	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// acmeNodeConfig is a node on ip with ACME from Pebble, its state in Consul, HTTP-01 only
// (the tests point a name's DNS at the node that must answer), routing hosts to one backend.
func acmeNodeConfig(ip string, ports []int, p *pebbletest.Server, agent *consultest.Agent, certDir string, be *backend, hosts ...string) testconfig.Config {
	var routes []testconfig.Route
	for _, h := range hosts {
		routes = append(routes, testconfig.Route{Host: h, Pool: "web"})
	}
	routes = append(routes, testconfig.Route{Pool: "web"})
	return testconfig.Config{
		Global: testconfig.Global{
			BindAddress:    net.JoinHostPort(ip, strconv.Itoa(ports[0])),
			TLSBindAddress: net.JoinHostPort(ip, strconv.Itoa(ports[1])),
			MetricsAddress: testconfig.Ptr("127.0.0.1:0"),
			AdminAddress:   testconfig.Ptr("127.0.0.1:0"),
			DrainTimeout:   testconfig.Duration(2 * time.Second),
			HTTP3:          testconfig.Ptr(false),
			LogLevel:       "debug",
			TLS: &testconfig.TLS{
				AutoCert: true, ACMEEmail: "ops@example.com", CertDir: certDir,
				ACMEDirectory: p.Directory, ACMECARoot: p.CARootFile,
				ACMEChallenges: []string{"http-01"}, Storage: "consul",
			},
		},
		Discovery: &testconfig.Discovery{Consul: testconfig.Consul{Enabled: true, Address: agent.HTTPAddr}},
		Pools:     []testconfig.Pool{testconfig.WebPool(be.addr())},
		Routes:    routes,
	}
}

// serial connects to addr asking for name, verifies the certificate against roots as a
// browser would, and returns its serial.
func serial(addr, name string, roots *x509.CertPool) (string, error) {
	d := &tls.Dialer{Config: &tls.Config{ServerName: name, RootCAs: roots}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func waitSerial(t *testing.T, n *node, name string, roots *x509.CertPool) string {
	t.Helper()
	var s string
	testutil.Eventually(t, name+" served by "+n.tlsListener(), func() bool {
		var err error
		s, err = serial(n.tlsListener(), name, roots)
		return err == nil
	})
	return s
}

// acmeOrders is the node's veloflux_acme_orders_total.
func acmeOrders(t *testing.T, n *node) int {
	t.Helper()
	line := metricLine(t, n, "veloflux_acme_orders_total")
	v, err := strconv.ParseFloat(line, 64)
	if err != nil {
		t.Fatalf("veloflux_acme_orders_total: %q: %v", line, err)
	}
	return int(v)
}

// TestACMECluster: three nodes sharing Consul storage. B routes neither name at first, and
// the names resolve to B, so B answers the HTTP-01 challenges of orders placed by A or C from
// the shared tokens. A and C both route the names and order each exactly once between them;
// both serve the same certificate; B, given the routes by a reload, serves it too without a
// new order; a name no route lists gets no certificate and no order.
func TestACMECluster(t *testing.T) {
	agent := consultest.Start(t, "")
	ports := testutil.FreePorts(t, 2)
	p := pebbletest.Start(t, pebbletest.Options{HTTPPort: ports[0], TLSPort: ports[1]})
	be := newBackend(t, "app", 0)
	names := []string{"shop.example.com", "blog.example.com"}
	for _, name := range names {
		p.SetA(name, "127.0.0.2")
	}
	certDir := t.TempDir()

	b := startNode(t, acmeNodeConfig("127.0.0.2", ports, p, agent, certDir, be).YAML(t))
	a := startNode(t, acmeNodeConfig("127.0.0.1", ports, p, agent, certDir, be, names...).YAML(t))
	c := startNode(t, acmeNodeConfig("127.0.0.3", ports, p, agent, certDir, be, names...).YAML(t))
	roots := p.Roots()

	serials := map[string]string{}
	for _, name := range names {
		serials[name] = waitSerial(t, a, name, roots)
		if got := waitSerial(t, c, name, roots); got != serials[name] {
			t.Errorf("%s: node A serves serial %s, node C %s; want one certificate", name, serials[name], got)
		}
	}
	if got := p.Orders(); got != len(names) {
		t.Errorf("Pebble saw %d orders for %d names from two nodes, want one per name", got, len(names))
	}
	if got := acmeOrders(t, a) + acmeOrders(t, c) + acmeOrders(t, b); got != len(names) {
		t.Errorf("the nodes placed %d orders, want %d", got, len(names))
	}
	// Every validation went to 127.0.0.2, where only B listens.
	if got := p.Log.Count("Attempting to validate w/ HTTP: http://"); got == 0 {
		t.Errorf("Pebble made no HTTP-01 request:\n%s", p.Log)
	}

	// A name no route lists: no certificate, no order.
	if _, err := serial(a.tlsListener(), "evil.example.com", roots); err == nil {
		t.Error("a handshake for an unrouted name succeeded")
	}

	// B gets the routes by a reload and serves the stored certificates, ordering nothing.
	if err := os.WriteFile(b.cfgPath, []byte(acmeNodeConfig("127.0.0.2", ports, p, agent, certDir, be, names...).YAML(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	b.signal(syscall.SIGHUP)
	for _, name := range names {
		if got := waitSerial(t, b, name, roots); got != serials[name] {
			t.Errorf("%s: node B serves serial %s after the reload, want %s", name, got, serials[name])
		}
	}
	if got := p.Orders(); got != len(names) {
		t.Errorf("after B took the routes Pebble saw %d orders, want still %d", got, len(names))
	}
	// A host that a Consul service's tags route gets its certificate too, ordered once.
	p.SetA("api.example.com", "127.0.0.2")
	register(t, consulClient(t, agent, ""), "api-1", "api", be, api.HealthPassing, "veloflux.enable=true", "veloflux.route=api.example.com")
	apiSerial := waitSerial(t, a, "api.example.com", roots)
	for _, n := range []*node{b, c} {
		if got := waitSerial(t, n, "api.example.com", roots); got != apiSerial {
			t.Errorf("api.example.com: %s serves serial %s, node A %s", n.tlsListener(), got, apiSerial)
		}
	}
	if got := p.Orders(); got != len(names)+1 {
		t.Errorf("after a Consul-routed host Pebble saw %d orders, want %d", got, len(names)+1)
	}
	names = append(names, "api.example.com")

	_, body, _ := get(t, "http://"+b.admin+"/admin/status")
	var status struct {
		ACME struct {
			Names []struct{ Name, State, Serial string }
		}
	}
	if err := json.Unmarshal([]byte(body), &status); err != nil {
		t.Fatalf("/admin/status: %v\n%s", err, body)
	}
	if len(status.ACME.Names) != len(names) {
		t.Fatalf("B's /admin/status acme names = %+v, want %v", status.ACME.Names, names)
	}
	for _, ns := range status.ACME.Names {
		if ns.State != "valid" || ns.Serial == "" {
			t.Errorf("B's /admin/status shows %+v, want a valid certificate", ns)
		}
	}
}

// TestACMELockHolderKilled: a node killed in the middle of an order, holding the name's lock,
// does not block the name for longer than the lock TTL: another node takes the lock once
// Consul drops the dead node's session, and obtains the certificate.
func TestACMELockHolderKilled(t *testing.T) {
	agent := consultest.Start(t, "")
	ports := testutil.FreePorts(t, 2)
	p := pebbletest.Start(t, pebbletest.Options{HTTPPort: ports[0], TLSPort: ports[1]})
	be := newBackend(t, "app", 0)
	const name = "shop.example.com"

	// Pebble's validation goes to a listener that accepts and never answers: the order stays
	// open, and its node holds the lock.
	hole, err := net.Listen("tcp", "127.0.0.9:"+strconv.Itoa(ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	p.SetA(name, "127.0.0.9")
	certDir := t.TempDir()

	a := startNode(t, acmeNodeConfig("127.0.0.1", ports, p, agent, certDir, be, name).YAML(t))
	conn := testutil.Receive(t, held, "Pebble's validation request for A's order")
	defer conn.Close()
	c := startNode(t, acmeNodeConfig("127.0.0.3", ports, p, agent, certDir, be, name).YAML(t))
	p.SetA(name, "127.0.0.3")
	a.signal(syscall.SIGKILL)
	_ = a.wait()
	killed := time.Now()

	roots := p.Roots()
	waitSerial(t, c, name, roots)
	served := time.Since(killed)

	// The lock TTL is the bound (global.tls.lock_ttl, 20s by default), from the kill, when the
	// holder's renewals stopped, to the moment C's certmagic took the lock; C's wait is woken by
	// the lock's deletion, so only scheduling is allowed beyond it.
	const lockTTL, allowance = 20 * time.Second, time.Second
	var acquired time.Time
	for _, r := range c.logs.Find("lock acquired") {
		if r["identifier"] != name {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["ts"]))
		if err != nil {
			t.Fatalf("lock acquired at %v: %v", r["ts"], err)
		}
		acquired = ts
	}
	if acquired.IsZero() {
		t.Fatalf("node C served %s without logging that it took the lock:\n%s", name, c.logs)
	}
	took := acquired.Sub(killed)
	t.Logf("node C took the lock of %s %v after the holder was killed, and served its certificate after %v (lock TTL %v)", name, took.Round(10*time.Millisecond), served.Round(100*time.Millisecond), lockTTL)
	if took > lockTTL+allowance {
		t.Errorf("node C took the lock %v after the holder was killed, want at most the lock TTL %v (+%v)", took, lockTTL, allowance)
	}
	if got := acmeOrders(t, c); got != 1 {
		t.Errorf("node C placed %d orders, want 1", got)
	}
}
