package h2guard

// HTTP/2 wire constants (RFC 9113), kept here so that the guard does not depend on how
// x/net's Framer buffers.
const (
	prefaceLen     = 24 // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	frameHeaderLen = 9

	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	framePushPromise  = 0x5
	frameGoAway       = 0x7
	frameContinuation = 0x9

	flagEndHeaders = 0x4

	errCodeEnhanceYourCalm = 0xb
)

// scanner follows frame boundaries in one direction of a connection, fed in pieces of any
// size. It keeps the header of the latest frame and skips payloads without looking at them.
type scanner struct {
	hdr  [frameHeaderLen]byte
	have int // bytes of hdr collected so far
	skip int // bytes still to pass over: the current frame's payload, or the client preface
	// inBlock is set while a header block is open: after a HEADERS, PUSH_PROMISE or
	// CONTINUATION frame without END_HEADERS, only CONTINUATION frames may follow.
	inBlock bool
}

// next consumes the start of p, up to the end of one payload piece or one frame header,
// and reports whether a frame header just completed (it is then in s.hdr). Callers loop
// until p is consumed; p must not be empty.
func (s *scanner) next(p []byte) (n int, header bool) {
	if s.skip > 0 {
		n = min(s.skip, len(p))
		s.skip -= n
		return n, false
	}
	n = copy(s.hdr[s.have:], p)
	s.have += n
	if s.have < frameHeaderLen {
		return n, false
	}
	s.have = 0
	s.skip = int(s.hdr[0])<<16 | int(s.hdr[1])<<8 | int(s.hdr[2])
	switch s.hdr[3] {
	case frameHeaders, framePushPromise, frameContinuation:
		s.inBlock = s.hdr[4]&flagEndHeaders == 0
	}
	return n, true
}

// advance consumes all of p.
func (s *scanner) advance(p []byte) {
	for len(p) > 0 {
		n, _ := s.next(p)
		p = p[n:]
	}
}

// boundary reports whether another frame may be put into the stream here: between two
// frames and outside a header block, whose frames must follow one another with nothing in
// between (RFC 9113 section 6.10).
func (s *scanner) boundary() bool {
	return s.have == 0 && s.skip == 0 && !s.inBlock
}

// toBoundary returns how many bytes at the start of p take the stream to the next
// boundary: 0 when it is at one, len(p) when p ends first. s is a copy and does not move.
func (s scanner) toBoundary(p []byte) int {
	n := 0
	for n < len(p) && !s.boundary() {
		k, _ := s.next(p[n:])
		n += k
	}
	return n
}

// streamID returns the stream identifier of the header in s.hdr, the reserved bit cleared.
func (s *scanner) streamID() uint32 {
	h := s.hdr[5:9]
	return (uint32(h[0])<<24 | uint32(h[1])<<16 | uint32(h[2])<<8 | uint32(h[3])) &^ (1 << 31)
}

const (
	minOpens = 16
	// maxOpens bounds the ring at 12 KiB per connection: four times x/net's default
	// MaxConcurrentStreams, so every stream the server can be running is in it with room
	// to spare.
	maxOpens = 1024
	// resetMark in opens.at marks a stream whose reset was already counted, so that
	// repeating a RST_STREAM does not count twice.
	resetMark = -1
)

// opens remembers when the client's recent streams opened, oldest first. Stream ids only
// grow, so the ring is sorted by id and a reset finds its stream by binary search.
type opens struct {
	id   []uint32
	at   []int64 // open time, nanoseconds after Wrap; resetMark once reset
	head int     // index of the oldest entry
	n    int     // entries in use
}

// push records that stream id opened at time at. When the ring is full it forgets its
// oldest entry, unless that stream could still be reset prematurely and the ring may grow.
func (r *opens) push(id uint32, at, window int64) {
	if r.n == len(r.id) {
		if len(r.id) == 0 || len(r.id) < maxOpens && r.oldestMayReset(at, window) {
			r.grow()
		} else {
			r.head = (r.head + 1) & (len(r.id) - 1)
			r.n--
		}
	}
	i := (r.head + r.n) & (len(r.id) - 1)
	r.id[i], r.at[i] = id, at
	r.n++
}

// oldestMayReset reports whether a reset of the oldest stream, arriving at time now, would
// still be premature. r must not be empty.
func (r *opens) oldestMayReset(now, window int64) bool {
	at := r.at[r.head]
	return at != resetMark && now-at < window
}

func (r *opens) grow() {
	size := max(minOpens, 2*len(r.id))
	id, at := make([]uint32, size), make([]int64, size)
	for k := range r.n {
		i := (r.head + k) & (len(r.id) - 1)
		id[k], at[k] = r.id[i], r.at[i]
	}
	r.id, r.at, r.head = id, at, 0
}

// take returns when stream id opened and marks it reset; it returns resetMark when the
// stream is not in the ring or was reset before.
func (r *opens) take(id uint32) int64 {
	if r.n == 0 {
		return resetMark
	}
	mask := len(r.id) - 1
	// An abusive client resets the stream it just opened: look there first.
	lo, hi := 0, r.n
	if r.id[(r.head+r.n-1)&mask] == id {
		lo = r.n - 1
	}
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.id[(r.head+mid)&mask] < id {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == r.n {
		return resetMark
	}
	i := (r.head + lo) & mask
	if r.id[i] != id {
		return resetMark
	}
	at := r.at[i]
	r.at[i] = resetMark
	return at
}
