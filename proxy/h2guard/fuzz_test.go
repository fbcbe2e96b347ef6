package h2guard

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

func fuzzSeeds() [][]byte {
	out, _ := serverOutput()
	return [][]byte{
		nil,
		clientStream(),
		clientStream(streamPairs(1, 20)...),
		clientStream(fr(frameHeaders, 0, 3, 10), fr(frameContinuation, flagEndHeaders, 3, 1), rst(3), headers(5)),
		clientStream(fr(frameData, 0, 1, 0, bytes.Repeat(headers(101), 3)...), headers(1|1<<31), rst(1)),
		out,
		[]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\x01\x04\x00\x00\x00\x01"),
	}
}

// readCounts reads all of data through a guard, size bytes at a time, and returns what
// it counted and the error reading ended with.
func readCounts(data []byte, size, minStreams int) (counts, []byte, error) {
	conn := &scriptConn{chunks: chop(data, size)}
	g := newGuard(conn, Config{MinStreams: minStreams, PrematureWindow: time.Hour}, nil, waitLimit)
	err := readGuard(g, 4096)
	return g.counts(), conn.written(), err
}

// FuzzGuardRead feeds arbitrary client bytes, cut into pieces of any size: reading must not
// panic, must count the same however the bytes are cut, and must end either at the end of
// the input or with a lone GOAWAY for the highest stream the client opened.
func FuzzGuardRead(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, uint8(1), uint8(3))
		f.Add(s, uint8(200), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, piece, minStreams uint8) {
		size := int(piece)%64 + 1
		want, _, err := readCounts(data, 1, never)
		if err != io.EOF {
			t.Fatalf("read ended with %v, want EOF", err)
		}
		if want.premature > want.opened || want.lastID != 0 && want.lastID&1 == 0 {
			t.Fatalf("impossible counts %+v", want)
		}
		got, _, err := readCounts(data, size, never)
		if err != io.EOF || got != want {
			t.Fatalf("in pieces of %d: %+v, %v; byte by byte: %+v", size, got, err, want)
		}

		got, wrote, err := readCounts(data, size, int(minStreams)+1)
		switch {
		case errors.Is(err, ErrAbusive):
			if !bytes.Equal(wrote, goAwayFrame(got.lastID)) {
				t.Fatalf("wrote %x, want GOAWAY for stream %d", wrote, got.lastID)
			}
			if got.premature*2 <= got.opened || got.opened < uint64(minStreams)+1 {
				t.Fatalf("judged abusive with %+v and MinStreams %d", got, int(minStreams)+1)
			}
		case err != io.EOF || len(wrote) != 0:
			t.Fatalf("read ended with %v after writing %x, want EOF and nothing", err, wrote)
		}
	})
}

// refBoundary finds the first place at or after cut where the frames in out allow another
// frame, by walking them from the start; ok is false when out ends first.
func refBoundary(out []byte, cut int) (at int, ok bool) {
	pos, inBlock := 0, false
	for {
		if pos >= cut && !inBlock {
			return pos, true
		}
		if pos+frameHeaderLen > len(out) {
			return 0, false
		}
		h := out[pos:]
		switch h[3] {
		case frameHeaders, framePushPromise, frameContinuation:
			inBlock = h[4]&flagEndHeaders == 0
		}
		pos += frameHeaderLen + (int(h[0])<<16 | int(h[1])<<8 | int(h[2]))
		if pos > len(out) {
			return 0, false
		}
	}
}

// FuzzGuardWrite writes arbitrary server bytes in pieces, with the verdict after cut of
// them: the output must be the input up to the first frame boundary at or after cut, then
// GOAWAY and nothing more; or all of the input when it reaches no such boundary.
func FuzzGuardWrite(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, uint16(0), uint8(5))
		f.Add(s, uint16(30), uint8(100))
	}
	f.Fuzz(func(t *testing.T, out []byte, cut uint16, piece uint8) {
		c := min(int(cut), len(out))
		size := int(piece)%64 + 1
		conn := &scriptConn{}
		g := newGuard(conn, DefaultConfig(), nil, waitLimit)
		g.lastID = 7
		for _, p := range chop(out[:c], size) {
			if n, err := g.Write(p); n != len(p) || err != nil {
				t.Fatalf("before the verdict: Write returned %d, %v for %d bytes", n, err, len(p))
			}
		}
		g.condemn()
		for _, p := range chop(out[c:], size) {
			if n, err := g.Write(p); err != nil {
				if n >= len(p) || !errors.Is(err, ErrAbusive) {
					t.Fatalf("after the verdict: Write returned %d, %v for %d bytes", n, err, len(p))
				}
				break
			}
		}
		want := out
		if at, ok := refBoundary(out, c); ok {
			want = append(bytes.Clone(out[:at]), goAwayFrame(7)...)
		}
		if got := conn.written(); !bytes.Equal(got, want) {
			t.Fatalf("verdict after %d bytes: wrote %x, want %x", c, got, want)
		}
	})
}
