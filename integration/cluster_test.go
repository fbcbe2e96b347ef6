//go:build integration

package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veloflux/veloflux/discovery/consul/consultest"
	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// TestClusterSessionRaceNeverMoves runs two veloflux processes joined by gossip, and 1,000
// times creates a session through node a and sends its next request through node b at once:
// b honours the backend the cookie names, so no session moves, and neither node stores
// anything for sessions whose backend is up.
func TestClusterSessionRaceNeverMoves(t *testing.T) {
	var backends []*backend
	for i := 0; i < 3; i++ {
		backends = append(backends, newBackend(t, fmt.Sprintf("b%d", i), 0))
	}
	bindA := testutil.FreeAddr(t)
	a := startNode(t, clusterNode("node-a", bindA, "", backends).YAML(t))
	b := startNode(t, clusterNode("node-b", testutil.FreeAddr(t), bindA, backends).YAML(t))
	for _, n := range []*node{a, b} {
		testutil.Eventually(t, "two members", func() bool { return sees(t, n, "node-a", "node-b") })
	}
	const tries = 1000
	moves := 0
	start := time.Now()
	for range tries {
		_, first, hdr := get(t, a.url("/"))
		if _, next, _ := get(t, b.url("/"), "Cookie", cookiePair(t, hdr)); next != first {
			moves++
		}
	}
	if moves != 0 {
		t.Errorf("%d of %d sessions moved when their next request reached node b at once", moves, tries)
	}
	for _, n := range []*node{a, b} {
		if got := sessionEntries(t, n); got != "0" {
			t.Errorf("%s holds %s session entries, want 0", n.proxy, got)
		}
	}
	if got := metricLine(t, b, `veloflux_sticky_requests_total{outcome="hit",pool="web"}`); got != fmt.Sprint(tries) {
		t.Errorf("node b honoured %s cookies, want %d", got, tries)
	}
	t.Logf("%d two-node races (new session through a, next request through b at once): %d moves, in %v",
		tries, moves, time.Since(start).Round(time.Millisecond))
}

// TestClusterJoinsThroughConsul: node a registers in Consul with its gossip address; node b,
// with no static seeds, finds it there and joins.
func TestClusterJoinsThroughConsul(t *testing.T) {
	agent := consultest.Start(t, "dc1")
	be := newBackend(t, "b0", 0)
	config := func(name string) testconfig.Config {
		c := clusterNode(name, testutil.FreeAddr(t), "", []*backend{be})
		c.Cluster.JoinConsul = true
		c.Discovery = &testconfig.Discovery{Consul: testconfig.Consul{
			Enabled: true, Address: agent.HTTPAddr,
			Register: &testconfig.ConsulRegister{Enabled: true, ID: "veloflux-" + name, CheckInterval: testconfig.Duration(time.Second)},
		}}
		return c
	}
	cfg := func(name string) string { return config(name).YAML(t) }
	a := startNode(t, cfg("node-a"))
	c := consulClient(t, agent, "")
	testutil.Eventually(t, "node a registered with its gossip address", func() bool {
		svcs, _, err := c.Catalog().Service("veloflux", "", nil)
		return err == nil && len(svcs) == 1 && svcs[0].ServiceMeta["gossip_addr"] != ""
	})
	b := startNode(t, cfg("node-b"))
	members := func(n *node) int {
		_, body, _ := get(t, "http://"+n.admin+"/admin/status")
		return strings.Count(body, `"Name":"node-`)
	}
	testutil.Eventually(t, "both nodes see two members", func() bool { return members(a) == 2 && members(b) == 2 })

	// Two more nodes start while neither can be found: each looked up its peers before the other
	// registered, so only asking Consul again while alone brings them together.
	agent2 := consultest.Start(t, "dc1")
	cfg2 := func(name string) string {
		c := config(name)
		c.Discovery.Consul.Address = agent2.HTTPAddr
		c.Cluster.ReconnectInterval = testconfig.Duration(500 * time.Millisecond)
		return c.YAML(t)
	}
	c2 := consulClient(t, agent2, "")
	// Consul is down while they start, so both start-up lookups find no one.
	agent2.Kill()
	d := startNode(t, cfg2("node-d"))
	e := startNode(t, cfg2("node-e"))
	// A node says it started before its gossip member runs: wait for each to list itself.
	for _, n := range []struct {
		n    *node
		name string
	}{{d, "node-d"}, {e, "node-e"}} {
		testutil.Eventually(t, n.name+" gossiping", func() bool { return memberStates(t, n.n)[n.name] == "alive" })
	}
	if !sees(t, d, "node-d") || !sees(t, e, "node-e") {
		t.Fatalf("nodes met with Consul down: d sees %v, e sees %v", memberStates(t, d), memberStates(t, e))
	}
	agent2.Restart() // same address, empty catalog: the nodes register again

	registered := func() int {
		svcs, _, err := c2.Catalog().Service("veloflux", "", nil)
		if err != nil {
			return 0
		}
		return len(svcs)
	}
	testutil.Eventually(t, "both registered", func() bool { return registered() == 2 })
	took := testutil.Eventually(t, "d and e meet", func() bool { return sees(t, d, "node-d", "node-e") && sees(t, e, "node-d", "node-e") })
	t.Logf("nodes started together met %v after both were registered", took.Round(time.Millisecond))
}

// labAdmin are the admin credentials of nodes in a netLab, whose admin API listens beyond
// loopback; nodes without credentials ignore them.
var labAdmin = []string{"VF_ADMIN_USER=ops", "VF_ADMIN_PASS=pw"}

// sessionEntries is the number of replicated session entries a node holds.
func sessionEntries(t *testing.T, n *node) string {
	_, m, _ := get(t, "http://"+n.metrics+"/metrics")
	for _, line := range strings.Split(m, "\n") {
		if rest, ok := strings.CutPrefix(line, `veloflux_gossip_state_entries{kind="session"} `); ok {
			return rest
		}
	}
	return ""
}

// TestClusterPartitionHeals runs five veloflux processes, each in its own network namespace,
// and cuts node-4 off from the four others (not from clients or backends) for at least 60 s,
// until 30 s after both sides declared the other dead, when memberlist forgets the dead. Both sides keep serving every session where it
// was and take new ones. Meanwhile an operator drains a backend through the majority, which
// moves that backend's sessions there; the minority, which cannot know, keeps them where they
// were. After the partition heals, node-4 catches up on the drain and the moves, and every node
// sends every session to the same backend: the moved ones to their new backend, every other
// one to the backend it started on.
func TestClusterPartitionHeals(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	const size, minority = 5, 4
	lab := newNetLab(t, size)
	var backends []*backend
	for i := range 5 {
		backends = append(backends, lab.backend(fmt.Sprintf("b%d", i)))
	}
	var nodes []*node
	var all []string
	for i := range size {
		seed := ""
		if i > 0 {
			seed = lab.ips[0] + ":7946"
		}
		cfg := clusterNode(fmt.Sprintf("node-%d", i), lab.ips[i]+":7946", seed, backends)
		cfg.ListenOn(lab.ips[i])
		cfg.Cluster.ReconnectInterval = testconfig.Duration(time.Second)
		nodes = append(nodes, startNodeWith(t, lab.exec(i), cfg.YAML(t), labAdmin...))
		all = append(all, fmt.Sprintf("node-%d", i))
	}
	majority, majorityNames := nodes[:minority], all[:minority]
	for _, n := range nodes {
		testutil.Eventually(t, "five members alive", func() bool { return sees(t, n, all...) })
	}

	// want maps a session cookie to the backend every node must send it to.
	want := map[string]string{}
	pin := func(n *node, count int) {
		for range count {
			_, body, hdr := get(t, n.url("/"))
			want[cookiePair(t, hdr)] = body
		}
	}
	check := func(when string, expect map[string]string, on ...*node) {
		t.Helper()
		for _, n := range on {
			for cookie, be := range expect {
				if _, body, _ := get(t, n.url("/"), "Cookie", cookie); body != be {
					t.Errorf("%s: session %s went to %s through %s, want %s", when, cookie, body, n.proxy, be)
				}
			}
		}
	}
	pin(nodes[0], 20)
	check("before the partition", want, nodes...)

	for i := range minority {
		lab.cut(minority, i)
	}
	cutAt := time.Now()
	detect := testutil.Eventually(t, "the majority declares node-4 dead", func() bool {
		for _, n := range majority {
			if !sees(t, n, majorityNames...) {
				return false
			}
		}
		return true
	})
	// node-4 learns more slowly than the majority, and each of its verdicts is its own event: a
	// node that hears no acks at all stretches its probe interval up to eight times (memberlist's
	// Lifeguard awareness), probes members it already suspects again in its round, and declares
	// each dead only after the longest suspicion timeout (24 s, confirmed by nobody). In one run
	// it suspected node-0 last, 42 s after the cut, and declared it dead at 66 s, past one wait's
	// guard, so the test waits for one more death at a time, at most one wait per member.
	othersAlive := func() int {
		live := 0
		for name, st := range memberStates(t, nodes[minority]) {
			if name != "node-4" && st == "alive" {
				live++
			}
		}
		return live
	}
	for range minority {
		left := othersAlive()
		if left == 0 {
			break
		}
		testutil.Eventually(t, fmt.Sprintf("node-4 declares one of the %d members it sees alive dead", left), func() bool { return othersAlive() < left })
	}
	testutil.Eventually(t, "node-4 sees itself alone", func() bool { return sees(t, nodes[minority], "node-4") })
	aloneAt := time.Now()
	t.Logf("partition: node-4 declared dead by the others %v after the cut, the others dead on node-4 after %v", detect.Round(time.Millisecond), aloneAt.Sub(cutAt).Round(time.Millisecond))

	// Both sides keep serving every existing session where it was, and take new ones.
	check("during the partition", want, nodes...)
	before := len(want)
	pin(nodes[minority], 5)
	pin(nodes[1], 5)
	if len(want) != before+10 {
		t.Fatalf("%d sessions, want %d: session IDs collided", len(want), before+10)
	}

	// The majority drains b0: its sessions move there, and only there.
	drained := backends[0]
	req, err := http.NewRequest(http.MethodPost, "http://"+nodes[0].admin+"/admin/backends/drain?backend="+drained.addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("ops", "pw")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("drain through node-0: %s", resp.Status)
	}
	for _, n := range majority {
		testutil.Eventually(t, "the drain on the majority", func() bool {
			return metricLine(t, n, `veloflux_gossip_state_entries{kind="drain"}`) == "1"
		})
	}
	moved := map[string]string{} // sessions of the drained backend -> where the majority moved them
	for cookie, be := range want {
		if be != "b0" {
			continue
		}
		_, body, _ := get(t, nodes[1].url("/"), "Cookie", cookie)
		if body == "b0" {
			t.Fatalf("session %s stayed on the drained backend", cookie)
		}
		moved[cookie] = body
	}
	if len(moved) == 0 {
		t.Fatal("no session on b0: nothing to move")
	}
	nMoved := fmt.Sprint(len(moved))
	for _, n := range majority {
		testutil.Eventually(t, "the moves on the majority", func() bool { return sessionEntries(t, n) == nMoved })
	}
	stayed := map[string]string{}
	for cookie := range moved {
		stayed[cookie] = "b0"
	}
	check("during the partition, on the majority", moved, majority...)
	check("during the partition, on the minority", stayed, nodes[minority])

	// memberlist stops gossiping to a dead node after 30 s (GossipToTheDeadTime, LAN preset)
	// and forgets it: from then on only the reconnect loop can bring the two sides together.
	// Both sides have forgotten the other 30 s after node-4, the later side, saw itself alone;
	// the partition lasts at least 60 s.
	time.Sleep(time.Until(later(cutAt.Add(60*time.Second), aloneAt.Add(30*time.Second))))
	for i := range minority {
		lab.heal(minority, i)
	}
	healedAfter := time.Since(cutAt)
	rejoin := testutil.Eventually(t, "the cluster whole again", func() bool {
		for _, n := range nodes {
			if !sees(t, n, all...) {
				return false
			}
		}
		return true
	})
	catchUp := testutil.Eventually(t, "node-4 holds the drain and the moves", func() bool {
		return sessionEntries(t, nodes[minority]) == nMoved &&
			metricLine(t, nodes[minority], `veloflux_gossip_state_entries{kind="drain"}`) == "1"
	})
	t.Logf("heal after %v: members whole again after %v, node-4 caught up on the drain and %d moves %v later",
		healedAfter.Round(time.Second), rejoin.Round(time.Millisecond), len(moved), catchUp.Round(time.Millisecond))
	reconnected := 0
	for _, n := range nodes {
		reconnected += len(n.logs.Find("reconnected to cluster members"))
	}
	if reconnected == 0 {
		t.Error("no node logged a reconnect: the halves did not find each other through the reconnect loop")
	}
	for cookie, be := range moved {
		want[cookie] = be
	}
	check("after healing", want, nodes...)
	for _, n := range nodes {
		if got := sessionEntries(t, n); got != nMoved {
			t.Errorf("%s holds %s session entries, want the %s moves", n.proxy, got, nMoved)
		}
	}
	t.Logf("%d sessions (10 created during the partition, %d moved by the drain) on the same backend through all five nodes",
		len(want), len(moved))
}

// healthChecked adds a fast health check to the sticky pool of a clusterNode.
func healthChecked(cfg testconfig.Config) testconfig.Config {
	cfg.Pools[0].HealthCheck = &testconfig.HealthCheck{Path: "/health", Interval: testconfig.Duration(time.Second), Timeout: testconfig.Duration(time.Second), Retries: 1}
	return cfg
}

// TestClusterRestartedNodeGetsStateByPushPull: a node killed outright misses the moves made
// while it is down (sessions whose backend failed); started again under the same name and
// address, it rejoins and receives them in the catch-up that follows the join's push/pull,
// before any new broadcast could carry them, and keeps those sessions where they moved.
func TestClusterRestartedNodeGetsStateByPushPull(t *testing.T) {
	var sw []*switchable
	var backends []*backend
	for i := range 4 {
		s := newSwitchable(t, fmt.Sprintf("b%d", i))
		sw, backends = append(sw, s), append(backends, s.backend)
	}
	bindA, bindC := testutil.FreeAddr(t), testutil.FreeAddr(t)
	a := startNode(t, healthChecked(clusterNode("node-a", bindA, "", backends)).YAML(t))
	b := startNode(t, healthChecked(clusterNode("node-b", testutil.FreeAddr(t), bindA, backends)).YAML(t))
	cfgC := healthChecked(clusterNode("node-c", bindC, bindA, backends)).YAML(t)
	c := startNode(t, cfgC)
	for _, n := range []*node{a, b, c} {
		testutil.Eventually(t, "three members", func() bool { return sees(t, n, "node-a", "node-b", "node-c") })
	}
	var onB0 []string // cookies of sessions on b0, the backend that fails
	for len(onB0) < 10 {
		if _, body, hdr := get(t, a.url("/")); body == "b0" {
			onB0 = append(onB0, cookiePair(t, hdr))
		}
	}
	c.signal(syscall.SIGKILL)
	_ = c.wait()

	sw[0].down.Store(true)
	downGauge := `veloflux_backend_health{backend="` + sw[0].addr() + `",pool="web"}`
	testutil.Eventually(t, "b0 down on node-a", func() bool { return metricLine(t, a, downGauge) == "0" })
	moved := map[string]string{}
	for _, cookie := range onB0 {
		_, body, _ := get(t, a.url("/"), "Cookie", cookie)
		moved[cookie] = body
	}
	want := fmt.Sprint(len(onB0))
	testutil.Eventually(t, "the moves on node-b", func() bool { return sessionEntries(t, b) == want })
	sw[0].down.Store(false)

	start := time.Now()
	c = startNode(t, cfgC)
	took := testutil.Eventually(t, "the moves on the restarted node-c", func() bool { return sessionEntries(t, c) == want })
	t.Logf("restarted node holds all %s moves %v after its start-up line (%v after exec)", want, took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	testutil.Eventually(t, "b0 up on node-c", func() bool { return metricLine(t, c, downGauge) == "1" })
	for cookie, want := range moved {
		if _, body, _ := get(t, c.url("/"), "Cookie", cookie); body != want {
			t.Errorf("session moved to %s went to %s through the restarted node", want, body)
		}
	}
}

// TestClusterRepinsIdenticallyAndGossipsIt: when a pinned backend fails, two nodes asked at
// the same moment move each of its sessions to the same replacement (rendezvous hashing over
// the healthy backends), and the new pin is gossiped: after the backend recovers, a node that
// never re-pinned anything sends those sessions to the replacement too, not back.
func TestClusterRepinsIdenticallyAndGossipsIt(t *testing.T) {
	var sw []*switchable
	var backends []*backend
	for i := range 5 {
		s := newSwitchable(t, fmt.Sprintf("b%d", i))
		sw, backends = append(sw, s), append(backends, s.backend)
	}
	cfg := func(name, bind, seed string) string {
		return healthChecked(clusterNode(name, bind, seed, backends)).YAML(t)
	}
	bindA := testutil.FreeAddr(t)
	nodes := []*node{startNode(t, cfg("node-a", bindA, ""))}
	nodes = append(nodes, startNode(t, cfg("node-b", testutil.FreeAddr(t), bindA)), startNode(t, cfg("node-c", testutil.FreeAddr(t), bindA)))
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		testutil.Eventually(t, "three members", func() bool { return sees(t, n, "node-a", "node-b", "node-c") })
	}
	pins := map[string]string{}
	for range 40 {
		_, body, hdr := get(t, a.url("/"))
		pins[cookiePair(t, hdr)] = body
	}
	const failed = "b0"
	var moved []string
	for cookie, be := range pins {
		if be == failed {
			moved = append(moved, cookie)
		}
	}
	if len(moved) == 0 {
		t.Fatalf("no session pinned to %s among %v", failed, pins)
	}

	sw[0].down.Store(true)
	downGauge := `veloflux_backend_health{backend="` + sw[0].addr() + `",pool="web"}`
	for _, n := range nodes {
		testutil.Eventually(t, failed+" down on every node", func() bool { return metricLine(t, n, downGauge) == "0" })
	}
	// Node b and node c are asked about each moved session at the same moment.
	repinned := map[string]string{}
	for _, cookie := range moved {
		var fromB, fromC string
		var wg sync.WaitGroup
		wg.Go(func() { _, fromB, _ = get(t, b.url("/"), "Cookie", cookie) })
		wg.Go(func() { _, fromC, _ = get(t, c.url("/"), "Cookie", cookie) })
		wg.Wait()
		if fromB != fromC || fromB == failed || !strings.HasPrefix(fromB, "b") {
			t.Errorf("session %s: node-b moved it to %q, node-c to %q", cookie, fromB, fromC)
		}
		repinned[cookie] = fromB
	}
	for _, n := range nodes {
		testutil.Eventually(t, "the moves on every node", func() bool { return sessionEntries(t, n) == fmt.Sprint(len(moved)) })
	}

	sw[0].down.Store(false)
	for _, n := range nodes {
		testutil.Eventually(t, failed+" up again on every node", func() bool { return metricLine(t, n, downGauge) == "1" })
	}
	for _, n := range nodes {
		for cookie, want := range repinned {
			if _, body, _ := get(t, n.url("/"), "Cookie", cookie); body != want {
				t.Errorf("after %s recovered, session %s went to %s through %s, want its new pin %s", failed, cookie, body, n.proxy, want)
			}
		}
	}
	t.Logf("%d of %d sessions moved off %s, to the same backend on every node", len(moved), len(pins), failed)
}

// TestClusterRotatesGossipKeyOnReload rotates the gossip key of a running two-node cluster in
// three config reloads (stage the new key, switch to it, drop the old one), as an operator
// would, and checks the cluster stays whole and replicating throughout; afterwards a node with
// only the new key joins and one with only the old key cannot.
func TestClusterRotatesGossipKeyOnReload(t *testing.T) {
	const oldKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // clusterNode's key
	const newKey = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
	be := newBackend(t, "b0", 0)
	// Each step drains one more of these through node-a, a change node-b must receive.
	var spare []*backend
	for i := range 3 {
		spare = append(spare, newBackend(t, fmt.Sprintf("s%d", i), 0))
	}
	withKeys := func(cfg testconfig.Config, primary string, others ...string) string {
		cluster := *cfg.Cluster // cfg shares its sections with the caller's
		cluster.GossipKey, cluster.GossipKeys = primary, others
		cfg.Cluster = &cluster
		return cfg.YAML(t)
	}
	bindA, bindB := testutil.FreeAddr(t), testutil.FreeAddr(t)
	pool := append([]*backend{be}, spare...)
	cfgA, cfgB := clusterNode("node-a", bindA, "", pool), clusterNode("node-b", bindB, bindA, pool)
	a, b := startNode(t, cfgA.YAML(t)), startNode(t, cfgB.YAML(t))
	nodes := []*node{a, b}
	for _, n := range nodes {
		testutil.Eventually(t, "two members", func() bool { return sees(t, n, "node-a", "node-b") })
	}
	steps := []struct {
		name, primary string
		others        []string
	}{
		{"stage the new key", oldKey, []string{newKey}},
		{"encrypt with the new key", newKey, []string{oldKey}},
		{"drop the old key", newKey, nil},
	}
	for i, step := range steps {
		for j, n := range nodes {
			cfg := withKeys([]testconfig.Config{cfgA, cfgB}[j], step.primary, step.others...)
			if err := os.WriteFile(n.cfgPath, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, step.name+": keys changed", func() bool { return len(n.logs.Find("gossip keys changed")) == i+1 })
		}
		resp, err := client.Post("http://"+a.admin+"/admin/backends/drain?backend="+spare[i].addr(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: drain: %s", step.name, resp.Status)
		}
		want := fmt.Sprint(i + 1)
		testutil.Eventually(t, step.name+": a new drain reaches node-b", func() bool {
			return metricLine(t, b, `veloflux_gossip_state_entries{kind="drain"}`) == want
		})
		for _, n := range nodes {
			if !sees(t, n, "node-a", "node-b") {
				t.Fatalf("%s: %s sees %v", step.name, n.proxy, memberStates(t, n))
			}
		}
	}
	c := startNode(t, withKeys(clusterNode("node-c", testutil.FreeAddr(t), bindA, []*backend{be}), newKey))
	testutil.Eventually(t, "node-c joins with the new key", func() bool { return sees(t, c, "node-a", "node-b", "node-c") })
	d := startNode(t, clusterNode("node-d", testutil.FreeAddr(t), bindA, []*backend{be}).YAML(t))
	// d's joins are refused, and it retries: two refusals show it tried and was turned away.
	testutil.EventuallyWithNote(t, "node-d's join refused twice, or accepted", func() (bool, string) {
		refused, joined := len(d.logs.Find("join failed, retrying")), len(d.logs.Find("joined cluster"))
		return refused >= 2 || joined > 0, fmt.Sprintf("%d refusals, %d joins", refused, joined)
	})
	if !sees(t, d, "node-d") || !sees(t, a, "node-a", "node-b", "node-c") {
		t.Errorf("a node with only the retired key got in: d sees %v, a sees %v", memberStates(t, d), memberStates(t, a))
	}
}

// TestClusterDrainsBackendEverywhere: an operator drains a backend through one node's admin API
// and no node sends it requests any more; undrained through another node, every node uses it
// again.
func TestClusterDrainsBackendEverywhere(t *testing.T) {
	b0, b1 := newBackend(t, "b0", 0), newBackend(t, "b1", 0)
	bindA := testutil.FreeAddr(t)
	nodes := []*node{startNode(t, clusterNode("node-a", bindA, "", []*backend{b0, b1}).YAML(t))}
	nodes = append(nodes, startNode(t, clusterNode("node-b", testutil.FreeAddr(t), bindA, []*backend{b0, b1}).YAML(t)))
	for _, n := range nodes {
		testutil.Eventually(t, "two members", func() bool { return sees(t, n, "node-a", "node-b") })
	}
	post := func(n *node, path string) (int, string) {
		resp, err := client.Post("http://"+n.admin+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// servedBy answers which backends served 10 new (cookie-less) requests through n.
	servedBy := func(n *node) map[string]int {
		got := map[string]int{}
		for range 10 {
			_, body, _ := get(t, n.url("/"))
			got[body]++
		}
		return got
	}
	if code, body := post(nodes[0], "/admin/backends/drain?backend=nope"); code != http.StatusNotFound {
		t.Errorf("draining an unknown backend: %d %s", code, body)
	}
	if code, body := post(nodes[0], "/admin/backends/drain?backend="+b0.addr()); code != http.StatusOK || !strings.Contains(body, `"drained":true`) {
		t.Fatalf("drain: %d %s", code, body)
	}
	took := testutil.Eventually(t, "node-b sends nothing to b0", func() bool {
		got := servedBy(nodes[1])
		return got["b0"] == 0 && got["b1"] == 10
	})
	t.Logf("drain through node-a took effect on node-b within %v", took.Round(time.Millisecond))
	if got := servedBy(nodes[0]); got["b0"] != 0 {
		t.Errorf("node-a still sends to the drained backend: %v", got)
	}
	if code, body := post(nodes[1], "/admin/backends/undrain?backend="+b0.addr()); code != http.StatusOK {
		t.Fatalf("undrain: %d %s", code, body)
	}
	testutil.Eventually(t, "node-a uses b0 again", func() bool { return servedBy(nodes[0])["b0"] > 0 })
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
