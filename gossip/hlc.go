package gossip

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// DefaultMaxDrift is how far a remote timestamp may run ahead of our physical clock before it is
// rejected. One minute tolerates NTP hiccups; a node further off would otherwise win every
// last-writer-wins race for as long as its clock stays wrong.
const DefaultMaxDrift = time.Minute

// ErrClockDrift reports a remote timestamp too far ahead of the local physical clock. Callers
// count it: a steady rate means a peer's clock needs fixing.
var ErrClockDrift = errors.New("gossip: remote timestamp too far ahead of local clock")

// Timestamp is a hybrid logical clock reading: physical wall time in Unix nanoseconds plus a
// logical counter that orders events sharing (or lagging behind) the same wall time.
type Timestamp struct {
	WallNanos int64
	Logical   uint32
}

// Compare returns -1, 0 or +1 as t is before, equal to or after o.
func (t Timestamp) Compare(o Timestamp) int {
	switch {
	case t.WallNanos < o.WallNanos:
		return -1
	case t.WallNanos > o.WallNanos:
		return 1
	case t.Logical < o.Logical:
		return -1
	case t.Logical > o.Logical:
		return 1
	}
	return 0
}

// String renders the stamp for logs and test failures.
func (t Timestamp) String() string {
	return fmt.Sprintf("%d.%d", t.WallNanos, t.Logical)
}

// Clock is a hybrid logical clock (Kulkarni et al.): its readings never go backwards, stay close
// to physical time, and after Observe exceed every stamp seen from peers, so a local write made
// after receiving a remote one always wins the last-writer-wins comparison. Safe for concurrent use.
type Clock struct {
	now      func() time.Time
	maxDrift int64

	mu   sync.Mutex
	last Timestamp
}

// NewClock returns a clock reading physical time from now (time.Now when nil) and rejecting
// remote stamps more than maxDrift ahead of it (DefaultMaxDrift when <= 0).
func NewClock(now func() time.Time, maxDrift time.Duration) *Clock {
	if now == nil {
		now = time.Now
	}
	if maxDrift <= 0 {
		maxDrift = DefaultMaxDrift
	}
	return &Clock{now: now, maxDrift: maxDrift.Nanoseconds()}
}

// physical is the injected wall clock; the store uses it for expiry so tests control both.
func (c *Clock) physical() time.Time { return c.now() }

// Now returns a timestamp strictly greater than every one this clock returned or observed before.
func (c *Clock) Now() Timestamp {
	pt := c.now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if pt > c.last.WallNanos {
		c.last = Timestamp{WallNanos: pt}
	} else {
		c.last = c.last.next()
	}
	return c.last
}

// Observe folds a remote stamp into the clock so later Now readings exceed it. A stamp more than
// the max drift ahead of physical time is refused with ErrClockDrift and leaves the clock
// untouched: adopting it would drag every later local write into the future.
func (c *Clock) Observe(remote Timestamp) error {
	pt := c.now().UnixNano()
	if remote.WallNanos > pt && remote.WallNanos-pt > c.maxDrift {
		return fmt.Errorf("%w: remote %s is %s ahead", ErrClockDrift, remote,
			time.Duration(remote.WallNanos-pt))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := max(c.last.WallNanos, remote.WallNanos, pt)
	switch {
	case wall == c.last.WallNanos && wall == remote.WallNanos:
		c.last = Timestamp{WallNanos: wall, Logical: max(c.last.Logical, remote.Logical)}.next()
	case wall == c.last.WallNanos:
		c.last = c.last.next()
	case wall == remote.WallNanos:
		c.last = remote.next()
	default:
		c.last = Timestamp{WallNanos: wall}
	}
	return nil
}

// next is the smallest stamp after t. When the logical counter would wrap, the wall part moves
// one nanosecond instead: ordering is what matters, and a nanosecond of skew is harmless.
func (t Timestamp) next() Timestamp {
	if t.Logical == math.MaxUint32 {
		return Timestamp{WallNanos: t.WallNanos + 1}
	}
	return Timestamp{WallNanos: t.WallNanos, Logical: t.Logical + 1}
}
