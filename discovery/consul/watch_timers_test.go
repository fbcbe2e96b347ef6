package consul

import (
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
