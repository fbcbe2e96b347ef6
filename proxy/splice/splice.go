package splice

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// MinLength is the smallest body worth a kernel copy. Below it the setup (the descriptors'
// raw access, the pipe, a write of the head of its own, two splice calls per step) costs
// about what copying the bytes through a buffer costs or more: through the proxy's fast path
// (BenchmarkLargeBody in package proxy), a 64 KiB response took 1.2 times the CPU spliced,
// a 128 KiB one 0.6 times; request bodies gained from 32 KiB.
const MinLength = 128 << 10

// ErrUnsupported is Copy's read error where splice(2) is not available.
var ErrUnsupported = errors.New("splice: not supported on this system")

// Copier copies with a pool of pipes, and counts what it moved. The zero value is ready.
type Copier struct {
	pipes sync.Pool // *pipe
	bytes atomic.Int64
}

// Bytes is the number of bytes the Copier has moved from one socket to another, copies
// under way included.
func (c *Copier) Bytes() int64 { return c.bytes.Load() }

// Copy moves the next n bytes read from src to dst, and returns how many reached dst. A read
// failure (src closed or reset, its read deadline passed, or io.ErrUnexpectedEOF when src
// ended before n bytes) is returned as rerr, after every byte read before it was written; a
// write failure as werr. At most one of them is set.
func (c *Copier) Copy(dst, src *net.TCPConn, n int64) (written int64, rerr, werr error) {
	return c.copy(dst, src, n)
}

// TCPConn finds the TCP socket under c's wrappers (each with a NetConn method, as
// *tls.Conn and the HTTP/1 guard have), for writing to it directly. ok is false for TLS,
// whose bytes on the wire are not the body's, and for anything but TCP.
func TCPConn(c net.Conn) (*net.TCPConn, bool) {
	for range 8 {
		switch x := c.(type) {
		case *net.TCPConn:
			return x, true
		case *tls.Conn:
			return nil, false
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil, false
		}
	}
	return nil, false
}
