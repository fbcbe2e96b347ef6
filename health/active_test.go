package health

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// collectResults registers an OnResult hook that hands every result of id to the returned
// channel; results beyond its buffer are dropped rather than blocking the checker.
func collectResults(c *Checker, id string) <-chan Result {
	ch := make(chan Result, 256)
	c.OnResult(func(r Result) {
		if r.ID != id {
			return
		}
		select {
		case ch <- r:
		default:
		}
	})
	return ch
}

func nextResult(t *testing.T, ch <-chan Result) Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(testutil.Timeout()):
		t.Fatalf("no probe result within %s", testutil.Timeout())
		return Result{}
	}
}

// TestCheckerBackoff follows a backend through failing and recovering, and checks the delay
// the checker schedules after each probe (Result.Next - Result.At). The bounds come from the
// config alone, so a slow machine cannot fail the test; it also checks that no probe started
// before the time it was scheduled for.
func TestCheckerBackoff(t *testing.T) {
	be := newBackend(t, http.StatusServiceUnavailable)
	const interval, maxInterval = 10 * time.Millisecond, 80 * time.Millisecond
	cfg := Config{Interval: interval, Timeout: time.Second, Fall: 2, Rise: 1, MaxInterval: maxInterval}
	c, _, _ := newTestChecker(t, cfg)
	results := collectResults(c, "a")
	c.SetTargets([]Target{{ID: "a", Pool: "p", Address: be.addr(), Path: "/"}})
	run(t, c)

	type span struct{ lo, hi time.Duration } // delay in [lo, hi]
	up := span{interval, interval + interval/10}
	backedOff := func(d time.Duration) span { return span{d - d/10, d} }
	wantFailing := []struct {
		name    string
		healthy bool
		delay   span
	}{
		{"first failure, still up", true, up},
		{"second failure takes it down: no backoff yet", false, up},
		{"first failure after down: 2x", false, backedOff(2 * interval)},
		{"second: 4x", false, backedOff(4 * interval)},
		{"third: 8x reaches the cap", false, backedOff(maxInterval)},
		{"fourth: stays at the cap", false, backedOff(maxInterval)},
	}
	var prev Result
	check := func(name string, r Result, healthy bool, d span) {
		t.Helper()
		if r.Healthy != healthy {
			t.Fatalf("%s: Healthy = %v, want %v (%+v)", name, r.Healthy, healthy, r)
		}
		if got := r.Next.Sub(r.At); got < d.lo || got > d.hi {
			t.Fatalf("%s: next probe scheduled %s after the last one ended, want %s..%s", name, got, d.lo, d.hi)
		}
		if !prev.Next.IsZero() {
			if started := r.At.Add(-r.Took); started.Before(prev.Next) {
				t.Fatalf("%s: probe started at %s, before its scheduled time %s", name, started, prev.Next)
			}
		}
		prev = r
	}
	for _, w := range wantFailing {
		r := nextResult(t, results)
		if r.OK {
			t.Fatalf("%s: probe of a 503 backend succeeded", w.name)
		}
		check(w.name, r, w.healthy, w.delay)
	}
	if st := statusOf(t, c, "a"); st.NextCheck.IsZero() && st.LastCheck.IsZero() {
		t.Fatalf("status %+v shows neither the last nor the next check", st)
	}

	be.status.Store(http.StatusOK)
	for {
		r := nextResult(t, results)
		if !r.OK {
			check("failure while the backend recovers", r, false, backedOff(maxInterval))
			continue
		}
		// Rise 1: this success brings it up, and the next probe is one interval away again.
		check("first success snaps back to the interval", r, true, up)
		if !r.Changed {
			t.Fatalf("first success did not bring the backend up: %+v", r)
		}
		break
	}
}

// TestCheckerBackoffSlowsProbes counts probes at a dead backend over a bounded window: with
// backoff there are far fewer than at the interval. Only an upper bound is asserted, computed
// from the window's measured length, so a slow machine can only make it easier to meet.
func TestCheckerBackoffSlowsProbes(t *testing.T) {
	const interval, maxInterval = 10 * time.Millisecond, 160 * time.Millisecond
	be := newBackend(t, http.StatusInternalServerError)
	cfg := Config{Interval: interval, Timeout: time.Second, Fall: 1, Rise: 1, MaxInterval: maxInterval}
	c, _, _ := newTestChecker(t, cfg)
	c.SetTargets([]Target{{ID: "a", Pool: "p", Address: be.addr(), Path: "/"}})
	run(t, c)
	testutil.Eventually(t, "a down", func() bool { return !c.Healthy("a") })
	start, before := time.Now(), be.hits.Load()
	time.Sleep(500 * time.Millisecond) // a rate needs a fixed window
	got, elapsed := be.hits.Load()-before, time.Since(start)

	// The most probes that can start within elapsed of going down: after the probe that took
	// it down, one interval, then 2x, 4x... up to the cap, each at least 90% of its base.
	// One more for a probe that was on its way when the window opened.
	limit, at := int64(1), time.Duration(0)
	for n := 0; ; n++ {
		d := interval
		if n > 0 {
			d = backoff(interval, maxInterval, n) * 9 / 10
		}
		if at += d; at > elapsed {
			break
		}
		limit++
	}
	t.Logf("%d probes of a down backend in %s (at most %d with backoff, about %d without)", got, elapsed.Round(time.Millisecond), limit, elapsed/interval)
	if got > limit {
		t.Fatalf("%d probes of a down backend in %s, want at most %d with backoff to %s", got, elapsed, limit, maxInterval)
	}
}

func TestCheckerRiseOverride(t *testing.T) {
	be := newBackend(t, http.StatusInternalServerError)
	cfg := fastConfig() // Rise 2
	cfg.Fall = 1
	c, _, _ := newTestChecker(t, cfg)
	results := collectResults(c, "a")
	c.SetTargets([]Target{{ID: "a", Pool: "p", Address: be.addr(), Path: "/", Rise: 4}})
	run(t, c)
	for r := nextResult(t, results); r.Healthy; r = nextResult(t, results) {
	}
	be.status.Store(http.StatusOK)
	successes := 0
	for {
		r := nextResult(t, results)
		if !r.OK {
			continue // probed before the switch
		}
		successes++
		if r.Changed {
			if successes != 4 {
				t.Fatalf("came back up after %d successes, want the target's rise of 4", successes)
			}
			return
		}
		if successes > 4 {
			t.Fatalf("still down after %d successes with rise 4", successes)
		}
	}
}

func TestCheckerTCPTarget(t *testing.T) {
	// A backend whose HTTP answer is an error: a tcp check does not look at it.
	httpBroken := newBackend(t, http.StatusInternalServerError)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 64)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	c, _, _ := newTestChecker(t, fastConfig())
	c.SetTargets([]Target{
		{ID: "raw", Pool: "p", Address: ln.Addr().String(), Type: TypeTCP},
		{ID: "http-500", Pool: "p", Address: httpBroken.addr(), Type: TypeTCP, Path: "/ignored"},
		{ID: "closed", Pool: "p", Address: closedAddr(t), Type: TypeTCP},
	})
	run(t, c)
	testutil.Eventually(t, "closed down", func() bool { return !c.Healthy("closed") })
	testutil.Eventually(t, "raw and http-500 probed 3 times", func() bool {
		return statusOf(t, c, "raw").ConsecutiveSuccesses >= 3 && statusOf(t, c, "http-500").ConsecutiveSuccesses >= 3
	})
	if got := statusOf(t, c, "closed").LastError; got != "dial tcp: connection refused" {
		t.Fatalf("LastError of the closed port = %q", got)
	}
	if !c.Healthy("raw") || !c.Healthy("http-500") {
		t.Fatal("tcp targets with a listening port reported down")
	}
	if n := httpBroken.hits.Load(); n != 0 {
		t.Fatalf("a tcp check sent %d HTTP requests", n)
	}
	if st := statusOf(t, c, "raw"); st.Type != TypeTCP {
		t.Fatalf("status type = %q, want tcp", st.Type)
	}
	// Closing the listener takes the path-less tcp target down: it is checked, not assumed.
	_ = ln.Close()
	testutil.Eventually(t, "raw down once its listener is gone", func() bool { return !c.Healthy("raw") })
}

func TestCheckerProbeNow(t *testing.T) {
	be := newBackend(t, http.StatusOK)
	cfg := fastConfig()
	cfg.Interval = 24 * time.Hour
	cfg.MaxInterval = 24 * time.Hour
	c, _, _ := newTestChecker(t, cfg)
	results := collectResults(c, "a")
	c.SetTargets([]Target{
		{ID: "a", Pool: "p", Address: be.addr(), Path: "/"},
		{ID: "unchecked", Pool: "p", Address: be.addr()},
		{ID: "tcp", Pool: "p", Address: be.addr(), Type: TypeTCP},
	})
	run(t, c)

	tests := []struct {
		id   string
		want bool
	}{
		{"unknown", false},
		{"unchecked", false},
		{"tcp", true},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := c.ProbeNow(tt.id); got != tt.want {
				t.Fatalf("ProbeNow(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
	if n := be.hits.Load(); n != 0 {
		t.Fatalf("the backend was probed %d times before ProbeNow; a first probe within a day was due", n)
	}
	if !c.ProbeNow("a") {
		t.Fatal("ProbeNow(a) = false for a checked target")
	}
	r := nextResult(t, results)
	if !r.OK || be.hits.Load() != 1 {
		t.Fatalf("ProbeNow result %+v, backend hits %d; want one successful probe", r, be.hits.Load())
	}
	// The schedule after it is the usual one.
	if d := r.Next.Sub(r.At); d < cfg.Interval {
		t.Fatalf("next probe after ProbeNow in %s, want the interval %s", d, cfg.Interval)
	}
}

func TestSetTargetsNormalizes(t *testing.T) {
	be := newBackend(t, http.StatusServiceUnavailable)
	cfg := fastConfig()
	cfg.Rise = 1000
	c, _, logs := newTestChecker(t, cfg)
	base := Target{ID: "a", Pool: "p", Address: be.addr(), Path: "/"}
	c.SetTargets([]Target{base})
	run(t, c)
	testutil.Eventually(t, "a down", func() bool { return !c.Healthy("a") })

	tests := []struct {
		name     string
		mutate   func(*Target)
		keepDown bool
	}{
		{"defaults written out are the same target", func(t *Target) { t.Type, t.Method, t.ExpectStatus = TypeHTTP, "GET", "200-399" }, true},
		{"another spelling of the same statuses", func(t *Target) { t.ExpectStatus = "200-299, 300-399" }, true},
		{"new rise is an override, not a new target", func(t *Target) { t.Rise = 5 }, true},
		{"new max interval is an override", func(t *Target) { t.MaxInterval = time.Minute }, true},
		{"another method is a new target", func(t *Target) { t.Method = "HEAD" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := base
			tt.mutate(&spec)
			c.SetTargets([]Target{spec})
			if down := !c.Healthy("a"); down != tt.keepDown {
				t.Fatalf("down after SetTargets = %v, want %v", down, tt.keepDown)
			}
			// Back to the base spec, down again, for the next case.
			c.SetTargets([]Target{base})
			testutil.Eventually(t, "a down", func() bool { return !c.Healthy("a") })
		})
	}

	t.Run("invalid settings fall back to defaults and are logged", func(t *testing.T) {
		c.SetTargets([]Target{{ID: "bad", Pool: "p", Address: be.addr(), Path: "/", Type: "udp", Method: "GE T", ExpectStatus: "2xx"}})
		recs := logs.Find("invalid health check settings, using their defaults instead")
		if len(recs) != 1 {
			t.Fatalf("got %d logs about invalid settings, want 1", len(recs))
		}
		problems, _ := recs[0]["problems"].(string)
		for _, want := range []string{`bad: type "udp" is not http or tcp`, `bad: method "GE T" is not an HTTP token`, `bad: expect_status "2xx": not a status code`} {
			if !strings.Contains(problems, want) {
				t.Errorf("problems %q do not mention %q", problems, want)
			}
		}
		// Still probed, with the defaults: a GET judged by 200-399, so the 503 takes it down.
		testutil.Eventually(t, "bad down", func() bool { return !c.Healthy("bad") })
	})
}

// TestResultsInProbeOrder: a target's results reach the OnResult hooks in the order of its
// probes, even when the hooks of one result are still running as the next probe ends.
func TestResultsInProbeOrder(t *testing.T) {
	be := newBackend(t, http.StatusOK)
	c, _, _ := newTestChecker(t, Config{Interval: 10 * time.Millisecond, Timeout: time.Second, Fall: 1, Rise: 1})
	release, entered := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	var mu sync.Mutex
	var seen []time.Time
	c.OnResult(func(r Result) {
		if calls.Add(1) == 1 {
			close(entered)
			<-release // the first result's hooks are slow to record it
		}
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.At)
	})
	c.SetTargets([]Target{{ID: "a", Pool: "p", Address: be.addr(), Path: "/"}})
	run(t, c)
	testutil.Receive(t, entered, "the first result in its hook")
	testutil.Eventually(t, "two more probes finished", func() bool { return be.hits.Load() >= 3 })
	close(release)
	testutil.Eventually(t, "three results reported", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= 3 })
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(seen); i++ {
		if seen[i].Before(seen[i-1]) {
			t.Fatalf("result %d (finished %s) reported after one of a later probe (finished %s)", i, seen[i].Format(time.StampMicro), seen[i-1].Format(time.StampMicro))
		}
	}
}
