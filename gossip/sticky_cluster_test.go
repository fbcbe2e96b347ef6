package gossip

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/proxy"
)

// stickyNode is one VeloFlux node in miniature: a real proxy whose session store is this
// package's Sessions over a real memberlist node.
type stickyNode struct {
	storeNode
	proxy *proxy.Proxy
}

func startStickyNode(t *testing.T, name string, snap *discovery.Snapshot, seeds ...string) stickyNode {
	t.Helper()
	sn := startStoreNode(t, name, seeds...)
	sessions, err := NewSessions(sn.store, sn.Node, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg := proxy.DefaultConfig()
	cfg.Sticky.Secret = []byte("cluster-secret-cluster-secret-42")
	p, err := proxy.New(cfg, proxy.Options{Sessions: sessions, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if err := p.Apply(snap); err != nil {
		t.Fatal(err)
	}
	return stickyNode{storeNode: sn, proxy: p}
}

// serve sends one request through the node's proxy and returns the backend that answered and
// the session cookie it set, if any.
func (n stickyNode) serve(t *testing.T, cookie string) (backend, setCookie string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://app.example/", nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	rec := httptest.NewRecorder()
	n.proxy.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: status %d: %s", n.store.cfg.NodeName, rec.Code, rec.Body)
	}
	setCookie, _, _ = strings.Cut(rec.Header().Get("Set-Cookie"), ";")
	return rec.Body.String(), setCookie
}

// TestStickySessionsAcrossCluster: with 3 and with 20 nodes, a session created through one
// node's proxy is routed to the same backend by the proxy of every other node. It reports how
// long the pin takes to reach every node (median and max of 10 sessions, each created on a
// different node).
func TestStickySessionsAcrossCluster(t *testing.T) {
	var members []discovery.Backend
	for i := range 5 {
		name := fmt.Sprintf("b%d", i)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) }))
		t.Cleanup(srv.Close)
		members = append(members, discovery.Backend{ID: name, Address: strings.TrimPrefix(srv.URL, "http://"), Weight: 1})
	}
	snap := &discovery.Snapshot{
		Source: "test",
		Pools:  []discovery.Pool{{Name: "web", Algorithm: "round_robin", Sticky: true, Backends: members}},
		Routes: []discovery.Route{{Pool: "web"}},
	}
	for _, size := range []int{3, 20} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			nodes := []stickyNode{startStickyNode(t, "n0", snap)}
			names := []string{"n0"}
			for i := 1; i < size; i++ {
				nodes = append(nodes, startStickyNode(t, fmt.Sprintf("n%d", i), snap, nodes[0].LocalAddr()))
				names = append(names, fmt.Sprintf("n%d", i))
			}
			slices.Sort(names)
			for _, n := range nodes {
				testutil.Eventually(t, "full membership", seesMembers(n.Node, names...))
			}
			var took []time.Duration
			for s := range 10 {
				creator := nodes[(s*7)%size]
				start := time.Now()
				backend, cookie := creator.serve(t, "")
				if cookie == "" {
					t.Fatal("no session cookie")
				}
				// Ask the others only once the pin is there: a node asked earlier pins the
				// session itself, and its newer pin would win everywhere.
				testutil.Eventually(t, "the pin on every node", func() bool {
					for _, n := range nodes {
						if n.store.Len(KindSession) != s+1 {
							return false
						}
					}
					return true
				})
				took = append(took, time.Since(start))
				for _, n := range nodes {
					if got, set := n.serve(t, cookie); got != backend || set != "" {
						t.Errorf("session created on %s at %s: %s answered from %s (new cookie %q)",
							creator.store.cfg.NodeName, backend, n.store.cfg.NodeName, got, set)
					}
				}
			}
			slices.Sort(took)
			t.Logf("%d nodes: session created through one proxy routed identically by all, pin everywhere after median %v, max %v (10 sessions)",
				size, took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
		})
	}
}
