package consul

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/discovery/consul/consultest"
	"github.com/veloflux/veloflux/internal/testutil"
)

// TestMain checks that no test of the package leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNextIndex(t *testing.T) {
	tests := []struct {
		name        string
		last, got   uint64
		wantWait    uint64
		wantChanged bool
	}{
		{name: "first read", last: 0, got: 12, wantWait: 12, wantChanged: true},
		{name: "grew", last: 12, got: 15, wantWait: 15, wantChanged: true},
		{name: "unchanged: no rebuild", last: 15, got: 15, wantWait: 15, wantChanged: false},
		{name: "went backwards: reset to 0 and take the data", last: 15, got: 9, wantWait: 0, wantChanged: true},
		{name: "zero is treated as 1 on the first read", last: 0, got: 0, wantWait: 1, wantChanged: true},
		{name: "zero after 1 is unchanged, never a wait on 0", last: 1, got: 0, wantWait: 1, wantChanged: false},
		{name: "zero after a higher index resets", last: 40, got: 0, wantWait: 0, wantChanged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait, changed := nextIndex(tt.last, tt.got)
			if wait != tt.wantWait || changed != tt.wantChanged {
				t.Fatalf("nextIndex(%d, %d) = %d, %t; want %d, %t", tt.last, tt.got, wait, changed, tt.wantWait, tt.wantChanged)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 2 * time.Second
	for run := range 50 {
		b := newBackoff(lo, hi)
		step := lo
		for i := range 12 {
			d := b.next()
			if d < lo || d > hi || d < step/2 || d > step {
				t.Fatalf("run %d try %d: delay %v outside [max(%v, %v), %v]", run, i, d, lo, step/2, step)
			}
			step = min(2*step, hi)
		}
		b.reset()
		if d := b.next(); d > lo {
			t.Fatalf("after reset: delay %v, want at most %v", d, lo)
		}
	}
	// The jitter must actually spread retries.
	seen := make(map[time.Duration]bool)
	for range 20 {
		b := newBackoff(lo, hi)
		b.next()
		seen[b.next()] = true
	}
	if len(seen) < 5 {
		t.Fatalf("20 second retries took only %d distinct delays: no jitter", len(seen))
	}
	if d := newBackoff(time.Hour, time.Duration(1<<62)); d.cur != time.Hour {
		t.Fatal("newBackoff does not start at min")
	}
	huge := newBackoff(time.Hour, time.Duration(1<<62))
	for range 100 {
		if d := huge.next(); d < time.Hour {
			t.Fatalf("delay %v below min after doubling: overflow", d)
		}
	}
}

func TestCoalesce(t *testing.T) {
	tests := []struct {
		name     string
		quiet    time.Duration
		maxDelay time.Duration
		signals  int
		every    time.Duration
		// ok judges the number of fires against how long the signals took to send.
		ok   func(fires int, sending time.Duration) bool
		want string
	}{
		{name: "a burst fires once", quiet: 200 * time.Millisecond, maxDelay: 2 * time.Second, signals: 20, every: time.Millisecond,
			ok: func(n int, _ time.Duration) bool { return n == 1 }, want: "1"},
		{name: "constant churn still fires at the cap", quiet: 100 * time.Millisecond, maxDelay: 300 * time.Millisecond, signals: 60, every: 25 * time.Millisecond,
			ok: func(n int, d time.Duration) bool {
				return n >= int(d/(300*time.Millisecond+25*time.Millisecond)) && n <= int(d/(300*time.Millisecond))+2
			},
			want: "one per 300ms of churn"},
		{name: "zero quiet fires for every change", quiet: 0, maxDelay: 0, signals: 5, every: 50 * time.Millisecond,
			ok: func(n int, _ time.Duration) bool { return n == 5 }, want: "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// In a synctest bubble the sleeps and coalesce's timer share one fake clock, so the
			// pace of the signals is exactly what the case says, however busy the machine.
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				dirty := make(chan struct{}, 1)
				var fires atomic.Int32
				done := make(chan struct{})
				go func() {
					defer close(done)
					coalesce(ctx, dirty, tt.quiet, tt.maxDelay, func() { fires.Add(1) })
				}()
				start := time.Now()
				for range tt.signals {
					select {
					case dirty <- struct{}{}:
					default:
					}
					time.Sleep(tt.every)
				}
				sending := time.Since(start)
				time.Sleep(tt.quiet + 100*time.Millisecond)
				cancel()
				<-done
				if n := int(fires.Load()); !tt.ok(n, sending) {
					t.Fatalf("fired %d times while signalling for %v, want %s", n, sending.Round(time.Millisecond), tt.want)
				}
			})
		})
	}
}

func TestNewErrors(t *testing.T) {
	t.Run("invalid config names the key", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.TagPrefix = "a.b"
		if _, err := New(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "discovery.consul.tag_prefix") {
			t.Fatalf("New = %v, want a discovery.consul.tag_prefix error", err)
		}
	})
	t.Run("metrics registered twice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		if _, err := New(DefaultConfig(), nil, reg); err != nil {
			t.Fatal(err)
		}
		if _, err := New(DefaultConfig(), nil, reg); err == nil || !strings.Contains(err.Error(), "consul metrics") {
			t.Fatalf("second New on one registry = %v, want a metrics error", err)
		}
	})
	t.Run("Run twice at once", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Address = "127.0.0.1:1" // nothing listens: Run just retries
		s, err := New(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, func(*discovery.Snapshot) {}) }()
		testutil.EventuallyWithNote(t, "first Run running", func() (bool, string) { return s.running.Load(), "" })
		if err := s.Run(ctx, func(*discovery.Snapshot) {}); err == nil {
			t.Error("second concurrent Run returned nil")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil when ctx ends", err)
		}
	})
}

// TestWatchLifecycle follows one service through the changes a deployment makes.
func TestWatchLifecycle(t *testing.T) {
	agent := consultest.Start(t, "dc1")
	cfg := testConfig(agent)
	strict := runSource(t, cfg)
	cfg.AcceptWarning = true
	lenient := runSource(t, cfg)
	c := testClient(t, agent)

	first := strict.rec.waitFor(t, "first snapshot", func(*discovery.Snapshot) bool { return true })
	if want := (&discovery.Snapshot{Source: "consul"}); !snapEqual(first, want) {
		t.Fatalf("first snapshot of an empty catalog = %+v, want %+v", first, want)
	}

	tags := []string{"veloflux.enable=true", "veloflux.route=example.com/api", "veloflux.strip_prefix=true",
		"veloflux.weight=5", "veloflux.health.path=/hz", "veloflux.protocol=h2c", "veloflux.algorithm=least_conn"}
	wantBackend := discovery.Backend{ID: "dc1/node-dc1/web-1", Address: "127.0.0.1:8080", Weight: 5,
		Region: "dc1", HealthPath: "/hz", Scheme: "h2c"}
	hasBackend := func(weight int) func(*discovery.Snapshot) bool {
		return func(s *discovery.Snapshot) bool {
			p, ok := s.Pool("web")
			return ok && len(p.Backends) == 1 && p.Backends[0].ID == wantBackend.ID && p.Backends[0].Weight == weight
		}
	}
	noBackend := func(s *discovery.Snapshot) bool {
		p, ok := s.Pool("web")
		return ok && len(p.Backends) == 0
	}

	t.Run("register: pool, route and backend", func(t *testing.T) {
		register(t, c, "web-1", "web", 8080, tags, nil)
		got := strict.rec.waitFor(t, "web backend", hasBackend(5))
		want := &discovery.Snapshot{
			Source: "consul",
			Pools:  []discovery.Pool{{Name: "web", Algorithm: "least_conn", Backends: []discovery.Backend{wantBackend}}},
			Routes: []discovery.Route{{Host: "example.com", PathPrefix: "/api", StripPrefix: true, Pool: "web"}},
		}
		if !snapEqual(got, want) {
			t.Fatalf("snapshot\n got %+v\nwant %+v", got, want)
		}
	})
	t.Run("failing check: backend gone, pool and route stay", func(t *testing.T) {
		setTTL(t, c, "web-1", api.HealthCritical)
		got := strict.rec.waitFor(t, "web without backends", noBackend)
		if len(got.Routes) != 1 {
			t.Fatalf("routes %+v, want the web route kept", got.Routes)
		}
		setTTL(t, c, "web-1", api.HealthPassing)
		strict.rec.waitFor(t, "web backend back", hasBackend(5))
	})
	t.Run("warning: excluded unless AcceptWarning", func(t *testing.T) {
		lenient.rec.waitFor(t, "lenient has web", hasBackend(5))
		setTTL(t, c, "web-1", api.HealthWarning)
		strict.rec.waitFor(t, "strict drops warning", noBackend)
		if s := lenient.rec.last(); !hasBackend(5)(s) {
			t.Fatalf("AcceptWarning source dropped the warning instance: %+v", s)
		}
		setTTL(t, c, "web-1", api.HealthPassing)
		strict.rec.waitFor(t, "web backend back", hasBackend(5))
	})
	t.Run("maintenance mode excludes the instance, even with AcceptWarning", func(t *testing.T) {
		if err := c.Agent().EnableServiceMaintenance("web-1", "deploy"); err != nil {
			t.Fatal(err)
		}
		strict.rec.waitFor(t, "strict drops maintenance", noBackend)
		lenient.rec.waitFor(t, "lenient drops maintenance", noBackend)
		if err := c.Agent().DisableServiceMaintenance("web-1"); err != nil {
			t.Fatal(err)
		}
		strict.rec.waitFor(t, "web backend back", hasBackend(5))
	})
	t.Run("a change that changes no route publishes nothing", func(t *testing.T) {
		n := strict.rec.count()
		// An unknown key changes the source's state (a tag error), not the snapshot.
		register(t, c, "web-1", "web", 8080, append(slices.Clone(tags), "veloflux.colour=blue"), nil)
		register(t, c, "other-1", "other", 9000, []string{"not-ours"}, nil)
		// The rebuild after web-1's change has run once its tag error shows, and the list
		// watch has read other-1 once its index reaches the catalog's.
		testutil.EventuallyWithNote(t, "tag error seen", func() (bool, string) {
			st := strict.src.Status()
			return len(st.TagErrors) == 1, fmt.Sprint(st.TagErrors)
		})
		_, meta, err := c.Catalog().Services(nil)
		if err != nil {
			t.Fatal(err)
		}
		testutil.EventuallyWithNote(t, "service list read with other-1", func() (bool, string) {
			idx := strict.src.Status().Datacenters[0].Index
			return idx >= meta.LastIndex, fmt.Sprintf("index %d, catalog %d", idx, meta.LastIndex)
		})
		// Then a change that does publish: the single publisher handles changes in order, so a
		// snapshot for either change above would come before the marker's, without the marker.
		register(t, c, "marker-1", "marker", 9100, []string{"veloflux.enable=true"}, nil)
		defer c.Agent().ServiceDeregister("marker-1") // also when the check below fails
		strict.rec.waitFor(t, "the marker pool", func(s *discovery.Snapshot) bool { _, ok := s.Pool("marker"); return ok })
		for _, snap := range strict.rec.all()[n:] {
			if _, ok := snap.Pool("marker"); !ok {
				t.Fatalf("published %d snapshot(s) for changes that change no route: %+v", strict.rec.count()-n-1, snap)
			}
		}
		if err := c.Agent().ServiceDeregister("marker-1"); err != nil {
			t.Fatal(err)
		}
		strict.rec.waitFor(t, "the marker pool gone", func(s *discovery.Snapshot) bool { _, ok := s.Pool("marker"); return !ok })
	})
	t.Run("weight tag change: new weight", func(t *testing.T) {
		reweighted := slices.Clone(tags)
		reweighted[slices.Index(reweighted, "veloflux.weight=5")] = "veloflux.weight=7"
		register(t, c, "web-1", "web", 8080, reweighted, nil)
		strict.rec.waitFor(t, "weight 7", hasBackend(7))
	})
	t.Run("geo tag: the route gets the mode; a bad value is reported and serves as off", func(t *testing.T) {
		geoTags := func(geo string) []string {
			out := slices.Clone(tags)
			out[slices.Index(out, "veloflux.weight=5")] = "veloflux.weight=7"
			return append(out, "veloflux.geo="+geo)
		}
		routeGeo := func(geo string) func(*discovery.Snapshot) bool {
			return func(s *discovery.Snapshot) bool {
				return hasBackend(7)(s) && len(s.Routes) == 1 && s.Routes[0].Geo == geo
			}
		}
		register(t, c, "web-1", "web", 8080, geoTags("nearest"), nil)
		got := strict.rec.waitFor(t, "route with geo nearest", routeGeo("nearest"))
		wantRoutes := []discovery.Route{{Host: "example.com", PathPrefix: "/api", StripPrefix: true, Pool: "web", Geo: "nearest"}}
		if !reflect.DeepEqual(got.Routes, wantRoutes) {
			t.Fatalf("routes\n got %+v\nwant %+v", got.Routes, wantRoutes)
		}
		register(t, c, "web-1", "web", 8080, geoTags("everywhere"), nil)
		strict.rec.waitFor(t, "route back to off, backend kept", routeGeo(""))
		testutil.EventuallyWithNote(t, "geo tag error", func() (bool, string) {
			errs := strict.src.Status().TagErrors
			return len(errs) == 1 && errs[0].Tag == "veloflux.geo=everywhere" &&
				errs[0].Msg == `geo must be off, nearest or redirect, got "everywhere"`, fmt.Sprint(errs)
		})
	})
	t.Run("deregister: pool and route gone", func(t *testing.T) {
		if err := c.Agent().ServiceDeregister("web-1"); err != nil {
			t.Fatal(err)
		}
		got := strict.rec.waitFor(t, "no web pool", func(s *discovery.Snapshot) bool { _, ok := s.Pool("web"); return !ok })
		if len(got.Routes) != 0 {
			t.Fatalf("routes %+v left after deregistration", got.Routes)
		}
		testutil.EventuallyWithNote(t, "web no longer watched", func() (bool, string) {
			st := strict.src.Status()
			return len(st.Datacenters[0].Services) == 0, fmt.Sprint(st.Datacenters[0].Services)
		})
		if v, _ := metricValue(strict.reg, "veloflux_consul_services_watched", map[string]string{"datacenter": "dc1"}); v != 0 {
			t.Fatalf("services_watched = %v after deregistration, want 0", v)
		}
	})
	t.Run("no two equal snapshots in a row", func(t *testing.T) {
		snaps := strict.rec.all()
		for i := 1; i < len(snaps); i++ {
			if snapEqual(snaps[i-1], snaps[i]) {
				t.Fatalf("snapshots %d and %d are equal: %+v", i-1, i, snaps[i])
			}
		}
		if v, _ := metricValue(strict.reg, "veloflux_consul_snapshots_published_total", nil); int(v) != len(snaps) {
			t.Fatalf("snapshots_published_total = %v, published %d", v, len(snaps))
		}
	})
}

// TestWatchOutage kills the agent (no snapshot while it is down, Status and metrics say so),
// then restarts it: the catalog is empty and its index low again, which the watch must notice.
func TestWatchOutage(t *testing.T) {
	agent := consultest.Start(t, "dc1")
	c := testClient(t, agent)
	// Push the services index up, so that the restarted agent's index is clearly lower.
	for range 20 {
		ext := &api.CatalogRegistration{Node: "ext", Address: "10.9.9.9",
			Service: &api.AgentService{ID: "filler", Service: "filler", Port: 9000}}
		if _, err := c.Catalog().Register(ext, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Catalog().Deregister(&api.CatalogDeregistration{Node: "ext", ServiceID: "filler"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	register(t, c, "web-1", "web", 8080, []string{"veloflux.enable=true", "veloflux.route=/"}, nil)
	cfg := testConfig(agent)
	const token = "s3cr3t-acl-token-0123"
	cfg.Token = token // the dev agent has no ACLs and ignores it
	w := runSource(t, cfg)
	w.rec.waitFor(t, "web", func(s *discovery.Snapshot) bool { p, ok := s.Pool("web"); return ok && len(p.Backends) == 1 })
	testutil.EventuallyWithNote(t, "dc1 ok", func() (bool, string) {
		st := w.src.Status().Datacenters[0]
		return st.State == StateOK && st.Index > 0, fmt.Sprintf("%+v", st)
	})
	before := w.src.Status().Datacenters[0]
	published := w.rec.count()

	agent.Kill()
	t.Run("down: no snapshot, error state, up 0, token never shown", func(t *testing.T) {
		testutil.EventuallyWithNote(t, "dc1 error", func() (bool, string) {
			st := w.src.Status().Datacenters[0]
			return st.State == StateError && st.LastError != "", fmt.Sprintf("%+v", st)
		})
		// Let the watches retry a few times (backoff 20ms..200ms) to be sure nothing is published.
		waitForRetries(t, w.reg, "dc1", endpointServices)
		if n := w.rec.count(); n != published {
			t.Fatalf("%d snapshots published during the outage; last %+v", n-published, w.rec.last())
		}
		st := w.src.Status()
		if up, ok := metricValue(w.reg, "veloflux_consul_up", map[string]string{"datacenter": "dc1"}); !ok || up != 0 {
			t.Fatalf("veloflux_consul_up = %v (present %t), want 0", up, ok)
		}
		if errs, _ := metricValue(w.reg, "veloflux_consul_requests_total", map[string]string{"datacenter": "dc1", "endpoint": "services", "result": "error"}); errs < 2 {
			t.Fatalf("requests_total{result=error} = %v, want retries counted", errs)
		}
		b, _ := json.Marshal(st)
		if strings.Contains(string(b), token) || strings.Contains(w.logs.String(), token) {
			t.Fatalf("token shown: status %s\nlogs %s", b, w.logs.String())
		}
		if n := strings.Count(w.logs.String(), "consul datacenter failing"); n != 1 {
			t.Fatalf("logged the failure %d times, want once per state change:\n%s", n, w.logs.String())
		}
	})

	agent.Restart()
	t.Run("restart: index went down, changes flow again", func(t *testing.T) {
		// The restarted agent has an empty catalog: web is gone, truly (not an outage).
		w.rec.waitFor(t, "empty catalog", func(s *discovery.Snapshot) bool { _, ok := s.Pool("web"); return !ok })
		var st DatacenterStatus
		testutil.EventuallyWithNote(t, "ok with a lower index", func() (bool, string) {
			st = w.src.Status().Datacenters[0]
			return st.State == StateOK && st.Index < before.Index, fmt.Sprintf("%+v; index before %d", st, before.Index)
		})
		t.Logf("services index %d before the restart, %d after", before.Index, st.Index)
		lowIndex := st.Index
		register(t, c, "web-1", "web", 8081, []string{"veloflux.enable=true", "veloflux.route=/", "veloflux.weight=3"}, nil)
		got := w.rec.waitFor(t, "web again", func(s *discovery.Snapshot) bool {
			p, ok := s.Pool("web")
			return ok && len(p.Backends) == 1 && p.Backends[0].Address == "127.0.0.1:8081" && p.Backends[0].Weight == 3
		})
		if len(got.Routes) != 1 {
			t.Fatalf("routes %+v", got.Routes)
		}
		testutil.EventuallyWithNote(t, "index grew again", func() (bool, string) {
			st := w.src.Status().Datacenters[0]
			return st.Index > lowIndex, fmt.Sprintf("index %d, low %d", st.Index, lowIndex)
		})
		if up, _ := metricValue(w.reg, "veloflux_consul_up", map[string]string{"datacenter": "dc1"}); up != 1 {
			t.Fatalf("veloflux_consul_up = %v after recovery, want 1", up)
		}
		if n := strings.Count(w.logs.String(), "consul datacenter answering again"); n != 1 {
			t.Fatalf("logged the recovery %d times, want once:\n%s", n, w.logs.String())
		}
	})
}

// TestTokenNeverShown: an agent that echoes the token in an error (as some proxies and ACL
// messages do) does not get it into Status or logs; the token travels in a header only.
func TestTokenNeverShown(t *testing.T) {
	const token = "7f3c1e2a-token-from-file"
	var inQuery atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, token) {
			inQuery.Store(true)
		}
		http.Error(w, "ACL not found for token "+r.Header.Get("X-Consul-Token"), http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Address = strings.TrimPrefix(srv.URL, "http://")
	cfg.Datacenter = "dc1"
	cfg.TokenFile = file
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
	w := runSource(t, cfg)
	testutil.EventuallyWithNote(t, "error with the echoed token redacted", func() (bool, string) {
		st := w.src.Status().Datacenters[0]
		return strings.Contains(st.LastError, "ACL not found for token REDACTED"), st.LastError
	})
	b, _ := json.Marshal(w.src.Status())
	if strings.Contains(string(b), token) || strings.Contains(w.logs.String(), token) || inQuery.Load() {
		t.Fatalf("token shown: in query %t\nstatus %s\nlogs %s", inQuery.Load(), b, w.logs.String())
	}
}

// TestWatchConsulDownAtStart: nothing is published before the first full read, so the caller
// keeps its static pools; the agent's datacenter name is learned once it answers.
func TestWatchConsulDownAtStart(t *testing.T) {
	agent := consultest.Start(t, "dc1")
	agent.Kill()
	cfg := testConfig(agent)
	w := runSource(t, cfg)
	testutil.EventuallyWithNote(t, "error state", func() (bool, string) {
		st := w.src.Status().Datacenters[0]
		return st.State == StateError && strings.Contains(st.LastError, "learn the agent's datacenter"), fmt.Sprintf("%+v", st)
	})
	if up, ok := metricValue(w.reg, "veloflux_consul_up", map[string]string{"datacenter": ""}); !ok || up != 0 {
		t.Fatalf(`veloflux_consul_up{datacenter=""} = %v (present %t), want 0 while the name is unknown`, up, ok)
	}
	waitForRetries(t, w.reg, "", endpointAgent)
	if n := w.rec.count(); n != 0 || w.src.Status().Published {
		t.Fatalf("%d snapshots published while Consul was down", n)
	}
	agent.Restart()
	register(t, testClient(t, agent), "web-1", "web", 8080, []string{"veloflux.enable=true"}, nil)
	w.rec.waitFor(t, "web", func(s *discovery.Snapshot) bool { _, ok := s.Pool("web"); return ok })
	st := w.src.Status().Datacenters[0]
	if st.Name != "dc1" || st.State != StateOK {
		t.Fatalf("status %+v, want dc1 ok", st)
	}
	if up, _ := metricValue(w.reg, "veloflux_consul_up", map[string]string{"datacenter": "dc1"}); up != 1 {
		t.Fatalf(`veloflux_consul_up{datacenter="dc1"} = %v, want 1`, up)
	}
	if _, ok := metricValue(w.reg, "veloflux_consul_up", map[string]string{"datacenter": ""}); ok {
		t.Fatal(`veloflux_consul_up{datacenter=""} still exported once the name is known`)
	}
}

// TestWatchMultiDatacenter: instances of one service in two WAN-joined datacenters form one
// pool, each backend in its datacenter's region.
func TestWatchMultiDatacenter(t *testing.T) {
	dc1, dc2 := consultest.Start(t, "dc1"), consultest.Start(t, "dc2")
	dc1.JoinWAN(dc2)
	tags := []string{"veloflux.enable=true", "veloflux.route=example.com"}
	register(t, testClient(t, dc1), "web-1", "web", 8080, tags, nil)
	register(t, testClient(t, dc2), "web-1", "web", 8080, append(slices.Clone(tags), "veloflux.route=example.com/dc2"), nil)
	cfg := testConfig(dc1)
	cfg.Datacenters = []string{"dc2"}
	w := runSource(t, cfg)
	got := w.rec.waitFor(t, "two backends", func(s *discovery.Snapshot) bool {
		p, ok := s.Pool("web")
		return ok && len(p.Backends) == 2
	})
	want := &discovery.Snapshot{
		Source: "consul",
		Pools: []discovery.Pool{{Name: "web", Algorithm: "round_robin", Backends: []discovery.Backend{
			{ID: "dc1/node-dc1/web-1", Address: "127.0.0.1:8080", Weight: 1, Region: "dc1"},
			{ID: "dc2/node-dc2/web-1", Address: "127.0.0.1:8080", Weight: 1, Region: "dc2"},
		}}},
		Routes: []discovery.Route{{Host: "example.com", Pool: "web"}, {Host: "example.com", PathPrefix: "/dc2", Pool: "web"}},
	}
	if !snapEqual(got, want) {
		t.Fatalf("snapshot\n got %+v\nwant %+v", got, want)
	}
	st := w.src.Status()
	if len(st.Datacenters) != 2 || st.Datacenters[0].Name != "dc1" || st.Datacenters[1].Name != "dc2" {
		t.Fatalf("datacenters %+v, want dc1 then dc2", st.Datacenters)
	}
	for _, dc := range st.Datacenters {
		if dc.State != StateOK || !slices.Equal(dc.Services, []string{"web"}) {
			t.Fatalf("datacenter %+v, want ok watching web", dc)
		}
	}
}

// TestWatchFailingExtraDatacenter: a datacenter that cannot be reached does not hold back the
// local one's first snapshot.
func TestWatchFailingExtraDatacenter(t *testing.T) {
	agent := consultest.Start(t, "dc1")
	register(t, testClient(t, agent), "web-1", "web", 8080, []string{"veloflux.enable=true"}, nil)
	cfg := testConfig(agent)
	cfg.Datacenters = []string{"nowhere"}
	w := runSource(t, cfg)
	w.rec.waitFor(t, "web", func(s *discovery.Snapshot) bool { _, ok := s.Pool("web"); return ok })
	st := w.src.Status()
	if st.Datacenters[1].Name != "nowhere" || st.Datacenters[1].State != StateError || st.Datacenters[0].State != StateOK {
		t.Fatalf("datacenters %+v, want dc1 ok and nowhere failing", st.Datacenters)
	}
}

// TestWatchTagErrors: malformed tags are reported per instance and counted per service, they
// never hide the other services, and fixing them clears the count.
func TestWatchTagErrors(t *testing.T) {
	agent := consultest.Start(t, "dc1")
	c := testClient(t, agent)
	on := "veloflux.enable=true"
	register(t, c, "good-1", "good", 8000, []string{on, "veloflux.route=good.example"}, nil)
	register(t, c, "bad-1", "bad", 8001, []string{on, "veloflux.weight=abc"}, nil)
	register(t, c, "bad-2", "bad", 8002, []string{on, "veloflux.route=exa mple.com"}, nil)
	register(t, c, "bad-3", "bad", 8003, []string{on, "veloflux.wieght=2"}, map[string]string{"veloflux_sticky": "maybe"})
	w := runSource(t, testConfig(agent))

	got := w.rec.waitFor(t, "good and bad pools", func(s *discovery.Snapshot) bool {
		_, good := s.Pool("good")
		_, bad := s.Pool("bad")
		return good && bad
	})
	bad, _ := got.Pool("bad")
	var ids []string
	for _, b := range bad.Backends {
		ids = append(ids, b.ID)
		if b.Weight != 1 {
			t.Errorf("backend %s weight %d, want the default 1 after a bad weight tag", b.ID, b.Weight)
		}
	}
	if want := []string{"dc1/node-dc1/bad-1", "dc1/node-dc1/bad-3"}; !slices.Equal(ids, want) {
		t.Fatalf("bad pool backends %q, want %q (bad-2 dropped for its route)", ids, want)
	}
	if good, _ := got.Pool("good"); len(good.Backends) != 1 {
		t.Fatalf("good pool %+v, want its backend", good)
	}

	var msgs []string
	for _, e := range w.src.Status().TagErrors {
		msgs = append(msgs, e.Error())
	}
	want := []string{
		`service bad instance bad-1 (node node-dc1, dc1): tag "veloflux.weight=abc": weight must be 1..10000`,
		`service bad instance bad-2 (node node-dc1, dc1): tag "veloflux.route=exa mple.com": route "exa mple.com": invalid host "exa mple.com": invalid character ' ' (internationalized names must be written in punycode)`,
		`service bad instance bad-3 (node node-dc1, dc1): tag "veloflux.wieght=2": unknown key "veloflux.wieght" (known: ` + knownKeys + `)`,
		`service bad instance bad-3 (node node-dc1, dc1): meta "veloflux_sticky=maybe": sticky must be true or false, got "maybe"`,
	}
	if !slices.Equal(msgs, want) {
		t.Fatalf("tag errors\n got %q\nwant %q", msgs, want)
	}
	if v, _ := metricValue(w.reg, "veloflux_consul_tag_errors", map[string]string{"service": "bad"}); v != 4 {
		t.Fatalf(`veloflux_consul_tag_errors{service="bad"} = %v, want 4`, v)
	}
	if v, ok := metricValue(w.reg, "veloflux_consul_tag_errors", map[string]string{"service": "good"}); !ok || v != 0 {
		t.Fatalf(`veloflux_consul_tag_errors{service="good"} = %v (present %t), want 0`, v, ok)
	}

	register(t, c, "bad-1", "bad", 8001, []string{on, "veloflux.weight=2"}, nil)
	register(t, c, "bad-2", "bad", 8002, []string{on, "veloflux.route=example.com"}, nil)
	register(t, c, "bad-3", "bad", 8003, []string{on, "veloflux.weight=2"}, nil)
	w.rec.waitFor(t, "bad fixed", func(s *discovery.Snapshot) bool { p, ok := s.Pool("bad"); return ok && len(p.Backends) == 3 })
	testutil.EventuallyWithNote(t, "tag errors cleared", func() (bool, string) {
		v, _ := metricValue(w.reg, "veloflux_consul_tag_errors", map[string]string{"service": "bad"})
		st := w.src.Status()
		return v == 0 && len(st.TagErrors) == 0, fmt.Sprintf("metric %v, status %v", v, st.TagErrors)
	})
	if err := c.Agent().ServiceDeregister("good-1"); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWithNote(t, "series of a service no longer watched deleted", func() (bool, string) {
		_, ok := metricValue(w.reg, "veloflux_consul_tag_errors", map[string]string{"service": "good"})
		return !ok, ""
	})
}

// TestWatchExposedByDefault: untagged services are routed, opted-out ones and consul are not.
func TestWatchExposedByDefault(t *testing.T) {
	agent := consultest.Start(t, "dc1")
	c := testClient(t, agent)
	register(t, c, "plain-1", "plain", 8000, nil, nil)
	register(t, c, "hidden-1", "hidden", 8001, []string{"veloflux.enable=false"}, nil)
	cfg := testConfig(agent)
	cfg.ExposedByDefault = true
	w := runSource(t, cfg)
	got := w.rec.waitFor(t, "plain", func(s *discovery.Snapshot) bool { _, ok := s.Pool("plain"); return ok })
	if len(got.Pools) != 1 {
		t.Fatalf("pools %+v, want only plain (not hidden, not consul)", got.Pools)
	}
	if svcs := w.src.Status().Datacenters[0].Services; !slices.Equal(svcs, []string{"plain"}) {
		t.Fatalf("watched %q, want only plain", svcs)
	}
}

// TestRunStopsCleanly: Run returns nil promptly when ctx ends, with every goroutine it started
// ended, blocking queries included.
func TestRunStopsCleanly(t *testing.T) {
	agent := consultest.Start(t, "dc1")
	for i := range 5 {
		register(t, testClient(t, agent), fmt.Sprintf("s-%d", i), fmt.Sprintf("s-%d", i), 8000, []string{"veloflux.enable=true"}, nil)
	}
	ignore := goleak.IgnoreCurrent()
	s, err := New(testConfig(agent), nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	counter := countRequests(t, s, agent)
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, rec.publish) }()
	rec.waitFor(t, "five pools", func(s *discovery.Snapshot) bool { return len(s.Pools) == 5 })
	testutil.EventuallyWithNote(t, "every watch blocked in Consul", func() (bool, string) {
		n := counter.blocking.Load()
		return n == 6, fmt.Sprintf("%d blocking queries in flight, want 5 health watches and the list", n)
	})
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(testutil.Timeout()):
		t.Fatalf("Run did not return within %v of ctx ending", testutil.Timeout())
	}
	t.Logf("Run returned %v after cancel", time.Since(start).Round(time.Millisecond))
	goleak.VerifyNone(t, ignore)
}

// TestMeasurements checks that a change in the catalog reaches the proxy when it happens, not
// when a blocking query's wait ends, and counts the Consul requests per minute while idle with
// 50 watched services. How fast a change arrives is BenchmarkChangeToSnapshot's figure.
func TestMeasurements(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about a minute")
	}
	agent := consultest.Start(t, "dc1")
	c := testClient(t, agent)
	cfg := testConfig(agent)
	cfg.MinBackoff, cfg.MaxBackoff = DefaultConfig().MinBackoff, DefaultConfig().MaxBackoff
	// Short, so that a window of a few wait times is quick; TestWatchIdleRequestsBlock counts
	// the default's exactly on a fake clock.
	cfg.WaitTime = 2 * time.Second
	s, reg, logs := newSource(t, cfg)
	counter := countRequests(t, s, agent)
	w := startSource(t, s, reg, logs)
	w.rec.waitFor(t, "first snapshot", func(*discovery.Snapshot) bool { return true })

	t.Run("a change arrives before the wait ends", func(t *testing.T) {
		// A source of its own whose blocking queries wait the longest Consul allows: a change
		// seen only when a query's wait ran out would arrive 10 minutes late, far past the
		// wait for it below (testutil.Timeout). Both kinds of change are made: a new instance
		// of a watched service (its health query wakes) and a new service (the list wakes,
		// then the new service's first health query answers).
		lcfg := testConfig(agent)
		lcfg.WaitTime = 10 * time.Minute
		lw := runSource(t, lcfg)
		lw.rec.waitFor(t, "first snapshot", func(*discovery.Snapshot) bool { return true })
		var all, newInstance, newService []time.Duration
		for i := range 20 {
			name, id := "lat", fmt.Sprintf("lat-%d", i)
			if i%2 == 1 {
				name = fmt.Sprintf("lat-svc-%d", i)
			}
			has := func(s *discovery.Snapshot) bool {
				p, ok := s.Pool(name)
				return ok && slices.ContainsFunc(p.Backends, func(b discovery.Backend) bool { return b.ID == "dc1/node-dc1/"+id })
			}
			start := time.Now()
			register(t, c, id, name, 8000+i, []string{"veloflux.enable=true"}, nil)
			lw.rec.waitFor(t, id, has)
			d := lw.rec.firstWith(has).Sub(start)
			all = append(all, d)
			if i%2 == 1 {
				newService = append(newService, d)
			} else {
				newInstance = append(newInstance, d)
			}
		}
		t.Logf("register -> publish over 20 changes (coalesce %v, wait_time %v): median %v, max %v; new instance of a watched service: median %v, max %v; new service: median %v, max %v",
			lcfg.Coalesce, lcfg.WaitTime, median(all), slices.Max(all), median(newInstance), slices.Max(newInstance), median(newService), slices.Max(newService))
	})

	t.Run("idle requests per minute with 50 watched services", func(t *testing.T) {
		for i := range 50 - 11 { // 11 services are watched already
			register(t, c, fmt.Sprintf("idle-%d", i), fmt.Sprintf("idle-%d", i), 9000, []string{"veloflux.enable=true"}, nil)
		}
		w.rec.waitFor(t, "50 pools", func(s *discovery.Snapshot) bool { return len(s.Pools) == 50 })
		testutil.EventuallyWithNote(t, "every watch blocked in Consul", func() (bool, string) {
			n := counter.blocking.Load()
			return n == 51, fmt.Sprintf("%d blocking queries in flight, want 50 health watches and the list", n)
		})
		window := 4 * cfg.WaitTime
		total0, nonBlocking0 := counter.total.Load(), counter.nonBlocking.Load()
		time.Sleep(window)
		total, nonBlocking := counter.total.Load()-total0, counter.nonBlocking.Load()-nonBlocking0
		perMinute := float64(total) * float64(time.Minute) / float64(window)
		watches := 51.0 // 50 health watches and the service list
		expected := watches * float64(time.Minute) / float64(cfg.WaitTime)
		atDefault := watches * float64(time.Minute) / float64(DefaultConfig().WaitTime)
		t.Logf("idle, 50 services, wait_time %v: %d requests in %v = %.0f/min (%d non-blocking); expected about %.0f/min (one per watch per wait_time); at the default wait_time %v that is about %.1f/min",
			cfg.WaitTime, total, window, perMinute, nonBlocking, expected, DefaultConfig().WaitTime, atDefault)
		if nonBlocking != 0 {
			t.Fatalf("%d non-blocking requests while idle: some watch is polling", nonBlocking)
		}
		if perMinute > 1.5*expected {
			t.Fatalf("%.0f requests/min while idle, want about %.0f", perMinute, expected)
		}
	})
}

// --- helpers ---

// countingTransport counts Consul requests, those that would not block (no index), and the
// blocking ones in flight.
type countingTransport struct {
	base                         http.RoundTripper
	total, nonBlocking, blocking atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.total.Add(1)
	if idx := r.URL.Query().Get("index"); idx == "" || idx == "0" {
		c.nonBlocking.Add(1)
	} else {
		c.blocking.Add(1)
		defer c.blocking.Add(-1)
	}
	return c.base.RoundTrip(r)
}

// BenchmarkChangeToSnapshot measures how long a new instance of a watched service takes from
// its registration with the agent to the snapshot that holds it, with the default wait_time
// and coalesce: ns/op, and the median and slowest of the run in ms.
func BenchmarkChangeToSnapshot(b *testing.B) {
	agent := consultest.Start(b, "dc1")
	c := testClient(b, agent)
	register(b, c, "bench-0", "bench", 8000, []string{"veloflux.enable=true"}, nil)
	w := runSource(b, testConfig(agent))
	w.rec.waitFor(b, "first snapshot", func(*discovery.Snapshot) bool { return true })
	var took []time.Duration
	for i := 1; b.Loop(); i++ {
		id := fmt.Sprintf("bench-%d", i)
		has := func(s *discovery.Snapshot) bool {
			p, ok := s.Pool("bench")
			return ok && slices.ContainsFunc(p.Backends, func(b discovery.Backend) bool { return b.ID == "dc1/node-dc1/"+id })
		}
		start := time.Now()
		register(b, c, id, "bench", 8000+i%1000, []string{"veloflux.enable=true"}, nil)
		w.rec.waitFor(b, id, has)
		took = append(took, w.rec.firstWith(has).Sub(start))
	}
	b.ReportMetric(float64(median(took))/1e6, "median-ms")
	b.ReportMetric(float64(slices.Max(took))/1e6, "max-ms")
}

// countRequests gives s, before it runs, a client to agent that counts its requests.
func countRequests(t *testing.T, s *Source, agent *consultest.Agent) *countingTransport {
	t.Helper()
	counter := &countingTransport{base: &http.Transport{DisableKeepAlives: true}}
	client, err := api.NewClient(&api.Config{Address: agent.HTTPAddr, HttpClient: &http.Client{Transport: counter}})
	if err != nil {
		t.Fatal(err)
	}
	s.client = client
	return counter
}

// waitForRetries waits until a failing watch of datacenter dc has failed nine times in a row
// (backoff 20ms..200ms): at least 560ms in all, longer than the 10 × Coalesce after which a
// change the failure marked would have been published.
func waitForRetries(t *testing.T, reg *prometheus.Registry, dc, endpoint string) {
	t.Helper()
	testutil.EventuallyWithNote(t, "nine failed requests to "+endpoint, func() (bool, string) {
		n, _ := metricValue(reg, "veloflux_consul_requests_total", map[string]string{"datacenter": dc, "endpoint": endpoint, "result": "error"})
		return n >= 9, fmt.Sprintf("%v failed", n)
	})
}

func testConfig(a *consultest.Agent) Config {
	cfg := DefaultConfig()
	cfg.Address = a.HTTPAddr
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	return cfg
}

func testClient(t testing.TB, a *consultest.Agent) *api.Client {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Address = a.HTTPAddr
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// register (re-)registers an instance with a passing TTL check "service:<id>".
func register(t testing.TB, c *api.Client, id, name string, port int, tags []string, meta map[string]string) {
	t.Helper()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: name, Port: port, Tags: tags, Meta: meta,
		Check: &api.AgentServiceCheck{TTL: "1h", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func setTTL(t *testing.T, c *api.Client, id, status string) {
	t.Helper()
	if err := c.Agent().UpdateTTL("service:"+id, "", status); err != nil {
		t.Fatalf("set %s %s: %v", id, status, err)
	}
}

type watched struct {
	src  *Source
	rec  *recorder
	reg  *prometheus.Registry
	logs *testutil.LogBuffer
}

func newSource(t testing.TB, cfg Config) (*Source, *prometheus.Registry, *testutil.LogBuffer) {
	t.Helper()
	reg, logs := prometheus.NewRegistry(), &testutil.LogBuffer{}
	s, err := New(cfg, slog.New(slog.NewJSONHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg, logs
}

// runSource starts a source; it is stopped, and Run checked, when the test ends.
func runSource(t testing.TB, cfg Config) watched {
	t.Helper()
	s, reg, logs := newSource(t, cfg)
	return startSource(t, s, reg, logs)
}

func startSource(t testing.TB, s *Source, reg *prometheus.Registry, logs *testutil.LogBuffer) watched {
	t.Helper()
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, rec.publish) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(testutil.Timeout()):
			t.Errorf("Run did not return within %v of ctx ending", testutil.Timeout())
		}
	})
	return watched{src: s, rec: rec, reg: reg, logs: logs}
}

type publication struct {
	at   time.Time
	snap *discovery.Snapshot
}

// recorder keeps every published snapshot with its time.
type recorder struct {
	mu    sync.Mutex
	snaps []publication
}

func (r *recorder) publish(s *discovery.Snapshot) {
	if s == nil {
		panic("published a nil snapshot")
	}
	r.mu.Lock()
	r.snaps = append(r.snaps, publication{time.Now(), s})
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps)
}

func (r *recorder) last() *discovery.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return nil
	}
	return r.snaps[len(r.snaps)-1].snap
}

func (r *recorder) all() []*discovery.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*discovery.Snapshot, len(r.snaps))
	for i, p := range r.snaps {
		out[i] = p.snap
	}
	return out
}

// firstWith returns when the first snapshot satisfying cond was published.
func (r *recorder) firstWith(cond func(*discovery.Snapshot) bool) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.snaps {
		if cond(p.snap) {
			return p.at
		}
	}
	return time.Time{}
}

// waitFor polls until the latest snapshot satisfies cond, and returns it.
func (r *recorder) waitFor(t testing.TB, what string, cond func(*discovery.Snapshot) bool) *discovery.Snapshot {
	t.Helper()
	var got *discovery.Snapshot
	testutil.EventuallyWithNote(t, what, func() (bool, string) {
		got = r.last()
		return got != nil && cond(got), fmt.Sprintf("last snapshot %+v", got)
	})
	return got
}

// snapEqual is the source's own rule for "the same snapshot".
func snapEqual(a, b *discovery.Snapshot) bool { return reflect.DeepEqual(a, b) }

// metricValue reads one series of a gauge or counter from reg.
func metricValue(reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
					continue series
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
