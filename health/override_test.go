package health

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// maxStarts is the most probes a target with the given interval can start in a window: the
// next probe starts at least one interval after the previous one ended, so a higher count
// means the target was probed faster than its interval allows.
func maxStarts(window, interval time.Duration) int64 {
	return int64(window/interval) + 1
}

func TestCheckerIntervalOverride(t *testing.T) {
	const window = time.Second
	cfg := fastConfig()
	cfg.Interval = 100 * time.Millisecond
	c, _, _ := newTestChecker(t, cfg)
	cases := []struct {
		name     string
		override time.Duration
		interval time.Duration // effective
		be       *backend
	}{
		{name: "fast", override: 20 * time.Millisecond, interval: 20 * time.Millisecond},
		{name: "slow", override: 200 * time.Millisecond, interval: 200 * time.Millisecond},
		{name: "default", interval: cfg.Interval},
	}
	var targets []Target
	for i := range cases {
		cases[i].be = newBackend(t, http.StatusOK)
		targets = append(targets, Target{ID: cases[i].name, Pool: "p", Address: cases[i].be.addr(), Path: "/", Interval: cases[i].override})
	}
	c.SetTargets(targets)
	run(t, c)
	testutil.Eventually(t, "every target probed once", func() bool {
		for _, tc := range cases {
			if tc.be.hits.Load() == 0 {
				return false
			}
		}
		return true
	})

	start := time.Now()
	before := make([]int64, len(cases))
	for i, tc := range cases {
		before[i] = tc.be.hits.Load()
	}
	time.Sleep(window) // a rate needs a fixed window, not a condition to poll for
	got := make(map[string]int64, len(cases))
	for i, tc := range cases {
		got[tc.name] = tc.be.hits.Load() - before[i]
	}
	elapsed := time.Since(start)
	t.Logf("probes in %s: fast(20ms)=%d slow(200ms)=%d default(100ms)=%d", elapsed.Round(time.Millisecond), got["fast"], got["slow"], got["default"])

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := got[tc.name]
			if limit := maxStarts(elapsed, tc.interval); n > limit {
				t.Fatalf("%d probes in %s, more than %d possible at interval %s", n, elapsed, limit, tc.interval)
			}
			// Lenient: at least a third of the ideal rate (interval plus up to 10% jitter),
			// so a loaded machine does not fail it while the checker's default rate would.
			if floor := int64(elapsed / (tc.interval * 11 / 10) / 3); n < floor {
				t.Fatalf("%d probes in %s, want at least %d at interval %s", n, elapsed, floor, tc.interval)
			}
		})
	}
	if got["fast"] < 4*got["slow"] {
		t.Fatalf("fast target probed %d times, slow %d: want at least 4x (ideal 10x)", got["fast"], got["slow"])
	}
}

func TestCheckerSetConfigKeepsOverrides(t *testing.T) {
	followsConfig := newBackend(t, http.StatusOK)
	overrides := newBackend(t, http.StatusOK)
	cfg := fastConfig()
	cfg.Interval = 24 * time.Hour
	c, _, _ := newTestChecker(t, cfg)
	c.SetTargets([]Target{
		{ID: "default", Pool: "p", Address: followsConfig.addr(), Path: "/"},
		{ID: "own", Pool: "p", Address: overrides.addr(), Path: "/", Interval: 24 * time.Hour},
	})
	run(t, c)

	// Both first probes are due somewhere within a day. The shorter default must pull in
	// only the target that uses it.
	c.SetConfig(fastConfig())
	testutil.Eventually(t, "target without override probed at the new interval", func() bool {
		return followsConfig.hits.Load() >= 5
	})
	if n := overrides.hits.Load(); n != 0 {
		t.Fatalf("target with its own 24h interval probed %d times after SetConfig shortened the default", n)
	}
}

func TestCheckerFallOverride(t *testing.T) {
	be := newBackend(t, http.StatusInternalServerError)
	cfg := fastConfig() // Fall 3
	cfg.Rise = 1000     // nothing comes back up, so each target has exactly one down log
	c, _, logs := newTestChecker(t, cfg)
	cases := []struct {
		name     string
		override int
		want     int
	}{
		{name: "fall1", override: 1, want: 1},
		{name: "fall5", override: 5, want: 5},
		{name: "default", want: cfg.Fall},
	}
	var targets []Target
	for _, tc := range cases {
		targets = append(targets, Target{ID: tc.name, Pool: "p", Address: be.addr(), Path: "/", Fall: tc.override})
	}
	c.SetTargets(targets)
	run(t, c)
	testutil.Eventually(t, "every target down", func() bool {
		for _, tc := range cases {
			if c.Healthy(tc.name) {
				return false
			}
		}
		return true
	})

	downs := logs.Find("backend down")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mine []map[string]any
			for _, d := range downs {
				if d["backend"] == tc.name {
					mine = append(mine, d)
				}
			}
			if len(mine) != 1 || mine[0]["failures"] != float64(tc.want) {
				t.Fatalf("down logs = %v, want one at failure %d", mine, tc.want)
			}
		})
	}
}

func TestCheckerTimeoutOverride(t *testing.T) {
	const delay = 200 * time.Millisecond
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()

	tests := []struct {
		name     string
		cfg      time.Duration // Config.Timeout
		override time.Duration // Target.Timeout
		wantErr  string
	}{
		{name: "default outlasts the backend", cfg: 2 * time.Second, wantErr: ""},
		{name: "shorter override times out", cfg: 2 * time.Second, override: 30 * time.Millisecond, wantErr: "timeout"},
		{name: "default times out", cfg: 30 * time.Millisecond, wantErr: "timeout"},
		{name: "longer override outlasts the backend", cfg: 30 * time.Millisecond, override: 2 * time.Second, wantErr: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fastConfig()
			cfg.Timeout = tt.cfg
			c, _, _ := newTestChecker(t, cfg)
			c.SetTargets([]Target{{ID: "a", Pool: "p", Address: slow.Listener.Addr().String(), Path: "/", Timeout: tt.override}})
			stop := run(t, c)
			testutil.Eventually(t, "first probe finished", func() bool { return !statusOf(t, c, "a").LastCheck.IsZero() })
			stop()
			if got := statusOf(t, c, "a").LastError; got != tt.wantErr {
				t.Fatalf("LastError = %q, want %q", got, tt.wantErr)
			}
		})
	}
}

func TestCheckerRetune(t *testing.T) {
	t.Run("lower fall takes a failing target down with its kept count", func(t *testing.T) {
		be := newBackend(t, http.StatusInternalServerError)
		c, _, logs := newTestChecker(t, fastConfig())
		spec := Target{ID: "a", Pool: "p", Address: be.addr(), Path: "/", Fall: 1000}
		c.SetTargets([]Target{spec})
		run(t, c)
		testutil.Eventually(t, "5 failures", func() bool { return statusOf(t, c, "a").ConsecutiveFailures >= 5 })
		if !c.Healthy("a") {
			t.Fatal("Healthy(a) = false with 5 failures and fall 1000")
		}

		spec.Fall = 2
		c.SetTargets([]Target{spec})
		testutil.Eventually(t, "a down", func() bool { return !c.Healthy("a") })
		downs := logs.Find("backend down")
		if len(downs) != 1 {
			t.Fatalf("down logs = %v, want one", downs)
		}
		// Had the retune reset the target, it would go down at its second failure.
		if f, _ := downs[0]["failures"].(float64); f < 6 {
			t.Fatalf("went down at failure %v, want the count kept across the retune (> 5)", downs[0]["failures"])
		}
	})

	t.Run("down target stays down when all overrides change", func(t *testing.T) {
		be := newBackend(t, http.StatusInternalServerError)
		cfg := fastConfig()
		cfg.Rise = 1000
		c, _, _ := newTestChecker(t, cfg)
		spec := Target{ID: "a", Pool: "p", Address: be.addr(), Path: "/", Fall: 1}
		c.SetTargets([]Target{spec})
		run(t, c)
		testutil.Eventually(t, "a down", func() bool { return !c.Healthy("a") })
		before := statusOf(t, c, "a")

		spec.Interval, spec.Timeout, spec.Fall = 30*time.Millisecond, 500*time.Millisecond, 4
		c.SetTargets([]Target{spec})
		if c.Healthy("a") {
			t.Fatal("Healthy(a) = true right after retuning, want its down state kept")
		}
		after := statusOf(t, c, "a")
		if after.ConsecutiveFailures < before.ConsecutiveFailures || after.LastCheck.Before(before.LastCheck) {
			t.Fatalf("status after retune = %+v, before = %+v: state was reset", after, before)
		}
	})

	t.Run("shorter interval pulls the next probe forward", func(t *testing.T) {
		be := newBackend(t, http.StatusOK)
		c, _, _ := newTestChecker(t, fastConfig())
		spec := Target{ID: "a", Pool: "p", Address: be.addr(), Path: "/", Interval: 24 * time.Hour}
		c.SetTargets([]Target{spec})
		run(t, c)

		spec.Interval = 20 * time.Millisecond
		c.SetTargets([]Target{spec})
		testutil.Eventually(t, "probes at the new interval", func() bool { return be.hits.Load() >= 3 })
	})
}

func TestCheckerNegativeOverrides(t *testing.T) {
	be := newBackend(t, http.StatusOK)
	c, _, logs := newTestChecker(t, fastConfig())
	c.SetTargets([]Target{{
		ID: "a", Pool: "p", Address: be.addr(), Path: "/",
		Interval: -time.Second, Timeout: -time.Second, Fall: -1,
	}})
	run(t, c)
	// Taken as given, the timeout would fail every probe and the interval would probe in a
	// busy loop.
	testutil.Eventually(t, "successful probes", func() bool { return statusOf(t, c, "a").ConsecutiveSuccesses >= 3 })
	recs := logs.Find("negative health check overrides, using the checker's values instead")
	if len(recs) != 1 || recs[0]["ids"] != "a" || recs[0]["level"] != "ERROR" {
		t.Fatalf("override error logs = %v, want one at ERROR naming a", recs)
	}
	start, hits := time.Now(), be.hits.Load()
	time.Sleep(200 * time.Millisecond)
	if n, limit := be.hits.Load()-hits, maxStarts(time.Since(start), fastConfig().Interval); n > limit {
		t.Fatalf("%d probes in 200ms, more than %d possible at the default interval", n, limit)
	}
}

func TestTargetWithValidOverrides(t *testing.T) {
	base := Target{ID: "a", Pool: "p", Address: "127.0.0.1:1", Path: "/"}
	with := func(interval, timeout time.Duration, fall int) Target {
		t := base
		t.Interval, t.Timeout, t.Fall = interval, timeout, fall
		return t
	}
	tests := []struct {
		name   string
		in     Target
		want   Target
		wantOK bool
	}{
		{name: "no overrides", in: base, want: base, wantOK: true},
		{name: "positive overrides kept", in: with(time.Second, time.Millisecond, 2), want: with(time.Second, time.Millisecond, 2), wantOK: true},
		{name: "negative interval", in: with(-1, time.Millisecond, 2), want: with(0, time.Millisecond, 2)},
		{name: "negative timeout", in: with(time.Second, -1, 2), want: with(time.Second, 0, 2)},
		{name: "negative fall", in: with(time.Second, time.Millisecond, -1), want: with(time.Second, time.Millisecond, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.in.withValidOverrides()
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("withValidOverrides() = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
