package h1fast

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// parker is the epoll set that watches every plain connection of a server. A connection is
// added once, edge-triggered, for input and for the client's half-close; events only move
// the connection's state (conn.dataArrived, conn.clientGone), so no epoll_ctl call is made
// per request.
type parker struct {
	s     *Server
	epfd  int
	wakeR int // an eventfd that interrupts epoll_wait when the server closes
	mu    sync.Mutex
	conns map[int]*conn // by descriptor
	done  chan struct{}
	once  sync.Once
}

func newParker(s *Server) (*parker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(efd)
		return nil, err
	}
	p := &parker{s: s, epfd: epfd, wakeR: efd, conns: make(map[int]*conn), done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// watch adds a connection's socket to the set.
func (p *parker) watch(fd int, c *conn) error {
	p.mu.Lock()
	p.conns[fd] = c
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.conns, fd)
		p.mu.Unlock()
		return err
	}
	return nil
}

// unwatch removes a socket before its connection closes or changes hands.
func (p *parker) unwatch(fd int, c *conn) {
	p.mu.Lock()
	if p.conns[fd] == c {
		delete(p.conns, fd)
	}
	p.mu.Unlock()
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// readable tells, without taking anything, whether the socket has bytes to read.
func (p *parker) readable(fd int) bool {
	var b [1]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return n > 0 || err == nil // err nil with n 0: end of stream, which the read will report
}

// sweepEvery is how often parked connections are checked against IdleTimeout.
const sweepEvery = time.Second

func (p *parker) loop() {
	defer func() {
		_ = unix.Close(p.epfd)
		_ = unix.Close(p.wakeR)
	}()
	events := make([]unix.EpollEvent, 256)
	lastSweep := time.Now()
	for {
		n, err := unix.EpollWait(p.epfd, events, int(sweepEvery/time.Millisecond))
		if err != nil && err != unix.EINTR {
			p.s.Logger.Error("epoll_wait failed; parked connections are closed", "error", err)
			p.closeAll()
			return
		}
		for i := 0; i < n; i++ {
			ev := events[i]
			fd := int(ev.Fd)
			if fd == p.wakeR {
				select {
				case <-p.done:
					p.closeAll()
					return
				default:
				}
				continue
			}
			p.mu.Lock()
			c := p.conns[fd]
			p.mu.Unlock()
			if c == nil {
				continue
			}
			if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				c.clientGone()
			} else {
				c.dataArrived()
			}
		}
		if now := time.Now(); now.Sub(lastSweep) >= sweepEvery {
			lastSweep = now
			p.sweep(now)
		}
	}
}

// sweep closes connections parked for longer than IdleTimeout.
func (p *parker) sweep(now time.Time) {
	limit := p.s.IdleTimeout
	if limit <= 0 {
		return
	}
	cutoff := now.Add(-limit).UnixNano()
	var old []*conn
	p.mu.Lock()
	for _, c := range p.conns {
		if c.state.Load() == stParked && c.idleAt.Load() < cutoff {
			old = append(old, c)
		}
	}
	p.mu.Unlock()
	for _, c := range old {
		c.closeIfIdle()
	}
}

// closeAll closes every parked connection; the loop has ended.
func (p *parker) closeAll() {
	p.mu.Lock()
	var all []*conn
	for _, c := range p.conns {
		all = append(all, c)
	}
	p.mu.Unlock()
	for _, c := range all {
		c.closeIfIdle()
	}
}

// close stops the loop. Safe on a nil parker and more than once.
func (p *parker) close() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		close(p.done)
		var one = [8]byte{1}
		_, _ = unix.Write(p.wakeR, one[:])
	})
}
