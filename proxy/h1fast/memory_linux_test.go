package h1fast

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// Once a burst of connections is over and they all wait parked, the server hands the freed
// memory back to the system (TestMemoryReturnBounded holds how often).
func TestBurstEndReturnsMemory(t *testing.T) {
	// A machine that stalls for a second inside the burst ends the burst there: the server
	// returns memory before the garbage below exists and not again within ReturnMemoryEvery
	// (the likely cause of a failure under go test -race -count=3 with two busy loops: nothing
	// more released after the return). Such a try starts again on a new server.
	const tries = 5
	for try := 1; ; try++ {
		s, addr := memoryServer(t)
		for range 50 {
			c, br := dial(t, addr)
			if resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
		}
		// What a real burst leaves behind, made certain: freed heap well above the minimum.
		garbage(32 << 20)
		released := releasedBytes()
		if s.Stats().MemoryReturns.Load() != 0 {
			if try == tries {
				t.Fatalf("memory was returned before the burst ended in all %d tries", tries)
			}
			t.Logf("try %d: memory returned before the burst ended; starting again", try)
			continue
		}
		testutil.Eventually(t, "the burst's memory is returned", func() bool { return s.Stats().MemoryReturns.Load() == 1 })
		if got := releasedBytes(); got < released+16<<20 {
			t.Fatalf("released heap %d -> %d bytes after the return, want at least 16 MiB more", released, got)
		}
		return
	}
}

// memoryServer serves "ok" on 127.0.0.1 until the test ends, returning memory at most once an
// hour.
func memoryServer(t *testing.T) (*Server, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ReturnMemoryEvery: time.Hour,
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
