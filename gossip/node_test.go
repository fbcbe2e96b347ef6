package gossip

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/internal/testutil"
)

// TestMain fails the run if goroutines outlive the tests. memberlist's Shutdown does not wait
// for a probe already in flight, which ends within one ProbeInterval (1 s on the LAN preset),
// so leftovers get until the shared guard to finish before they count as leaks.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(testutil.Timeout())
		err := goleak.Find()
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			err = goleak.Find()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// recState records what the node hands it. If block is set, MergeDelta signals entered and waits
// on block, which lets a test hold the merge worker.
type recState struct {
	full []byte

	block   chan struct{}
	entered chan struct{}

	mu     sync.Mutex
	deltas [][]byte
	fulls  [][]byte
}

func (s *recState) FullState(maxBytes int) []byte {
	if len(s.full) > maxBytes {
		return nil
	}
	return s.full
}

func (s *recState) MergeFull(data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fulls = append(s.fulls, data)
	return nil
}

func (s *recState) MergeDelta(msg []byte) error {
	if s.block != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		<-s.block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deltas = append(s.deltas, msg)
	return nil
}

func (s *recState) hasDelta(msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.deltas, func(d []byte) bool { return string(d) == msg })
}

func (s *recState) hasFull(data string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.fulls, func(d []byte) bool { return string(d) == data })
}

type testNode struct {
	*Node
	state *recState
	reg   *prometheus.Registry
	logs  *testutil.LogBuffer // the node's log, memberlist's own lines included
}

func testConfig(name string, keys [][]byte, seeds ...string) Config {
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.BindAddress = "127.0.0.1:0"
	if len(keys) > 0 {
		cfg.GossipKey = base64.StdEncoding.EncodeToString(keys[0])
		for _, k := range keys[1:] {
			cfg.GossipKeys = append(cfg.GossipKeys, base64.StdEncoding.EncodeToString(k))
		}
	}
	cfg.Seeds = seeds
	cfg.Region = "eu-" + name
	cfg.Version = "v1.2.3"
	cfg.AdminPort = func() int { return testAdminPort(name) }
	return cfg
}

// testAdminPort is the admin port testConfig's nodes gossip.
func testAdminPort(name string) int { return 9000 + int(name[0]) }

// startNode runs a node on 127.0.0.1 port 0 until the test ends, then checks Run returned nil.
func startNode(t *testing.T, cfg Config, state *recState) testNode {
	t.Helper()
	if state == nil {
		state = &recState{}
	}
	reg, logs := prometheus.NewRegistry(), &testutil.LogBuffer{}
	n, err := New(cfg, state, logs.Logger(), reg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run(%s): %v", cfg.Name, err)
		}
	})
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("Run(%s) ended early: %v", cfg.Name, err)
	case <-time.After(testutil.Timeout()):
		t.Fatalf("Run(%s) did not bind", cfg.Name)
	}
	return testNode{Node: n, state: state, reg: reg, logs: logs}
}

// refusedTwice waits until n's join to its seeds has failed twice (a refusal, then a retry
// refused too) or succeeded, whichever comes first. A node whose key the cluster does not
// accept is then known to have tried and been turned away, rather than merely not yet seen.
func refusedTwice(t *testing.T, n testNode) {
	t.Helper()
	testutil.EventuallyWithNote(t, n.cfg.Name+"'s join refused twice, or accepted", func() (bool, string) {
		refused, joined := len(n.logs.Find("join failed, retrying")), len(n.logs.Find("joined cluster"))
		return refused >= 2 || joined > 0, fmt.Sprintf("%d refusals, %d joins", refused, joined)
	})
}

func aliveNames(n *Node) []string {
	var names []string
	for _, m := range n.Members() {
		if m.State == "alive" {
			names = append(names, m.Name)
		}
	}
	return names
}

func seesMembers(n *Node, want ...string) func() bool {
	return func() bool { return slices.Equal(aliveNames(n), want) }
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func key(b byte, size int) []byte { return bytes.Repeat([]byte{b}, size) }

// startCluster starts len(names) nodes, the others seeded with the first, and waits until every
// node sees all of them alive.
func startCluster(t *testing.T, keys [][]byte, names ...string) []testNode {
	t.Helper()
	nodes := []testNode{startNode(t, testConfig(names[0], keys), nil)}
	for _, name := range names[1:] {
		nodes = append(nodes, startNode(t, testConfig(name, keys, nodes[0].LocalAddr()), nil))
	}
	for _, n := range nodes {
		testutil.Eventually(t, n.cfg.Name+" sees all members", seesMembers(n.Node, names...))
	}
	return nodes
}

func TestClusterJoinsViaSeeds(t *testing.T) {
	k := [][]byte{key(1, 32)}
	nodes := startCluster(t, k, "a", "b", "c")
	for _, n := range nodes {
		for _, m := range n.Members() {
			if m.Region != "eu-"+m.Name || m.Version != "v1.2.3" || m.Draining || m.Addr == "" || m.AdminPort != testAdminPort(m.Name) {
				t.Errorf("%s sees member %+v: metadata not carried", n.cfg.Name, m)
			}
		}
		if got := metricValue(t, n.reg, "veloflux_gossip_members", map[string]string{"state": "alive"}); got != 3 {
			t.Errorf("%s: veloflux_gossip_members{state=alive} = %v, want 3", n.cfg.Name, got)
		}
	}
}

func TestBroadcastReachesAllMembers(t *testing.T) {
	nodes := startCluster(t, [][]byte{key(2, 16)}, "a", "b", "c")
	a := nodes[0]
	if err := a.Broadcast([]byte("pin s1 -> backend-3")); err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	tooBig := make([]byte, a.MaxMessageSize()+1)
	if err := a.Broadcast(tooBig); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("Broadcast(%d bytes) = %v, want ErrMessageTooLarge", len(tooBig), err)
	}
	for _, n := range nodes[1:] {
		testutil.Eventually(t, n.cfg.Name+" receives the broadcast", func() bool {
			return n.state.hasDelta("pin s1 -> backend-3")
		})
		if got := metricValue(t, n.reg, "veloflux_gossip_messages_total",
			map[string]string{"direction": "received", "result": "ok"}); got < 1 {
			t.Errorf("%s: received ok = %v, want >= 1", n.cfg.Name, got)
		}
	}
	for _, want := range []struct {
		result string
		value  float64
	}{{"ok", 1}, {"error", 1}} {
		if got := metricValue(t, a.reg, "veloflux_gossip_messages_total",
			map[string]string{"direction": "sent", "result": want.result}); got != want.value {
			t.Errorf("a: sent %s = %v, want %v", want.result, got, want.value)
		}
	}
	for _, n := range nodes[1:] {
		n.state.mu.Lock()
		for _, d := range n.state.deltas {
			if len(d) > a.MaxMessageSize() {
				t.Errorf("%s received the oversized message", n.cfg.Name)
			}
		}
		n.state.mu.Unlock()
	}
}

func TestPushPullDeliversFullStateToLateJoiner(t *testing.T) {
	k := [][]byte{key(3, 24)}
	a := startNode(t, testConfig("a", k), &recState{full: []byte("state of a")})
	c := startNode(t, testConfig("c", k, a.LocalAddr()), &recState{full: []byte("state of c")})
	testutil.Eventually(t, "c merges a's full state", func() bool { return c.state.hasFull("state of a") })
	testutil.Eventually(t, "a merges c's full state", func() bool { return a.state.hasFull("state of c") })
	for _, n := range []testNode{a, c} {
		for _, dir := range []string{"sent", "received"} {
			if got := metricValue(t, n.reg, "veloflux_gossip_pushpull_bytes_total",
				map[string]string{"direction": dir}); got < float64(len("state of a")) {
				t.Errorf("%s: pushpull bytes %s = %v, want >= %d", n.cfg.Name, dir, got, len("state of a"))
			}
		}
	}
}

func TestNodeWithWrongKeyCannotJoinOrInject(t *testing.T) {
	good := [][]byte{key(4, 32)}
	nodes := startCluster(t, good, "a", "b")
	a, b := nodes[0], nodes[1]
	intruders := map[string]Config{
		"wrong key": testConfig("x", [][]byte{key(5, 32)}, a.LocalAddr()),
		"no key":    testConfig("y", nil, a.LocalAddr()),
	}
	for name, cfg := range intruders {
		t.Run(name, func(t *testing.T) {
			x := startNode(t, cfg, nil)
			if err := x.Broadcast([]byte("evil from " + cfg.Name)); err != nil {
				t.Fatalf("Broadcast: %v", err)
			}
			// Without encryption enforced the intruder joins within one push/pull, its first
			// join; once two have been refused, both sides must still be apart.
			refusedTwice(t, x)
			if !seesMembers(a.Node, "a", "b")() || !seesMembers(b.Node, "a", "b")() ||
				!slices.Equal(aliveNames(x.Node), []string{cfg.Name}) {
				t.Fatalf("a sees %v, b sees %v, %s sees %v: want a and b alone, and the intruder alone",
					aliveNames(a.Node), aliveNames(b.Node), cfg.Name, aliveNames(x.Node))
			}
			// The cluster itself still gossips: b's message arrives, the intruder's never did.
			msg := "legit after " + cfg.Name
			if err := b.Broadcast([]byte(msg)); err != nil {
				t.Fatalf("Broadcast: %v", err)
			}
			testutil.Eventually(t, "a receives b's broadcast", func() bool { return a.state.hasDelta(msg) })
			for _, n := range nodes {
				if n.state.hasDelta("evil from " + cfg.Name) {
					t.Errorf("%s accepted the intruder's broadcast", n.cfg.Name)
				}
			}
		})
	}
}

func TestKeyRotationKeepsClusterTogether(t *testing.T) {
	oldKey, newKey := key(6, 32), key(7, 32)
	nodes := startCluster(t, [][]byte{oldKey}, "a", "b", "c")
	steps := []struct {
		name string
		do   func(*Node) error
	}{
		{"add new key", func(n *Node) error { return n.AddKey(newKey) }},
		{"use new key", func(n *Node) error { return n.UseKey(newKey) }},
		{"remove old key", func(n *Node) error { return n.RemoveKey(oldKey) }},
	}
	for _, step := range steps {
		for _, n := range nodes {
			if err := step.do(n.Node); err != nil {
				t.Fatalf("%s on %s: %v", step.name, n.cfg.Name, err)
			}
		}
		msg := "after " + step.name
		if err := nodes[2].Broadcast([]byte(msg)); err != nil {
			t.Fatalf("Broadcast: %v", err)
		}
		for _, n := range nodes[:2] {
			testutil.Eventually(t, n.cfg.Name+" receives "+msg, func() bool { return n.state.hasDelta(msg) })
			if got := aliveNames(n.Node); !slices.Equal(got, []string{"a", "b", "c"}) {
				t.Fatalf("%s: %s sees %v alive", step.name, n.cfg.Name, got)
			}
		}
	}
	// The old key is really gone and the new one really in use: a node with only the new key joins,
	// one with only the old key does not.
	d := startNode(t, testConfig("d", [][]byte{newKey}, nodes[0].LocalAddr()), nil)
	testutil.Eventually(t, "d joins with the new key", seesMembers(d.Node, "a", "b", "c", "d"))
	e := startNode(t, testConfig("e", [][]byte{oldKey}, nodes[0].LocalAddr()), nil)
	refusedTwice(t, e)
	if got := aliveNames(e.Node); !slices.Equal(got, []string{"e"}) {
		t.Fatalf("e, with only the removed key, sees %v alive; want it kept out", got)
	}

	if err := nodes[0].RemoveKey(newKey); err == nil {
		t.Error("RemoveKey(primary) succeeded; memberlist must refuse it")
	}
}

func TestSetDrainingShowsOnPeers(t *testing.T) {
	nodes := startCluster(t, nil, "a", "b")
	a, b := nodes[0], nodes[1]
	drainingOf := func(name string) func() bool {
		return func() bool {
			for _, m := range b.Members() {
				if m.Name == name {
					return m.Draining
				}
			}
			return false
		}
	}
	for _, draining := range []bool{true, false} {
		t.Run(fmt.Sprintf("draining=%t", draining), func(t *testing.T) {
			if err := a.SetDraining(draining); err != nil {
				t.Fatalf("SetDraining: %v", err)
			}
			testutil.Eventually(t, "b sees a's flag", func() bool { return drainingOf("a")() == draining })
		})
	}
}

// The merge worker is held inside MergeDelta while more messages arrive than the queue holds.
// Inside a synctest bubble, a NotifyMsg blocked on the full queue would be durably blocked, so
// synctest.Wait tells at once whether the callbacks returned.
func TestIncomingOverflowIsDroppedWithoutBlocking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const queueSize = 4
		state := &recState{block: make(chan struct{}), entered: make(chan struct{}, 1)}
		cfg := testConfig("a", nil)
		cfg.QueueSize = queueSize
		reg := prometheus.NewRegistry()
		n, err := New(cfg, state, nil, reg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { n.del.work(ctx) })
		defer func() { cancel(); wg.Wait() }()

		n.del.NotifyMsg([]byte("held"))
		<-state.entered // the worker is stuck in MergeDelta; the queue is empty again

		const extra = 3
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for i := range queueSize + extra {
				n.del.NotifyMsg(fmt.Appendf(nil, "m%d", i))
			}
			n.del.MergeRemoteState([]byte("full"), false)
		}()
		synctest.Wait()
		select {
		case <-sent:
		default:
			close(state.block)
			t.Fatal("NotifyMsg blocked on a full queue")
		}
		dropped := func() float64 {
			return metricValue(t, reg, "veloflux_gossip_messages_total", map[string]string{"direction": "received", "result": "dropped"})
		}
		if got := dropped(); got != extra+1 {
			t.Errorf("dropped = %v, want %d", got, extra+1)
		}

		close(state.block)
		synctest.Wait() // the worker has merged everything queued and waits for more
		if got := metricValue(t, reg, "veloflux_gossip_messages_total",
			map[string]string{"direction": "received", "result": "ok"}); got != queueSize+1 {
			t.Errorf("merged ok = %v, want %d: the held message and the queued ones", got, queueSize+1)
		}
		for i := range queueSize {
			if !state.hasDelta(fmt.Sprintf("m%d", i)) {
				t.Errorf("queued message m%d was not merged", i)
			}
		}
		if state.hasDelta(fmt.Sprintf("m%d", queueSize)) {
			t.Errorf("message m%d beyond the queue was merged; it should have been dropped", queueSize)
		}
	})
}

func TestRunTwiceAndRotationWithoutKeys(t *testing.T) {
	n := startNode(t, testConfig("a", nil), nil)
	if err := n.Run(context.Background()); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Run = %v, want ErrAlreadyRunning", err)
	}
	for name, f := range map[string]func([]byte) error{"AddKey": n.AddKey, "UseKey": n.UseKey, "RemoveKey": n.RemoveKey} {
		if err := f(key(1, 16)); !errors.Is(err, ErrNoKeyring) {
			t.Errorf("%s without keyring = %v, want ErrNoKeyring", name, err)
		}
	}
}

func TestMetaRoundTrip(t *testing.T) {
	cases := map[string]nodeMeta{
		"empty":    {},
		"draining": {Region: "eu-west-1", Version: "1.4.0", Draining: true},
		"long":     {Region: string(bytes.Repeat([]byte("r"), 200)), Version: "v"},
		"admin":    {Region: "eu", Version: "1", AdminPort: 9000},
		"max port": {Region: "eu", AdminPort: 65535},
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := decodeMeta(encodeMeta(want))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got != want {
				t.Errorf("round trip = %+v, want %+v", got, want)
			}
		})
	}
}

func TestDecodeMetaRejectsMalformed(t *testing.T) {
	cases := map[string][]byte{
		"nil":            nil,
		"short":          {metaVersion},
		"future version": {2, 0, 0, 0},
		"region overrun": {metaVersion, 0, 5, 'a'},
		"bad varint":     {metaVersion, 0, 0xff},
		"trailing":       append(encodeMeta(nodeMeta{Region: "r"}), 'x'),
		"port missing":   {metaVersion, metaAdminPort, 0, 0},
		"port zero":      {metaVersion, metaAdminPort, 0, 0, 0},
		"port too big":   {metaVersion, metaAdminPort, 0, 0, 0x80, 0x80, 0x04},
		"after port":     append(encodeMeta(nodeMeta{AdminPort: 80}), 'x'),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if m, err := decodeMeta(b); err == nil {
				t.Errorf("decodeMeta(%x) = %+v, want error", b, m)
			}
		})
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(nodeMeta{Region: "eu", Version: "1", Draining: true}))
	f.Add([]byte{metaVersion, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to a form that decodes the same.
		again, err := decodeMeta(encodeMeta(m))
		if err != nil || again != m {
			t.Fatalf("re-decode of %+v = %+v, %v", m, again, err)
		}
	})
}

func TestOutgoingQueueIsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	n, err := New(testConfig("alone", nil), &recState{}, nil, reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	const extra = 10
	for i := range maxQueuedBroadcasts + extra {
		if err := n.Broadcast(fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatalf("Broadcast: %v", err)
		}
	}
	if got := n.urgent.NumQueued(); got != maxQueuedBroadcasts {
		t.Errorf("queued = %d, want %d", got, maxQueuedBroadcasts)
	}
	if got := metricValue(t, reg, "veloflux_gossip_messages_total",
		map[string]string{"direction": "sent", "result": "dropped"}); got != extra {
		t.Errorf("sent dropped = %v, want %d", got, extra)
	}
}

func BenchmarkNotifyMsg(b *testing.B) {
	n, err := New(testConfig("bench", nil), &recState{}, nil, nil)
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { n.del.work(ctx) })
	defer func() { cancel(); wg.Wait() }()
	msg := bytes.Repeat([]byte("x"), 200)
	b.ReportAllocs()
	for b.Loop() {
		n.del.NotifyMsg(msg)
	}
}

func TestStoppedNodeForgetsMembers(t *testing.T) {
	a := startNode(t, testConfig("a", nil), nil)
	b, err := New(testConfig("b", nil, a.LocalAddr()), &recState{}, nil, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	testutil.Eventually(t, "b joins", seesMembers(b, "a", "b"))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := b.Members(); len(got) != 0 {
		t.Errorf("stopped node reports members %v", got)
	}
	if err := b.SetDraining(true); err != nil {
		t.Errorf("SetDraining on a stopped node: %v", err)
	}
	// b left gracefully, so a drops it at once rather than after suspicion.
	testutil.Eventually(t, "a sees b leave", seesMembers(a.Node, "a"))
	if got := metricValue(t, a.reg, "veloflux_gossip_members", map[string]string{"state": "departed"}); got != 1 {
		t.Errorf("a: members{state=departed} = %v, want 1", got)
	}
}

// A departed member is retried: a node that comes back at the same address without any seed
// of its own (as the far side of a healed partition would) is found again by the reconnect loop.
func TestReconnectFindsDepartedMemberAgain(t *testing.T) {
	cfgA := testConfig("a", nil)
	cfgA.ReconnectInterval = 100 * time.Millisecond
	a := startNode(t, cfgA, nil)

	b, err := New(testConfig("b", nil, a.LocalAddr()), &recState{}, nil, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	testutil.Eventually(t, "b joins", seesMembers(a.Node, "a", "b"))
	addrB := b.LocalAddr()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run(b): %v", err)
	}
	testutil.Eventually(t, "a sees b leave", seesMembers(a.Node, "a"))
	all := a.AllMembers()
	if len(all) != 2 || all[1].Name != "b" || all[1].State != "departed" || all[1].Addr != addrB || all[1].Region != "eu-b" {
		t.Fatalf("AllMembers = %+v, want a alive then b departed at %s", all, addrB)
	}

	cfgB := testConfig("b", nil) // no seeds: only a's reconnect loop can bring them together
	cfgB.BindAddress = addrB
	b2 := startNode(t, cfgB, nil)
	testutil.Eventually(t, "a reconnects to b", seesMembers(a.Node, "a", "b"))
	testutil.Eventually(t, "b sees a", seesMembers(b2.Node, "a", "b"))
	if all := a.AllMembers(); len(all) != 2 || all[1].State != "alive" {
		t.Errorf("after reconnect AllMembers = %+v, want both alive", all)
	}
}

func TestSetKeysMakesTheKeyringExactlyThat(t *testing.T) {
	k1, k2, k3 := key(1, 32), key(2, 16), key(3, 24)
	n, err := New(testConfig("a", [][]byte{k1}), &recState{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name         string
		primary      []byte
		others, want [][]byte
	}{
		{"unchanged", k1, nil, [][]byte{k1}},
		{"stage a new key", k1, [][]byte{k2}, [][]byte{k1, k2}},
		{"switch to it", k2, [][]byte{k1}, [][]byte{k2, k1}},
		{"drop the old one", k2, nil, [][]byte{k2}},
		{"replace everything at once", k3, [][]byte{k1}, [][]byte{k3, k1}},
	}
	for _, s := range steps {
		if err := n.SetKeys(s.primary, s.others); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := n.Keys()
		if len(got) != len(s.want) || !bytes.Equal(got[0], s.want[0]) {
			t.Fatalf("%s: keys %x, want %x (primary first)", s.name, got, s.want)
		}
		for _, w := range s.want {
			if !slices.ContainsFunc(got, func(k []byte) bool { return bytes.Equal(k, w) }) {
				t.Errorf("%s: key %x missing from %x", s.name, w, got)
			}
		}
	}
	if err := n.SetKeys(key(4, 7), nil); err == nil {
		t.Error("SetKeys with a 7-byte key succeeded")
	}
	plain, err := New(testConfig("b", nil), &recState{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.SetKeys(k1, nil); !errors.Is(err, ErrNoKeyring) {
		t.Errorf("SetKeys on a node without encryption = %v, want ErrNoKeyring", err)
	}
}

// A drain or health entry goes out in the next packet even behind a backlog of newer session
// pins; with one queue, memberlist would send the newest pins first and starve it.
func TestUrgentEntriesJumpTheSessionBacklog(t *testing.T) {
	n, err := New(testConfig("a", nil), &recState{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(kind Kind, key string) []byte {
		msg, err := AppendEntry(nil, Entry{Kind: kind, Key: key, Value: []byte("v"), Node: "a", Stamp: Timestamp{WallNanos: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	drain := entry(KindDrain, "backend/x")
	if err := n.Broadcast(drain); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := n.Broadcast(entry(KindSession, fmt.Sprintf("s%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// One packet's worth: room for a few entries only.
	got := n.del.GetBroadcasts(3, 4*len(drain))
	if len(got) == 0 || !bytes.Equal(got[0], drain) {
		t.Fatalf("first broadcast of the packet is not the drain entry (%d messages)", len(got))
	}
	if len(got) < 2 {
		t.Errorf("the packet was not filled up with session pins: %d messages", len(got))
	}
}

// A node alone asks FindPeers again at every reconnect interval, so two nodes that found no one
// at start (both looked before the other registered) still meet.
func TestFindPeersIsAskedWhileAlone(t *testing.T) {
	var found atomic.Pointer[string]
	var asked atomic.Int32
	cfgA := testConfig("a", nil)
	cfgA.ReconnectInterval = 100 * time.Millisecond
	cfgA.FindPeers = func() []string {
		asked.Add(1)
		if p := found.Load(); p != nil {
			return []string{*p}
		}
		return nil
	}
	a := startNode(t, cfgA, nil)
	b := startNode(t, testConfig("b", nil), nil) // no seeds, no FindPeers: it can only be found
	testutil.Eventually(t, "a to ask FindPeers twice while it knows no one", func() bool { return asked.Load() >= 2 })
	if got := aliveNames(a.Node); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("a sees %v alive before FindPeers named anyone; want a alone", got)
	}
	addr := b.LocalAddr()
	found.Store(&addr)
	testutil.Eventually(t, "a finds b", seesMembers(a.Node, "a", "b"))
	testutil.Eventually(t, "b sees a", seesMembers(b.Node, "a", "b"))
}
