package h1fast

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// Once a burst of connections is over and they all wait parked, the server hands the freed
// memory back to the system (TestMemoryReturnBounded holds how often). The test watches the
// return itself: the released heap is read just before and just after it.
func TestBurstEndReturnsMemory(t *testing.T) {
	noCollections(t)
	type seen struct {
		inBurst       bool
		before, after uint64 // released heap, bytes
	}
	// A machine that stalls for a second between two connections ends the burst there, and
	// ReturnMemoryEvery (1 h) allows no second return: such a try starts again on a new server.
	const tries = 5
	for try := 1; ; try++ {
		var inBurst atomic.Bool
		returns := make(chan seen, 1) // one return per server within the hour
		s, addr := memoryServer(t, func() {
			r := seen{inBurst: inBurst.Load(), before: releasedBytes()}
			debug.FreeOSMemory()
			r.after = releasedBytes()
			select {
			case returns <- r:
			default:
				t.Error("a second return within ReturnMemoryEvery")
			}
		})
		// What a real burst leaves behind, made certain: unreachable heap well above the
		// minimum, which only a collection, forced by the return, frees.
		garbage(32 << 20)
		inBurst.Store(true)
		for range 50 {
			c, br := dial(t, addr)
			if resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
		}
		inBurst.Store(false)
		var r seen
		select {
		case r = <-returns:
		case <-time.After(testutil.Timeout()):
			t.Fatalf("no memory returned within %v of the burst's end", testutil.Timeout())
		}
		if r.inBurst {
			if try == tries {
				t.Fatalf("memory was returned inside the burst in all %d tries", tries)
			}
			t.Logf("try %d: memory returned inside the burst (a stall of a second ended it); starting again", try)
			continue
		}
		if r.after < r.before+16<<20 {
			t.Fatalf("the return released %d -> %d bytes of heap, want at least 16 MiB more", r.before, r.after)
		}
		testutil.Eventually(t, "the return is counted", func() bool { return s.Stats().MemoryReturns.Load() == 1 })
		return
	}
}

// memoryServer serves "ok" on 127.0.0.1 until the test ends, returning memory with free at
// most once an hour.
func memoryServer(t *testing.T, free func()) (*Server, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ReturnMemoryEvery: time.Hour,
		freeOSMemory:      free,
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout())
		defer cancel()
		_ = s.Shutdown(ctx)
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}
