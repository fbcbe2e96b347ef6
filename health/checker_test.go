package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/veloflux/veloflux/internal/testutil"
)

// fastConfig probes every 20ms so state changes show within a few hundred milliseconds.
func fastConfig() Config {
	return Config{Interval: 20 * time.Millisecond, Timeout: time.Second, Fall: 3, Rise: 2}
}

// backend is a real HTTP server whose health check answer can be switched.
type backend struct {
	srv    *httptest.Server
	status atomic.Int32
	hits   atomic.Int64
}

func newBackend(t *testing.T, status int) *backend {
	t.Helper()
	b := &backend{}
	b.status.Store(int32(status))
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.WriteHeader(int(b.status.Load()))
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

func newTestChecker(t *testing.T, cfg Config) (*Checker, *prometheus.Registry, *testutil.LogBuffer) {
	t.Helper()
	logs := &testutil.LogBuffer{}
	reg := prometheus.NewRegistry()
	c, err := NewChecker(cfg, nil, slog.New(slog.NewJSONHandler(logs, nil)), reg)
	if err != nil {
		t.Fatalf("NewChecker: %v", err)
	}
	return c, reg, logs
}

// run starts c.Run and makes the test's cleanup stop it and check it returned nil.
func run(t *testing.T, c *Checker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run() = %v, want nil", err)
				}
			case <-time.After(testutil.Timeout()):
				t.Fatalf("Run did not return within %s of cancel", testutil.Timeout())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func statusOf(t *testing.T, c *Checker, id string) TargetStatus {
	t.Helper()
	for _, s := range c.Status() {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no status for target %q", id)
	return TargetStatus{}
}

func hasStatus(c *Checker, id string) bool {
	for _, s := range c.Status() {
		if s.ID == id {
			return true
		}
	}
	return false
}

// series returns the gathered samples of one metric family keyed by their sorted labels
// ("backend=a,pool=p,result=success"); histograms give their sample count.
func series(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			v := m.GetCounter().GetValue()
			if m.GetHistogram() != nil {
				v = float64(m.GetHistogram().GetSampleCount())
			}
			out[strings.Join(labels, ",")] = v
		}
	}
	return out
}

func TestCheckerFallAndRise(t *testing.T) {
	be := newBackend(t, http.StatusOK)
	c, _, logs := newTestChecker(t, fastConfig())
	c.SetTargets([]Target{{ID: "a", Pool: "p", Address: be.addr(), Path: "/health"}})
	run(t, c)

	testutil.Eventually(t, "first successful probe", func() bool {
		return statusOf(t, c, "a").ConsecutiveSuccesses >= 1
	})
	if !c.Healthy("a") {
		t.Fatal("Healthy(a) = false while the backend answers 200")
	}

	be.status.Store(http.StatusInternalServerError)
	testutil.Eventually(t, "a down", func() bool { return !c.Healthy("a") })
	st := statusOf(t, c, "a")
	if st.Healthy || st.LastError != "status 500" || st.ConsecutiveFailures < 3 {
		t.Fatalf("status after going down = %+v, want unhealthy, LastError %q, >= 3 failures", st, "status 500")
	}
	// Let more failing probes pass: the change must be logged once, at the third failure.
	testutil.Eventually(t, "more failures", func() bool {
		return statusOf(t, c, "a").ConsecutiveFailures >= 6
	})
	downs := logs.Find("backend down")
	if len(downs) != 1 {
		t.Fatalf("got %d 'backend down' logs, want 1: %v", len(downs), downs)
	}
	if downs[0]["backend"] != "a" || downs[0]["reason"] != "status 500" || downs[0]["failures"] != float64(3) || downs[0]["level"] != "INFO" {
		t.Fatalf("down log = %v, want backend a, reason status 500, failures 3 at INFO", downs[0])
	}

	be.status.Store(http.StatusOK)
	testutil.Eventually(t, "a up", func() bool { return c.Healthy("a") })
	testutil.Eventually(t, "more successes", func() bool {
		return statusOf(t, c, "a").ConsecutiveSuccesses >= 5
	})
	ups := logs.Find("backend up")
	if len(ups) != 1 || ups[0]["backend"] != "a" || ups[0]["successes"] != float64(2) {
		t.Fatalf("up logs = %v, want one for backend a at 2 successes", ups)
	}
	if st := statusOf(t, c, "a"); st.LastError != "" || st.LastCheck.IsZero() {
		t.Fatalf("status after recovery = %+v, want no LastError and a LastCheck", st)
	}
}

func TestCheckerDialFailure(t *testing.T) {
	c, _, _ := newTestChecker(t, fastConfig())
	c.SetTargets([]Target{{ID: "gone", Pool: "p", Address: closedAddr(t), Path: "/health"}})
	if !c.Healthy("gone") {
		t.Fatal("a new target must start healthy")
	}
	run(t, c)
	testutil.Eventually(t, "gone down", func() bool { return !c.Healthy("gone") })
	if got := statusOf(t, c, "gone").LastError; got != "dial tcp: connection refused" {
		t.Fatalf("LastError = %q, want %q", got, "dial tcp: connection refused")
	}
}

func TestCheckerUncheckedTarget(t *testing.T) {
	broken := newBackend(t, http.StatusInternalServerError)
	good := newBackend(t, http.StatusOK)
	c, reg, _ := newTestChecker(t, fastConfig())
	c.SetTargets([]Target{
		{ID: "unchecked", Pool: "p", Address: broken.addr(), Path: ""},
		{ID: "checked", Pool: "p", Address: good.addr(), Path: "/"},
	})
	run(t, c)
	// Once the checked target has had more probes than Fall, the unchecked one would have
	// gone down had it been probed.
	testutil.Eventually(t, "probes of the checked target", func() bool { return good.hits.Load() >= 6 })

	if n := broken.hits.Load(); n != 0 {
		t.Fatalf("target with empty path was probed %d times", n)
	}
	if !c.Healthy("unchecked") {
		t.Fatal("Healthy(unchecked) = false, want true")
	}
	st := statusOf(t, c, "unchecked")
	if !st.Healthy || !st.LastCheck.IsZero() || st.ConsecutiveSuccesses != 0 {
		t.Fatalf("status of unchecked target = %+v, want healthy and never checked", st)
	}
	for key := range series(t, reg, "veloflux_health_checks_total") {
		if strings.Contains(key, "backend=unchecked") {
			t.Fatalf("unchecked target has metric series %s", key)
		}
	}
}

func TestCheckerSetTargets(t *testing.T) {
	down1 := newBackend(t, http.StatusServiceUnavailable)
	down2 := newBackend(t, http.StatusServiceUnavailable)
	up := newBackend(t, http.StatusOK)
	cfg := fastConfig()
	cfg.Rise = 1000 // a kept target must not come back up by itself during the test
	c, reg, _ := newTestChecker(t, cfg)
	kept := Target{ID: "kept", Pool: "p", Address: down1.addr(), Path: "/"}
	removed := Target{ID: "removed", Pool: "q", Address: down2.addr(), Path: "/"}
	c.SetTargets([]Target{kept, removed})
	run(t, c)
	testutil.Eventually(t, "both down", func() bool { return !c.Healthy("kept") && !c.Healthy("removed") })
	if n := promtest.CollectAndCount(c.metrics.duration); n != 2 {
		t.Fatalf("duration series before removal = %d, want 2 (pools p and q)", n)
	}

	added := Target{ID: "added", Pool: "p", Address: up.addr(), Path: "/"}
	c.SetTargets([]Target{kept, added})
	removedHits := down2.hits.Load()
	t.Run("removed target is no longer scheduled", func(t *testing.T) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, q := range c.queue {
			if q.ID == "removed" {
				t.Fatal("removed target still in the probe queue")
			}
		}
	})

	t.Run("kept target keeps its state", func(t *testing.T) {
		if c.Healthy("kept") {
			t.Fatal("Healthy(kept) = true right after SetTargets, want its down state kept")
		}
		if st := statusOf(t, c, "kept"); st.ConsecutiveFailures < cfg.Fall {
			t.Fatalf("kept target's failures reset to %d", st.ConsecutiveFailures)
		}
	})
	t.Run("removed target is forgotten", func(t *testing.T) {
		if !c.Healthy("removed") {
			t.Fatal("Healthy(removed) = false, want true for an unknown ID")
		}
		if hasStatus(c, "removed") {
			t.Fatal("Status still lists the removed target")
		}
		for key := range series(t, reg, "veloflux_health_checks_total") {
			if strings.Contains(key, "backend=removed") {
				t.Fatalf("removed target still has series %s", key)
			}
		}
		if n := promtest.CollectAndCount(c.metrics.duration); n != 1 {
			t.Fatalf("duration series after removing pool q's only target = %d, want 1", n)
		}
	})
	t.Run("added target starts healthy and is probed", func(t *testing.T) {
		if !c.Healthy("added") {
			t.Fatal("Healthy(added) = false, want optimistic start")
		}
		testutil.Eventually(t, "added probed", func() bool {
			return statusOf(t, c, "added").ConsecutiveSuccesses >= 3
		})
	})
	t.Run("removed target is no longer probed", func(t *testing.T) {
		// One probe may have been in flight at SetTargets; nothing after it.
		if n := down2.hits.Load(); n > removedHits+1 {
			t.Fatalf("removed target probed %d more times", n-removedHits)
		}
		if n := promtest.CollectAndCount(c.metrics.checks); n != 2 {
			t.Fatalf("check series = %d, want 2 (kept failure, added success)", n)
		}
	})
}

func TestCheckerRemoveCancelsProbe(t *testing.T) {
	inFlight := make(chan struct{}, 1)
	// Buffered: the handler's send does not wait, and on a busy machine it can come before the
	// test waits for it, which an unbuffered channel would lose.
	released := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case inFlight <- struct{}{}:
		default:
		}
		<-r.Context().Done()
		select {
		case released <- struct{}{}:
		default:
		}
	}))
	defer srv.Close()
	cfg := fastConfig()
	cfg.Timeout = time.Minute
	c, _, _ := newTestChecker(t, cfg)
	c.SetTargets([]Target{{ID: "slow", Pool: "p", Address: srv.Listener.Addr().String(), Path: "/"}})
	run(t, c)
	select {
	case <-inFlight:
	case <-time.After(testutil.Timeout()): // a guard against a hang; the event comes first
		t.Fatal("no probe reached the backend")
	}

	c.SetTargets(nil)
	select {
	case <-released:
	case <-time.After(testutil.Timeout()): // a guard against a hang; the event comes first
		t.Fatal("the probe of a removed target was not cancelled")
	}
}

func TestCheckerSetTargetsSpecChange(t *testing.T) {
	broken := newBackend(t, http.StatusInternalServerError)
	fixed := newBackend(t, http.StatusOK)
	c, _, _ := newTestChecker(t, fastConfig())
	c.SetTargets([]Target{{ID: "a", Pool: "p", Address: broken.addr(), Path: "/"}})
	run(t, c)
	testutil.Eventually(t, "a down", func() bool { return !c.Healthy("a") })

	// Same ID, new address: the old verdict is about another socket, so start over.
	c.SetTargets([]Target{{ID: "a", Pool: "p", Address: fixed.addr(), Path: "/"}})
	if !c.Healthy("a") {
		t.Fatal("Healthy(a) = false after its address changed, want a fresh optimistic start")
	}
	if st := statusOf(t, c, "a"); st.Address != fixed.addr() || st.ConsecutiveFailures != 0 {
		t.Fatalf("status after address change = %+v", st)
	}
	testutil.Eventually(t, "new address probed", func() bool { return fixed.hits.Load() >= 1 })
}

func TestCheckerRunStops(t *testing.T) {
	inFlight := make(chan struct{}, 1)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case inFlight <- struct{}{}:
		default:
		}
		<-r.Context().Done() // hold the probe until the checker gives up on it
	}))
	defer srv.Close()

	cfg := fastConfig()
	cfg.Timeout = time.Minute
	cfg.Fall = 1 // one counted failure would take the target down
	c, reg, _ := newTestChecker(t, cfg)
	c.SetTargets([]Target{{ID: "slow", Pool: "p", Address: srv.Listener.Addr().String(), Path: "/"}})

	stop := run(t, c)
	select {
	case <-inFlight:
	case <-time.After(testutil.Timeout()):
		t.Fatal("no probe reached the backend")
	}

	t.Run("second Run is refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := c.Run(ctx); !errors.Is(err, ErrRunning) {
			t.Fatalf("concurrent Run() = %v, want ErrRunning", err)
		}
	})

	start := time.Now()
	stop() // fails the test if Run does not return nil within 5s
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Run took %s to return with a probe in flight; it must cancel it", took)
	}
	st := statusOf(t, c, "slow")
	if !st.Healthy || st.ConsecutiveFailures != 0 || st.LastError != "" {
		t.Fatalf("status after shutdown = %+v: a probe cancelled by shutdown must not count", st)
	}
	if n := len(series(t, reg, "veloflux_health_checks_total")); n != 0 {
		t.Fatalf("%d check series after a cancelled probe, want none", n)
	}

	t.Run("Run can start again", func(t *testing.T) {
		before := hits.Load()
		run(t, c)
		testutil.Eventually(t, "probe after restart", func() bool { return hits.Load() > before })
	})
}

func TestCheckerBoundedConcurrency(t *testing.T) {
	var cur, peak, hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		defer cur.Add(-1)
		hits.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-time.After(30 * time.Millisecond):
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()

	cfg := fastConfig()
	cfg.Interval = 5 * time.Millisecond
	c, _, _ := newTestChecker(t, cfg)
	targets := make([]Target, 100)
	for i := range targets {
		targets[i] = Target{ID: fmt.Sprint("t", i), Pool: "p", Address: srv.Listener.Addr().String(), Path: "/"}
	}
	c.SetTargets(targets)
	stop := run(t, c)
	testutil.Eventually(t, "300 probes", func() bool { return hits.Load() >= 300 })
	stop()

	if p := peak.Load(); p > maxConcurrentProbes || p < maxConcurrentProbes/2 {
		t.Fatalf("peak concurrent probes = %d, want between %d and %d", p, maxConcurrentProbes/2, maxConcurrentProbes)
	}
}

func TestCheckerJitteredStart(t *testing.T) {
	const n = 20
	var mu sync.Mutex
	first := map[string]time.Time{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := first[r.URL.Path]; !ok {
			first[r.URL.Path] = time.Now()
		}
	}))
	defer srv.Close()

	cfg := fastConfig()
	cfg.Interval = 400 * time.Millisecond
	c, _, _ := newTestChecker(t, cfg)
	targets := make([]Target, n)
	for i := range targets {
		targets[i] = Target{ID: fmt.Sprint(i), Pool: "p", Address: srv.Listener.Addr().String(), Path: fmt.Sprint("/", i)}
	}
	c.SetTargets(targets)
	run(t, c)
	testutil.Eventually(t, "every target probed once", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(first) == n
	})

	mu.Lock()
	defer mu.Unlock()
	var lo, hi time.Time
	for _, at := range first {
		if lo.IsZero() || at.Before(lo) {
			lo = at
		}
		if at.After(hi) {
			hi = at
		}
	}
	// Uniform over 400ms, 20 first probes all within 100ms happens with odds below 1e-10.
	if spreadOver := hi.Sub(lo); spreadOver < cfg.Interval/4 {
		t.Fatalf("first probes of %d targets all within %s, want them spread over the interval", n, spreadOver)
	}
}

func TestCheckerSetConfig(t *testing.T) {
	be := newBackend(t, http.StatusOK)
	cfg := fastConfig()
	cfg.Interval = time.Hour
	c, _, logs := newTestChecker(t, cfg)
	c.SetTargets([]Target{{ID: "a", Pool: "p", Address: be.addr(), Path: "/"}})
	run(t, c)

	t.Run("shorter interval pulls probes forward", func(t *testing.T) {
		c.SetConfig(fastConfig())
		testutil.Eventually(t, "probes at the new interval", func() bool { return be.hits.Load() >= 3 })
	})
	t.Run("invalid config is ignored", func(t *testing.T) {
		c.SetConfig(Config{})
		c.mu.Lock()
		got := c.cfg
		c.mu.Unlock()
		if got != fastConfig() {
			t.Fatalf("config after invalid SetConfig = %+v, want the previous %+v", got, fastConfig())
		}
		if n := len(logs.Find("ignoring invalid health check config, keeping the previous one")); n != 1 {
			t.Fatalf("got %d error logs for the invalid config, want 1", n)
		}
		before := be.hits.Load()
		testutil.Eventually(t, "probing continues", func() bool { return be.hits.Load() >= before+3 })
	})
	t.Run("new fall applies", func(t *testing.T) {
		fall1 := fastConfig()
		fall1.Fall = 1
		c.SetConfig(fall1)
		be.status.Store(http.StatusBadGateway)
		testutil.Eventually(t, "a down", func() bool { return !c.Healthy("a") })
		downs := logs.Find("backend down")
		if len(downs) != 1 || downs[0]["failures"] != float64(1) {
			t.Fatalf("down logs = %v, want one at the first failure", downs)
		}
	})
}

func TestCheckerMetrics(t *testing.T) {
	good := newBackend(t, http.StatusOK)
	bad := newBackend(t, http.StatusInternalServerError)
	c, reg, _ := newTestChecker(t, fastConfig())
	c.SetTargets([]Target{
		{ID: "good", Pool: "p", Address: good.addr(), Path: "/"},
		{ID: "bad", Pool: "p", Address: bad.addr(), Path: "/"},
	})
	stop := run(t, c)
	testutil.Eventually(t, "a few probes each", func() bool {
		return statusOf(t, c, "good").ConsecutiveSuccesses >= 3 && statusOf(t, c, "bad").ConsecutiveFailures >= 3
	})
	stop()

	checks := series(t, reg, "veloflux_health_checks_total")
	okGood := checks["backend=good,pool=p,result=success"]
	failBad := checks["backend=bad,pool=p,result=failure"]
	if okGood < 3 || failBad < 3 || len(checks) != 2 {
		t.Fatalf("veloflux_health_checks_total = %v, want >= 3 good successes, >= 3 bad failures, nothing else", checks)
	}
	// A probe cancelled by stop may have reached a backend without being counted.
	for _, b := range []struct {
		counted float64
		seen    int64
	}{{okGood, good.hits.Load()}, {failBad, bad.hits.Load()}} {
		if d := float64(b.seen) - b.counted; d < 0 || d > 1 {
			t.Fatalf("counted %v probes, backend saw %d", b.counted, b.seen)
		}
	}
	durations := series(t, reg, "veloflux_health_check_duration_seconds")
	if len(durations) != 1 || durations["pool=p"] != okGood+failBad {
		t.Fatalf("veloflux_health_check_duration_seconds counts = %v, want pool=p: %v", durations, okGood+failBad)
	}
}

func TestNewChecker(t *testing.T) {
	t.Run("invalid config", func(t *testing.T) {
		_, err := NewChecker(Config{}, nil, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "interval: must be > 0") {
			t.Fatalf("NewChecker(Config{}) error = %v, want the config problem", err)
		}
	})
	t.Run("metrics already registered", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		if _, err := NewChecker(DefaultConfig(), nil, nil, reg); err != nil {
			t.Fatalf("first NewChecker: %v", err)
		}
		_, err := NewChecker(DefaultConfig(), nil, nil, reg)
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			t.Fatalf("second NewChecker on one registry = %v, want AlreadyRegisteredError", err)
		}
	})
	t.Run("two checkers in separate registries", func(t *testing.T) {
		for range 2 {
			if _, err := NewChecker(DefaultConfig(), nil, nil, prometheus.NewRegistry()); err != nil {
				t.Fatalf("NewChecker: %v", err)
			}
		}
	})
}

// TestCheckerConcurrentUse is for -race: readers, reconfiguration and probing at once.
func TestCheckerConcurrentUse(t *testing.T) {
	good := newBackend(t, http.StatusOK)
	bad := newBackend(t, http.StatusInternalServerError)
	cfg := fastConfig()
	cfg.Interval = 2 * time.Millisecond
	cfg.Fall = 1
	cfg.Rise = 1
	c, _, _ := newTestChecker(t, cfg)
	all := []Target{
		{ID: "good", Pool: "p", Address: good.addr(), Path: "/"},
		{ID: "bad", Pool: "p", Address: bad.addr(), Path: "/"},
		{ID: "plain", Pool: "q", Address: good.addr()},
	}
	c.SetTargets(all)
	run(t, c)

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_ = c.Healthy("good")
				_ = c.Healthy("bad")
				_ = c.Healthy("unknown")
			}
		})
	}
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			// Retuning "good" in place while it is being probed.
			ts := slices.Clone(all[:1+i%len(all)])
			ts[0].Interval = time.Duration(1+i%3) * time.Millisecond
			ts[0].Timeout = time.Duration(1+i%2) * time.Second
			ts[0].Fall = 1 + i%2
			c.SetTargets(ts)
		}
	})
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			next := cfg
			next.Interval += time.Duration(i%3) * time.Millisecond
			c.SetConfig(next)
			_ = c.Status()
		}
	})
	wg.Wait()

	c.SetTargets(all)
	testutil.Eventually(t, "bad down", func() bool { return !c.Healthy("bad") })
	if !c.Healthy("good") || !c.Healthy("plain") {
		t.Fatal("healthy targets reported down after concurrent use")
	}
}

func BenchmarkHealthy(b *testing.B) {
	c, err := NewChecker(DefaultConfig(), nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	targets := make([]Target, 1000)
	for i := range targets {
		targets[i] = Target{ID: fmt.Sprint("backend-", i), Pool: "p", Address: "127.0.0.1:1", Path: "/"}
	}
	c.SetTargets(targets)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !c.Healthy("backend-500") {
				b.Fatal("unexpectedly unhealthy")
			}
		}
	})
}

func TestOnResultReportsEveryProbeAndTheVerdict(t *testing.T) {
	var fail atomic.Bool
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer backend.Close()
	cfg := Config{Interval: 10 * time.Millisecond, Timeout: time.Second, Fall: 2, Rise: 1}
	c, err := NewChecker(cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan Result, 100)
	c.OnResult(func(r Result) {
		select {
		case results <- r:
		default:
		}
	})
	fail.Store(true)
	c.SetTargets([]Target{{ID: "b1", Pool: "p", Address: strings.TrimPrefix(backend.URL, "http://"), Path: "/"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.Run(ctx) }()
	var got []Result
	for len(got) < 2 {
		select {
		case r := <-results:
			got = append(got, r)
		case <-time.After(testutil.Timeout()):
			t.Fatalf("got %d results, want 2", len(got))
		}
	}
	if got[0].OK || got[0].Reason != "status 503" || !got[0].Healthy || got[0].Changed {
		t.Errorf("first failure = %+v, want failed, still healthy, unchanged", got[0])
	}
	if got[1].OK || got[1].Healthy || !got[1].Changed || got[1].ID != "b1" || got[1].Pool != "p" {
		t.Errorf("second failure = %+v, want failed, down, changed", got[1])
	}
}
