package rawsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns a wrapped client connection and the server's end, plain.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	c, ok := Wrap(nc).(*Conn)
	if !ok {
		t.Fatalf("Wrap(%T) is not a *Conn", nc)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c, peer
}

func TestRoundTripBeyondSocketBuffers(t *testing.T) {
	c, peer := pair(t)
	// More than the socket buffers hold, so writes and reads meet EAGAIN and wait in the poller.
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	errc := make(chan error, 1)
	go func() {
		n, err := c.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		errc <- err
	}()
	got, err := io.ReadAll(io.LimitReader(peer, int64(len(want))))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the peer read other bytes than were written")
	}
	go func() { _, err := peer.Write(want); errc <- err }()
	got, err = io.ReadAll(io.LimitReader(c, int64(len(want))))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("peer write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read other bytes than the peer wrote")
	}
}

func TestErrorsAsTCPConn(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		c, _ := pair(t)
		_ = c.SetReadDeadline(time.Now().Add(-time.Second))
		_, err := c.Read(make([]byte, 8))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past its deadline: %v, want a timeout", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("read past its deadline: %#v, want a net.OpError of op read", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		c, _ := pair(t)
		_ = c.Close()
		if _, err := c.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v, want net.ErrClosed", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after Close: %v, want net.ErrClosed", err)
		}
	})
	t.Run("peer closed", func(t *testing.T) {
		c, peer := pair(t)
		_, _ = peer.Write([]byte("last"))
		_ = peer.Close()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "last" {
			t.Fatalf("read to the end: %q, %v; want \"last\" and io.EOF", got, err)
		}
	})
	t.Run("blocked read ends with Close", func(t *testing.T) {
		c, _ := pair(t)
		errc := make(chan error, 1)
		go func() { _, err := c.Read(make([]byte, 8)); errc <- err }()
		time.AfterFunc(10*time.Millisecond, func() { _ = c.Close() })
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read ended by Close: %v, want net.ErrClosed", err)
		}
	})
}

func TestWrapLeavesOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("Wrap changed a connection that is not TCP")
	}
}
