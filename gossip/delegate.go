package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// inbound is one unit of work for the merge worker: a broadcast (full=false) or a peer's full
// state from push/pull (full=true). data is our own copy; memberlist reuses its buffers.
type inbound struct {
	full bool
	sync bool // a catch-up message (syncMarker) for a Reconciler
	data []byte
}

// outbound is catch-up replies for one peer, sent by the node's catch-up sender.
type outbound struct {
	peer string
	msgs [][]byte
}

// delegate implements memberlist.Delegate and memberlist.EventDelegate. memberlist calls these
// from its packet and stream handlers, some with its node lock held, so every method here returns
// quickly: incoming data is copied onto a bounded queue and merged by one worker goroutine; when
// the queue is full the message is dropped and counted, never waited for.
//
// MergeRemoteState goes through the same queue rather than calling State.MergeFull directly: the
// push/pull stream handler is then never held up by a large merge, and deltas and full states
// reach the State in arrival order from a single goroutine. A full state dropped on overflow is
// repaired by the next push/pull (every PushPullInterval) and by later broadcasts.
type delegate struct {
	state State
	// urgent and bulk are the outgoing queues; every packet is filled from urgent first.
	urgent, bulk *memberlist.TransmitLimitedQueue
	incoming     chan inbound
	// self is this node's name; replies names where a Reconciler's answers go.
	self         string
	replies      chan outbound
	meta         func() []byte
	maxPushBytes int
	metrics      *nodeMetrics
	logger       *slog.Logger
	// keepDeparted is how long a dead or left node is remembered: shown as departed, counted in
	// the members gauge and retried by the reconnect loop (Config.ReconnectTimeout).
	keepDeparted time.Duration

	mu sync.Mutex
	// members are copies of the live nodes, kept from the event callbacks: the *Node values that
	// memberlist.Members returns are mutated by memberlist after it releases its lock, so reading
	// them races.
	members  map[string]memberlist.Node
	departed map[string]departure
}

// departure is a node that left or was declared dead, as it was last seen, and since when.
type departure struct {
	node memberlist.Node
	at   time.Time
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
)

// NodeMeta returns our region, version and draining flag. Config.Validate guarantees the encoding
// fits memberlist.MetaMaxSize; memberlist panics on longer metadata, so a too-long value is
// logged and replaced by none rather than handed over.
func (d *delegate) NodeMeta(limit int) []byte {
	meta := d.meta()
	if len(meta) > limit {
		d.logger.Error("node metadata over memberlist limit, not sent", "bytes", len(meta), "limit", limit)
		return nil
	}
	return meta
}

// NotifyMsg queues one received broadcast, or fan-out batch, for the merge worker. A batch is
// merged as a small full state.
func (d *delegate) NotifyMsg(msg []byte) {
	if len(msg) == 0 {
		return
	}
	switch msg[0] {
	case batchMarker:
		d.enqueue(inbound{full: true, data: append([]byte(nil), msg[1:]...)})
		return
	case entriesMarker:
		d.metrics.catchup.WithLabelValues(dirReceived, "entries").Add(float64(len(msg)))
		d.enqueue(inbound{full: true, data: append([]byte(nil), msg[1:]...)})
		return
	case syncMarker:
		d.metrics.catchup.WithLabelValues(dirReceived, catchupPart(msg)).Add(float64(len(msg)))
		d.enqueue(inbound{sync: true, data: append([]byte(nil), msg...)})
		return
	}
	d.enqueue(inbound{data: append([]byte(nil), msg...)})
}

// GetBroadcasts hands memberlist the pending broadcasts that fit in its packet, urgent ones
// first. memberlist's queue sends the newest of the least-sent messages first, so with one
// queue a steady stream of new session pins would starve an older drain or health entry.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	out := d.urgent.GetBroadcasts(overhead, limit)
	for _, m := range out {
		limit -= overhead + len(m)
	}
	return append(out, d.bulk.GetBroadcasts(overhead, limit)...)
}

// LocalState is our side of a push/pull exchange: a digest when the State is a Reconciler,
// else the full state.
func (d *delegate) LocalState(join bool) []byte {
	var data []byte
	if r, ok := d.state.(Reconciler); ok {
		data = r.Digest(d.self)
		d.metrics.catchup.WithLabelValues(dirSent, "digest").Add(float64(len(data)))
	} else {
		data = d.state.FullState(d.maxPushBytes)
	}
	if len(data) > d.maxPushBytes {
		// The State broke its contract; sending it would make peers refuse the whole exchange.
		d.metrics.messages.WithLabelValues(dirSent, resultError).Inc()
		d.logger.Error("full state over push/pull cap, not sent", "bytes", len(data), "cap", d.maxPushBytes)
		return nil
	}
	d.metrics.pushPullBytes.WithLabelValues(dirSent).Add(float64(len(data)))
	return data
}

// MergeRemoteState queues a peer's full state for the merge worker.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	if len(buf) == 0 {
		return
	}
	d.metrics.pushPullBytes.WithLabelValues(dirReceived).Add(float64(len(buf)))
	if buf[0] == syncMarker {
		d.metrics.catchup.WithLabelValues(dirReceived, "digest").Add(float64(len(buf)))
	}
	if len(buf) > d.maxPushBytes {
		d.metrics.messages.WithLabelValues(dirReceived, resultError).Inc()
		return
	}
	d.enqueue(inbound{full: buf[0] != syncMarker, sync: buf[0] == syncMarker, data: append([]byte(nil), buf...)})
}

func (d *delegate) enqueue(in inbound) {
	select {
	case d.incoming <- in:
	default:
		d.metrics.messages.WithLabelValues(dirReceived, resultDropped).Inc()
	}
}

// work feeds queued messages to the State until ctx ends. Messages still queued then are
// discarded: the node is leaving and its state is about to be dropped anyway.
func (d *delegate) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-d.incoming:
			var err error
			switch {
			case in.sync:
				err = d.reconcile(in.data)
			case in.full:
				err = d.state.MergeFull(in.data)
			default:
				err = d.state.MergeDelta(in.data)
			}
			if err != nil {
				d.metrics.messages.WithLabelValues(dirReceived, resultError).Inc()
				// Debug: a peer sending garbage must not be able to flood our logs.
				d.logger.Debug("merge failed", "full", in.full, "bytes", len(in.data), "err", err)
				continue
			}
			d.metrics.messages.WithLabelValues(dirReceived, resultOK).Inc()
		}
	}
}

// reconcile answers a catch-up message and queues the replies for the sender; a full
// sender queue drops them (counted), and the next push/pull finds the difference again.
func (d *delegate) reconcile(msg []byte) error {
	r, ok := d.state.(Reconciler)
	if !ok {
		return fmt.Errorf("gossip: catch-up message but the state keeps no digest")
	}
	peer, replies, err := r.Reconcile(d.self, msg)
	if err != nil || len(replies) == 0 {
		return err
	}
	select {
	case d.replies <- outbound{peer: peer, msgs: replies}:
	default:
		d.metrics.messages.WithLabelValues(dirSent, resultDropped).Add(float64(len(replies)))
	}
	return nil
}

// catchupPart names a catch-up message for veloflux_gossip_catchup_bytes_total.
func catchupPart(msg []byte) string {
	switch {
	case len(msg) > 0 && msg[0] == entriesMarker:
		return "entries"
	case len(msg) > 1 && msg[1] == syncDigest:
		return "digest"
	}
	return "ranges"
}

// member returns a copy of the live member named name.
func (d *delegate) member(name string) (memberlist.Node, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.members[name]
	return n, ok
}

// NotifyJoin, NotifyLeave and NotifyUpdate run under memberlist's node lock: they copy the node
// into our own member table and return.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.record(n) }

func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.record(n) }

func (d *delegate) NotifyLeave(n *memberlist.Node) {
	c := copyNode(n)
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.members, n.Name)
	d.departed[n.Name] = departure{node: c, at: time.Now()}
}

// copyNode copies n deeply: memberlist keeps mutating the original.
func copyNode(n *memberlist.Node) memberlist.Node {
	c := *n
	c.Addr = slices.Clone(n.Addr)
	c.Meta = slices.Clone(n.Meta)
	return c
}

func (d *delegate) record(n *memberlist.Node) {
	c := copyNode(n)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.members[n.Name] = c
	delete(d.departed, n.Name)
}

func (d *delegate) forgetMembers() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.members)
	clear(d.departed)
}

// liveMembers returns copies of the live members.
func (d *delegate) liveMembers() []memberlist.Node {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]memberlist.Node, 0, len(d.members))
	for _, n := range d.members {
		out = append(out, n)
	}
	return out
}

// departedMembers returns the departed nodes still remembered, forgetting older ones.
func (d *delegate) departedMembers() []departure {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pruneLocked(time.Now())
	out := make([]departure, 0, len(d.departed))
	for _, dep := range d.departed {
		out = append(out, dep)
	}
	return out
}

func (d *delegate) pruneLocked(now time.Time) {
	for name, dep := range d.departed {
		if now.Sub(dep.at) > d.keepDeparted {
			delete(d.departed, name)
		}
	}
}

// memberCounts counts members by state for the gauge. Dead and left nodes count as departed as
// long as they are remembered.
func (d *delegate) memberCounts() map[string]int {
	counts := make(map[string]int, 2)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pruneLocked(time.Now())
	counts[memberAlive] = len(d.members)
	counts[memberDeparted] = len(d.departed)
	return counts
}

// broadcast is one queued outgoing message. Messages are opaque here, so none invalidates another;
// the State's merge makes re-delivery and reordering harmless.
type queuedBroadcast struct{ msg []byte }

func (b queuedBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b queuedBroadcast) Message() []byte                       { return b.msg }
func (b queuedBroadcast) Finished()                             {}
