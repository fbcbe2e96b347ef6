package h2guard

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrAbusive is what reads return once the client has been judged abusive. It matches
// net.ErrClosed under errors.Is, because the connection is closed by then, and servers (x/net's
// among them) treat a closed connection as a client that left rather than as a fault to log.
var ErrAbusive error = abusiveError{}

type abusiveError struct{}

func (abusiveError) Error() string {
	return "h2guard: connection closed: the client reset too many streams right after opening them"
}

func (abusiveError) Is(target error) bool { return target == net.ErrClosed }

// goAwayTimeout bounds the end of an abusive connection: the wait for the server's output to
// reach a frame boundary, and then the client's time to read the GOAWAY. It is x/net's wait
// between its own GOAWAY and closing.
const goAwayTimeout = time.Second

// Wrap returns a net.Conn to hand to the HTTP/2 server instead of c, which must be
// positioned at the start of the client preface (TLS handshake done, nothing read). It
// has a ConnectionState method exactly when c has one, so a server that reads the TLS state
// from it still can, and does not take other connections for TLS. net/http speaks HTTP/2 on
// a handshaken connection only in its unencrypted mode, which needs the method hidden: the
// caller wraps the result once more and keeps the TLS state itself, as the proxy does.
//
// When the client is judged abusive (see the package comment), the guard calls onAbuse,
// writes a GOAWAY frame with ENHANCE_YOUR_CALM at the next frame boundary of the server's
// output, and closes c once the client had up to a second to read the GOAWAY. onAbuse may
// be nil; it is called at most once, from the goroutine reading the connection, which it
// holds up, so it should only count or log.
//
// Fields of cfg that are zero or negative take their defaults; check configuration with
// Config.Validate where it is loaded.
func Wrap(c net.Conn, cfg Config, onAbuse func()) net.Conn {
	return wrap(c, cfg, onAbuse, goAwayTimeout)
}

// wrap is Wrap with the timeout to end an abusive connection in.
func wrap(c net.Conn, cfg Config, onAbuse func(), timeout time.Duration) net.Conn {
	g := newGuard(c, cfg, onAbuse, timeout)
	if cs, ok := c.(connectionStater); ok {
		return &tlsGuard{guard: g, cs: cs}
	}
	return g
}

// connectionStater is what x/net's server looks for to fill Request.TLS.
type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

type tlsGuard struct {
	*guard
	cs connectionStater
}

func (t *tlsGuard) ConnectionState() tls.ConnectionState { return t.cs.ConnectionState() }

// guard is the wrapped connection. Only the net.Conn methods of the embedded Conn are
// promoted; Read, Write and Close are overridden.
type guard struct {
	net.Conn
	minStreams uint64
	window     int64 // PrematureWindow in nanoseconds
	onAbuse    func()
	timeout    time.Duration // goAwayTimeout but in tests
	start      time.Time     // origin of the open times in opens; monotonic

	// rmu serialises reads, which must be parsed in the order they arrive. The fields
	// after it belong to the reader.
	rmu       sync.Mutex
	in        scanner
	opens     opens
	lastID    uint32 // highest stream id the client opened
	opened    uint64
	premature uint64
	readErr   error // once set, every read returns it

	// condemned is set, under mu, when the client is judged abusive. Close reads it
	// without mu, because a Write blocked on a client that does not read holds mu, and
	// Close is how a server unblocks it.
	condemned atomic.Bool

	// mu serialises writes, so that the GOAWAY frame goes in between two of them. The
	// fields after it are guarded by mu.
	mu       sync.Mutex
	out      scanner
	goAwayID uint32        // the GOAWAY's last stream id
	sent     chan struct{} // made when condemned, closed once the GOAWAY has been written
	goAway   bool          // the GOAWAY has been written or its write has failed
}

func newGuard(c net.Conn, cfg Config, onAbuse func(), timeout time.Duration) *guard {
	cfg = cfg.withDefaults()
	g := &guard{
		Conn:       c,
		minStreams: uint64(cfg.MinStreams),
		window:     int64(cfg.PrematureWindow),
		onAbuse:    onAbuse,
		timeout:    timeout,
		start:      time.Now(),
	}
	g.in.skip = prefaceLen // the preface is not a frame; the server checks it
	return g
}

// Read reads from the client and follows its frames. Once the client is judged abusive it
// returns 0 and ErrAbusive, now and on every later call, and the rest of the client's
// bytes never reach the server.
func (g *guard) Read(p []byte) (int, error) {
	g.rmu.Lock()
	defer g.rmu.Unlock()
	if g.readErr != nil {
		return 0, g.readErr
	}
	n, err := g.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		k, header := g.in.next(b)
		b = b[k:]
		if header && g.inspect() {
			g.readErr = ErrAbusive
			g.abort()
			return 0, ErrAbusive
		}
	}
	return n, err
}

// inspect counts the frame whose header g.in holds, and reports whether the client has now
// earned being closed. Only a premature reset can raise the ratio, so only one leads to a
// verdict.
func (g *guard) inspect() bool {
	id := g.in.streamID()
	if id&1 == 0 {
		return false // the connection (0) or a server stream: not the client's to open
	}
	switch g.in.hdr[3] {
	case frameHeaders:
		if id > g.lastID { // otherwise trailers, or an error the server will answer
			g.lastID = id
			g.opened++
			g.opens.push(id, g.now(), g.window)
		}
	case frameRSTStream:
		at := g.opens.take(id)
		if at == resetMark || g.now()-at >= g.window {
			return false
		}
		g.premature++
		return g.opened >= g.minStreams && g.premature*2 > g.opened
	}
	return false
}

func (g *guard) now() int64 { return int64(time.Since(g.start)) }

// abort ends the connection of an abusive client: GOAWAY at the output's next frame
// boundary, then the client's bytes are read and dropped until it closes or the timeout
// ends. Dropping them rather than closing at once matters: closing a TCP socket with
// unread input sends a reset, and a reset throws away output not yet delivered, GOAWAY
// included. Called by the reader with rmu held.
func (g *guard) abort() {
	// The timer bounds every wait below. Closing the connection ends a Write blocked on a
	// client that does not read, and with it the wait for mu and for the GOAWAY.
	expired := make(chan struct{})
	t := time.AfterFunc(g.timeout, func() {
		g.Conn.Close()
		close(expired)
	})
	defer t.Stop()
	if g.onAbuse != nil {
		g.onAbuse()
	}
	sent := g.condemn()
	select {
	case <-sent:
		buf := make([]byte, 512)
		for {
			if _, err := g.Conn.Read(buf); err != nil {
				break
			}
		}
	case <-expired:
	}
	g.Conn.Close()
}

// condemn marks the client abusive and writes the GOAWAY at once if the server's output
// is at a frame boundary; otherwise the Write that reaches the next boundary writes it.
// The returned channel is closed once it is written.
func (g *guard) condemn() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.condemned.Store(true)
	g.goAwayID = g.lastID
	g.sent = make(chan struct{})
	if g.out.boundary() {
		g.writeGoAwayLocked()
	}
	return g.sent
}

// Write passes the server's output through and follows its frames. Once the client is
// condemned, it writes only up to the next frame boundary, then the GOAWAY, and fails
// with ErrAbusive for anything after.
func (g *guard) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.condemned.Load() {
		n, err := g.Conn.Write(p)
		g.out.advance(p[:n])
		return n, err
	}
	n := 0
	if !g.goAway && !g.out.boundary() {
		k := g.out.toBoundary(p)
		var err error
		n, err = g.Conn.Write(p[:k])
		g.out.advance(p[:n])
		if err != nil {
			return n, err
		}
	}
	if !g.goAway && g.out.boundary() {
		g.writeGoAwayLocked()
	}
	if n < len(p) {
		return n, ErrAbusive
	}
	return n, nil
}

// writeGoAwayLocked writes the GOAWAY frame. Its error is not kept: the connection is
// closed next either way. Called with mu held.
func (g *guard) writeGoAwayLocked() {
	var f [frameHeaderLen + 8]byte
	f[2] = 8 // payload length
	f[3] = frameGoAway
	binary.BigEndian.PutUint32(f[frameHeaderLen:], g.goAwayID)
	binary.BigEndian.PutUint32(f[frameHeaderLen+4:], errCodeEnhanceYourCalm)
	g.Conn.Write(f[:])
	g.goAway = true
	close(g.sent)
}

// Close closes the connection, except once the client is condemned: then the guard closes
// it as soon as the GOAWAY had its chance, and a server closing it on a failed write must
// not cut that short.
func (g *guard) Close() error {
	if g.condemned.Load() {
		return nil
	}
	return g.Conn.Close()
}
