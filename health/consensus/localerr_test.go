package consensus

import (
	"context"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/internal/testutil"
)

// emfileDialer is a probe client's DialContext that, once failing is set, fails the way a node
// out of file descriptors does: socket() returns EMFILE, wrapped as net wraps it (health's own
// tests check that the Checker takes this shape for a local error).
type emfileDialer struct {
	failing atomic.Bool
	dials   atomic.Int64
}

func (d *emfileDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.dials.Add(1)
	if d.failing.Load() {
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("socket", syscall.EMFILE)}
	}
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func (d *emfileDialer) client(t *testing.T) *http.Client {
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// counterValue is the value of an unlabelled counter in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// TestLocalErrorsPublishNoDownVote: a prober whose probes fail locally publishes no down
// observation: its healthy vote stands (until it expires for want of results) and the
// consensus keeps the backend up.
func TestLocalErrorsPublishNoDownVote(t *testing.T) {
	store, err := gossip.NewStore(gossip.StoreConfig{NodeName: "self", MaxEntriesPerKind: 100, TombstoneTTL: time.Hour,
		ExpireInterval: time.Second}, gossip.NewClock(nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	key := observationKey(SourceActive, backendKeyPart("b"), "self")
	var downVotes, votes atomic.Int64
	store.OnChange(func(e gossip.Entry) {
		if e.Kind != gossip.KindHealth || e.Key != key || e.Deleted {
			return
		}
		votes.Add(1)
		if o, err := decodeObservation(e.Value); err != nil || !o.Healthy {
			downVotes.Add(1)
		}
	})
	d := &emfileDialer{}
	hcfg := clusterCheckConfig(20*time.Millisecond, 2, 2)
	reg := prometheus.NewRegistry()
	checker, err := health.NewChecker(hcfg, d.client(t), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	fm := &fakeMembers{}
	fm.set("self", "p1")
	ccfg := DefaultConfig()
	ccfg.NodeName = "self"
	v, err := New(ccfg, checker, Gossip{Store: store, Broadcaster: &countingBroadcaster{}, Members: fm},
		nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, "checker", checker.Run)
	runUntilCleanup(t, "view", v.Run)
	be := newClusterBackend(t)
	v.SetTargets([]health.Target{{ID: "b", Address: be.addr, Path: "/"}})
	testutil.Eventually(t, "member list taken in", func() bool { return clusteredWith(v, 2) })
	testutil.Eventually(t, "own healthy vote", func() bool { return votes.Load() > 0 })

	d.failing.Store(true)
	base := d.dials.Load()
	// Probes of one target run one after the other: all but the last of these are judged.
	testutil.Eventually(t, "probes failing locally", func() bool { return d.dials.Load() >= base+int64(4*hcfg.Fall)+1 })
	if n := downVotes.Load(); n != 0 {
		t.Fatalf("%d down observations published for local failures", n)
	}
	if got := counterValue(t, reg, "veloflux_health_probe_local_errors_total"); got < float64(4*hcfg.Fall) {
		t.Fatalf("%v local failures counted, want >= %d", got, 4*hcfg.Fall)
	}
	e, ok := store.Get(gossip.KindHealth, key)
	if !ok {
		t.Fatal("own observation gone")
	}
	if o, err := decodeObservation(e.Value); err != nil || !o.Healthy {
		t.Fatalf("own observation = %+v, %v; want healthy", o, err)
	}
	if !v.Healthy("b") {
		t.Fatal("consensus calls b down after local failures only")
	}
}
