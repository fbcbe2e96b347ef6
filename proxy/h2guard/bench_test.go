package h2guard

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// floodConn is a client without end: its reads return HEADERS and RST_STREAM pairs for
// ever-higher stream ids, cut wherever the read buffer ends, without allocating.
// Its writes are dropped.
type floodConn struct {
	net.Conn
	pair [frameHeaderLen + 12 + frameHeaderLen + 4]byte
	pos  int // bytes of pair already read
	id   uint32
}

func newFloodConn() *floodConn {
	c := &floodConn{id: 1}
	copy(c.pair[:], headers(0))
	copy(c.pair[frameHeaderLen+12:], rst(0))
	c.setID()
	return c
}

func (c *floodConn) setID() {
	binary.BigEndian.PutUint32(c.pair[5:], c.id)
	binary.BigEndian.PutUint32(c.pair[frameHeaderLen+12+5:], c.id)
}

func (c *floodConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.pair[c.pos:])
		n += k
		if c.pos += k; c.pos == len(c.pair) {
			c.pos = 0
			c.id += 2
			c.setID()
		}
	}
	return n, nil
}

func (c *floodConn) Write(p []byte) (int, error) { return len(p), nil }

func newBenchGuard() *guard {
	// A MinStreams never reached keeps the flood going; the preface is skipped as read.
	return newGuard(newFloodConn(), Config{MinStreams: never, PrematureWindow: time.Hour}, nil, goAwayTimeout)
}

// dataFrames is a server's output: DATA frames of 1000 bytes, written 700 bytes at a time
// so that writes end inside frames.
var dataFrames = fr(frameData, 0, 1, 1000)

func TestReadAndWriteDoNotAllocate(t *testing.T) {
	for _, tc := range []struct {
		name string
		buf  int
	}{
		{name: "x/net's header reads", buf: frameHeaderLen},
		{name: "large reads", buf: 16 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newBenchGuard()
			buf := make([]byte, tc.buf)
			out := dataFrames[:700]
			step := func() {
				if _, err := g.Read(buf); err != nil {
					t.Fatal(err)
				}
				if _, err := g.Write(out); err != nil {
					t.Fatal(err)
				}
			}
			for range 1000 { // lets the ring reach its size
				step()
			}
			if allocs := testing.AllocsPerRun(1000, step); allocs != 0 {
				t.Errorf("%v allocations per read and write, want 0", allocs)
			}
		})
	}
}

func BenchmarkGuardRead(b *testing.B) {
	for _, bc := range []struct {
		name string
		buf  int
	}{
		{name: "9B", buf: frameHeaderLen},
		{name: "16KiB", buf: 16 << 10},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := newBenchGuard()
			buf := make([]byte, bc.buf)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				g.Read(buf)
			}
		})
	}
}

func BenchmarkGuardWrite(b *testing.B) {
	g := newBenchGuard()
	b.SetBytes(int64(len(dataFrames)))
	b.ReportAllocs()
	for b.Loop() {
		g.Write(dataFrames)
	}
}
