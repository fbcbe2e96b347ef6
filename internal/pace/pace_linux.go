package pace

import (
	"errors"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// waker is a non-blocking pipe whose read end waits in the runtime's poller.
type waker struct {
	r     *os.File
	rc    syscall.RawConn
	w     int
	armed bool
	buf   [64]byte
	read  func(fd uintptr) bool // w.onReadable, made once so that yield does not allocate
}

func (w *waker) open() error {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return err
	}
	// A non-blocking descriptor: os.NewFile registers it with the runtime's poller.
	w.r, w.w = os.NewFile(uintptr(fds[0]), "pace"), fds[1]
	rc, err := w.r.SyscallConn()
	if err == nil {
		// Fails when the runtime's poller did not take the descriptor.
		err = w.r.SetReadDeadline(time.Time{})
	}
	if err != nil {
		_ = w.r.Close()
		_ = unix.Close(w.w)
		return err
	}
	w.rc = rc
	w.read = w.onReadable
	return nil
}

// yield writes a byte to the pipe after the runtime has started watching its read end, and
// waits for the poller to see it: the goroutine parks, the scheduler runs what is queued,
// then polls the network, which readies this goroutine and every one with input, in turn.
func (w *waker) yield() {
	w.armed = false
	_ = w.rc.Read(w.read)
}

func (w *waker) onReadable(fd uintptr) bool {
	if !w.armed {
		w.armed = true
		if _, err := unix.Write(w.w, w.buf[:1]); err != nil {
			return true // full or closed: do not wait for a byte that may not come
		}
		return false
	}
	for {
		_, err := unix.Read(int(fd), w.buf[:])
		switch {
		case err == unix.EINTR:
			continue
		case errors.Is(err, unix.EAGAIN):
			return false
		}
		return true
	}
}

func (w *waker) close() error {
	return errors.Join(w.r.Close(), unix.Close(w.w))
}
