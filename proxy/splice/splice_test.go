package splice

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { _ = c.Close(); _ = s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// relay is a sender whose bytes Copy moves to a receiver: sender -> src ... dst -> receiver.
type relay struct {
	sender, src, dst, receiver *net.TCPConn
}

func newRelay(t testing.TB) relay {
	sender, src := tcpPair(t)
	dst, receiver := tcpPair(t)
	return relay{sender, src, dst, receiver}
}

func TestCopyMovesExactlyN(t *testing.T) {
	if !Available {
		t.Skip("splice(2) is Linux only")
	}
	const n = 8<<20 + 123 // not a multiple of any pipe size
	data := make([]byte, n+100)
	_, _ = rand.Read(data)
	r := newRelay(t)
	go func() { _, _ = r.sender.Write(data) }() // 100 bytes more than the copy takes
	received := make(chan []byte, 1)
	go func() {
		got, _ := io.ReadAll(io.LimitReader(r.receiver, n))
		received <- got
	}()
	var c Copier
	written, rerr, werr := c.Copy(r.dst, r.src, n)
	if rerr != nil || werr != nil || written != n {
		t.Fatalf("Copy = %d, %v, %v; want %d, nil, nil", written, rerr, werr, n)
	}
	if got := <-received; sha256.Sum256(got) != sha256.Sum256(data[:n]) {
		t.Fatalf("the receiver got %d bytes that differ from the %d sent", len(got), n)
	}
	if c.Bytes() != n {
		t.Fatalf("Bytes() = %d, want %d", c.Bytes(), n)
	}
	// What follows the n bytes is still the source's, for whoever reads it next.
	rest := make([]byte, 100)
	if _, err := io.ReadFull(r.src, rest); err != nil || !bytes.Equal(rest, data[n:]) {
		t.Fatalf("the bytes after the copy: %v", err)
	}
}

func TestCopySourceEndsEarly(t *testing.T) {
	if !Available {
		t.Skip("splice(2) is Linux only")
	}
	r := newRelay(t)
	sent := bytes.Repeat([]byte("x"), 300<<10)
	go func() {
		_, _ = r.sender.Write(sent)
		_ = r.sender.Close()
	}()
	received := make(chan int, 1)
	go func() {
		n, _ := io.Copy(io.Discard, r.receiver)
		received <- int(n)
	}()
	var c Copier
	written, rerr, werr := c.Copy(r.dst, r.src, 1<<20)
	if !errors.Is(rerr, io.ErrUnexpectedEOF) || werr != nil {
		t.Fatalf("Copy errors %v, %v; want io.ErrUnexpectedEOF as the read error", rerr, werr)
	}
	if written != int64(len(sent)) {
		t.Fatalf("written %d, want every byte sent before the end: %d", written, len(sent))
	}
	_ = r.dst.Close()
	if got := <-received; got != len(sent) {
		t.Fatalf("the receiver got %d bytes, want %d", got, len(sent))
	}
}

func TestCopyDestinationGone(t *testing.T) {
	if !Available {
		t.Skip("splice(2) is Linux only")
	}
	r := newRelay(t)
	_ = r.receiver.SetLinger(0)
	_ = r.receiver.Close() // the next writes to dst are reset
	go func() { _, _ = r.sender.Write(make([]byte, 4<<20)) }()
	var c Copier
	_, rerr, werr := c.Copy(r.dst, r.src, 4<<20)
	if rerr != nil || werr == nil {
		t.Fatalf("Copy errors %v, %v; want only a write error", rerr, werr)
	}
	var op *net.OpError
	if !errors.As(werr, &op) || op.Op != "write" {
		t.Fatalf("write error %#v, want a *net.OpError of a write", werr)
	}
	// The pipe may hold bytes for that destination: it must not be pooled for the next copy.
	if p := c.pipes.Get(); p != nil {
		t.Fatal("a pipe used by a copy whose write failed went back to the pool")
	}
}

// A pipe that failed mid-copy must not leak its bytes into the next copy.
func TestCopyAfterFailureIsClean(t *testing.T) {
	if !Available {
		t.Skip("splice(2) is Linux only")
	}
	var c Copier
	bad := newRelay(t)
	_ = bad.receiver.SetLinger(0)
	_ = bad.receiver.Close()
	go func() { _, _ = bad.sender.Write(bytes.Repeat([]byte("old"), 1<<20)) }()
	if _, _, werr := c.Copy(bad.dst, bad.src, 3<<20); werr == nil {
		t.Fatal("the copy to a reset connection did not fail")
	}
	good := newRelay(t)
	want := bytes.Repeat([]byte("new"), 100<<10)
	go func() { _, _ = good.sender.Write(want) }()
	received := make(chan []byte, 1)
	go func() {
		got, _ := io.ReadAll(io.LimitReader(good.receiver, int64(len(want))))
		received <- got
	}()
	if _, rerr, werr := c.Copy(good.dst, good.src, int64(len(want))); rerr != nil || werr != nil {
		t.Fatalf("second copy: %v, %v", rerr, werr)
	}
	if got := <-received; !bytes.Equal(got, want) {
		t.Fatalf("the second copy delivered other bytes (starts %q)", got[:min(len(got), 12)])
	}
}

func TestCopyKeepsDeadlines(t *testing.T) {
	if !Available {
		t.Skip("splice(2) is Linux only")
	}
	tests := []struct {
		name  string
		set   func(r relay)
		write bool // the write side fails
	}{
		{name: "source read deadline", set: func(r relay) { _ = r.src.SetReadDeadline(time.Now().Add(50 * time.Millisecond)) }},
		// The receiver reads nothing: once the socket buffers fill, the write waits.
		{name: "destination write deadline", set: func(r relay) { _ = r.dst.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)) }, write: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRelay(t)
			tt.set(r)
			if tt.write {
				go func() { _, _ = r.sender.Write(make([]byte, 64<<20)) }()
			}
			var c Copier
			_, rerr, werr := c.Copy(r.dst, r.src, 64<<20)
			err := rerr
			if tt.write {
				err = werr
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("Copy errors %v, %v; want a timeout on the %s side", rerr, werr, map[bool]string{false: "read", true: "write"}[tt.write])
			}
		})
	}
}

// Closing the source ends a copy blocked waiting for it, as it ends a blocked Read.
func TestCopyEndsWhenSourceCloses(t *testing.T) {
	if !Available {
		t.Skip("splice(2) is Linux only")
	}
	r := newRelay(t)
	done := make(chan error, 1)
	var c Copier
	go func() {
		_, rerr, _ := c.Copy(r.dst, r.src, 1<<20)
		done <- rerr
	}()
	_, _ = r.sender.Write([]byte("first bytes"))
	buf := make([]byte, 11)
	if _, err := io.ReadFull(r.receiver, buf); err != nil {
		t.Fatal(err)
	}
	_ = r.src.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read error %v, want net.ErrClosed", err)
	}
}
