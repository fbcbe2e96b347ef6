package h1fast

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/veloflux/veloflux/internal/testutil"
)

// A readiness event the epoll set delivers after the connection's goroutine has read those
// bytes and parked it (a busy machine can delay the event that long) wakes a connection with
// nothing to read. Until a byte comes it is idle: Shutdown closes it, however long the server
// would let a head take.
func TestShutdownClosesConnectionWokenForNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c, br := dial(t, ln.Addr().String())
	roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	var parked *conn
	testutil.Eventually(t, "the connection parked", func() bool {
		for _, oc := range s.open() {
			if oc.state.Load() == stParked {
				parked = oc
				return true
			}
		}
		return false
	})
	parked.dataArrived() // the late event: its goroutine now waits for a head that is not coming
	testutil.Eventually(t, "the woken connection's goroutine to wait for a head", func() bool {
		return parked.state.Load() == stWaiting
	})
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the idle connection got bytes instead of being closed")
	}
	if err := testutil.Receive(t, shut, "Shutdown returns"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := testutil.Receive(t, served, "Serve returns"); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}
