//go:build linux

package rawsock

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a TCP connection whose Read and Write are raw system calls; everything else is the
// TCPConn's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn
}

// Wrap returns c as a Conn when it is a TCP connection, and c itself otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &Conn{TCPConn: tc, rc: rc}
}

// NetConn returns the TCP connection, for code that looks under wrappers (splice(2)).
func (c *Conn) NetConn() net.Conn { return c.TCPConn }

// op is one read or write in progress; pooled, with its function bound once, so that handing
// it to the raw connection allocates nothing.
type op struct {
	p     []byte
	n     int
	errno syscall.Errno
	read  func(fd uintptr) bool
	write func(fd uintptr) bool
}

var ops = sync.Pool{New: func() any {
	o := new(op)
	o.read, o.write = o.doRead, o.doWrite
	return o
}}

// doRead reads once; false when nothing is there yet (the raw connection then waits for it).
func (o *op) doRead(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&o.p[0])), uintptr(len(o.p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			o.n = int(r)
		default:
			o.errno = e
		}
		return true
	}
}

// doWrite writes all of p; false when the socket's buffer is full (the raw connection then
// waits until it has room).
func (o *op) doWrite(fd uintptr) bool {
	for o.n < len(o.p) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&o.p[o.n])), uintptr(len(o.p)-o.n))
		switch e {
		case 0:
			o.n += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			o.errno = e
			return true
		}
	}
	return true
}

func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	o := ops.Get().(*op)
	o.p = p
	err := c.rc.Read(o.read)
	n, errno := o.n, o.errno
	o.p, o.n, o.errno = nil, 0, 0
	ops.Put(o)
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	o := ops.Get().(*op)
	o.p = p
	err := c.rc.Write(o.write)
	n, errno := o.n, o.errno
	o.p, o.n, o.errno = nil, 0, 0
	ops.Put(o)
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// opError reports err as net.TCPConn would: the raw connection's own error (a deadline, a
// closed connection) without its "raw-read" operation, under op.
func (c *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
