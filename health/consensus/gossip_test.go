package consensus

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/internal/testutil"
)

// The tests in this file run real memberlist nodes on loopback, each with its own store,
// Checker and View, probing real HTTP backends.

// gossipNode is one VeloFlux node's health stack on a real gossip node.
type gossipNode struct {
	name    string
	node    *gossip.Node
	store   *gossip.Store
	checker *health.Checker
	view    *View
	stop    func()
}

// proberTransport tags every probe with the probing node's name, so a backend can count the
// probes of each node.
type proberTransport struct {
	node string
	next http.RoundTripper
}

func (p proberTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Prober", p.node)
	return p.next.RoundTrip(r)
}

// proberClient probes like the Checker's default client, tags probes with node, and refuses
// to dial refuse (when not "") as a node cut off from that backend would.
func proberClient(node, refuse string) *http.Client {
	dialer := &net.Dialer{KeepAlive: -1}
	return &http.Client{
		Transport: proberTransport{node: node, next: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == refuse {
					return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("%s unreachable from %s", addr, node)}
				}
				return dialer.DialContext(ctx, network, addr)
			},
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func netListen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// waitMemberlistGone waits (up to the shared guard) for memberlist's goroutines to end after
// the nodes stopped: its Shutdown does not wait for a probe in flight, and the package's goleak
// check must not see them.
func waitMemberlistGone(t *testing.T) {
	deadline := time.Now().Add(testutil.Timeout())
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("hashicorp/memberlist.")) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("memberlist goroutines still running %s after the nodes stopped", testutil.Timeout())
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startGossipNode(t *testing.T, name string, seeds []string, hcfg health.Config, ccfg Config, client *http.Client) *gossipNode {
	t.Helper()
	store, err := gossip.NewStore(gossip.StoreConfig{NodeName: name, MaxEntriesPerKind: 1000, TombstoneTTL: time.Hour,
		ExpireInterval: time.Second}, gossip.NewClock(nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	gc := gossip.DefaultConfig()
	gc.Name, gc.BindAddress, gc.Seeds = name, "127.0.0.1:0", seeds
	node, err := gossip.New(gc, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	gossip.Rebroadcast(store, node, name)
	checker, err := health.NewChecker(hcfg, client, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ccfg.NodeName = name
	view, err := New(ccfg, checker, Gossip{Store: store, Broadcaster: node, Members: node}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Stopped in reverse: the View first, the gossip node last.
	stops := []func(){
		runUntilCleanup(t, name+" store", store.Run),
		runUntilCleanup(t, name+" gossip", node.Run),
		runUntilCleanup(t, name+" checker", checker.Run),
		runUntilCleanup(t, name+" view", view.Run),
	}
	testutil.Receive(t, node.Ready(), name+" to bind")
	return &gossipNode{name: name, node: node, store: store, checker: checker, view: view, stop: func() {
		for _, s := range slices.Backward(stops) {
			s()
		}
	}}
}

// startGossipNodes starts one node per name, all seeded with the first, and waits until every
// View works from the full member list. client gives each node's probe client.
func startGossipNodes(t *testing.T, names []string, hcfg health.Config, ccfg Config, client func(name string) *http.Client) []*gossipNode {
	t.Helper()
	t.Cleanup(func() { waitMemberlistGone(t) }) // registered first, so it runs after every stop
	var nodes []*gossipNode
	var seeds []string
	for _, name := range names {
		n := startGossipNode(t, name, seeds, hcfg, ccfg, client(name))
		if seeds == nil {
			seeds = []string{n.node.LocalAddr()}
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		testutil.Eventually(t, n.name+" clustered with every member", func() bool { return clusteredWith(n.view, len(names)) })
	}
	return nodes
}

func testClusterConfig() Config {
	cfg := DefaultConfig()
	cfg.MembershipPoll = 100 * time.Millisecond
	return cfg
}

func taggedClients(refusals map[string]string) func(string) *http.Client {
	return func(name string) *http.Client { return proberClient(name, refusals[name]) }
}

// allAgree reports whether every node's view of id is healthy.
func allAgree(nodes []*gossipNode, id string, healthy bool) bool {
	for _, n := range nodes {
		if n.view.Healthy(id) != healthy {
			return false
		}
	}
	return true
}

// votingObservers reports whether n's Status of id shows the given number of fresh voting
// observations with the given verdict.
func votingObservers(t *testing.T, n *gossipNode, id string, healthy bool, want int) bool {
	got := 0
	for _, o := range statusFor(t, n.view, id).Observers {
		if o.Voting && o.Healthy == healthy {
			got++
		}
	}
	return got == want
}

// untilAll polls every node until cond holds on all of them and returns how long it took,
// failing after the shared guard (testutil.Timeout).
func untilAll(t *testing.T, nodes []*gossipNode, what string, cond func(*gossipNode) bool) time.Duration {
	t.Helper()
	start := time.Now()
	testutil.Eventually(t, what, func() bool {
		for _, n := range nodes {
			if !cond(n) {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

// TestClusterKilledBackendGoesDownEverywhere: 3 nodes, k=2. A backend whose listener closes
// goes down on every node, with both probers' reasons, and comes back everywhere after Rise.
// How long each takes is logged, not bounded: on a busy machine a gossip round can take
// seconds (the Fall and Rise counting itself is the Checker's, tested in package health).
func TestClusterKilledBackendGoesDownEverywhere(t *testing.T) {
	const interval, fall, rise = 100 * time.Millisecond, 3, 2
	hcfg := clusterCheckConfig(interval, fall, rise)
	nodes := startGossipNodes(t, []string{"n0", "n1", "n2"}, hcfg, testClusterConfig(), taggedClients(nil))
	be := newClusterBackend(t)
	const id = "web-1"
	for _, n := range nodes {
		n.view.SetTargets([]health.Target{{ID: id, Pool: "web", Address: be.addr, Path: "/healthz"}})
	}
	untilAll(t, nodes, "two healthy voting observations on every node", func(n *gossipNode) bool {
		return votingObservers(t, n, id, true, 2)
	})

	be.kill()
	took := untilAll(t, nodes, "down on every node", func(n *gossipNode) bool { return !n.view.Healthy(id) })
	t.Logf("killed backend down on all 3 nodes after %s (interval %s × fall %d = %s)", took.Round(time.Millisecond), interval, fall, interval*fall)
	for _, n := range nodes {
		why := statusFor(t, n.view, id).Why
		if !strings.HasPrefix(why, "2 of 2 probers report down: ") || !strings.Contains(why, "connection refused") {
			t.Errorf("%s says why %q", n.name, why)
		}
	}

	be.revive(t)
	took = untilAll(t, nodes, "up on every node", func(n *gossipNode) bool { return n.view.Healthy(id) })
	t.Logf("revived backend up on all 3 nodes after %s (rise %d, backoff capped at %s)", took.Round(time.Millisecond), rise, hcfg.MaxInterval)
}

// TestClusterProbesAreShared: 5 nodes, k=2: each backend is probed by its two assigned nodes
// only, each at its interval, not by all five. Probes are counted per prober until each
// assigned prober has made several, each within the guard but all of them taking as long as
// they take, so a slow machine only makes the test take longer: under go test -race -count=3
// ./... with two busy loops two probers made 4 and 5 probes in the minute that a single guard
// over all ten allowed (3 s on a quiet machine).
func TestClusterProbesAreShared(t *testing.T) {
	const interval, probes = 50 * time.Millisecond, 10
	names := []string{"n0", "n1", "n2", "n3", "n4"}
	nodes := startGossipNodes(t, names, clusterCheckConfig(interval, 3, 2), testClusterConfig(), taggedClients(nil))
	var backends []*clusterBackend
	var targets []health.Target
	for i := range 4 {
		be := newClusterBackend(t)
		backends = append(backends, be)
		targets = append(targets, health.Target{ID: fmt.Sprintf("api-%d", i), Pool: "api", Address: be.addr, Path: "/"})
	}
	for _, n := range nodes {
		n.view.SetTargets(targets)
	}
	probed := 0.0
	for _, n := range nodes {
		probed += promtest.ToFloat64(n.view.metrics.probed)
	}
	if probed != float64(2*len(targets)) {
		t.Fatalf("the nodes probe %v backends in all, want %d", probed, 2*len(targets))
	}
	for i, be := range backends {
		want := statusFor(t, nodes[0].view, targets[i].ID).Probers
		if len(want) != 2 {
			t.Fatalf("%s assigned to %v, want 2 probers", targets[i].ID, want)
		}
		testutil.Counting(t, fmt.Sprintf("%s probed %d times by each of %v", targets[i].ID, probes, want), probes, func() (int, string) {
			counts := be.snapshot()
			return min(counts[want[0]], counts[want[1]]), fmt.Sprint(counts)
		})
		counts, gaps := be.snapshot(), be.meanGaps()
		t.Logf("%s: probes %v, mean gap between one prober's probes %v (interval %s)", targets[i].ID, counts, gaps, interval)
		if got := slices.Sorted(maps.Keys(counts)); !slices.Equal(got, want) {
			t.Errorf("%s probed by %v, assigned to %v", targets[i].ID, got, want)
		}
		// A healthy target's next probe starts an interval (plus jitter) after the previous
		// one ended, so a prober's probes reach the backend an interval apart or more on
		// average. One gap alone may be shorter: under -race with two busy loops one was 19 ms
		// against 50 ms (likely a prober that lost its assignment while membership settled and got
		// it back, which probes at once), but a prober probing twice as often halves the mean.
		for node, gap := range gaps {
			if gap < interval {
				t.Errorf("%s: %s probed it every %s on average, more often than the interval %s", targets[i].ID, node, gap, interval)
			}
		}
	}
}

// TestClusterDissenterCannotTakeBackendOut: a prober that alone cannot reach a backend reports
// it down, but with k=2 that is one vote of two: the backend stays in every node's view, its
// own included, and Status shows the dissent.
func TestClusterDissenterCannotTakeBackendOut(t *testing.T) {
	const interval, fall = 50 * time.Millisecond, 2
	names := []string{"n0", "n1", "n2"}
	be := newClusterBackend(t)
	id := idProbedBy(t, names, 2, "n0", "n1")
	nodes := startGossipNodes(t, names, clusterCheckConfig(interval, fall, 2), testClusterConfig(),
		taggedClients(map[string]string{"n0": be.addr}))
	for _, n := range nodes {
		n.view.SetTargets([]health.Target{{ID: id, Address: be.addr, Path: "/"}})
	}
	untilAll(t, nodes, "n0's down vote and n1's up vote on every node", func(n *gossipNode) bool {
		st := statusFor(t, n.view, id)
		o0, ok0 := observer(st, "n0", SourceActive)
		o1, ok1 := observer(st, "n1", SourceActive)
		return ok0 && ok1 && !o0.Healthy && o0.Voting && o1.Healthy && o1.Voting
	})
	if nodes[0].checker.Healthy(id) {
		t.Fatal("n0's own checker does not have the backend down: the test's dialer did not cut it off")
	}
	holds(t, 20*interval, "healthy on every node", func() bool { return allAgree(nodes, id, true) })
	for _, n := range nodes {
		st := statusFor(t, n.view, id)
		o, _ := observer(st, "n0", SourceActive)
		if !st.Healthy || st.Why != "" || !strings.Contains(o.Reason, "unreachable from n0") {
			t.Errorf("%s: status healthy=%t why=%q, n0 says %q", n.name, st.Healthy, st.Why, o.Reason)
		}
	}
}

// TestClusterFlappingBackend: a backend that alternates success and failure for each prober
// changes the checkers' verdicts, and so the view, no faster than rise and fall allow. The
// test follows every probe result through OnResult and stops after a number of probes, not
// of seconds, each within the guard (testutil.Counting), so a slow machine only makes it take
// longer.
func TestClusterFlappingBackend(t *testing.T) {
	const interval, probes = 50 * time.Millisecond, 16
	tests := []struct {
		name       string
		fall, rise int
		// changes says whether a result that differs from the previous one changes the
		// prober's verdict.
		changes bool
	}{
		// Alternation never gives 2 equal results in a row, so no verdict can change.
		{"rise and fall of 2 hide strict alternation", 2, 2, false},
		// Every probe flips the verdict, and the view follows.
		{"rise and fall of 1 follow every probe", 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names := []string{"n0", "n1", "n2"}
			hcfg := clusterCheckConfig(interval, tt.fall, tt.rise)
			// A probe that timed out would be a failure the backend did not send, and break
			// the alternation this test is about.
			hcfg.Timeout = testutil.Timeout()
			nodes := startGossipNodes(t, names, hcfg, testClusterConfig(), taggedClients(nil))
			be := newClusterBackend(t)
			be.flap.Store(true)
			const id = "flappy"
			var mu sync.Mutex
			results := map[string][]health.Result{}
			for _, n := range nodes {
				n.checker.OnResult(func(r health.Result) {
					if r.ID == id {
						mu.Lock()
						results[n.name] = append(results[n.name], r)
						mu.Unlock()
					}
				})
			}
			// Every view transition on every node, counted by a poller for as long as the
			// probes below take.
			var transitions atomic.Int64
			stop := make(chan struct{})
			polled := make(chan struct{})
			go func() {
				defer close(polled)
				last := make([]bool, len(nodes))
				for i := range nodes {
					last[i] = true // new targets start healthy
				}
				for {
					for i, n := range nodes {
						if h := n.view.Healthy(id); h != last[i] {
							transitions.Add(1)
							last[i] = h
						}
					}
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
				}
			}()
			for _, n := range nodes {
				n.view.SetTargets([]health.Target{{ID: id, Address: be.addr, Path: "/"}})
			}
			probers := statusFor(t, nodes[0].view, id).Probers
			fewest := func() (int, string) {
				mu.Lock()
				defer mu.Unlock()
				return min(len(results[probers[0]]), len(results[probers[1]])),
					fmt.Sprintf("%d and %d results", len(results[probers[0]]), len(results[probers[1]]))
			}
			testutil.Counting(t, fmt.Sprintf("%d probes by each of %v", probes, probers), probes, fewest)
			if tt.changes {
				testutil.Eventually(t, "a view to follow the probers down and up", func() bool { return transitions.Load() >= 2 })
			}
			close(stop)
			<-polled

			mu.Lock()
			defer mu.Unlock()
			perProber := 0
			for node, rs := range results {
				if !slices.Contains(probers, node) {
					t.Errorf("%s probed the backend; its probers are %v", node, probers)
				}
				perProber = max(perProber, len(rs))
				for i, r := range rs {
					if wantOK := i%2 == 0; r.OK != wantOK {
						t.Fatalf("%s: probe %d ok=%t, want %t: the backend did not alternate (%s)", node, i+1, r.OK, wantOK, r.Reason)
					}
					// The first result is a success on a target that starts healthy.
					if wantChange := tt.changes && i > 0; r.Changed != wantChange {
						t.Errorf("%s: probe %d (ok=%t) changed the verdict: %t, want %t", node, i+1, r.OK, r.Changed, wantChange)
					}
				}
			}
			// The view of each of the 3 nodes changes only when a prober's verdict does.
			limit := int64(0)
			if tt.changes {
				limit = int64(3 * 2 * perProber)
			}
			t.Logf("%d view transitions over 3 nodes, up to %d probes per prober, bound %d", transitions.Load(), perProber, limit)
			if got := transitions.Load(); got > limit {
				t.Errorf("%d view transitions, want at most %d", got, limit)
			}
		})
	}
}

// TestClusterProberLeaves: when a prober of a down backend leaves, its share moves to the next
// member, which votes down at once because it takes the backend over while it is down: its
// first vote, and every one after, is down, instead of an up vote for the Fall probes it would
// need to take the backend down on its own. The backend ends up down on every remaining node
// with both new probers voting. The leaver's observation stops voting at once and expires
// after the TTL. Nothing here depends on how fast the machine is: only for the moment the
// nodes disagree on the member list can a view show the backend up.
func TestClusterProberLeaves(t *testing.T) {
	const interval, fall = 100 * time.Millisecond, 10
	names := []string{"n0", "n1", "n2"}
	be := newClusterBackend(t)
	be.status.Store(http.StatusServiceUnavailable)
	id := idProbedBy(t, names, 2, "n0", "n1")
	ccfg := testClusterConfig()
	ccfg.ObservationTTL = 3 * time.Second
	nodes := startGossipNodes(t, names, clusterCheckConfig(interval, fall, 2), ccfg, taggedClients(nil))
	for _, n := range nodes {
		n.view.SetTargets([]health.Target{{ID: id, Address: be.addr, Path: "/"}})
	}
	untilAll(t, nodes, "down everywhere", func(n *gossipNode) bool { return !n.view.Healthy(id) })

	// Every vote n2 writes on the backend, in order: it probes it only once n0 is gone.
	var mu sync.Mutex
	var votes []Observation
	n2Key := observationKey(SourceActive, backendKeyPart(id), "n2")
	nodes[2].store.OnChange(func(e gossip.Entry) {
		if e.Key != n2Key || e.Node != "n2" || e.Deleted {
			return
		}
		o, err := decodeObservation(e.Value)
		if err != nil {
			t.Errorf("n2 wrote an observation it cannot read: %v", err)
			return
		}
		mu.Lock()
		votes = append(votes, o)
		mu.Unlock()
	})

	nodes[0].stop()
	rest := nodes[1:]
	untilAll(t, rest, "n1 and n2 the probers, both voting down", func(n *gossipNode) bool {
		st := statusFor(t, n.view, id)
		return slices.Equal(st.Probers, []string{"n1", "n2"}) && !st.Healthy && votingObservers(t, n, id, false, 2)
	})
	mu.Lock()
	if len(votes) == 0 || votes[0].Reason != takenOverWhileDown {
		t.Errorf("n2's first vote after taking the backend over: %+v, want a down vote %q", votes, takenOverWhileDown)
	}
	for i, o := range votes {
		if o.Healthy {
			t.Errorf("n2's vote %d of %d is up: it took the backend over while down, and it is still down", i+1, len(votes))
		}
	}
	mu.Unlock()
	untilAll(t, rest, "n0's observation expired and not voting", func(n *gossipNode) bool {
		o, ok := observer(statusFor(t, n.view, id), "n0", SourceActive)
		return ok && !o.Fresh && !o.Voting
	})
}
