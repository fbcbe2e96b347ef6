package h2guard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// scriptConn is a net.Conn whose reads return the given chunks in turn and then io.EOF,
// and whose writes are collected. Other net.Conn methods are not used.
type scriptConn struct {
	net.Conn
	mu     sync.Mutex
	chunks [][]byte
	out    bytes.Buffer
	closed bool
}

func (c *scriptConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.out.Write(p)
}

func (c *scriptConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *scriptConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

// chop cuts b into chunks of size bytes, the last one shorter.
func chop(b []byte, size int) [][]byte {
	var chunks [][]byte
	for len(b) > 0 {
		n := min(size, len(b))
		chunks = append(chunks, b[:n])
		b = b[n:]
	}
	return chunks
}

// fr builds a frame with a payload of n bytes, all of them 0xff unless payload is given.
func fr(typ, flags byte, id uint32, n int, payload ...byte) []byte {
	if payload == nil {
		payload = bytes.Repeat([]byte{0xff}, n)
	}
	b := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags}
	b = binary.BigEndian.AppendUint32(b, id)
	return append(b, payload...)
}

const (
	frameData     = 0x0
	frameSettings = 0x4
	framePing     = 0x6
	flagEndStream = 0x1
	flagPadded    = 0x8
	flagPriority  = 0x20
)

func headers(id uint32) []byte { return fr(frameHeaders, flagEndHeaders|flagEndStream, id, 12) }
func rst(id uint32) []byte     { return fr(frameRSTStream, 0, id, 4) }

func goAwayFrame(lastID uint32) []byte {
	return fr(frameGoAway, 0, 0, 8, binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, lastID), errCodeEnhanceYourCalm)...)
}

// clientStream is the preface, the client's SETTINGS and then frames.
func clientStream(frames ...[]byte) []byte {
	b := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), fr(frameSettings, 0, 0, 12)...)
	for _, f := range frames {
		b = append(b, f...)
	}
	return b
}

// never is a MinStreams that no test reaches, for tests that only count.
const never = 1 << 40

// readGuard reads g to the end with a buffer of size bytes and returns the error it ended with.
func readGuard(g *guard, size int) error {
	buf := make([]byte, size)
	for {
		if _, err := g.Read(buf); err != nil {
			return err
		}
	}
}

type counts struct {
	opened, premature uint64
	lastID            uint32
}

func (g *guard) counts() counts { return counts{g.opened, g.premature, g.lastID} }

func TestReadFollowsClientFrames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames [][]byte
		want   counts
	}{
		{
			name:   "HEADERS opens a stream and RST_STREAM resets it",
			frames: [][]byte{headers(1), rst(1)},
			want:   counts{opened: 1, premature: 1, lastID: 1},
		},
		{
			name:   "trailers do not open a stream",
			frames: [][]byte{fr(frameHeaders, flagEndHeaders, 1, 10), fr(frameData, 0, 1, 20), headers(1)},
			want:   counts{opened: 1, lastID: 1},
		},
		{
			name: "a header block in CONTINUATION frames opens one stream",
			frames: [][]byte{fr(frameHeaders, 0, 3, 10), fr(frameContinuation, 0, 3, 10),
				fr(frameContinuation, flagEndHeaders, 3, 1), rst(3)},
			want: counts{opened: 1, premature: 1, lastID: 3},
		},
		{
			name:   "padding and priority do not matter",
			frames: [][]byte{fr(frameHeaders, flagEndHeaders|flagPadded|flagPriority, 1, 30), rst(1)},
			want:   counts{opened: 1, premature: 1, lastID: 1},
		},
		{
			name:   "stream ids may skip, and streams be reset in any order",
			frames: [][]byte{headers(1), headers(7), headers(9), rst(7), rst(1)},
			want:   counts{opened: 3, premature: 2, lastID: 9},
		},
		{
			name:   "a repeated reset counts once",
			frames: [][]byte{headers(1), rst(1), rst(1), rst(1)},
			want:   counts{opened: 1, premature: 1, lastID: 1},
		},
		{
			name:   "lower stream ids do not open streams",
			frames: [][]byte{headers(5), headers(3), rst(3)},
			want:   counts{opened: 1, lastID: 5},
		},
		{
			name:   "even and unopened stream ids are not the client's streams",
			frames: [][]byte{rst(5), headers(2), rst(2), headers(0), rst(0), headers(1), rst(3)},
			want:   counts{opened: 1, lastID: 1},
		},
		{
			name:   "the reserved bit of the stream id is ignored",
			frames: [][]byte{headers(1 | 1<<31), rst(1)},
			want:   counts{opened: 1, premature: 1, lastID: 1},
		},
		{
			name: "payloads are skipped whatever they hold",
			frames: [][]byte{fr(frameData, 0, 1, 0, bytes.Repeat(headers(101), 3)...),
				fr(framePing, 0, 0, 0, rst(1)[:8]...)},
			want: counts{},
		},
		{
			name:   "empty and largest default-size frames",
			frames: [][]byte{fr(frameData, 0, 1, 0), headers(1), fr(frameData, flagEndStream, 1, 1<<14), rst(1)},
			want:   counts{opened: 1, premature: 1, lastID: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := clientStream(tc.frames...)
			buf := make([]byte, len(stream))
			check := func(how string, chunks [][]byte, buf []byte) {
				t.Helper()
				g := newGuard(&scriptConn{chunks: chunks}, Config{MinStreams: never, PrematureWindow: time.Hour}, nil, waitLimit)
				var err error
				for err == nil {
					_, err = g.Read(buf)
				}
				if err != io.EOF {
					t.Fatalf("%s: read ended with %v, want EOF", how, err)
				}
				if got := g.counts(); got != tc.want {
					t.Fatalf("%s: got %+v, want %+v", how, got, tc.want)
				}
			}
			// Every cut of the stream in two, then pieces of every size up to two headers.
			for i := 1; i < len(stream); i++ {
				check(fmt.Sprintf("cut at %d", i), [][]byte{stream[:i], stream[i:]}, buf)
			}
			for size := 1; size <= 2*frameHeaderLen; size++ {
				check(fmt.Sprintf("pieces of %d", size), chop(stream, size), buf)
			}
			// A small read buffer cuts the stream as well, as x/net's Framer does.
			check("9-byte reads", [][]byte{stream}, buf[:frameHeaderLen])
		})
	}
}

func TestPrematureWindow(t *testing.T) {
	const window = time.Second
	// step is a pause, then frames read in one go.
	type step struct {
		after  time.Duration
		frames [][]byte
	}
	for _, tc := range []struct {
		name      string
		steps     []step
		premature uint64
	}{
		{
			name:      "reset at once",
			steps:     []step{{0, [][]byte{headers(1), rst(1)}}},
			premature: 1,
		},
		{
			name:      "reset just inside the window",
			steps:     []step{{0, [][]byte{headers(1)}}, {window - time.Nanosecond, [][]byte{rst(1)}}},
			premature: 1,
		},
		{
			name:  "reset at the end of the window",
			steps: []step{{0, [][]byte{headers(1)}}, {window, [][]byte{rst(1)}}},
		},
		{
			name: "each stream dated from its own HEADERS",
			steps: []step{
				{0, [][]byte{headers(1)}},
				{window / 2, [][]byte{headers(3)}},
				{window / 2, [][]byte{rst(1), rst(3)}},
			},
			premature: 1,
		},
		{
			// 100 streams opened at once outgrow the ring's first size; all are still
			// young, so none may be forgotten.
			name: "many young streams",
			steps: []step{
				{0, streamsFrames(headers, 1, 100)},
				{window / 2, streamsFrames(rst, 1, 100)},
			},
			premature: 100,
		},
		{
			// Once the ring is at its largest, the oldest young stream is forgotten, and
			// its reset can no longer be dated.
			name: "more young streams than the ring holds",
			steps: []step{
				{0, streamsFrames(headers, 1, maxOpens+10)},
				{window / 2, streamsFrames(rst, 1, maxOpens+10)},
			},
			premature: maxOpens,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				conn := &scriptConn{chunks: [][]byte{clientStream()}}
				g := newGuard(conn, Config{MinStreams: never, PrematureWindow: window}, nil, waitLimit)
				buf := make([]byte, 64<<10)
				for _, s := range tc.steps {
					time.Sleep(s.after)
					conn.chunks = append(conn.chunks, bytes.Join(s.frames, nil))
					for len(conn.chunks) > 0 {
						if _, err := g.Read(buf); err != nil {
							t.Fatal(err)
						}
					}
				}
				if g.premature != tc.premature {
					t.Errorf("%d premature resets, want %d", g.premature, tc.premature)
				}
			})
		})
	}
}

// streamsFrames returns f for n client streams from id first on.
func streamsFrames(f func(uint32) []byte, first uint32, n int) [][]byte {
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = f(first + 2*uint32(i))
	}
	return frames
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		name       string
		minStreams int
		frames     [][]byte
		abusive    bool
		lastID     uint32
	}{
		{
			name:       "every stream reset at once",
			minStreams: 4,
			frames:     append(streamPairs(1, 4), headers(9), rst(9)),
			abusive:    true,
			lastID:     7, // the verdict comes with the fourth reset; the fifth stream is never seen
		},
		{
			name:       "too few streams to judge",
			minStreams: 4,
			frames:     streamPairs(1, 3),
		},
		{
			name:       "half the streams reset is not more than half",
			minStreams: 4,
			frames:     [][]byte{headers(1), headers(3), rst(1), headers(5), headers(7), rst(7)},
		},
		{
			name:       "the judgement counts streams opened before",
			minStreams: 4,
			frames:     [][]byte{headers(1), headers(3), headers(5), rst(1), rst(3), rst(5), headers(7)},
		},
		{
			name:       "the judgement comes with the reset that tips the ratio",
			minStreams: 4,
			frames:     [][]byte{headers(1), headers(3), headers(5), rst(1), rst(3), headers(7), rst(7), headers(9)},
			abusive:    true,
			lastID:     7,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := clientStream(tc.frames...)
			conn := &scriptConn{chunks: [][]byte{stream}}
			abuses := 0
			g := newGuard(conn, Config{MinStreams: tc.minStreams, PrematureWindow: time.Hour}, func() { abuses++ }, waitLimit)
			err := readGuard(g, len(stream))
			if !tc.abusive {
				if err != io.EOF || abuses != 0 || len(conn.written()) != 0 {
					t.Fatalf("read ended with %v, %d abuses, %d bytes written; want EOF, none, none", err, abuses, len(conn.written()))
				}
				return
			}
			if !errors.Is(err, ErrAbusive) || !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read ended with %v, want ErrAbusive, matching net.ErrClosed", err)
			}
			if abuses != 1 {
				t.Errorf("onAbuse called %d times, want 1", abuses)
			}
			if got, want := conn.written(), goAwayFrame(tc.lastID); !bytes.Equal(got, want) {
				t.Errorf("wrote %x, want GOAWAY %x", got, want)
			}
			if !conn.closed {
				t.Error("the connection is open")
			}
			if _, err := g.Read(make([]byte, 10)); !errors.Is(err, ErrAbusive) {
				t.Errorf("a later read returned %v, want ErrAbusive", err)
			}
			if g.Close() != nil {
				t.Error("Close of a condemned guard failed")
			}
		})
	}
}

// streamPairs returns HEADERS and RST_STREAM for n client streams from id first on.
func streamPairs(first uint32, n int) [][]byte {
	var frames [][]byte
	for i := range n {
		id := first + 2*uint32(i)
		frames = append(frames, headers(id), rst(id))
	}
	return frames
}

// serverOutput is a server's frames with every place a GOAWAY may go between them.
func serverOutput() (out []byte, boundaries []int) {
	frames := []struct {
		b       []byte
		inBlock bool // a header block is open after it
	}{
		{fr(frameSettings, 0, 0, 18), false},
		{fr(frameHeaders, 0, 1, 30), true},
		{fr(frameContinuation, 0, 1, 20), true},
		{fr(frameContinuation, flagEndHeaders, 1, 5), false},
		{fr(frameData, 0, 1, 100), false},
		{fr(frameData, flagEndStream, 1, 0), false},
		{fr(framePing, 0, 0, 8), false},
		{fr(framePushPromise, 0, 1, 12), true},
		{fr(frameContinuation, flagEndHeaders, 1, 3), false},
		{fr(frameHeaders, flagEndHeaders, 3, 7), false},
		{fr(frameData, 0, 3, 200), false},
	}
	boundaries = []int{0}
	for _, f := range frames {
		out = append(out, f.b...)
		if !f.inBlock {
			boundaries = append(boundaries, len(out))
		}
	}
	return out, boundaries
}

func TestGoAwayGoesBetweenFrames(t *testing.T) {
	out, boundaries := serverOutput()
	const lastID = 9
	for _, tc := range []struct {
		name  string
		piece int // the output after the verdict is written in pieces of this size; 0: at once
	}{
		{name: "rest written at once"},
		{name: "rest written in pieces", piece: 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for cut := 0; cut <= len(out); cut++ {
				conn := &scriptConn{}
				g := newGuard(conn, DefaultConfig(), nil, waitLimit)
				if _, err := g.Write(out[:cut]); err != nil {
					t.Fatal(err)
				}
				g.lastID = lastID
				sent := g.condemn()

				rest := out[cut:]
				var written int
				var err error
				for len(rest) > 0 && err == nil {
					p := rest
					if tc.piece > 0 {
						p = rest[:min(tc.piece, len(rest))]
					}
					var n int
					n, err = g.Write(p)
					written += n
					if err == nil && n != len(p) {
						t.Fatalf("cut at %d: Write returned %d of %d bytes and no error", cut, n, len(p))
					}
					rest = rest[len(p):]
				}

				next := boundaries[0]
				for _, b := range boundaries {
					if b >= cut {
						next = b
						break
					}
				}
				want := append(bytes.Clone(out[:next]), goAwayFrame(lastID)...)
				if got := conn.written(); !bytes.Equal(got, want) {
					t.Fatalf("cut at %d: wrote %d bytes ending %x, want %d ending in GOAWAY %x",
						cut, len(got), got[max(0, len(got)-20):], len(want), goAwayFrame(lastID))
				}
				if written != next-cut {
					t.Errorf("cut at %d: Writes after the verdict took %d bytes, want %d", cut, written, next-cut)
				}
				if next < len(out) && !errors.Is(err, ErrAbusive) {
					t.Errorf("cut at %d: Write past the GOAWAY returned %v, want ErrAbusive", cut, err)
				}
				select {
				case <-sent:
				default:
					t.Errorf("cut at %d: GOAWAY written but not reported sent", cut)
				}
			}
		})
	}
}

func TestVerdictWithoutFrameBoundaryClosesAfterTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The server has written half a frame and writes nothing more, so the GOAWAY can
		// never go out: the guard closes the connection when its timeout ends.
		conn := &scriptConn{chunks: [][]byte{clientStream(streamPairs(1, 4)...)}}
		abuses := 0
		g := newGuard(conn, Config{MinStreams: 4, PrematureWindow: time.Hour}, func() { abuses++ }, goAwayTimeout)
		half := fr(frameData, 0, 1, 100)[:50]
		if _, err := g.Write(half); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := readGuard(g, 1024); !errors.Is(err, ErrAbusive) {
			t.Fatalf("read ended with %v, want ErrAbusive", err)
		}
		if waited := time.Since(start); waited != goAwayTimeout {
			t.Errorf("closed after %v, want %v", waited, goAwayTimeout)
		}
		if !conn.closed || abuses != 1 {
			t.Errorf("closed %v, %d abuses; want closed, 1", conn.closed, abuses)
		}
		if got := conn.written(); !bytes.Equal(got, half) {
			t.Errorf("wrote %x, want only the half frame %x", got, half)
		}
		if _, err := g.Write(half[:10]); err == nil {
			t.Error("a write after the close succeeded")
		}
	})
}
