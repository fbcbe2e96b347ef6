package gossip

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// batchMarker starts a fan-out batch. It can never start a single broadcast entry, whose first
// byte is FormatVersion; after it comes a full-state encoding of the batch's entries.
const batchMarker = 0xBA

const (
	// fanoutInterval bounds how long a session pin waits for its batch to fill before it is sent.
	fanoutInterval = 10 * time.Millisecond
	// maxReadyBatches bounds the full batches waiting for the sender (about 1.3 MB at most); a
	// batch beyond it is dropped and counted, and push/pull and the broadcast queue repair it.
	maxReadyBatches = 1024
)

// fanout sends session pins straight to every live member, batched into UDP packets. memberlist's
// epidemic broadcast moves a few packets per gossip interval (LAN: every 200 ms to 3 members),
// each message repeated RetransmitMult × log N times: measured, two nodes shared only 167 new pins
// a second that way, far below the rate at which a busy proxy creates sessions. Pins are many,
// each matters a little and is idempotent to resend, so the writer sends each once to every member
// directly, with no per-round limit; the broadcast queue still carries them too, as redundancy.
type fanout struct {
	max     int // largest batch, as Node.MaxMessageSize
	metrics *nodeMetrics

	mu    sync.Mutex
	batch []byte // batchMarker, state header (version, count), entries; nil when empty
	count uint32
	ready chan []byte
}

func newFanout(max int, m *nodeMetrics) *fanout {
	return &fanout{max: max, metrics: m, ready: make(chan []byte, maxReadyBatches)}
}

// add appends one encoded entry to the batch; a batch that would outgrow a packet is handed to
// the sender first. It never blocks.
func (f *fanout) add(entry []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.batch != nil && len(f.batch)+len(entry) > f.max {
		f.handOffLocked()
	}
	if f.batch == nil {
		f.batch = make([]byte, 1+stateHeaderBytes, f.max)
		f.batch[0], f.batch[1] = batchMarker, FormatVersion
	}
	f.batch = append(f.batch, entry...)
	f.count++
}

// handOffLocked closes the batch in progress and queues it for the sender.
func (f *fanout) handOffLocked() {
	if f.batch == nil {
		return
	}
	binary.BigEndian.PutUint32(f.batch[2:2+4], f.count)
	select {
	case f.ready <- f.batch:
	default:
		f.metrics.messages.WithLabelValues(dirSent, resultDropped).Inc()
	}
	f.batch, f.count = nil, 0
}

// run sends batches until ctx ends: full ones at once, a partial one every fanoutInterval.
// peers returns the members to send to.
func (f *fanout) run(ctx context.Context, ml *memberlist.Memberlist, peers func() []memberlist.Node) {
	t := time.NewTicker(fanoutInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-f.ready:
			f.send(ml, peers(), b)
		case <-t.C:
			f.mu.Lock()
			f.handOffLocked()
			f.mu.Unlock()
		}
	}
}

// fullFanoutMax is the largest number of other members to which a session move's writer
// sends it itself, all of them; beyond it, see spreadDegree.
const fullFanoutMax = 16

// spreadDegree is how many of n other members a fan-out batch goes to: all of them up to
// fullFanoutMax, else ⌈ln n⌉ + 4 (9 of 99, 8 of 49). Every member that learns a move from a
// batch then passes it on once to as many (Rebroadcast), so a member is missed only when none
// of the about n × degree sends reaches it: with probability about e^-degree each (e^-9 at
// 100 nodes), and the next push/pull repairs that.
func spreadDegree(n int) int {
	if n <= fullFanoutMax {
		return n
	}
	return min(n, int(math.Ceil(math.Log(float64(n))))+4)
}

// pickPeers moves k members of peers chosen at random to its front and returns them.
func pickPeers[T any](peers []T, k int, intN func(int) int) []T {
	k = min(k, len(peers))
	for i := range k {
		j := i + intN(len(peers)-i)
		peers[i], peers[j] = peers[j], peers[i]
	}
	return peers[:k]
}

func (f *fanout) send(ml *memberlist.Memberlist, peers []memberlist.Node, b []byte) {
	peers = pickPeers(peers, spreadDegree(len(peers)), rand.IntN)
	for i := range peers {
		if err := ml.SendBestEffort(&peers[i], b); err != nil {
			f.metrics.messages.WithLabelValues(dirSent, resultError).Inc()
			continue
		}
		f.metrics.messages.WithLabelValues(dirSent, resultOK).Inc()
	}
}
