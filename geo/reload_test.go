package geo

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// testDebounce keeps reload tests fast; events of one rename arrive within microseconds.
const testDebounce = 20 * time.Millisecond

func TestReloadUnderLoad(t *testing.T) {
	path := testDB(t)
	cfg := threeRegions(path)
	cfg.CacheSize = 16 // the readers below mostly miss, so they hold the database while it is swapped
	l, logs := newLocator(t, cfg)
	l.debounce = testDebounce
	run(t, l, logs)

	// Readers walk 3.80.0.0/16 (Virginia in both versions) through a 16-entry cache, so
	// nearly every lookup decodes from whichever reader is current. Any lookup reaching a
	// closed reader answers unknown (or trips the race detector).
	var (
		stop    atomic.Bool
		bad     atomic.Int64
		lookups atomic.Int64
		wg      sync.WaitGroup
	)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; i < 2_000_000 && !stop.Load(); i++ {
				ip := netip.AddrFrom4([4]byte{3, 80, byte(i >> 8), byte(i + g)})
				if loc, ok := l.Locate(ip); !ok || loc.Country != "US" {
					bad.Add(1)
				}
				lookups.Add(1)
			}
		})
	}
	probe := netip.MustParseAddr("80.128.1.7")
	if loc, _ := l.Locate(probe); loc.Country != "DE" {
		t.Fatalf("before the update: %s in %q, want DE", probe, loc.Country)
	}
	testutil.Eventually(t, "readers to start", func() bool { return lookups.Load() > 1000 })
	install(t, path, buildDB(t, "GeoLite2-City", v2Epoch, v2Networks()))
	// The probe is in the cache with its v1 answer: only a cleared cache lets the new one in.
	testutil.Eventually(t, "the new database to answer", func() bool {
		loc, _ := l.Locate(probe)
		return loc.Country == "US"
	})
	n := lookups.Load()
	testutil.Eventually(t, "readers to carry on after the swap", func() bool { return lookups.Load() > n+1000 })
	stop.Store(true)
	wg.Wait()

	if b := bad.Load(); b != 0 {
		t.Errorf("%d of %d lookups during the reload got a wrong or no answer", b, lookups.Load())
	}
	if got := reloads(l, "success"); got != 1 {
		t.Errorf("reloads_total{success} = %v, want 1", got)
	}
	if got := testutilGauge(l); got != v2Epoch {
		t.Errorf("build timestamp = %v, want the new database's %v", got, v2Epoch)
	}
	if order, _ := l.Order(probe); order[0] != "us" {
		t.Errorf("order after the update = %v, want us first", order)
	}
}

func TestReloadRejectsBadFile(t *testing.T) {
	good := buildDB(t, "GeoLite2-City", v2Epoch, v2Networks())
	tests := []struct {
		name    string
		data    []byte
		logWant string
	}{
		{"garbage", []byte(strings.Repeat("garbage ", 1000)), "invalid MaxMind DB"},
		{"empty", nil, "file is empty"},
		{"truncated", good[:len(good)*2/3], "invalid MaxMind DB"},
		{"search tree garbled, metadata intact", garbleTree(good), "test lookup"},
		{"ASN database", buildDB(t, "GeoLite2-ASN", v2Epoch, v2Networks()), "GeoLite2-ASN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testDB(t)
			l, logs := newLocator(t, threeRegions(path))
			l.debounce = testDebounce
			run(t, l, logs)
			cached, uncached := netip.MustParseAddr("80.128.1.7"), netip.MustParseAddr("80.128.1.99")
			l.Locate(cached)

			install(t, path, tt.data)
			testutil.Eventually(t, "the rejection", func() bool { return reloads(l, "failure") == 1 })
			if logs.Count("update rejected") != 1 || logs.Count(tt.logWant) == 0 {
				t.Errorf("log does not report the rejection with %q:\n%s", tt.logWant, logs.String())
			}
			// The old reader, not just the cache, still answers.
			for _, ip := range []netip.Addr{cached, uncached} {
				if loc, ok := l.Locate(ip); !ok || loc.Country != "DE" {
					t.Errorf("after the rejection Locate(%s) = %+v, %v; want the old DE answer", ip, loc, ok)
				}
			}
			if got := testutilGauge(l); got != v1Epoch {
				t.Errorf("build timestamp = %v, want the old database's %v", got, v1Epoch)
			}

			// The watch goes on: a good file after a bad one is loaded.
			install(t, path, good)
			testutil.Eventually(t, "the good database", func() bool {
				loc, _ := l.Locate(uncached)
				return loc.Country == "US"
			})
			if got := reloads(l, "success"); got != 1 {
				t.Errorf("reloads_total{success} = %v, want 1", got)
			}
		})
	}
}

func TestReloadSkipsSameContent(t *testing.T) {
	path := testDB(t)
	l, logs := newLocator(t, threeRegions(path))
	l.debounce = testDebounce
	run(t, l, logs)
	ip := netip.MustParseAddr("80.128.1.7")
	l.Locate(ip)

	// The same bytes under a new inode, as an updater rewriting the same release: read, found
	// equal, not loaded.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	install(t, path, data)
	testutil.Eventually(t, "the check", func() bool { return logs.Count("file unchanged") == 1 })

	// Neither an event on another file of the directory nor a touch of the database (an
	// attribute change) can change the content: no check at all.
	// The touch goes first: it changes the time stamp, so a wrong check after either event
	// reads the file and logs.
	now := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, now, now); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "README"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * testDebounce) // a negative: give a wrong check time to happen
	if n := logs.Count("file unchanged"); n != 1 {
		t.Errorf("%d checks after unrelated events, want none", n-1)
	}

	if got := reloads(l, "success") + reloads(l, "failure"); got != 0 {
		t.Errorf("reloads_total = %v, want 0", got)
	}
	hits := lookups(l, "hit")
	l.Locate(ip)
	if lookups(l, "hit") != hits+1 {
		t.Error("the cache was cleared although the database did not change")
	}
	if strings.Contains(logs.String(), "reloaded") {
		t.Errorf("a reload was logged:\n%s", logs.String())
	}
}

// TestReloadKubernetesVolume replaces the database the way a ConfigMap or Secret volume
// does: the file is a symlink into ..data, itself a symlink that is swapped atomically.
func TestReloadKubernetesVolume(t *testing.T) {
	dir := t.TempDir()
	version := func(name string, data []byte) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "GeoLite2-City.mmdb"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2019_12_24", buildDB(t, "GeoLite2-City", v1Epoch, v1Networks()))
	path := filepath.Join(dir, "GeoLite2-City.mmdb")
	if err := os.Symlink("..data/GeoLite2-City.mmdb", path); err != nil {
		t.Fatal(err)
	}
	l, logs := newLocator(t, threeRegions(path))
	l.debounce = testDebounce
	run(t, l, logs)
	ip := netip.MustParseAddr("80.128.1.7")
	if loc, _ := l.Locate(ip); loc.Country != "DE" {
		t.Fatalf("before the update: %q, want DE", loc.Country)
	}
	version("..2020_01_07", buildDB(t, "GeoLite2-City", v2Epoch, v2Networks()))
	testutil.Eventually(t, "the new database", func() bool {
		loc, _ := l.Locate(ip)
		return loc.Country == "US"
	})
}

func TestReaderClosedAfterLastLookup(t *testing.T) {
	path := testDB(t)
	l, _ := newLocator(t, threeRegions(path))
	old := l.acquire() // a lookup in flight on the v1 reader
	install(t, path, buildDB(t, "GeoLite2-City", v2Epoch, v2Networks()))
	l.reload()
	if l.state.Load() == old {
		t.Fatal("reload did not swap the database")
	}
	ip := netip.MustParseAddr("80.128.1.7")
	if loc, ok, err := old.locate(ip); err != nil || !ok || loc.Country != "DE" {
		t.Fatalf("the replaced reader failed its lookup in flight: %+v, %v, %v", loc, ok, err)
	}
	old.release() // the last lookup ends
	if old.acquire() {
		t.Fatal("a lookup could take the closed reader")
	}
	if _, err := old.reader.City(ip); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("replaced reader still open after its last lookup: err = %v", err)
	}
	if loc, _ := l.Locate(ip); loc.Country != "US" {
		t.Errorf("new lookups answer %q, want US from the new database", loc.Country)
	}
}

func TestRunEnds(t *testing.T) {
	l, _ := newLocator(t, threeRegions(testDB(t)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	testutil.Eventually(t, "Run to start", l.running.Load)
	if err := l.Run(ctx); err == nil {
		t.Error("a second Run succeeded")
	}
	st := l.state.Load()
	cancel()
	if err := testutil.Receive(t, done, "Run to return after ctx ended"); err != nil {
		t.Fatalf("Run = %v, want nil when ctx ends", err)
	}
	if _, err := st.reader.City(netip.MustParseAddr("80.128.1.7")); err == nil {
		t.Error("the reader is still open after Run returned")
	}
	if _, ok := l.Locate(netip.MustParseAddr("80.128.1.7")); ok {
		t.Error("a client was located after Run closed the database")
	}
	if order, _ := l.Order(netip.MustParseAddr("80.128.1.7")); order[0] != "ap" {
		t.Errorf("order after close = %v, want the node's region first", order)
	}
}

func TestRunFailsOnMissingDirectory(t *testing.T) {
	path := testDB(t)
	l, _ := newLocator(t, threeRegions(path))
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	err := l.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), filepath.Dir(path)) {
		t.Errorf("Run = %v, want an error naming the directory", err)
	}
	if _, ok := l.Locate(netip.MustParseAddr("80.128.1.7")); ok {
		t.Error("Run returned without closing the database")
	}
}

// garbleTree overwrites the search tree at the start of a database and keeps its metadata
// at the end: the file opens, and only a lookup finds it broken.
func garbleTree(db []byte) []byte {
	out := slices.Clone(db)
	for i := range len(out) / 2 {
		out[i] = 0xff
	}
	return out
}
