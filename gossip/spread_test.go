package gossip

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// simNet is a simulated network of n nodes, each a real Store with Rebroadcast wired to a
// simBroadcaster: the nodes decide what to send and to whom exactly as Node does (spreadDegree,
// pickPeers, Rebroadcast), and the network delivers each message after the fan-out's batching
// wait (uniform up to fanoutInterval) and a one-way latency, or loses it. Time is virtual, so
// the simulation of 100 nodes runs in a fraction of a second and the same on a loaded machine.
type simNet struct {
	t       testing.TB
	rng     *rand.Rand
	latency time.Duration
	loss    float64
	nodes   []*simNode
	now     time.Duration
	events  simEvents
	sends   int
}

type simNode struct {
	id    int
	store *Store
	net   *simNet
	// got records when each move first reached this node.
	got map[string]time.Duration
}

type simEvent struct {
	at  time.Duration
	to  int
	msg []byte
}

type simEvents []simEvent

func (e simEvents) Len() int           { return len(e) }
func (e simEvents) Less(i, j int) bool { return e[i].at < e[j].at }
func (e simEvents) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *simEvents) Push(x any)        { *e = append(*e, x.(simEvent)) }
func (e *simEvents) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

func newSimNet(t testing.TB, n int, latency time.Duration, loss float64, seed uint64) *simNet {
	s := &simNet{t: t, rng: rand.New(rand.NewPCG(seed, seed+1)), latency: latency, loss: loss}
	for i := range n {
		st, err := NewStore(StoreConfig{NodeName: fmt.Sprintf("n%d", i), MaxEntriesPerKind: 1 << 20,
			TombstoneTTL: time.Hour, ExpireInterval: time.Hour}, NewClock(nil, 0))
		if err != nil {
			t.Fatal(err)
		}
		node := &simNode{id: i, store: st, net: s, got: map[string]time.Duration{}}
		Rebroadcast(st, node, st.cfg.NodeName)
		st.OnChange(func(e Entry) {
			if _, ok := node.got[e.Key]; !ok {
				node.got[e.Key] = s.now
			}
		})
		s.nodes = append(s.nodes, node)
	}
	return s
}

// Broadcast is a move's writer sending it: through the fan-out, as Node.Broadcast does for
// session entries (the broadcast queue's redundant copies are left out).
func (n *simNode) Broadcast(msg []byte) error {
	n.Spread(msg)
	return nil
}

func (n *simNode) MustSpread() bool { return len(n.net.nodes)-1 > fullFanoutMax }

// Spread sends msg to spreadDegree random other nodes, as fanout.send does with a batch.
func (n *simNode) Spread(msg []byte) {
	s := n.net
	others := make([]int, 0, len(s.nodes)-1)
	for i := range s.nodes {
		if i != n.id {
			others = append(others, i)
		}
	}
	wait := time.Duration(s.rng.Int64N(int64(fanoutInterval)))
	for _, to := range pickPeers(others, spreadDegree(len(others)), s.rng.IntN) {
		s.sends++
		if s.rng.Float64() < s.loss {
			continue
		}
		heap.Push(&s.events, simEvent{at: s.now + wait + s.latency, to: to, msg: msg})
	}
}

// run delivers messages until none is left.
func (s *simNet) run() {
	for s.events.Len() > 0 {
		ev := heap.Pop(&s.events).(simEvent)
		s.now = ev.at
		if err := s.nodes[ev.to].store.MergeDelta(ev.msg); err != nil {
			s.t.Fatal(err)
		}
	}
}

type spreadResult struct {
	nodes               int
	degree              int
	p50, p99, max       time.Duration // time for a move to reach a node, over every node and move
	missed              int           // node receptions left to push/pull
	sendsPerNodePerMove float64
	bytesPerNodePerMove float64
}

// simulateSpread writes moves from random nodes, one at a time, and measures how they spread.
func simulateSpread(t testing.TB, n, moves int, latency time.Duration, loss float64) spreadResult {
	s := newSimNet(t, n, latency, loss, uint64(n))
	sessions := make([]*Sessions, n)
	for i, node := range s.nodes {
		ss, err := NewSessions(node.store, node, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		sessions[i] = ss
	}
	var took []time.Duration
	missed, bytes := 0, 0
	for m := range moves {
		key := fmt.Sprintf("web|move-%06d", m)
		origin := s.rng.IntN(n)
		s.now = 0
		sendsBefore := s.sends
		sessions[origin].Put(key, "backend-1", time.Now().Add(time.Hour))
		s.run()
		e, _ := s.nodes[origin].store.Get(KindSession, key)
		msg, _ := AppendEntry(nil, e)
		bytes += (s.sends - sendsBefore) * len(msg)
		for i, node := range s.nodes {
			if i == origin {
				continue
			}
			if at, ok := node.got[key]; ok {
				took = append(took, at)
			} else {
				missed++
			}
		}
	}
	slices.Sort(took)
	q := func(p float64) time.Duration {
		if len(took) == 0 {
			return 0
		}
		return took[min(len(took)-1, int(p*float64(len(took))))]
	}
	return spreadResult{nodes: n, degree: spreadDegree(n - 1), p50: q(0.5), p99: q(0.99), max: took[len(took)-1], missed: missed,
		sendsPerNodePerMove: float64(s.sends) / float64(n*moves), bytesPerNodePerMove: float64(bytes) / float64(n*moves)}
}

// TestSpreadScales simulates 10, 50 and 100 nodes: a session move reaches every node with p99
// under 1 s, and each node sends each move to about ln N others (all others up to 17 nodes), so
// the send rate per node grows with log N, not N. 1% of the messages are lost on the way.
func TestSpreadScales(t *testing.T) {
	const moves = 200
	var prev spreadResult
	for _, n := range []int{10, 50, 100} {
		r := simulateSpread(t, n, moves, 500*time.Microsecond, 0.01)
		t.Logf("%3d nodes: degree %2d, a move reaches a node after p50 %v, p99 %v, max %v; %d of %d receptions left to push/pull; each node sends %.1f messages (%.0f bytes) per move",
			n, r.degree, r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond), r.max.Round(100*time.Microsecond),
			r.missed, moves*(n-1), r.sendsPerNodePerMove, r.bytesPerNodePerMove)
		if r.p99 >= time.Second {
			t.Errorf("%d nodes: p99 %v, want under 1 s", n, r.p99)
		}
		if n <= fullFanoutMax+1 {
			// The writer sends to every node and nobody passes moves on: a lost packet is
			// repaired by memberlist's broadcast queue (not simulated) or the next push/pull.
			prev = r
			continue
		}
		if float64(r.missed) > 0.001*float64(moves*(n-1)) {
			t.Errorf("%d nodes: %d of %d receptions missed, more than 0.1%%", n, r.missed, moves*(n-1))
		}
		if r.sendsPerNodePerMove > 1.2*float64(r.degree) {
			t.Errorf("%d nodes: %.1f sends per node per move, want about the degree %d", n, r.sendsPerNodePerMove, r.degree)
		}
		// Linear growth would multiply the sends by n / prev.nodes (2 from 50 to 100 nodes).
		if prev.nodes > fullFanoutMax+1 && r.sendsPerNodePerMove >= 0.75*prev.sendsPerNodePerMove*float64(n)/float64(prev.nodes) {
			t.Errorf("sends per node per move grew from %.1f at %d nodes to %.1f at %d: not logarithmic",
				prev.sendsPerNodePerMove, prev.nodes, r.sendsPerNodePerMove, n)
		}
		prev = r
	}
}

// gossipSim runs memberlist's gossip loop over simulated nodes, for health observations and
// drains: each node holds a real Store with Rebroadcast and the node's two real broadcast
// queues (memberlist.TransmitLimitedQueue, filled by urgent as Node.Broadcast does), and every
// GossipInterval (200 ms, each node at its own offset) sends a packet to GossipNodes (3)
// random members with what delegate.GetBroadcasts hands over, as memberlist's gossip loop
// does. Memberlist's own messages (alive, suspect) are left out.
type gossipSim struct {
	t       testing.TB
	rng     *rand.Rand
	latency time.Duration
	loss    float64
	nodes   []*gossipNode
	now     time.Duration
	events  gossipEvents
	packets int
	bytes   int
}

type gossipNode struct {
	id    int
	store *Store
	del   *delegate
	got   map[string]time.Duration
}

func (g *gossipNode) Broadcast(msg []byte) error {
	q := g.del.bulk
	if urgent(msg) {
		q = g.del.urgent
	}
	q.QueueBroadcast(queuedBroadcast{msg: append([]byte(nil), msg...)})
	return nil
}

type gossipEvent struct {
	at   time.Duration
	to   int      // the node that ticks, or receives
	msgs [][]byte // nil: a gossip tick
}

type gossipEvents []gossipEvent

func (e gossipEvents) Len() int           { return len(e) }
func (e gossipEvents) Less(i, j int) bool { return e[i].at < e[j].at }
func (e gossipEvents) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *gossipEvents) Push(x any)        { *e = append(*e, x.(gossipEvent)) }
func (e *gossipEvents) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

const (
	simGossipInterval = 200 * time.Millisecond // memberlist.DefaultLANConfig
	simGossipNodes    = 3
)

func newGossipSim(t testing.TB, n int, latency time.Duration, loss float64, seed uint64) *gossipSim {
	g := &gossipSim{t: t, rng: rand.New(rand.NewPCG(seed, seed+7)), latency: latency, loss: loss}
	numNodes := func() int { return n }
	for i := range n {
		st, err := NewStore(StoreConfig{NodeName: fmt.Sprintf("n%d", i), MaxEntriesPerKind: 1 << 20,
			TombstoneTTL: time.Hour, ExpireInterval: time.Hour}, NewClock(nil, 0))
		if err != nil {
			t.Fatal(err)
		}
		node := &gossipNode{id: i, store: st, got: map[string]time.Duration{},
			del: &delegate{
				urgent: &memberlist.TransmitLimitedQueue{NumNodes: numNodes, RetransmitMult: 4},
				bulk:   &memberlist.TransmitLimitedQueue{NumNodes: numNodes, RetransmitMult: 4},
			}}
		Rebroadcast(st, node, st.cfg.NodeName)
		st.OnChange(func(e Entry) {
			if _, ok := node.got[e.Key]; !ok {
				node.got[e.Key] = g.now
			}
		})
		g.nodes = append(g.nodes, node)
		heap.Push(&g.events, gossipEvent{at: time.Duration(g.rng.Int64N(int64(simGossipInterval))), to: i})
	}
	return g
}

// runUntil processes events until every node holds key and no queue holds anything, or until
// limit.
func (g *gossipSim) runUntil(key string, limit time.Duration) {
	for g.events.Len() > 0 {
		ev := heap.Pop(&g.events).(gossipEvent)
		g.now = ev.at
		if g.now > limit {
			return
		}
		node := g.nodes[ev.to]
		if ev.msgs != nil {
			for _, m := range ev.msgs {
				if err := node.store.MergeDelta(m); err != nil {
					g.t.Fatal(err)
				}
			}
			continue
		}
		heap.Push(&g.events, gossipEvent{at: g.now + simGossipInterval, to: ev.to})
		others := make([]int, 0, len(g.nodes)-1)
		for i := range g.nodes {
			if i != ev.to {
				others = append(others, i)
			}
		}
		for _, to := range pickPeers(others, simGossipNodes, g.rng.IntN) {
			msgs := node.del.GetBroadcasts(2, 1400-broadcastOverhead)
			if len(msgs) == 0 {
				continue
			}
			g.packets++
			for _, m := range msgs {
				g.bytes += len(m)
			}
			if g.rng.Float64() >= g.loss {
				heap.Push(&g.events, gossipEvent{at: g.now + g.latency, to: to, msgs: msgs})
			}
		}
		if g.done(key) {
			return
		}
	}
}

func (g *gossipSim) done(key string) bool {
	for _, n := range g.nodes {
		if _, ok := n.got[key]; !ok || n.del.urgent.NumQueued() > 0 || n.del.bulk.NumQueued() > 0 {
			return false
		}
	}
	return true
}

// TestHealthSpreadScales simulates 10, 50 and 100 nodes: a health observation, written on one
// node and broadcast as the health consensus does, reaches every node with p99 under 1 s, and
// each node sends it in at most RetransmitMult × ceil(log10(N+1)) packets, so the per-node send
// rate grows with log N. 1% of the packets are lost; a node every copy missed is left to the
// next push/pull.
func TestHealthSpreadScales(t *testing.T) {
	const observations = 50
	for _, n := range []int{10, 50, 100} {
		var took []time.Duration
		missed, packets, bytes := 0, 0, 0
		for o := range observations {
			g := newGossipSim(t, n, 500*time.Microsecond, 0.01, uint64(n*1000+o))
			origin := g.nodes[g.rng.IntN(n)]
			key := fmt.Sprintf("web/backend-%d|n%d", o, origin.id)
			e, err := origin.store.Put(KindHealth, key, []byte("down"), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := AppendEntry(nil, e)
			if err != nil {
				t.Fatal(err)
			}
			_ = origin.Broadcast(msg)
			g.runUntil(key, 30*time.Second)
			for _, node := range g.nodes {
				if node == origin {
					continue
				}
				if at, ok := node.got[key]; ok {
					took = append(took, at)
				} else {
					missed++
				}
			}
			packets += g.packets
			bytes += g.bytes
		}
		slices.Sort(took)
		p50, p99, worst := took[len(took)/2], took[min(len(took)-1, len(took)*99/100)], took[len(took)-1]
		perNode := float64(packets) / float64(n*observations)
		t.Logf("%3d nodes: an observation reaches a node after p50 %v, p99 %v, max %v; %d of %d receptions missed; each node sends %.1f packets (%.0f bytes) per observation",
			n, p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond), missed, observations*(n-1), perNode,
			float64(bytes)/float64(n*observations))
		if p99 >= time.Second {
			t.Errorf("%d nodes: p99 %v, want under 1 s", n, p99)
		}
		// What every copy missed waits for the next push/pull.
		if float64(missed) > 0.001*float64(observations*(n-1)) {
			t.Errorf("%d nodes: %d of %d receptions missed, more than 0.1%%", n, missed, observations*(n-1))
		}
		if limit := 4 * math.Ceil(math.Log10(float64(n+1))); perNode > limit+1 {
			t.Errorf("%d nodes: %.1f packets per node per observation, more than the retransmit limit %.0f", n, perNode, limit)
		}
	}
}
