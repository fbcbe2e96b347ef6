package gossip

// Rebroadcast makes every health and drain change this node learns from a peer travel on:
// memberlist sends a node's own broadcasts to only a few members (RetransmitMult × log N
// transmissions), so in a larger cluster an entry written on one node would otherwise reach the
// rest only at the next push/pull, up to 30 s later. Entries this node wrote itself are broadcast
// by their writer, and a node re-sends an entry only when merging it changed its state, so the
// epidemic ends once every node has it. Session pins are left out: their writer sends them to
// every member itself (fanout).
func Rebroadcast(store *Store, b Broadcaster, self string) {
	store.OnChange(func(e Entry) {
		// Session pins travel from their writer straight to every member (fanout); sending
		// them on again would multiply the heaviest traffic by the cluster size.
		if e.Node == self || e.Kind == KindSession {
			return
		}
		msg, err := AppendEntry(nil, e)
		if err != nil {
			return // the store accepted it, so it encodes; nothing to send otherwise
		}
		_ = b.Broadcast(msg) // a refused broadcast is counted by the node; push/pull repairs it
	})
}
