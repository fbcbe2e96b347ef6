//go:build integration

package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// probed is a real backend that counts its health probes and can be stopped and started
// again on the same address, as a crashed and restarted process would be.
type probed struct {
	t      *testing.T
	name   string
	addr   string
	probes atomic.Int64
	// flap makes /health fail every second probe from each client address.
	flap   bool
	byPeer sync.Map // remote IP -> *atomic.Int64 probes seen

	mu  sync.Mutex
	srv *http.Server
}

func startProbed(t *testing.T, name, listen string) *probed {
	return startProbedFlap(t, name, listen, false)
}

func startProbedFlap(t *testing.T, name, listen string, flap bool) *probed {
	p := &probed{t: t, name: name, addr: listen, flap: flap}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *probed) start() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	p.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			p.probes.Add(1)
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			n, _ := p.byPeer.LoadOrStore(host, new(atomic.Int64))
			if p.flap && n.(*atomic.Int64).Add(1)%2 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprint(w, p.name)
	})}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.t.Errorf("%s: %v", p.name, err)
		}
	}()
}

// stop closes the listener and every connection: probes and requests are refused.
func (p *probed) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		_ = p.srv.Close()
		p.srv = nil
	}
}

// healthOf is one backend in a node's GET /admin/health.
type healthOf struct {
	Backend   string
	Healthy   bool
	Why       string
	Consensus struct {
		Healthy bool
		Probers []string
		Quorum  int
	}
	Observers []struct {
		Node    string
		Source  string
		Healthy bool
		Voting  bool
	}
}

func nodeHealth(t *testing.T, n *node) map[string]healthOf {
	t.Helper()
	_, body, _ := get(t, "http://"+n.admin+"/admin/health", "Authorization", "Basic b3BzOnB3") // ops:pw
	var list []healthOf
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("admin health: %v: %s", err, body)
	}
	out := map[string]healthOf{}
	for _, h := range list {
		out[h.Backend] = h
	}
	return out
}

// healthyOnAll reports whether every node's view has backend addr healthy (want true) or
// down (want false).
func healthyOnAll(t *testing.T, nodes []*node, addr string, want bool) bool {
	for _, n := range nodes {
		if nodeHealth(t, n)[addr].Healthy != want {
			return false
		}
	}
	return true
}

// healthClusterConfig is a cluster node whose pool probes /health every interval, with
// retries (fall) and rise given.
func healthClusterConfig(name, bind, seed string, interval time.Duration, fall, rise int, backends ...*probed) testconfig.Config {
	cfg := clusterNode(name, bind, seed, nil)
	cfg.Pools[0].HealthCheck = &testconfig.HealthCheck{Path: "/health", Interval: testconfig.Duration(interval), Timeout: testconfig.Duration(interval * 3 / 4), Retries: fall, Rise: rise}
	for _, p := range backends {
		cfg.Pools[0].Backends = append(cfg.Pools[0].Backends, testconfig.Backend{Address: p.addr})
	}
	return cfg
}

// TestHealthConsensusAcrossNodes runs three veloflux processes, each in its own network
// namespace, sharing health checks (two probers per backend). A node that alone cannot reach a
// backend does not take it out, for the others or for itself; a killed backend leaves every
// node's rotation within interval x fall plus gossip, and comes back after rise good probes.
func TestHealthConsensusAcrossNodes(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	lab := newNetLab(t, 3)
	const lonelyIP = "10.77.0.3" // only one node will be unable to reach this backend
	lab.addHubIP(lonelyIP)
	b0 := startProbed(t, "b0", lonelyIP+":0")
	b1 := startProbed(t, "b1", lab.backendIP+":0")
	b2 := startProbed(t, "b2", lab.backendIP+":0")
	// b3 fails every second probe of each prober: never `fall` failures in a row.
	b3 := startProbedFlap(t, "b3", lab.backendIP+":0", true)
	const interval, fall, rise = 200 * time.Millisecond, 2, 2
	var nodes []*node
	names := []string{"node-0", "node-1", "node-2"}
	for i := range 3 {
		seed := ""
		if i > 0 {
			seed = lab.ips[0] + ":7946"
		}
		cfg := healthClusterConfig(names[i], lab.ips[i]+":7946", seed, interval, fall, rise, b0, b1, b2, b3)
		cfg.ListenOn(lab.ips[i])
		nodes = append(nodes, startNodeWith(t, lab.exec(i), cfg.YAML(t), labAdmin...))
	}
	for _, n := range nodes {
		testutil.Eventually(t, "three members", func() bool { return sees(t, n, names...) })
	}
	// Let every node settle on the same two probers per backend.
	testutil.Eventually(t, "two probers per backend everywhere", func() bool {
		var first map[string]healthOf
		for _, n := range nodes {
			h := nodeHealth(t, n)
			for _, b := range []*probed{b0, b1, b2} {
				if len(h[b.addr].Consensus.Probers) != 2 || h[b.addr].Consensus.Quorum != 2 {
					return false
				}
				if first != nil && strings.Join(first[b.addr].Consensus.Probers, ",") != strings.Join(h[b.addr].Consensus.Probers, ",") {
					return false
				}
			}
			first = h
		}
		return true
	})

	// One of b0's probers loses its route to b0.
	probers := nodeHealth(t, nodes[0])[b0.addr].Consensus.Probers
	lonely := -1
	for i, name := range names {
		if name == probers[0] {
			lonely = i
		}
	}
	lab.blockIP(lonely, lonelyIP)
	testutil.Eventually(t, names[lonely]+" reports b0 down", func() bool {
		for _, o := range nodeHealth(t, nodes[0])[b0.addr].Observers {
			if o.Node == names[lonely] && o.Source == "active" && !o.Healthy && o.Voting {
				return true
			}
		}
		return false
	})
	// It dissents, but one vote of two is no quorum: b0 stays in every node's view, its own too.
	deadline := time.Now().Add(5 * interval * fall)
	for time.Now().Before(deadline) {
		if !healthyOnAll(t, nodes, b0.addr, true) {
			t.Fatalf("b0 left a node's view because %s alone could not reach it: %+v", names[lonely], nodeHealth(t, nodes[lonely])[b0.addr])
		}
		time.Sleep(interval / 2)
	}
	for i, n := range nodes {
		if i == lonely {
			continue
		}
		served := map[string]int{}
		for range 9 {
			_, body, _ := get(t, n.url("/"))
			served[body]++
		}
		if served["b0"] == 0 {
			t.Errorf("%s sends nothing to b0: %v", names[i], served)
		}
	}

	// b1 dies: every node takes it out.
	b1.stop()
	down := testutil.Eventually(t, "b1 down on every node", func() bool { return healthyOnAll(t, nodes, b1.addr, false) })
	t.Logf("killed backend out of every node's view after %v (interval %v x fall %d = %v)", down.Round(time.Millisecond), interval, fall, interval*fall)
	for _, n := range nodes {
		for range 6 {
			if code, body, _ := get(t, n.url("/")); code != http.StatusOK || body == "b1" {
				t.Fatalf("through %s: %d %q after b1 was taken out", n.proxy, code, body)
			}
		}
	}
	if why := nodeHealth(t, nodes[0])[b1.addr].Why; !strings.Contains(why, "2 of 2 probers report down") {
		t.Errorf("why b1 is out: %q", why)
	}
	b1.start()
	up := testutil.Eventually(t, "b1 back on every node", func() bool { return healthyOnAll(t, nodes, b1.addr, true) })
	t.Logf("restarted backend back in every node's view after %v (rise %d x interval %v = %v)", up.Round(time.Millisecond), rise, interval, interval*rise)

	// All along, the flapping b3 never left any view, nor any prober's own verdict, except
	// where a prober failed more of its probes than the 503s b3 sent it. A probe that times out
	// (interval x 3/4 = 150 ms) on a busy machine is a failure of its own, and next to a 503 it
	// makes fall failures in a row: the product is right to take b3 down then, and the test
	// cannot prevent it. A prober whose every failure was one of b3's 503s never saw two in a
	// row, so a down transition there is the product's fault.
	excused := map[string]bool{} // nodes whose transitions are the machine's
	anyExcused := false
	var tally []string
	for i, n := range nodes {
		failed, _ := strconv.Atoi(metricLine(t, n, `veloflux_health_checks_total{backend="`+b3.addr+`",pool="web",result="failure"}`))
		if seen, ok := b3.byPeer.Load(lab.ips[i]); ok {
			sent503 := int(seen.(*atomic.Int64).Load() / 2)
			excused[names[i]] = failed > sent503
			anyExcused = anyExcused || excused[names[i]]
			tally = append(tally, fmt.Sprintf("%s failed %d probes, b3 answered it 503 %d times", names[i], failed, sent503))
		}
	}
	flips := 0
	for i, n := range nodes {
		for _, l := range n.logs.Find("backend down") {
			if l["backend"] == b3.addr && !excused[names[i]] {
				flips++
			}
		}
		for _, l := range n.logs.Find("backend down in the cluster view") {
			if l["backend"] == b3.addr && !anyExcused {
				flips++
			}
		}
	}
	if got := b3.probes.Load(); flips != 0 || got < 20 {
		t.Errorf("flapping backend: %d down transitions logged over %d probes, want 0 over at least 20 (%s)", flips, got, strings.Join(tally, "; "))
	}
	t.Logf("flapping backend (every second probe fails, fall %d): %d probes, %d down transitions not explained by a failure of another kind; %s", fall, b3.probes.Load(), flips, strings.Join(tally, "; "))
}

// TestHealthProbesAreSharded: five veloflux processes with two probers per backend; each
// backend receives two probes per interval, not five.
func TestHealthProbesAreSharded(t *testing.T) {
	var backends []*probed
	for i := range 4 {
		backends = append(backends, startProbed(t, fmt.Sprintf("b%d", i), "127.0.0.1:0"))
	}
	const interval = 200 * time.Millisecond
	var nodes []*node
	var names []string
	bind0 := testutil.FreeAddr(t)
	for i := range 5 {
		name, bind, seed := fmt.Sprintf("node-%d", i), testutil.FreeAddr(t), bind0
		if i == 0 {
			bind, seed = bind0, ""
		}
		names = append(names, name)
		nodes = append(nodes, startNode(t, healthClusterConfig(name, bind, seed, interval, 3, 2, backends...).YAML(t)))
	}
	for _, n := range nodes {
		testutil.Eventually(t, "five members", func() bool { return sees(t, n, names...) })
	}
	testutil.Eventually(t, "two probers per backend on every node", func() bool {
		for _, n := range nodes {
			for _, b := range backends {
				if len(nodeHealth(t, n)[b.addr].Consensus.Probers) != 2 {
					return false
				}
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // membership polls and schedules settle on the final shares

	const window = 4 * time.Second
	before := make([]int64, len(backends))
	for i, b := range backends {
		before[i] = b.probes.Load()
	}
	time.Sleep(window)
	perInterval := float64(window) / float64(interval)
	for i, b := range backends {
		got := float64(b.probes.Load() - before[i])
		// Two probers: 2 probes per interval, a little less with the up-to-10% jitter.
		// Five would make 5 per interval.
		if got < 1.6*perInterval || got > 2.4*perInterval {
			t.Errorf("%s: %.0f probes in %v, want about %.0f (2 probers), not %.0f (5)", b.name, got, window, 2*perInterval, 5*perInterval)
		}
		t.Logf("%s: %.0f probes in %v = %.2f per interval (5 nodes, 2 probers)", b.name, got, window, got/perInterval)
	}
}
