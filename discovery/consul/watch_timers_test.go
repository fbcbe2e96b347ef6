package consul

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/veloflux/veloflux/discovery"
)

// The tests in this file run the whole source (watch loops, backoff, coalescing, the Consul
// API client) in synctest bubbles against the in-memory fakeConsul, so the timers they depend
// on run on a fake clock: a check that "nothing more happens" is synctest.Wait after moving the
// clock past every timer that could still fire, not a sleep that may be too short on a busy
// machine, and minutes of backoff or wait time pass at once.

// settle lets every timer of the source due within d fire, and returns once all its goroutines
// are blocked again. 10 × Coalesce covers the latest a change already marked can be published.
func settle(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func TestIndexRules(t *testing.T) {
	const health = fakeWebPath
	webPort := func(port string) func(*discovery.Snapshot) bool {
		return func(s *discovery.Snapshot) bool {
			p, ok := s.Pool("web")
			return ok && len(p.Backends) == 1 && p.Backends[0].Address == "10.0.0.1:"+port
		}
	}
	cfg := DefaultConfig()
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	start := func(t *testing.T) (*fakeConsul, watched) {
		f := newFakeConsul()
		w := f.run(t, cfg)
		w.rec.waitFor(t, "web on 8080", webPort("8080"))
		synctest.Wait()
		if s := f.seen(health); len(s) < 2 || s[len(s)-1] != "10" {
			t.Fatalf("health requests by index %q: want the watch blocking on 10", s)
		}
		return f, w
	}
	t.Run("same index after an error: the answer is read anyway", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f, w := start(t)
			// The agent restarted and came back at the very index we know, with other data.
			f.set(health, func(e *fakeEndpoint) { e.fail, e.body = 1, fakeHealth(9090) })
			w.rec.waitFor(t, "web on 9090", webPort("9090"))
			synctest.Wait()
			if s := f.seen(health); len(s) < 3 || !slices.Equal(s[len(s)-3:], []string{"10", "", "10"}) {
				t.Fatalf("health requests by index %q: want them to end 10 (failed), \"\" (read anyway), 10 (blocking again)", s)
			}
		})
	})
	t.Run("index went backwards: data taken, next wait from 0", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f, w := start(t)
			f.set(health, func(e *fakeEndpoint) { e.index, e.body = 4, fakeHealth(9191) })
			w.rec.waitFor(t, "web on 9191", webPort("9191"))
			synctest.Wait()
			if s := f.seen(health); len(s) < 2 || !slices.Equal(s[len(s)-2:], []string{"", "4"}) {
				t.Fatalf("health requests by index %q: want them to end \"\", 4 (blocking on the lower index)", s)
			}
		})
	})
	t.Run("index 0 is treated as 1: no hot loop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f, w := start(t)
			f.set(health, func(e *fakeEndpoint) { e.index, e.body = 0, fakeHealth(9292) })
			w.rec.waitFor(t, "web on 9292", webPort("9292"))
			settle(10 * cfg.Coalesce)
			// 10 (woken by the change, answered 0 = 1 < 10: reset), "" (answered 0 again), 1 (blocks).
			if s := f.seen(health); !slices.Equal(s[len(s)-3:], []string{"10", "", "1"}) || len(s) > 6 {
				t.Fatalf("%d health requests, the last by index %q: want at most 6, ending 10, \"\", 1 (blocking, not polling)",
					len(s), s[max(0, len(s)-6):])
			}
		})
	})
	t.Run("unchanged index: no rebuild", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f, w := start(t)
			n := w.rec.count()
			// An answer with the index already known is not read, even if (only in this fake)
			// its body differs: Consul's index says nothing changed.
			f.set(health, func(e *fakeEndpoint) { e.body = fakeHealth(9393) })
			f.set(fakeServicesPath, func(e *fakeEndpoint) {})
			settle(10 * cfg.Coalesce)
			if s := f.seen(health); len(s) < 3 || !slices.Equal(s[len(s)-2:], []string{"10", "10"}) {
				t.Fatalf("health requests by index %q: want the watch answered and blocking on 10 again", s)
			}
			if w.rec.count() != n {
				t.Fatalf("published %d snapshots for an unchanged index: %+v", w.rec.count()-n, w.rec.last())
			}
		})
	})
}

// TestWatchBacksOffAndResets: a failing Consul is asked again after delays that double from
// MinBackoff up to MaxBackoff, each drawn between half the step (at least MinBackoff) and the
// step; a success resets the step, so the next failure is retried after MinBackoff again.
func TestWatchBacksOffAndResets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig() // 250ms to 30s
		f := newFakeConsul()
		const failures = 9 // enough to reach the 30s cap
		f.set(fakeServicesPath, func(e *fakeEndpoint) { e.fail = failures })
		w := f.run(t, cfg)
		settle(2 * time.Minute) // the retries need at most 250ms+500ms+...+30s+30s, about 92s
		if w.rec.count() != 1 {
			t.Fatalf("%d snapshots published, want the first one after the failures", w.rec.count())
		}

		at := f.times(fakeServicesPath)
		if len(at) < failures+2 {
			t.Fatalf("%d service list requests, want %d failed, 1 answered and 1 blocking", len(at), failures)
		}
		step := cfg.MinBackoff
		for i := 1; i <= failures; i++ {
			lo := max(step/2, cfg.MinBackoff)
			if gap := at[i].Sub(at[i-1]); gap < lo || gap > step {
				t.Errorf("retry %d came %v after the failure before it, want within [%v, %v]", i, gap, lo, step)
			}
			step = min(2*step, cfg.MaxBackoff)
		}
		if step != cfg.MaxBackoff {
			t.Errorf("backoff ended at %v, want the %v cap reached", step, cfg.MaxBackoff)
		}

		// One more failure, of the blocked request: after the success it is retried after
		// MinBackoff exactly (half of it, raised to MinBackoff), not after the grown step.
		failed := time.Now()
		f.set(fakeServicesPath, func(e *fakeEndpoint) { e.fail = 1 })
		settle(time.Minute)
		at = f.times(fakeServicesPath)
		i := slices.IndexFunc(at, func(a time.Time) bool { return a.After(failed) })
		if i < 0 || at[i].Sub(failed) != cfg.MinBackoff {
			var after []time.Duration
			for _, a := range at[max(i, 0):] {
				after = append(after, a.Sub(failed))
			}
			t.Fatalf("after a success, a failure was asked again %v after it, want %v", after, cfg.MinBackoff)
		}
		if up, _ := metricValue(w.reg, "veloflux_consul_up", map[string]string{"datacenter": "dc1"}); up != 1 {
			t.Errorf("veloflux_consul_up = %v after the retry succeeded, want 1", up)
		}
	})
}

// TestWatchCoalescesBursts: ten registrations in a row give far fewer than ten snapshots.
func TestWatchCoalescesBursts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConsul()
		cfg := DefaultConfig()
		cfg.Coalesce = 300 * time.Millisecond
		w := f.run(t, cfg)
		w.rec.waitFor(t, "first snapshot", func(*discovery.Snapshot) bool { return true })
		before := w.rec.count()
		for i := range 10 {
			f.addService(fmt.Sprintf("burst-%d", i), 8000+i)
			time.Sleep(20 * time.Millisecond) // an agent registration's pace
		}
		w.rec.waitFor(t, "eleven pools", func(s *discovery.Snapshot) bool { return len(s.Pools) == 11 })
		settle(10 * cfg.Coalesce)
		if n := w.rec.count() - before; n > 3 {
			t.Fatalf("10 registrations published %d snapshots, want at most 3", n)
		}
		t.Logf("10 registrations 20ms apart -> %d snapshot(s)", w.rec.count()-before)
	})
}

// TestWatchIdleRequestsBlock: with 50 watched services and nothing changing, every watch asks
// once per wait time, always with an index (a blocking query), never more often.
func TestWatchIdleRequestsBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConsul()
		for i := range 49 {
			f.addService(fmt.Sprintf("idle-%d", i), 9000+i)
		}
		cfg := DefaultConfig()
		w := f.run(t, cfg)
		w.rec.waitFor(t, "50 pools", func(s *discovery.Snapshot) bool { return len(s.Pools) == 50 })
		settle(10 * cfg.Coalesce) // every watch blocking in its query

		const window = time.Hour
		total0, nonBlocking0 := f.requests()
		settle(window)
		total, nonBlocking := f.requests()
		total, nonBlocking = total-total0, nonBlocking-nonBlocking0
		const watches = 51 // 50 health watches and the service list
		want := watches * int(window/cfg.WaitTime)
		t.Logf("idle, 50 services, wait_time %v: %d requests in %v (%d non-blocking), want %d: one per watch per wait_time",
			cfg.WaitTime, total, window, nonBlocking, want)
		if nonBlocking != 0 {
			t.Fatalf("%d non-blocking requests while idle: some watch is polling", nonBlocking)
		}
		if total != want {
			t.Fatalf("%d requests in %v while idle, want %d", total, window, want)
		}
	})
}
