package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
)

// TestStreamedBodyAllocs sends a 1 GiB request body and fetches a 1 GiB response body
// through the proxy: both arrive whole, and the process (client, proxy and backend together)
// allocates a small fixed amount for them, far below the bodies' size: nothing is buffered
// whole, and nothing is allocated per chunk copied.
func TestStreamedBodyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not counted under the race detector; make unit counts them without it")
	}
	const size = 1 << 30
	const budget = 4 << 20 // bytes allocated for both bodies together; the copies run through pooled 32 KiB buffers
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			n, _ := io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Received", strconv.FormatInt(n, 10))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = io.Copy(w, io.LimitReader(zeros{}, size))
	}))
	t.Cleanup(be.Close)
	tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("be", be.Listener.Addr().String(), 1)))
	c := newClient(t)
	c.Timeout = 0 // the machine may be busy; a gigabyte each way takes what it takes

	roundTrip := func(req *http.Request) (*http.Response, int64) {
		t.Helper()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, n
	}
	// Warm up: connections, pools and buffers are in place before counting.
	req, _ := http.NewRequest(http.MethodPost, tp.url+"/warm", io.LimitReader(zeros{}, 1<<20))
	req.ContentLength = 1 << 20
	roundTrip(req)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req, _ = http.NewRequest(http.MethodPost, tp.url+"/up", io.LimitReader(zeros{}, size))
	req.ContentLength = size
	if resp, _ := roundTrip(req); resp.Header.Get("X-Received") != strconv.Itoa(size) {
		t.Fatalf("the backend received %s bytes, want %d", resp.Header.Get("X-Received"), size)
	}
	req, _ = http.NewRequest(http.MethodGet, tp.url+"/down", nil)
	if _, n := roundTrip(req); n != size {
		t.Fatalf("the client received %d bytes, want %d", n, size)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("2 GiB through the proxy: %d bytes allocated, heap in use %d -> %d bytes", alloc, before.HeapInuse, after.HeapInuse)
	if alloc > budget {
		t.Fatalf("%d bytes allocated for 2 GiB of bodies, want at most %d", alloc, budget)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
