package views

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/veloflux/veloflux/admin"
	"github.com/veloflux/veloflux/discovery"
)

// TestStats sends real requests through the node's proxy and reads them back from
// /admin/stats: counts by class and by pool, and a latency histogram that holds them all.
func TestStats(t *testing.T) {
	n := newTestNode(t)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(be.Close)
	addr := be.Listener.Addr().String()
	snap := &discovery.Snapshot{Source: "static",
		Routes: []discovery.Route{{Host: "app.test", Pool: "app"}},
		Pools:  []discovery.Pool{{Name: "app", Backends: []discovery.Backend{{ID: addr, Address: addr}}}}}
	if err := n.parts.Proxy.Apply(snap); err != nil {
		t.Fatal(err)
	}
	send := func(host, path string) int {
		req := httptest.NewRequest(http.MethodGet, "http://"+host+path, nil)
		req.RemoteAddr = "192.0.2.1:1234"
		rec := httptest.NewRecorder()
		n.parts.Proxy.ServeHTTP(rec, req)
		return rec.Code
	}
	want := map[string]int{"2xx": 3, "5xx": 2, "4xx": 1}
	for range 3 {
		if code := send("app.test", "/"); code != http.StatusOK {
			t.Fatalf("GET / = %d", code)
		}
	}
	for range 2 {
		if code := send("app.test", "/fail"); code != http.StatusServiceUnavailable {
			t.Fatalf("GET /fail = %d", code)
		}
	}
	if code := send("nowhere.test", "/"); code/100 != 4 {
		t.Fatalf("unrouted GET = %d, want 4xx", code)
	}
	c, err := New(n.parts)
	if err != nil {
		t.Fatal(err)
	}
	st := roundTrip[stats](t, c.Stats())
	if st.Requests != 6 {
		t.Errorf("requests = %d, want 6", st.Requests)
	}
	for class, w := range want {
		if st.ByClass[class] != int64(w) {
			t.Errorf("by_class[%s] = %d, want %d (all: %v)", class, st.ByClass[class], w, st.ByClass)
		}
	}
	var app *poolStats
	for i := range st.Pools {
		if st.Pools[i].Pool == "app" {
			app = &st.Pools[i]
		}
	}
	if app == nil || app.Requests != 5 || app.Errors != 2 {
		t.Errorf("pools = %+v, want app with 5 requests and 2 errors", st.Pools)
	}
	if st.Latency.Count != 6 || len(st.Latency.Buckets) == 0 {
		t.Fatalf("latency = %+v, want 6 observations in buckets", st.Latency)
	}
	last := st.Latency.Buckets[len(st.Latency.Buckets)-1]
	if last.LE != 30 || last.Count != 6 {
		t.Errorf("last finite bucket = %+v, want le 30 holding all 6", last)
	}
	for i := 1; i < len(st.Latency.Buckets); i++ {
		a, b := st.Latency.Buckets[i-1], st.Latency.Buckets[i]
		if a.LE >= b.LE || a.Count > b.Count {
			t.Errorf("buckets not cumulative in order: %+v then %+v", a, b)
		}
	}
	if time.Since(st.At) > time.Minute || st.Certificates == nil {
		t.Errorf("at = %v, certificates = %v", st.At, st.Certificates)
	}
}

func TestSessions(t *testing.T) {
	n := newTestNode(t)
	exp := time.Now().Add(time.Hour)
	n.sessions.Put("s1", "10.0.0.1:80", exp)
	n.sessions.Put("s2", "10.0.0.2:80", exp)
	n.sessions.Put("s3", "10.0.0.2:80", exp)
	c, err := New(n.parts)
	if err != nil {
		t.Fatal(err)
	}
	got := roundTrip[sessions](t, c.Sessions())
	want := sessions{Scope: "node", Total: 3, ByBackend: []backendPins{{"10.0.0.2:80", 2}, {"10.0.0.1:80", 1}}}
	if mustJSON(t, got) != mustJSON(t, want) {
		t.Errorf("sessions = %s, want %s", mustJSON(t, got), mustJSON(t, want))
	}
}

// TestPeerAdminWithoutCluster: a node alone has no peers to forward to.
func TestPeerAdminWithoutCluster(t *testing.T) {
	c, err := New(newTestNode(t).parts)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.PeerAdmin("node-b"); !errors.Is(err, admin.ErrUnknownPeer) {
		t.Fatalf("PeerAdmin = %v, want ErrUnknownPeer", err)
	}
}
