package gossip

// Rebroadcast makes every change this node learns from a peer travel on: memberlist sends a
// node's own broadcasts to only a few members (RetransmitMult × log N transmissions), so in a
// larger cluster a pin written on one node would otherwise reach the rest only at the next
// push/pull, up to 30 s later. Entries this node wrote itself are broadcast by their writer
// (Sessions.Put), and a node re-sends an entry only when merging it changed its state, so the
// epidemic ends once every node has it.
func Rebroadcast(store *Store, b Broadcaster, self string) {
	store.OnChange(func(e Entry) {
		if e.Node == self {
			return
		}
		msg, err := AppendEntry(nil, e)
		if err != nil {
			return // the store accepted it, so it encodes; nothing to send otherwise
		}
		_ = b.Broadcast(msg) // a refused broadcast is counted by the node; push/pull repairs it
	})
}
