package consensus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/internal/testutil"
)

// holds fails the test if cond stops holding at any check within d.
func holds(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
	}
}

// runUntilCleanup runs fn in a goroutine and makes the returned stop (also run at cleanup)
// cancel it and check it returned nil within 5s.
func runUntilCleanup(t *testing.T, name string, fn func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: Run() = %v, want nil", name, err)
				}
			case <-time.After(testutil.Timeout()):
				t.Errorf("%s: Run did not return within %s of cancel", name, testutil.Timeout())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// clusterCheckConfig probes every interval and backs off at most to twice that, so a dead
// backend that comes back is noticed quickly.
func clusterCheckConfig(interval time.Duration, fall, rise int) health.Config {
	cfg := health.DefaultConfig()
	cfg.Interval, cfg.Timeout, cfg.Fall, cfg.Rise, cfg.MaxInterval = interval, time.Second, fall, rise, 2*interval
	return cfg
}

// fakeMembers is a member list a test controls.
type fakeMembers struct {
	mu   sync.Mutex
	list []gossip.Member
}

func (f *fakeMembers) Members() []gossip.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list)
}

func (f *fakeMembers) set(names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = nil
	for _, n := range names {
		f.list = append(f.list, gossip.Member{Name: n, State: "alive"})
	}
}

// countingBroadcaster counts broadcasts and can refuse them.
type countingBroadcaster struct {
	sent   atomic.Int64
	refuse atomic.Bool
}

func (b *countingBroadcaster) Broadcast([]byte) error {
	if b.refuse.Load() {
		return errors.New("refused by test")
	}
	b.sent.Add(1)
	return nil
}

// unitView is a View on a real store with a fake member list, without memberlist.
type unitView struct {
	*View
	store   *gossip.Store
	checker *health.Checker
	members *fakeMembers
	bcast   *countingBroadcaster
	// stopChecker stops the Checker's Run early, as a stalled Checker would.
	stopChecker func()
}

func newUnitView(t *testing.T, self string, ccfg Config, hcfg health.Config, members ...string) unitView {
	t.Helper()
	return newUnitViewProbing(t, nil, self, ccfg, hcfg, members...)
}

// newUnitViewProbing is newUnitView with the Checker probing through client (nil: its own
// default client), e.g. one that serves its probes in memory inside a synctest bubble.
func newUnitViewProbing(t *testing.T, client *http.Client, self string, ccfg Config, hcfg health.Config, members ...string) unitView {
	t.Helper()
	store, err := gossip.NewStore(gossip.StoreConfig{NodeName: self, MaxEntriesPerKind: 100, TombstoneTTL: time.Hour,
		ExpireInterval: time.Second}, gossip.NewClock(nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	checker, err := health.NewChecker(hcfg, client, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	fm := &fakeMembers{}
	fm.set(members...)
	b := &countingBroadcaster{}
	ccfg.NodeName = self
	c, err := New(ccfg, checker, Gossip{Store: store, Broadcaster: b, Members: fm}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stopChecker := runUntilCleanup(t, "checker", checker.Run)
	runUntilCleanup(t, "cluster", c.Run)
	return unitView{View: c, store: store, checker: checker, members: fm, bcast: b, stopChecker: stopChecker}
}

// says merges into u's store an observation written by peer, as gossip would deliver it.
func (u unitView) says(t *testing.T, peer, id string, o Observation, ttl time.Duration) {
	t.Helper()
	now := time.Now()
	e := gossip.Entry{Kind: gossip.KindHealth, Key: observationKey(o.Source, backendKeyPart(id), peer),
		Value: encodeObservation(o), Stamp: gossip.Timestamp{WallNanos: now.UnixNano()}, Node: peer,
		Expires: now.Add(ttl).UnixNano()}
	if _, err := u.store.Merge(e); err != nil {
		t.Fatalf("merge observation of %s by %s: %v", id, peer, err)
	}
}

// clusteredWith reports whether c has taken in a member list of n members including itself.
func clusteredWith(c *View, n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clusteredLocked() && len(c.ring.members) == n
}

// idProbedBy finds a backend ID whose probers among members are exactly want.
func idProbedBy(t *testing.T, members []string, k int, want ...string) string {
	t.Helper()
	var ms []gossip.Member
	for _, n := range members {
		ms = append(ms, gossip.Member{Name: n})
	}
	ring := newMembership(ms, members[0])
	slices.Sort(want)
	for i := range 10000 {
		id := fmt.Sprintf("backend-%d", i)
		if slices.Equal(ring.probers(health.Target{ID: id}, k), want) {
			return id
		}
	}
	t.Fatalf("no backend ID probed by %v", want)
	return ""
}

func statusFor(t *testing.T, c *View, id string) BackendStatus {
	t.Helper()
	for _, s := range c.Status() {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no cluster status for %q", id)
	return BackendStatus{}
}

func observer(s BackendStatus, node string, src Source) (ObserverStatus, bool) {
	for _, o := range s.Observers {
		if o.Node == node && o.Source == src {
			return o, true
		}
	}
	return ObserverStatus{}, false
}

func TestJudge(t *testing.T) {
	down := func(node, reason string) vote {
		return vote{Node: node, Observation: Observation{Source: SourceActive, Reason: reason}, Fresh: true}
	}
	up := func(node string) vote {
		return vote{Node: node, Observation: Observation{Source: SourceActive, Healthy: true, LastProbeOK: true}, Fresh: true}
	}
	tests := []struct {
		name     string
		probers  []string
		votes    []vote
		wantDown bool
		wantWhy  string
	}{
		{"no probers", nil, []vote{down("a", "timeout")}, false, ""},
		{"no votes at all is healthy", []string{"a", "b"}, nil, false, ""},
		{"1 of 2 down is not a quorum", []string{"a", "b"}, []vote{down("a", "timeout"), up("b")}, false, ""},
		{"2 of 2 down", []string{"a", "b"}, []vote{down("a", "status 503"), down("b", "timeout")}, true,
			"2 of 2 probers report down: a: status 503; b: timeout"},
		{"2 of 3 down", []string{"a", "b", "c"}, []vote{down("a", "timeout"), up("b"), down("c", "")}, true,
			"2 of 3 probers report down: a: timeout; c: down"},
		{"1 of 3 down", []string{"a", "b", "c"}, []vote{down("a", "timeout")}, false, ""},
		{"single prober decides", []string{"a"}, []vote{down("a", "timeout")}, true, "1 of 1 probers report down: a: timeout"},
		{"non-assigned observers do not vote", []string{"a", "b"}, []vote{down("a", "timeout"), down("x", "timeout"), down("y", "timeout")}, false, ""},
		{"passive observations do not vote", []string{"a", "b"}, []vote{down("a", "timeout"),
			{Node: "b", Observation: Observation{Source: SourcePassive, Reason: "ejected"}, Fresh: true}}, false, ""},
		{"expired observations do not vote", []string{"a", "b"}, []vote{down("a", "timeout"),
			{Node: "b", Observation: Observation{Source: SourceActive, Reason: "timeout"}}}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge(tt.probers, tt.votes)
			if v.Down != tt.wantDown || v.Why != tt.wantWhy {
				t.Fatalf("judge = %+v, want down %t why %q", v, tt.wantDown, tt.wantWhy)
			}
		})
	}
}

// TestConsensusFromStore walks one backend through the quorum rule as observations
// arrive in the store, the way gossip delivers them.
func TestConsensusFromStore(t *testing.T) {
	members := []string{"self", "p1", "p2", "other"}
	u := newUnitView(t, "self", DefaultConfig(), clusterCheckConfig(time.Second, 3, 2), members...)
	id := idProbedBy(t, members, 2, "p1", "p2")
	u.SetTargets([]health.Target{{ID: id, Pool: "pool", Address: "127.0.0.1:1", Path: "/healthz"}})
	testutil.Eventually(t, "member list taken in", func() bool { return clusteredWith(u.View, 4) })
	if got := promtest.ToFloat64(u.metrics.probed); got != 0 {
		t.Fatalf("this node probes %v backends, want 0 (p1 and p2 do)", got)
	}

	ttl := time.Minute
	steps := []struct {
		name    string
		do      func()
		healthy bool
		why     string
	}{
		{"no votes", func() {}, true, ""},
		{"one prober down", func() {
			u.says(t, "p1", id, Observation{Source: SourceActive, Reason: "status 503", At: time.Now()}, ttl)
		}, true, ""},
		{"a non-assigned observer down", func() {
			u.says(t, "other", id, Observation{Source: SourceActive, Reason: "timeout", At: time.Now()}, ttl)
		}, true, ""},
		{"the other prober's passive ejection", func() {
			u.says(t, "p2", id, Observation{Source: SourcePassive, Reason: "ejected", At: time.Now()}, ttl)
		}, true, ""},
		{"both probers down", func() {
			u.says(t, "p2", id, Observation{Source: SourceActive, Reason: "timeout", At: time.Now()}, ttl)
		}, false, "2 of 2 probers report down: p1: status 503; p2: timeout"},
		{"a prober back up", func() {
			u.says(t, "p1", id, Observation{Source: SourceActive, Healthy: true, LastProbeOK: true, At: time.Now()}, ttl)
		}, true, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do()
			testutil.Eventually(t, fmt.Sprintf("healthy=%t", s.healthy), func() bool { return u.Healthy(id) == s.healthy })
			st := statusFor(t, u.View, id)
			if st.Healthy != s.healthy || st.Why != s.why {
				t.Fatalf("status healthy=%t why=%q, want %t %q", st.Healthy, st.Why, s.healthy, s.why)
			}
			wantDown := 0.0
			if !s.healthy {
				wantDown = 1
			}
			if got := promtest.ToFloat64(u.metrics.down); got != wantDown {
				t.Fatalf("down gauge = %v, want %v", got, wantDown)
			}
		})
	}

	st := statusFor(t, u.View, id)
	if !slices.Equal(st.Probers, []string{"p1", "p2"}) || st.Quorum != 2 || st.Standalone {
		t.Fatalf("status probers %v quorum %d standalone %t", st.Probers, st.Quorum, st.Standalone)
	}
	for _, want := range []struct {
		node   string
		src    Source
		voting bool
	}{{"p1", SourceActive, true}, {"p2", SourceActive, true}, {"p2", SourcePassive, false}, {"other", SourceActive, false}} {
		o, ok := observer(st, want.node, want.src)
		if !ok || !o.Fresh || o.Voting != want.voting {
			t.Errorf("observer %s/%s = %+v (found %t), want fresh, voting %t", want.node, want.src, o, ok, want.voting)
		}
	}
	testutil.Eventually(t, "5 received observations counted", func() bool {
		return promtest.ToFloat64(u.metrics.observations.WithLabelValues(obsReceived)) == 5
	})
}

// TestDownVoteExpires: when a prober stops refreshing, its vote expires at the same
// moment on every node, and the view follows at that moment without any other event. It runs
// on synctest's clock, so the moment is exact however busy the machine is.
func TestDownVoteExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		members := []string{"self", "p1", "p2"}
		u := newUnitView(t, "self", DefaultConfig(), clusterCheckConfig(time.Second, 3, 2), members...)
		id := idProbedBy(t, members, 2, "p1", "p2")
		u.SetTargets([]health.Target{{ID: id, Address: "127.0.0.1:1", Path: "/"}})
		testutil.Eventually(t, "member list taken in", func() bool { return clusteredWith(u.View, 3) })

		u.says(t, "p1", id, Observation{Source: SourceActive, Reason: "timeout"}, time.Minute)
		u.says(t, "p2", id, Observation{Source: SourceActive, Reason: "timeout"}, 300*time.Millisecond)
		synctest.Wait()
		if u.Healthy(id) {
			t.Fatal("up with both probers' votes down")
		}
		// A refresh before the expiry carries the vote on, though it changes no verdict.
		expires := time.Now().Add(500 * time.Millisecond)
		u.says(t, "p2", id, Observation{Source: SourceActive, Reason: "timeout"}, 500*time.Millisecond)
		holds(t, 400*time.Millisecond, "down while p2 refreshes its vote", func() bool { return !u.Healthy(id) })
		// The view recomputes a millisecond past the expiry, when the store has dropped the vote.
		time.Sleep(time.Until(expires) - time.Millisecond)
		synctest.Wait()
		if u.Healthy(id) {
			t.Fatal("up a millisecond before p2's refreshed vote expires")
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if !u.Healthy(id) {
			t.Fatal("still down a millisecond after p2's refreshed vote expired")
		}
		o, ok := observer(statusFor(t, u.View, id), "p2", SourceActive)
		if !ok || o.Fresh || o.Voting {
			t.Fatalf("p2's expired observation shows as %+v (found %t), want expired and not voting", o, ok)
		}
	})
}

// TestRefreshFollowsTheChecker: this node's vote is rewritten at half its TTL while the
// Checker keeps probing, so it never lapses, even though a down backend's probes back off and
// its verdict does not change; once the Checker stops, the vote expires. It runs on synctest's
// clock, the probes served in memory, so the bounds hold exactly on a busy machine.
func TestRefreshFollowsTheChecker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 50 * time.Millisecond
		ccfg := DefaultConfig()
		ccfg.ObservationTTL = 400 * time.Millisecond
		be := &clusterBackend{probes: map[string]int{}, arrivals: map[string][]time.Time{}}
		be.status.Store(http.StatusServiceUnavailable)
		hcfg := clusterCheckConfig(interval, 2, 2)
		// Backoff spaces the probes of the down backend wider than the TTL itself: results
		// alone would come too late to refresh the vote.
		hcfg.Timeout, hcfg.MaxInterval = 100*time.Millisecond, 600*time.Millisecond
		client := &http.Client{Transport: testutil.Transport(be)}
		u := newUnitViewProbing(t, client, "self", ccfg, hcfg, "self", "p1")
		u.SetTargets([]health.Target{{ID: "b", Address: "backend.test:80", Path: "/"}})
		testutil.Eventually(t, "member list taken in", func() bool { return clusteredWith(u.View, 2) })
		key := observationKey(SourceActive, backendKeyPart("b"), "self")
		ownVote := func() (gossip.Entry, bool) { return u.store.Get(gossip.KindHealth, key) }
		testutil.Eventually(t, "own down vote", func() bool {
			e, ok := ownVote()
			if !ok {
				return false
			}
			o, err := decodeObservation(e.Value)
			return err == nil && !o.Healthy
		})
		first, _ := ownVote()
		holds(t, 3*ccfg.ObservationTTL, "own vote fresh while the Checker probes", func() bool { _, ok := ownVote(); return ok })
		if last, _ := ownVote(); last.Expires <= first.Expires {
			t.Fatal("the vote was not refreshed")
		}

		// The last refresh comes at most a max interval, a timeout and an interval after the
		// stop (the grace for a slow probe), and the vote lives one TTL after it.
		u.stopChecker()
		time.Sleep(hcfg.MaxInterval + hcfg.Timeout + hcfg.Interval + ccfg.ObservationTTL)
		synctest.Wait()
		if _, ok := ownVote(); ok {
			t.Fatal("own vote still there a max interval, a timeout, an interval and a TTL after the Checker stopped")
		}
		o, ok := observer(statusFor(t, u.View, "b"), "self", SourceActive)
		if !ok || o.Fresh || o.Voting {
			t.Fatalf("own expired vote shows as %+v (found %t), want expired and not voting", o, ok)
		}
	})
}

func TestInvalidObservationsAreCounted(t *testing.T) {
	members := []string{"self", "p1", "p2"}
	u := newUnitView(t, "self", DefaultConfig(), clusterCheckConfig(time.Second, 3, 2), members...)
	id := idProbedBy(t, members, 2, "p1", "p2")
	u.SetTargets([]health.Target{{ID: id, Address: "127.0.0.1:1", Path: "/"}})
	testutil.Eventually(t, "member list taken in", func() bool { return clusteredWith(u.View, 3) })
	part := backendKeyPart(id)
	now := time.Now()
	bad := []gossip.Entry{
		{Key: observationKey(SourceActive, part, "p1"), Value: []byte("garbage")},
		{Key: observationKey(SourceActive, part, "p1"), Value: encodeObservation(Observation{Source: SourcePassive})},
		{Key: "no-prefix", Value: encodeObservation(Observation{Source: SourceActive})},
	}
	for i, e := range bad {
		e.Kind, e.Node, e.Expires = gossip.KindHealth, "p1", now.Add(time.Minute).UnixNano()
		e.Stamp = gossip.Timestamp{WallNanos: now.UnixNano(), Logical: uint32(i)}
		if _, err := u.store.Merge(e); err != nil {
			t.Fatal(err)
		}
	}
	// A key naming p2 written by p1 must not count as p2's vote.
	forged := gossip.Entry{Kind: gossip.KindHealth, Key: observationKey(SourceActive, part, "p2"), Node: "p1",
		Value: encodeObservation(Observation{Source: SourceActive}), Stamp: gossip.Timestamp{WallNanos: now.UnixNano()},
		Expires: now.Add(time.Minute).UnixNano()}
	if _, err := u.store.Merge(forged); err != nil {
		t.Fatal(err)
	}
	u.says(t, "p1", id, Observation{Source: SourceActive, Reason: "timeout"}, time.Minute)
	testutil.Eventually(t, "4 invalid observations counted", func() bool {
		return promtest.ToFloat64(u.metrics.observations.WithLabelValues(obsInvalid)) == 4
	})
	holds(t, 200*time.Millisecond, "backend healthy (one valid down vote of two)", func() bool { return u.Healthy(id) })
}

// TestStandalone: without gossip, or alone in it, the view is this node's own checks.
func TestStandalone(t *testing.T) {
	tests := []struct {
		name   string
		gossip bool
	}{
		{"no gossip", false},
		{"alone in the cluster", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newClusterBackend(t)
			var c *View
			var self string
			if tt.gossip {
				u := newUnitView(t, "self", DefaultConfig(), clusterCheckConfig(20*time.Millisecond, 2, 2), "self")
				c, self = u.View, "self"
			} else {
				checker, err := health.NewChecker(clusterCheckConfig(20*time.Millisecond, 2, 2), nil, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				c, err = New(DefaultConfig(), checker, Gossip{}, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				runUntilCleanup(t, "checker", checker.Run)
				runUntilCleanup(t, "cluster", c.Run)
				self = "local"
			}
			c.SetTargets([]health.Target{{ID: "b", Address: be.addr, Path: "/"}, {ID: "unchecked", Address: be.addr}})
			if got := promtest.ToFloat64(c.metrics.probed); got != 1 {
				t.Fatalf("probed gauge = %v, want 1", got)
			}
			be.status.Store(http.StatusServiceUnavailable)
			testutil.Eventually(t, "down", func() bool { return !c.Healthy("b") })
			st := statusFor(t, c, "b")
			if !st.Standalone || !slices.Equal(st.Probers, []string{self}) || st.Why != "down by this node's own checks: status 503" {
				t.Fatalf("status = %+v", st)
			}
			if o, ok := observer(st, self, SourceActive); !ok || o.Healthy || !o.Voting {
				t.Fatalf("own observation = %+v (found %t)", o, ok)
			}
			if !c.Healthy("unchecked") || !c.Healthy("unknown") {
				t.Fatal("an unchecked or unknown backend is not healthy")
			}
			be.status.Store(http.StatusOK)
			testutil.Eventually(t, "up again", func() bool { return c.Healthy("b") })
		})
	}
}

// TestReassignKeepsCheckerState: when a member joins, a backend this node keeps probing
// keeps its Checker state (still down, no new fall needed), and one that moves away stops
// being probed here.
func TestReassignKeepsCheckerState(t *testing.T) {
	before := []string{"self", "a"}
	after := []string{"self", "a", "b"}
	var kept, moved string
	for i := range 10000 {
		id := fmt.Sprintf("backend-%d", i)
		ring := newMembership([]gossip.Member{{Name: "self"}, {Name: "a"}, {Name: "b"}}, "self")
		p := ring.probers(health.Target{ID: id}, 2)
		switch {
		case kept == "" && slices.Contains(p, "self"):
			kept = id
		case moved == "" && !slices.Contains(p, "self"):
			moved = id
		}
	}
	be := newClusterBackend(t)
	be.status.Store(http.StatusServiceUnavailable)
	u := newUnitView(t, "self", DefaultConfig(), clusterCheckConfig(100*time.Millisecond, 2, 2), before...)
	u.SetTargets([]health.Target{{ID: kept, Address: be.addr, Path: "/"}, {ID: moved, Address: be.addr, Path: "/"}})
	testutil.Eventually(t, "two members taken in", func() bool { return clusteredWith(u.View, 2) })
	testutil.Eventually(t, "both down in the checker", func() bool {
		return !u.checker.Healthy(kept) && !u.checker.Healthy(moved)
	})
	if got := promtest.ToFloat64(u.metrics.probed); got != 2 {
		t.Fatalf("probed = %v before the join, want 2", got)
	}
	// The backend keeps failing: a reset state would show healthy for at least Fall intervals.
	u.members.set(after...)
	testutil.Eventually(t, "three members taken in", func() bool { return clusteredWith(u.View, 3) })
	if got := promtest.ToFloat64(u.metrics.probed); got != 1 {
		t.Fatalf("probed = %v after the join, want 1", got)
	}
	if u.checker.Healthy(kept) {
		t.Fatalf("%s lost its down state when the assignment was recomputed", kept)
	}
	if hasTarget(u.checker, moved) {
		t.Fatalf("%s is still probed here after it moved to a and b", moved)
	}
}

func hasTarget(c *health.Checker, id string) bool {
	for _, s := range c.Status() {
		if s.ID == id {
			return true
		}
	}
	return false
}

// settled reports whether Run has applied every report ReportLocal took: reports are swapped
// out and applied under mu, so none is in flight while mu is held and the map is empty.
func (u unitView) settled() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reportsMu.Lock()
	defer u.reportsMu.Unlock()
	return len(u.reports) == 0
}

// reportLocal calls ReportLocal and waits until Run has applied it.
func (u unitView) reportLocal(t *testing.T, id string, ejected bool, reason string) {
	t.Helper()
	u.ReportLocal(id, ejected, reason)
	testutil.Eventually(t, "the report applied", u.settled)
}

func TestReportLocal(t *testing.T) {
	members := []string{"self", "p1", "p2"}
	u := newUnitView(t, "self", DefaultConfig(), clusterCheckConfig(time.Second, 3, 2), members...)
	id := idProbedBy(t, members, 2, "p1", "p2")
	u.SetTargets([]health.Target{{ID: id, Address: "127.0.0.1:1", Path: "/"}})
	testutil.Eventually(t, "member list taken in", func() bool { return clusteredWith(u.View, 3) })
	key := observationKey(SourcePassive, backendKeyPart(id), "self")
	passive := func() (Observation, bool) {
		e, ok := u.store.Get(gossip.KindHealth, key)
		if !ok {
			return Observation{}, false
		}
		o, err := decodeObservation(e.Value)
		if err != nil {
			t.Fatal(err)
		}
		return o, true
	}

	u.reportLocal(t, id, false, "")
	if _, ok := passive(); ok {
		t.Fatal("a reinstatement without a prior ejection was written")
	}
	u.ReportLocal("unknown", true, "x")
	u.reportsMu.Lock()
	pending := len(u.reports)
	u.reportsMu.Unlock()
	if pending != 0 {
		t.Fatal("a report of an unknown backend was queued")
	}
	u.reportLocal(t, id, true, "5 errors in 10s")
	o, ok := passive()
	if !ok || o.Healthy || o.Reason != "5 errors in 10s" || o.Source != SourcePassive {
		t.Fatalf("passive observation = %+v (found %t)", o, ok)
	}
	sent := u.bcast.sent.Load()
	u.reportLocal(t, id, true, "5 errors in 10s")
	if got := u.bcast.sent.Load(); got != sent || sent != 1 {
		t.Fatalf("broadcasts %d then %d, want 1 for one ejection reported twice", sent, got)
	}
	holds(t, 100*time.Millisecond, "healthy despite this node's ejection", func() bool { return u.Healthy(id) })
	testutil.Eventually(t, "ejection in status", func() bool {
		o, ok := observer(statusFor(t, u.View, id), "self", SourcePassive)
		return ok && !o.Healthy && !o.Voting && o.Fresh
	})
	u.reportLocal(t, id, false, "ignored when reinstated")
	if o, _ := passive(); !o.Healthy || o.Reason != "" {
		t.Fatalf("after reinstatement the passive observation is %+v", o)
	}
	if got := promtest.ToFloat64(u.metrics.observations.WithLabelValues(obsSent)); got != 2 {
		t.Fatalf("sent = %v, want 2", got)
	}
	u.bcast.refuse.Store(true)
	u.reportLocal(t, id, true, "again")
	if got := promtest.ToFloat64(u.metrics.observations.WithLabelValues(obsFailed)); got != 1 {
		t.Fatalf("failed = %v, want 1 after a refused broadcast", got)
	}
	if o, _ := passive(); o.Reason != "again" {
		t.Fatal("a refused broadcast did not keep the observation in the store for push/pull")
	}
}

// TestReportLocalNeverWaitsForTheView: the passive checks call ReportLocal (their OnChange hook)
// from the request whose failure ejects a backend. While the View is busy (its lock held, as a
// long recomputation or a stalled Run holds it), that request's Report must still return; the
// ejection is shared once the View is free again.
func TestReportLocalNeverWaitsForTheView(t *testing.T) {
	members := []string{"self", "p1", "p2"}
	u := newUnitView(t, "self", DefaultConfig(), clusterCheckConfig(time.Second, 3, 2), members...)
	id := idProbedBy(t, members, 2, "p1", "p2")
	u.SetTargets([]health.Target{{ID: id, Address: "127.0.0.1:1", Path: "/"}, {ID: "other", Address: "127.0.0.1:2"}})
	testutil.Eventually(t, "member list taken in", func() bool { return clusteredWith(u.View, 3) })
	passive, err := health.NewPassive(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	passive.OnChange(u.ReportLocal)
	passive.SetPools([]health.PassivePool{{Name: "web", Backends: []string{id, "other"}, Config: health.PassiveConfig{
		ConsecutiveFailures: 1, EjectionTime: time.Hour, MaxEjectionTime: time.Hour, MaxEjectionPercent: 50}}})

	u.mu.Lock()
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		passive.Report(id, health.Outcome5xx) // the failure that ejects, on the request path
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second): // a guard against a hang; the event comes first
		u.mu.Unlock()
		<-returned
		t.Fatal("Report, ejecting a backend, waited for the View's lock")
	}
	u.mu.Unlock()
	if !passive.Ejected(id) {
		t.Fatal("the backend was not ejected")
	}
	key := observationKey(SourcePassive, backendKeyPart(id), "self")
	testutil.Eventually(t, "the ejection shared once the View is free", func() bool {
		e, ok := u.store.Get(gossip.KindHealth, key)
		if !ok {
			return false
		}
		o, err := decodeObservation(e.Value)
		return err == nil && !o.Healthy && o.Reason == "a 5xx response"
	})
}

func TestNewRejects(t *testing.T) {
	store, err := gossip.NewStore(gossip.StoreConfig{NodeName: "n", MaxEntriesPerKind: 10, TombstoneTTL: time.Hour,
		ExpireInterval: time.Second}, gossip.NewClock(nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	named := DefaultConfig()
	named.NodeName = "n"
	tests := []struct {
		name    string
		cfg     Config
		g       Gossip
		nilChk  bool
		wantErr string
	}{
		{"zero probers", Config{MembershipPoll: time.Second, QueueSize: 1}, Gossip{}, false, "probers: must be between 1 and 16, got 0"},
		{"negative ttl", func() Config { c := named; c.ObservationTTL = -1; return c }(), Gossip{}, false, "observation_ttl: must not be negative"},
		{"no poll", func() Config { c := named; c.MembershipPoll = 0; return c }(), Gossip{}, false, "membership poll: must be positive"},
		{"long name", func() Config { c := named; c.NodeName = strings.Repeat("n", 200); return c }(), Gossip{}, false, "node name: 200 bytes"},
		{"nil checker", named, Gossip{}, true, "nil checker"},
		{"store without broadcaster", named, Gossip{Store: store, Members: &fakeMembers{}}, false, "broadcaster"},
		{"store without members", named, Gossip{Store: store, Broadcaster: &countingBroadcaster{}}, false, "member list"},
		{"store without name", DefaultConfig(), Gossip{Store: store, Broadcaster: &countingBroadcaster{}, Members: &fakeMembers{}}, false, "node name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var checker *health.Checker
			if !tt.nilChk {
				var err error
				if checker, err = health.NewChecker(health.DefaultConfig(), nil, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			_, err := New(tt.cfg, checker, tt.g, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewCluster: %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	checker, err := health.NewChecker(health.DefaultConfig(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(DefaultConfig(), checker, Gossip{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, "cluster", c.Run)
	testutil.Eventually(t, "running", c.running.Load)
	if err := c.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
}

func TestHealthyDoesNotAllocate(t *testing.T) {
	u := newUnitView(t, "self", DefaultConfig(), clusterCheckConfig(time.Second, 3, 2), "self")
	u.SetTargets([]health.Target{{ID: "b", Address: "127.0.0.1:1", Path: "/"}})
	if allocs := testing.AllocsPerRun(1000, func() { _ = u.Healthy("b"); _ = u.Healthy("unknown") }); allocs != 0 {
		t.Fatalf("Healthy allocates %v times per call", allocs)
	}
}

func BenchmarkHealthy(b *testing.B) {
	checker, err := health.NewChecker(health.DefaultConfig(), nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(DefaultConfig(), checker, Gossip{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	var targets []health.Target
	for i := range 1000 {
		targets = append(targets, health.Target{ID: fmt.Sprintf("b%d", i), Address: "127.0.0.1:1", Path: "/"})
	}
	c.SetTargets(targets)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_ = c.Healthy(targets[i%len(targets)].ID)
			i++
		}
	})
}

// clusterBackend is a real HTTP backend that counts the probes of each node (the X-Prober
// header set by proberClient), can flap per prober, and can be killed and revived on the same
// address.
type clusterBackend struct {
	addr   string
	status atomic.Int32
	flap   atomic.Bool // alternate ok, failure per prober, starting with ok

	mu       sync.Mutex
	srv      *httptest.Server
	probes   map[string]int
	arrivals map[string][]time.Time
}

func newClusterBackend(t *testing.T) *clusterBackend {
	t.Helper()
	b := &clusterBackend{probes: map[string]int{}, arrivals: map[string][]time.Time{}}
	b.status.Store(http.StatusOK)
	b.srv = httptest.NewServer(b)
	b.addr = b.srv.Listener.Addr().String()
	// The server in place at the end (revive replaces it) is closed without holding b.mu:
	// Close waits for the handlers running, which take it.
	t.Cleanup(func() {
		b.mu.Lock()
		srv := b.srv
		b.mu.Unlock()
		srv.Close()
	})
	return b
}

func (b *clusterBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	node := r.Header.Get("X-Prober")
	b.probes[node]++
	b.arrivals[node] = append(b.arrivals[node], time.Now())
	n := b.probes[node]
	b.mu.Unlock()
	if b.flap.Load() && n%2 == 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(int(b.status.Load()))
}

// snapshot returns the probes per node so far.
func (b *clusterBackend) snapshot() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.probes)
}

// meanGaps returns, per node with two probes or more, the mean time between its probes'
// arrivals: the time from its first to its last over the gaps between them.
func (b *clusterBackend) meanGaps() map[string]time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]time.Duration{}
	for node, ts := range b.arrivals {
		if len(ts) > 1 {
			out[node] = ts[len(ts)-1].Sub(ts[0]) / time.Duration(len(ts)-1)
		}
	}
	return out
}

// kill closes the listener: probes now fail to connect.
func (b *clusterBackend) kill() {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	srv.Close()
}

// revive serves again on the same address.
func (b *clusterBackend) revive(t *testing.T) {
	t.Helper()
	srv := httptest.NewUnstartedServer(b)
	if err := srv.Listener.Close(); err != nil {
		t.Fatal(err)
	}
	var err error
	testutil.Eventually(t, "the old address to listen again", func() bool {
		srv.Listener, err = netListen(b.addr)
		return err == nil
	})
	srv.Start()
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
}

// BenchmarkRecompute measures one recomputation of the view for 1000 backends on 5
// members with k=2, every prober having voted: the work done per batch of gossip changes.
func BenchmarkRecompute(b *testing.B) {
	members := []string{"self", "p1", "p2", "p3", "p4"}
	store, err := gossip.NewStore(gossip.StoreConfig{NodeName: "self", MaxEntriesPerKind: 10000, TombstoneTTL: time.Hour,
		ExpireInterval: time.Second}, gossip.NewClock(nil, 0))
	if err != nil {
		b.Fatal(err)
	}
	checker, err := health.NewChecker(health.DefaultConfig(), nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	fm := &fakeMembers{}
	fm.set(members...)
	cfg := DefaultConfig()
	cfg.NodeName = "self"
	c, err := New(cfg, checker, Gossip{Store: store, Broadcaster: &countingBroadcaster{}, Members: fm}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	var targets []health.Target
	for i := range 1000 {
		targets = append(targets, health.Target{ID: fmt.Sprintf("pool/10.0.%d.%d:80", i/256, i%256), Address: "127.0.0.1:1", Path: "/"})
	}
	c.pollMembers(time.Now())
	c.SetTargets(targets)
	for _, t := range targets {
		for _, p := range c.probers[t.ID] {
			if p != "self" {
				if _, err := store.Merge(gossip.Entry{Kind: gossip.KindHealth, Key: observationKey(SourceActive, backendKeyPart(t.ID), p),
					Value: encodeObservation(Observation{Source: SourceActive, Healthy: true}), Node: p,
					Stamp: gossip.Timestamp{WallNanos: time.Now().UnixNano()}, Expires: time.Now().Add(time.Hour).UnixNano()}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.mu.Lock()
		c.recomputeLocked(time.Now())
		c.mu.Unlock()
	}
}
