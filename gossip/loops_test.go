package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/veloflux/veloflux/internal/testutil"
)

// The join and reconnect loops run on timers measured in seconds to minutes. These tests drive
// them against a fake memberlist inside a synctest bubble, where those timers fire on a fake
// clock: the delays are checked exactly, and the tests take no real time. The real-socket tests
// in node_test.go show the same loops joining real nodes.

// fakeCluster stands in for the memberlist: it records each Join with the bubble's time since
// start, and fails the first fail of them.
type fakeCluster struct {
	start time.Time

	mu      sync.Mutex
	fail    int // Join fails while this is above 0, and counts it down
	members int // NumMembers' answer
	calls   []joinCall
}

type joinCall struct {
	at    time.Duration // since start
	addrs []string
}

func (c joinCall) String() string { return fmt.Sprintf("%v %v", c.at, c.addrs) }

func (f *fakeCluster) Join(addrs []string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, joinCall{at: time.Since(f.start), addrs: slices.Clone(addrs)})
	if f.fail > 0 {
		f.fail--
		return 0, errors.New("connection refused")
	}
	return len(addrs), nil
}

func (f *fakeCluster) NumMembers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.members
}

func (f *fakeCluster) setMembers(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members = n
}

func (f *fakeCluster) joins() []joinCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// A node whose seeds do not answer retries with a delay that doubles from 200ms up to 30s, each
// drawn between half the step and the step, and stops once one answers.
func TestJoinRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seeds := []string{"127.0.0.1:1", "127.0.0.1:2"}
		logs := &testutil.LogBuffer{}
		n, err := New(testConfig("a", nil, seeds...), &recState{}, logs.Logger(), nil)
		if err != nil {
			t.Fatal(err)
		}
		const failures = 10 // enough to reach the 30s cap twice
		fc := &fakeCluster{start: time.Now(), fail: failures}
		n.join(t.Context(), fc)

		calls := fc.joins()
		if len(calls) != failures+1 {
			t.Fatalf("%d joins, want %d failed and 1 answered: %v", len(calls), failures, calls)
		}
		if calls[0].at != 0 {
			t.Errorf("first join after %v, want at once", calls[0].at)
		}
		step := joinBackoffMin
		for i, c := range calls {
			if !slices.Equal(c.addrs, seeds) {
				t.Errorf("join %d tried %v, want the seeds %v", i, c.addrs, seeds)
			}
			if i == 0 {
				continue
			}
			if gap := c.at - calls[i-1].at; gap < step/2 || gap > step {
				t.Errorf("retry %d came %v after the one before, want within [%v, %v]", i, gap, step/2, step)
			}
			step = min(2*step, joinBackoffMax)
		}
		if step != joinBackoffMax {
			t.Errorf("backoff ended at %v, want the %v cap reached", step, joinBackoffMax)
		}
		if got := len(logs.Find("join failed, retrying")); got != failures {
			t.Errorf("%d 'join failed' records, want %d", got, failures)
		}
		if got := len(logs.Find("joined cluster")); got != 1 {
			t.Errorf("%d 'joined cluster' records, want 1", got)
		}
	})
}

// A node cut off from its seeds keeps trying, at most about once per 30s after the first minute,
// and stops as soon as its context ends.
func TestJoinStopsWhenContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, err := New(testConfig("a", nil, "127.0.0.1:1"), &recState{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		fc := &fakeCluster{start: time.Now(), fail: 1 << 30}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			n.join(ctx, fc)
		}()
		time.Sleep(5 * time.Minute)
		// Up to the cap, delays add up to at least 200ms+400ms+...+25.6s halved (about 25s); after
		// it, one try per 15 to 30s: at most 8 + (300-25)/15 + 1 tries in five minutes.
		if got := len(fc.joins()); got < 10 || got > 28 {
			t.Errorf("%d joins in five minutes, want 10 to 28: retries back off to 30s", got)
		}
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("join still running after its context ended")
		}
	})
}

// Every ReconnectInterval, the loop retries the departed members it still remembers, and adds
// the seeds and FindPeers' answer when the node is alone; a departed member is forgotten once
// ReconnectTimeout has passed.
func TestReconnectRetriesDepartedMembersAndSeeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Second
		cfg := testConfig("a", nil, "seed.example:7946")
		cfg.ReconnectInterval = interval
		cfg.ReconnectTimeout = time.Minute // above memberlist's GossipToTheDeadTime (30s on LAN)
		var asked atomic.Int32
		cfg.FindPeers = func() []string { asked.Add(1); return []string{"found.example:7946"} }
		n, err := New(cfg, &recState{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		fc := &fakeCluster{start: time.Now(), members: 3}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			n.reconnect(ctx, fc)
		}()

		// advance lets ticks due up to and including d from the start happen.
		advance := func(d time.Duration) {
			time.Sleep(d - time.Since(fc.start))
			synctest.Wait()
		}

		advance(3 * interval)
		if calls := fc.joins(); len(calls) != 0 || asked.Load() != 0 {
			t.Fatalf("with company and nobody departed: joins %v, FindPeers asked %d times; want neither", calls, asked.Load())
		}

		b := &memberlist.Node{Name: "b", Addr: net.IPv4(127, 0, 0, 2), Port: 7946}
		n.del.NotifyLeave(b) // departed at 30s: remembered until 90s
		advance(4 * interval)
		fc.setMembers(1) // the rest of the cluster is gone too
		advance(10 * interval)

		bAddr, seeds := b.Address(), []string{"seed.example:7946", "found.example:7946"}
		alone := append([]string{bAddr}, seeds...)
		want := []joinCall{
			{40 * time.Second, []string{bAddr}}, // with company: the departed member only
			{50 * time.Second, alone},
			{60 * time.Second, alone},
			{70 * time.Second, alone},
			{80 * time.Second, alone},
			{90 * time.Second, alone},  // 60s after the departure: still remembered
			{100 * time.Second, seeds}, // forgotten
		}
		if got := fc.joins(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("joins\n got %v\nwant %v", got, want)
		}
		if got := asked.Load(); got != 6 {
			t.Errorf("FindPeers asked %d times, want once per interval spent alone (6)", got)
		}
		if all := n.AllMembers(); len(all) != 0 {
			t.Errorf("AllMembers = %+v after ReconnectTimeout, want b forgotten", all)
		}

		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("reconnect still running after its context ended")
		}
	})
}
