package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/internal/testutil"
)

// holdBackend answers every request that carries X-Hold only when the test releases it, so a
// test decides exactly how many requests are in flight at the backend; other requests are
// answered at once. It records the most requests it ever had in flight.
type holdBackend struct {
	*testBackend
	arrived  chan struct{} // one value per held request that reached the handler
	release  chan struct{} // one value lets one held request finish
	inFlight atomic.Int64
	peak     atomic.Int64
}

func newHoldBackend(t *testing.T, name string) *holdBackend {
	t.Helper()
	h := &holdBackend{arrived: make(chan struct{}, 16), release: make(chan struct{}, 16)}
	h.testBackend = newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		n := h.inFlight.Add(1)
		defer h.inFlight.Add(-1)
		for {
			p := h.peak.Load()
			if n <= p || h.peak.CompareAndSwap(p, n) {
				break
			}
		}
		if r.Header.Get("X-Hold") != "" {
			h.arrived <- struct{}{}
			select {
			case <-h.release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Backend", name)
		_, _ = io.WriteString(w, name)
	})
	// Released before the server closes, so its Close does not wait on held handlers.
	t.Cleanup(func() {
		for range cap(h.release) {
			select {
			case h.release <- struct{}{}:
			default:
			}
		}
	})
	return h
}

var hold = http.Header{"X-Hold": {"1"}}

// sendAsync sends a request in the background; the answer arrives on the returned channel.
func sendAsync(t *testing.T, c *http.Client, url string, hdr http.Header) <-chan response {
	t.Helper()
	ch := make(chan response, 1)
	go func() {
		r, err := trySend(c, http.MethodGet, url, "", hdr, "")
		if err != nil {
			t.Errorf("GET %s: %v", url, err)
		}
		ch <- r
	}()
	return ch
}

// upstreamOf returns the upstream of backend id in pool "web" of the table in use.
func upstreamOf(t *testing.T, p *Proxy, id string) *upstream {
	t.Helper()
	for _, pl := range p.table.Load().pools {
		for _, u := range pl.backends {
			if pl.name == "web" && u.id == id {
				return u
			}
		}
	}
	t.Fatalf("no backend web/%s", id)
	return nil
}

func TestBackendConnectionCap(t *testing.T) {
	t.Run("a request beyond the cap waits and completes when a slot frees", func(t *testing.T) {
		be := newHoldBackend(t, "a")
		cfg := DefaultConfig()
		cfg.MaxConnsPerBackend = 2
		cfg.BackendQueueTimeout = time.Minute // longer than the test may run: the wait must end by the release
		rec := &outcomeRecorder{}
		tp := startProxy(t, cfg, Options{Passive: rec}, onePoolSnapshot("round_robin", false, member("a", be.addr(), 1)))
		c := newClient(t)
		first := sendAsync(t, c, tp.url+"/", hold)
		second := sendAsync(t, c, tp.url+"/", hold)
		testutil.Receive(t, be.arrived, "the first held request")
		testutil.Receive(t, be.arrived, "the second held request")
		third := sendAsync(t, c, tp.url+"/", hold)
		u := upstreamOf(t, tp.Proxy, "a")
		testutil.Eventually(t, "the third request to queue", func() bool { return u.conns.queued.Load() == 1 })
		if got := counterValue(t, tp.reg, "veloflux_backend_queued_requests", map[string]string{"pool": "web", "backend": "a"}); got != 1 {
			t.Fatalf("veloflux_backend_queued_requests = %v, want 1", got)
		}
		select {
		case <-be.arrived:
			t.Fatal("a third request reached the backend while two held both slots")
		default:
		}
		// Either of the first two finishes; its slot goes to the third.
		be.release <- struct{}{}
		testutil.Receive(t, be.arrived, "the queued request to reach the backend")
		be.release <- struct{}{}
		be.release <- struct{}{}
		for _, ch := range []<-chan response{first, second, third} {
			if r := testutil.Receive(t, ch, "a request"); r.status != http.StatusOK {
				t.Fatalf("status %d, want 200 (body %q)", r.status, r.body)
			}
		}
		if p := be.peak.Load(); p != 2 {
			t.Fatalf("the backend had %d requests in flight at most, want 2", p)
		}
		labels := map[string]string{"pool": "web", "backend": "a"}
		if w, to := counterValue(t, tp.reg, "veloflux_backend_queue_waits_total", labels), counterValue(t, tp.reg, "veloflux_backend_queue_timeouts_total", labels); w != 1 || to != 0 {
			t.Fatalf("queue waits %v, timeouts %v; want 1 and 0", w, to)
		}
		if got := rec.get(); len(got) != 3 {
			t.Fatalf("passive reports %v, want three successes", got)
		}
	})

	t.Run("a request that waits in vain gets 503 and is not the backend's failure", func(t *testing.T) {
		be := newHoldBackend(t, "a")
		cfg := DefaultConfig()
		cfg.MaxConnsPerBackend = 2
		cfg.BackendQueueTimeout = 50 * time.Millisecond // no slot can free: the test holds both
		rec := &outcomeRecorder{}
		tp := startProxy(t, cfg, Options{Passive: rec}, onePoolSnapshot("round_robin", false, member("a", be.addr(), 1)))
		c := newClient(t)
		first := sendAsync(t, c, tp.url+"/", hold)
		second := sendAsync(t, c, tp.url+"/", hold)
		testutil.Receive(t, be.arrived, "the first held request")
		testutil.Receive(t, be.arrived, "the second held request")
		r := send(t, c, http.MethodGet, tp.url+"/", "", nil, "")
		checkErrorAnswer(t, r, http.StatusServiceUnavailable, "the backend is at its connection limit")
		if got := rec.get(); len(got) != 0 {
			t.Fatalf("passive reports %v after the refusal, want none", got)
		}
		labels := map[string]string{"pool": "web", "backend": "a"}
		if w, to := counterValue(t, tp.reg, "veloflux_backend_queue_waits_total", labels), counterValue(t, tp.reg, "veloflux_backend_queue_timeouts_total", labels); w != 1 || to != 1 {
			t.Fatalf("queue waits %v, timeouts %v; want 1 and 1", w, to)
		}
		be.release <- struct{}{}
		be.release <- struct{}{}
		for _, ch := range []<-chan response{first, second} {
			if r := testutil.Receive(t, ch, "a held request"); r.status != http.StatusOK {
				t.Fatalf("status %d, want 200", r.status)
			}
		}
		if got := rec.get(); len(got) != 2 || got[0] != "a:success" || got[1] != "a:success" {
			t.Fatalf("passive reports %v, want the two successes only", got)
		}
		testutil.Eventually(t, "the slots to be free", func() bool { return tp.InFlight() == 0 })
		if r := send(t, c, http.MethodGet, tp.url+"/", "", nil, ""); r.status != http.StatusOK {
			t.Fatalf("after the release: status %d, want 200", r.status)
		}
	})

	t.Run("a request refused a slot is retried on another backend", func(t *testing.T) {
		a, b := newHoldBackend(t, "a"), newHoldBackend(t, "b")
		cfg := DefaultConfig()
		cfg.MaxConnsPerBackend = 1
		cfg.BackendQueueTimeout = 50 * time.Millisecond
		rec := &outcomeRecorder{}
		tp := startProxy(t, cfg, Options{Passive: rec},
			onePoolSnapshot("round_robin", false, member("a", a.addr(), 1), member("b", b.addr(), 1)))
		c := newClient(t)
		// Round robin alternates: the held request takes one backend's only slot, the next
		// request goes to the other, and the third comes back to the full one.
		held := sendAsync(t, c, tp.url+"/", hold)
		var full, free *holdBackend
		select {
		case <-a.arrived:
			full, free = a, b
		case <-b.arrived:
			full, free = b, a
		case <-time.After(testutil.Timeout()):
			t.Fatal("the held request reached no backend")
		}
		if r := send(t, c, http.MethodGet, tp.url+"/", "", nil, ""); r.header.Get("X-Backend") != free.name {
			t.Fatalf("second request served by %q, want %s", r.header.Get("X-Backend"), free.name)
		}
		r := send(t, c, http.MethodGet, tp.url+"/", "", nil, "")
		if r.status != http.StatusOK || r.header.Get("X-Backend") != free.name {
			t.Fatalf("third request: status %d from %q, want 200 from %s", r.status, r.header.Get("X-Backend"), free.name)
		}
		if got := counterValue(t, tp.reg, "veloflux_backend_queue_timeouts_total", map[string]string{"pool": "web", "backend": full.name}); got != 1 {
			t.Fatalf("queue timeouts of %s = %v, want 1", full.name, got)
		}
		if got := counterValue(t, tp.reg, "veloflux_retries_total", map[string]string{"pool": "web"}); got != 1 {
			t.Fatalf("retries = %v, want 1", got)
		}
		want := []string{free.name + ":success", free.name + ":success"}
		if got := rec.get(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("passive reports %v, want %v", got, want)
		}
		full.release <- struct{}{}
		testutil.Receive(t, held, "the held request")
	})

	t.Run("a client that leaves the queue is not blamed on anyone", func(t *testing.T) {
		be := newHoldBackend(t, "a")
		cfg := DefaultConfig()
		cfg.MaxConnsPerBackend = 1
		cfg.BackendQueueTimeout = time.Minute
		rec := &outcomeRecorder{}
		tp := startProxy(t, cfg, Options{Passive: rec}, onePoolSnapshot("round_robin", false, member("a", be.addr(), 1)))
		c := newClient(t)
		held := sendAsync(t, c, tp.url+"/", hold)
		testutil.Receive(t, be.arrived, "the held request")
		ctx, cancel := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, tp.url+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		u := upstreamOf(t, tp.Proxy, "a")
		testutil.Eventually(t, "the second request to queue", func() bool { return u.conns.queued.Load() == 1 })
		cancel()
		<-done
		testutil.Eventually(t, "the queue to empty", func() bool { return u.conns.queued.Load() == 0 })
		if to := u.conns.timeouts.Load(); to != 0 {
			t.Fatalf("%d queue timeouts for a client that left", to)
		}
		be.release <- struct{}{}
		testutil.Receive(t, held, "the held request")
		testutil.Eventually(t, "both requests to end", func() bool { return tp.InFlight() == 0 })
		if got := rec.get(); len(got) != 1 || got[0] != "a:success" {
			t.Fatalf("passive reports %v, want the held request's success only", got)
		}
	})
}

// TestBackendConnectionCapWebSocket: an upgraded connection holds its backend's slot for as
// long as it is open.
func TestBackendConnectionCapWebSocket(t *testing.T) {
	be := newBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			_, _ = io.WriteString(w, "plain")
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if err := c.Write(context.Background(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	cfg := DefaultConfig()
	cfg.MaxConnsPerBackend = 1
	cfg.BackendQueueTimeout = 50 * time.Millisecond
	tp := startProxy(t, cfg, Options{}, onePoolSnapshot("round_robin", false, member("ws", be.addr(), 1)))
	ws, _ := wsDial(t, strings.TrimPrefix(tp.url, "http://"))
	wsEcho(t, ws, "hello")
	c := newClient(t)
	r := send(t, c, http.MethodGet, tp.url+"/", "", nil, "")
	checkErrorAnswer(t, r, http.StatusServiceUnavailable, "the backend is at its connection limit")
	wsEcho(t, ws, "still open")
	if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
	testutil.Eventually(t, "the upgraded connection to end", func() bool { return tp.InFlight() == 0 })
	if r := send(t, c, http.MethodGet, tp.url+"/", "", nil, ""); r.status != http.StatusOK || r.body != "plain" {
		t.Fatalf("after the WebSocket closed: status %d, body %q", r.status, r.body)
	}
}

// TestBackendConnectionCapSettings: the cap of a backend is its pool's when the pool sets one,
// else the proxy's, and follows both Apply and Reconfigure.
func TestBackendConnectionCapSettings(t *testing.T) {
	snap := func(poolMax int) *discovery.Snapshot {
		s := onePoolSnapshot("round_robin", false, member("a", "127.0.0.1:1", 1))
		s.Pools[0].MaxConnsPerBackend = poolMax
		return s
	}
	tests := []struct {
		name      string
		global    int
		poolMax   int
		want      int
		reglobal  int // after Reconfigure with this global cap
		wantAfter int
	}{
		{name: "proxy default", global: 1024, want: 1024, reglobal: 1024, wantAfter: 1024},
		{name: "pool override", global: 1024, poolMax: 8, want: 8, reglobal: 16, wantAfter: 8},
		{name: "proxy cap follows Reconfigure", global: 4, want: 4, reglobal: 16, wantAfter: 16},
		{name: "no cap", global: 0, want: 0, reglobal: 3, wantAfter: 3},
		{name: "a pool cap under no proxy cap", global: 0, poolMax: 2, want: 2, reglobal: 0, wantAfter: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MaxConnsPerBackend = tt.global
			p := newProxy(t, cfg, Options{}, snap(tt.poolMax))
			u := upstreamOf(t, p, "a")
			if got := u.conns.limit(); got != tt.want {
				t.Fatalf("cap %d, want %d", got, tt.want)
			}
			cfg.MaxConnsPerBackend = tt.reglobal
			if err := p.Reconfigure(cfg); err != nil {
				t.Fatal(err)
			}
			if got := u.conns.limit(); got != tt.wantAfter {
				t.Fatalf("cap after Reconfigure %d, want %d", got, tt.wantAfter)
			}
			// A pool that drops its override falls back to the proxy's cap, on the same backend.
			if err := p.Apply(snap(0)); err != nil {
				t.Fatal(err)
			}
			if upstreamOf(t, p, "a") != u || u.conns.limit() != tt.reglobal {
				t.Fatalf("after the pool dropped its cap: cap %d, want %d on the same backend", u.conns.limit(), tt.reglobal)
			}
		})
	}
	t.Run("invalid settings", func(t *testing.T) {
		for _, mod := range []func(*Config){
			func(c *Config) { c.MaxConnsPerBackend = -1 },
			func(c *Config) { c.BackendQueueTimeout = 0 },
		} {
			cfg := DefaultConfig()
			mod(&cfg)
			if _, err := New(cfg, Options{}); err == nil {
				t.Errorf("New accepted %+v", cfg)
			}
		}
	})
}

// TestConnSlots covers the semaphore alone: a free slot costs no allocation, a raised cap
// applies to new requests while the holders of the old one give back theirs, and concurrent
// use never lets more in than the cap.
func TestConnSlots(t *testing.T) {
	t.Run("free slot does not allocate", func(t *testing.T) {
		var s connSlots
		s.setLimit(4)
		ctx := context.Background()
		if n := testing.AllocsPerRun(200, func() {
			sem, err := s.acquire(ctx, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			sem.release()
		}); n != 0 {
			t.Fatalf("acquire and release allocate %v times, want 0", n)
		}
	})
	t.Run("cap changed while a slot is held", func(t *testing.T) {
		var s connSlots
		s.setLimit(1)
		old, err := s.acquire(context.Background(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		s.setLimit(2)
		var held []*slotSem
		for range 2 {
			sem, err := s.acquire(context.Background(), time.Second)
			if err != nil {
				t.Fatalf("new cap 2: %v", err)
			}
			held = append(held, sem)
		}
		if _, err := s.acquire(context.Background(), time.Millisecond); err != errAtCapacity {
			t.Fatalf("third slot under cap 2: %v, want errAtCapacity", err)
		}
		old.release() // into the old semaphore: must neither block nor free a new slot
		if _, err := s.acquire(context.Background(), time.Millisecond); err != errAtCapacity {
			t.Fatalf("after the old holder left: %v, want errAtCapacity", err)
		}
		for _, sem := range held {
			sem.release()
		}
		s.setLimit(0)
		if sem, err := s.acquire(context.Background(), time.Millisecond); sem != nil || err != nil {
			t.Fatalf("without a cap: %v, %v; want no slot and no error", sem, err)
		}
	})
	t.Run("concurrent use stays under the cap", func(t *testing.T) {
		const limit, workers, rounds = 3, 16, 200
		var s connSlots
		s.setLimit(limit)
		var in, peak atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range rounds {
					sem, err := s.acquire(context.Background(), time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					n := in.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					in.Add(-1)
					sem.release()
				}
			})
		}
		wg.Wait()
		if p := peak.Load(); p > limit {
			t.Fatalf("%d slots held at once, cap %d", p, limit)
		}
		if q := s.queued.Load(); q != 0 {
			t.Fatalf("%d still queued", q)
		}
	})
}
