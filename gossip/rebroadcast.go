package gossip

// Spreader is a Broadcaster that can also pass a session move on through its direct fan-out
// alone (Node). Rebroadcast uses it in clusters too large for a move's writer to reach every
// member itself.
type Spreader interface {
	Broadcaster
	// MustSpread reports whether moves learnt from a peer must be passed on: the cluster has
	// more members than the writer sends to (see spreadDegree).
	MustSpread() bool
	// Spread sends msg through the fan-out to spreadDegree random members. It must not block.
	Spread(msg []byte)
}

// Rebroadcast makes every health and drain change this node learns from a peer travel on:
// memberlist sends a node's own broadcasts to only a few members (RetransmitMult × log N
// transmissions), so in a larger cluster an entry written on one node would otherwise reach the
// rest only at the next push/pull, up to 30 s later. Entries this node wrote itself are broadcast
// by their writer, and a node re-sends an entry only when merging it changed its state, so the
// epidemic ends once every node has it.
//
// Session moves travel from their writer straight to every member (fanout) in a cluster of up
// to fullFanoutMax other members, and are not sent on. In a larger one the writer sends them to
// spreadDegree(n) random members, about ln n + 4, and, when b is a Spreader, every member that
// learns a move passes it on once the same way: each member sends each move to about ln n
// others, not n, and a move reaches every member in a few hops.
func Rebroadcast(store *Store, b Broadcaster, self string) {
	sp, _ := b.(Spreader)
	store.OnChange(func(e Entry) {
		if e.Node == self {
			return
		}
		if e.Kind == KindSession && (sp == nil || !sp.MustSpread()) {
			return
		}
		msg, err := AppendEntry(nil, e)
		if err != nil {
			return // the store accepted it, so it encodes; nothing to send otherwise
		}
		if e.Kind == KindSession {
			sp.Spread(msg)
			return
		}
		_ = b.Broadcast(msg) // a refused broadcast is counted by the node; push/pull repairs it
	})
}
