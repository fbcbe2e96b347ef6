package h1fast

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// parker is the epoll set that watches every plain connection of a server. A connection is
// added once, edge-triggered, for input and for the client's half-close; events only move
// the connection's state (conn.dataArrived, conn.clientGone), so no epoll_ctl call is made
// per request.
//
// The set's own descriptor waits in the Go runtime's poller, like any socket: the loop
// collects events with a non-blocking epoll_wait and parks its goroutine when there are none.
// A blocking epoll_wait would hold an OS thread in a system call, and with one CPU for the
// process every wake-up would pass the processor between threads (the runtime's monitor
// taking it from the blocked thread, the thread taking it back), which cost more than the
// request it announces.
type parker struct {
	s     *Server
	epf   *os.File        // the epoll descriptor, registered with the runtime's poller
	rc    syscall.RawConn // epf's, through which every use of the descriptor goes
	mu    sync.Mutex
	conns []*conn // indexed by descriptor: 8 bytes a slot, where a map took about 60 an entry
	n     int     // non-nil entries of conns
	once  sync.Once
	mem   *memReturner // only the loop uses it
}

func newParker(s *Server) (*parker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// Non-blocking, so that os.NewFile registers it with the runtime's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		return nil, err
	}
	p := &parker{s: s, epf: os.NewFile(uintptr(epfd), "epoll"), mem: newMemReturner(s.ReturnMemoryEvery)}
	if s.freeOSMemory != nil {
		p.mem.free = s.freeOSMemory
	}
	rc, err := p.epf.SyscallConn()
	if err == nil {
		// Fails when the runtime's poller did not take the descriptor.
		err = p.epf.SetReadDeadline(time.Time{})
	}
	if err != nil {
		_ = p.epf.Close()
		return nil, err
	}
	p.rc = rc
	go p.loop()
	return p, nil
}

// watch adds a connection's socket to the set. The Server calls it under its own lock, so
// that Close finds every connection either here or in its own set.
func (p *parker) watch(fd int, c *conn) error {
	p.mu.Lock()
	if fd >= len(p.conns) {
		grown := make([]*conn, max(2*len(p.conns), fd+1, 64))
		copy(grown, p.conns)
		p.conns = grown
	}
	p.conns[fd] = c
	p.n++
	p.mu.Unlock()
	if err := p.ctl(unix.EPOLL_CTL_ADD, fd); err != nil {
		p.forget(fd, c)
		return err
	}
	return nil
}

// unwatch removes a socket before its connection closes or changes hands.
func (p *parker) unwatch(fd int, c *conn) {
	p.forget(fd, c)
	_ = p.ctl(unix.EPOLL_CTL_DEL, fd)
}

func (p *parker) forget(fd int, c *conn) {
	p.mu.Lock()
	if fd < len(p.conns) && p.conns[fd] == c {
		p.conns[fd] = nil
		p.n--
	}
	p.mu.Unlock()
}

// lookup returns the connection of a descriptor, nil when none is watched.
func (p *parker) lookup(fd int) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fd < 0 || fd >= len(p.conns) {
		return nil
	}
	return p.conns[fd]
}

// appendConns appends the watched connections to all. Safe on a nil parker.
func (p *parker) appendConns(all []*conn) []*conn {
	if p == nil {
		return all
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if c != nil {
			all = append(all, c)
		}
	}
	return all
}

// count returns how many connections the set watches. Safe on a nil parker.
func (p *parker) count() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// ctl changes the set; after close it fails rather than reach a descriptor that may have
// been reused.
func (p *parker) ctl(op, fd int) error {
	var err error
	cerr := p.rc.Control(func(epfd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
		err = unix.EpollCtl(int(epfd), op, fd, &ev)
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// readable tells, without taking anything, whether the socket has bytes to read.
func (p *parker) readable(fd int) bool {
	var b [1]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return n > 0 || err == nil // err nil with n 0: end of stream, which the read will report
}

// sweepEvery is how often parked connections are checked against IdleTimeout, and idle
// serving goroutines reaped.
const sweepEvery = time.Second

func (p *parker) loop() {
	defer p.mem.wait()
	defer p.closeAll()
	events := make([]unix.EpollEvent, 256)
	var failed error
	drain := func(fd uintptr) bool {
		for {
			n, err := epollPoll(int(fd), events)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				failed = err
				return true
			}
			p.dispatch(events[:n])
			if n < len(events) {
				return false // nothing more: wait in the runtime's poller
			}
		}
	}
	for {
		_ = p.epf.SetReadDeadline(time.Now().Add(sweepEvery))
		err := p.rc.Read(drain)
		switch {
		case failed != nil:
			p.s.Logger.Error("epoll_wait failed; parked connections are closed", "error", failed)
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			now := time.Now()
			p.sweep(now)
			busy, reaped := p.s.reapWorkers()
			p.mem.afterSweep(now, busy, reaped, p.returned)
		case err != nil:
			return // closed
		}
	}
}

// dispatch moves the connections that events name.
func (p *parker) dispatch(events []unix.EpollEvent) {
	for i := range events {
		ev := &events[i]
		c := p.lookup(int(ev.Fd))
		if c == nil {
			continue
		}
		if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.clientGone()
		} else {
			c.dataArrived()
		}
	}
}

// returned records a return of freed memory to the system.
func (p *parker) returned(slack uint64, took time.Duration) {
	p.s.parkStats.MemoryReturns.Add(1)
	p.s.Logger.Debug("returned freed memory to the system", "slack_bytes", slack, "took", took.String())
}

// sweep closes connections parked for longer than IdleTimeout. It collects only the expired
// ones: a copy of the whole table every second would be garbage the size of the table.
func (p *parker) sweep(now time.Time) {
	limit := p.s.IdleTimeout
	if limit <= 0 {
		return
	}
	cutoff := now.Add(-limit).UnixNano()
	var expired []*conn
	p.mu.Lock()
	for _, c := range p.conns {
		if c != nil && c.state.Load() == stParked && c.idleAt.Load() < cutoff {
			expired = append(expired, c)
		}
	}
	p.mu.Unlock()
	for _, c := range expired {
		c.closeIfIdle()
	}
}

// closeAll closes every parked connection; the loop has ended.
func (p *parker) closeAll() {
	for _, c := range p.appendConns(nil) {
		c.closeIfIdle()
	}
}

// close stops the loop. Safe on a nil parker and more than once.
func (p *parker) close() {
	if p == nil {
		return
	}
	p.once.Do(func() { _ = p.epf.Close() })
}

// epollPoll collects the set's ready events without waiting, as a raw system call: one that
// cannot block need not tell the runtime, whose monitor thread it would otherwise wake when
// every processor was idle (see internal/rawsock).
func epollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}
