//go:build linux

package splice

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Available reports whether Copy splices on this system.
const Available = true

// pipeSize is what a pooled pipe is asked to hold (F_SETPIPE_SZ): each step moves up to
// this much. The kernel may refuse (a user's pipe pages are capped by
// fs.pipe-user-pages-soft); the pipe then keeps its default 64 KiB.
const pipeSize = 256 << 10

// pipe is a pooled pipe's two ends. A cleanup closes the descriptors of a pipe the pool
// drops.
type pipe struct {
	r, w    int
	size    int
	cleanup runtime.Cleanup
}

// close closes a pipe that must not be used again (it may hold bytes of a failed copy).
func (p *pipe) close() {
	p.cleanup.Stop()
	closeFDs([2]int{p.r, p.w})
}

func newPipe() *pipe {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil
	}
	p := &pipe{r: fds[0], w: fds[1], size: 64 << 10}
	if sz, err := unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, pipeSize); err == nil {
		p.size = sz
	} else if sz, err := unix.FcntlInt(uintptr(p.w), unix.F_GETPIPE_SZ, 0); err == nil {
		p.size = sz
	}
	p.cleanup = runtime.AddCleanup(p, closeFDs, fds)
	return p
}

func closeFDs(fds [2]int) {
	_ = unix.Close(fds[0])
	_ = unix.Close(fds[1])
}

func (c *Copier) getPipe() *pipe {
	if p, ok := c.pipes.Get().(*pipe); ok {
		return p
	}
	return newPipe()
}

// spliceFlags: the pipe ends are non-blocking too (EAGAIN then says the socket is not ready,
// since every step empties the pipe before the next fills it), and pages move where they can.
const spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK

func (c *Copier) copy(dst, src *net.TCPConn, n int64) (written int64, rerr, werr error) {
	srcRaw, err := src.SyscallConn()
	if err != nil {
		return 0, err, nil
	}
	dstRaw, err := dst.SyscallConn()
	if err != nil {
		return 0, nil, err
	}
	p := c.getPipe()
	if p == nil {
		return 0, ErrUnsupported, nil
	}
	defer func() {
		if werr != nil {
			p.close() // bytes may be left in it, which the next copy would send to its socket
			return
		}
		c.pipes.Put(p)
	}()
	var moved int64      // result of one splice call
	var serr error       // its error
	var inPipe, want int // bytes waiting in the pipe; what one step asks for
	fill := func(fd uintptr) bool {
		for {
			moved, serr = unix.Splice(int(fd), nil, p.w, nil, want, spliceFlags)
			if serr != unix.EINTR {
				return serr != unix.EAGAIN
			}
		}
	}
	drain := func(fd uintptr) bool {
		for {
			moved, serr = unix.Splice(p.r, nil, int(fd), nil, inPipe, spliceFlags)
			if serr != unix.EINTR {
				return serr != unix.EAGAIN
			}
		}
	}
	for written < n {
		want = int(min(n-written, int64(p.size)))
		if err := srcRaw.Read(fill); err != nil {
			return written, opError("read", src, unwrapOp(err)), nil
		}
		if serr != nil {
			return written, opError("read", src, os.NewSyscallError("splice", serr)), nil
		}
		if moved == 0 {
			return written, io.ErrUnexpectedEOF, nil
		}
		inPipe = int(moved)
		for inPipe > 0 {
			if err := dstRaw.Write(drain); err != nil {
				return written, nil, opError("write", dst, unwrapOp(err))
			}
			if serr != nil {
				return written, nil, opError("write", dst, os.NewSyscallError("splice", serr))
			}
			if moved == 0 {
				return written, nil, opError("write", dst, io.ErrShortWrite)
			}
			inPipe -= int(moved)
			written += moved
			c.bytes.Add(moved)
		}
	}
	return written, nil, nil
}

// opError reports a failure as a read or write of c does, so that callers tell timeouts,
// resets and closed connections apart as they do for Read and Write.
func opError(op string, c *net.TCPConn, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// unwrapOp takes the cause out of a RawConn's "raw-read"/"raw-write" error (a deadline that
// passed, a closed connection).
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}
