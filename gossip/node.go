package gossip

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// State is what the node replicates. Implementations must not block (they copy and return).
type State interface {
	// FullState encodes the whole state for a push/pull exchange, at most maxBytes long.
	FullState(maxBytes int) []byte
	// MergeFull merges a peer's full state; MergeDelta one broadcast message. Errors are counted, never fatal.
	MergeFull(data []byte) error
	MergeDelta(msg []byte) error
}

// Errors callers decide on.
var (
	// ErrMessageTooLarge: a broadcast would not fit one UDP packet, so memberlist would never send it.
	ErrMessageTooLarge = errors.New("gossip: message larger than a UDP-safe broadcast")
	// ErrNoKeyring: key rotation on a node started without Keys. Encryption cannot be switched on
	// at runtime because unencrypted peers would be cut off at once.
	ErrNoKeyring = errors.New("gossip: node runs without encryption keys")
	// ErrAlreadyRunning: Run was called twice; a Node is single-use.
	ErrAlreadyRunning = errors.New("gossip: node already running")
)

// Timings not worth a config key.
const (
	// leaveTimeout bounds how long shutdown waits for the leave message to be sent to peers.
	// Past it the node stops anyway: peers that did not hear the leave find the node gone by
	// probing it, as they would after a crash.
	leaveTimeout = 3 * time.Second
	// updateTimeout bounds how long SetDraining waits for the new metadata to reach a peer.
	updateTimeout = 3 * time.Second
	// joinBackoffMin/Max: the first retry is quick (seeds often start together), later ones back
	// off so a node cut off from its seeds does not hammer them.
	joinBackoffMin = 200 * time.Millisecond
	joinBackoffMax = 30 * time.Second
	// broadcastOverhead is what memberlist adds around one user broadcast in a UDP packet:
	// compound header (2), per-message length (2), message type (1), label header (2) and
	// AES-GCM (version, nonce, tag: 29), rounded up for padding and future versions.
	broadcastOverhead = 64
	// maxQueuedBroadcasts bounds the outgoing queue: a node without peers transmits nothing, and
	// memberlist keeps every queued message until it has been sent enough times. The oldest are
	// dropped first; the State's full-state push/pull repairs what they carried.
	maxQueuedBroadcasts = 4096
	// maxQueuedReplies bounds the catch-up answers waiting to be sent (each a few messages of
	// at most 256 KiB); more are dropped and counted, and the next push/pull asks again.
	maxQueuedReplies = 16
)

// Member is one cluster member as this node sees it.
type Member struct {
	Name    string
	Addr    string // host:port of its gossip listener
	Region  string
	Version string
	// State is "alive" or, in AllMembers only, "departed" (left or declared dead, and retried
	// by the reconnect loop). memberlist reports neither suspicion nor whether a node left or
	// died: the State field of the Node it hands over is never set.
	State    string
	Draining bool
	// AdminPort is the port of its admin API, or 0 when it gossips none.
	AdminPort int
}

// Node is one member of the VeloFlux gossip cluster. Create it with New, start it with Run.
type Node struct {
	cfg     Config
	logger  *slog.Logger
	metrics *nodeMetrics
	keyring *memberlist.Keyring // nil when running without encryption
	// urgent and bulk queue outgoing broadcasts; see urgent and delegate.GetBroadcasts.
	urgent, bulk *memberlist.TransmitLimitedQueue
	// fan sends bulk messages (session pins) straight to every member too.
	fan      *fanout
	del      *delegate
	maxMsg   int
	draining atomic.Bool
	// adminPort is gossiped in the node metadata; set by Run before memberlist starts.
	adminPort uint16

	// bindAddr, bindPort, advertiseAddr and advertisePort are cfg's addresses split for
	// memberlist.
	bindAddr, advertiseAddr string
	bindPort, advertisePort int

	ml      atomic.Pointer[memberlist.Memberlist]
	addr    atomic.Pointer[string]
	running atomic.Bool
	ready   chan struct{}
	// leaveTimeout is the constant of that name; tests shorten it.
	leaveTimeout time.Duration
}

// New checks cfg and prepares a node; nothing listens until Run. logger nil discards logs; reg nil
// registers no metrics.
func New(cfg Config, state State, logger *slog.Logger, reg prometheus.Registerer) (*Node, error) {
	if state == nil {
		return nil, errors.New("gossip: nil State")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gossip: invalid config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("gossip: no node name and no host name: %w", err)
		}
		cfg.Name = host
	}
	cfg.Seeds = slices.Clone(cfg.Seeds)
	cfg.GossipKeys = slices.Clone(cfg.GossipKeys)
	if meta := encodeMeta(nodeMeta{Region: cfg.Region, Version: cfg.Version, Draining: true, AdminPort: math.MaxUint16}); len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("gossip: region and version take %d bytes of node metadata, more than memberlist's %d", len(meta), memberlist.MetaMaxSize)
	}

	n := &Node{cfg: cfg, logger: logger, ready: make(chan struct{}), leaveTimeout: leaveTimeout}
	var err error
	if n.bindAddr, n.bindPort, err = splitAddr(cfg.BindAddress); err != nil {
		return nil, fmt.Errorf("gossip: cluster.bind_address: %w", err)
	}
	if cfg.AdvertiseAddress != "" {
		if n.advertiseAddr, n.advertisePort, err = splitAddr(cfg.AdvertiseAddress); err != nil {
			return nil, fmt.Errorf("gossip: cluster.advertise_address: %w", err)
		}
	}
	keys, err := cfg.keys()
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	if len(keys) > 0 {
		kr, err := memberlist.NewKeyring(keys, keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip: keyring: %w", err)
		}
		n.keyring = kr
	}
	n.maxMsg = n.presetConfig().UDPBufferSize - broadcastOverhead - len(cfg.Label)
	n.metrics = newNodeMetrics(func() map[string]int { return n.del.memberCounts() })
	if err := n.metrics.register(reg); err != nil {
		return nil, err
	}
	n.fan = newFanout(n.maxMsg, n.metrics)
	n.urgent = &memberlist.TransmitLimitedQueue{
		NumNodes:       n.numMembers,
		RetransmitMult: n.presetConfig().RetransmitMult,
	}
	n.bulk = &memberlist.TransmitLimitedQueue{
		NumNodes:       n.numMembers,
		RetransmitMult: n.presetConfig().RetransmitMult,
	}
	n.del = &delegate{
		state:        state,
		urgent:       n.urgent,
		bulk:         n.bulk,
		incoming:     make(chan inbound, cfg.QueueSize),
		self:         cfg.Name,
		replies:      make(chan outbound, maxQueuedReplies),
		meta:         n.localMeta,
		maxPushBytes: cfg.PushPullMaxBytes,
		metrics:      n.metrics,
		logger:       logger,
		keepDeparted: max(cfg.ReconnectTimeout, n.presetConfig().GossipToTheDeadTime),
		members:      make(map[string]memberlist.Node),
		departed:     make(map[string]departure),
	}
	return n, nil
}

func (n *Node) presetConfig() *memberlist.Config {
	if n.cfg.Preset == PresetWAN {
		return memberlist.DefaultWANConfig()
	}
	return memberlist.DefaultLANConfig()
}

func (n *Node) memberlistConfig() *memberlist.Config {
	mc := n.presetConfig()
	mc.Name = n.cfg.Name
	mc.BindAddr = n.bindAddr
	mc.BindPort = n.bindPort
	mc.AdvertiseAddr = n.advertiseAddr
	mc.AdvertisePort = n.advertisePort
	mc.Label = n.cfg.Label
	mc.Keyring = n.keyring
	// Verify both ways: a node without the key must be unable to read or inject anything.
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.Delegate = n.del
	mc.Events = n.del
	mc.LogOutput = nil
	mc.Logger = log.New(logWriter{n.logger}, "", 0)
	if n.cfg.tune != nil {
		n.cfg.tune(mc)
	}
	return mc
}

// Run starts the memberlist node, joins the seeds (retrying with backoff until one answers or ctx
// ends) and serves until ctx ends; then it leaves the cluster, shuts memberlist down and waits for
// its own goroutines. It returns nil on a clean stop.
func (n *Node) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	if n.keyring == nil && !net.ParseIP(n.bindAddr).IsLoopback() {
		n.logger.Warn("gossip is not encrypted on a non-loopback address: anyone reaching it can read and inject cluster state",
			"bind_address", n.cfg.BindAddress)
	}
	if n.cfg.AdminPort != nil {
		if p := n.cfg.AdminPort(); p > 0 && p <= math.MaxUint16 {
			n.adminPort = uint16(p)
		}
	}
	ml, err := memberlist.Create(n.memberlistConfig())
	if err != nil {
		return fmt.Errorf("gossip: start memberlist on %s: %w", n.cfg.BindAddress, err)
	}
	// Read our address now, before any peer knows us: memberlist rewrites its local node when
	// alive messages about us arrive, without a lock this side could take.
	addr := ml.LocalNode().Address()
	n.addr.Store(&addr)
	n.ml.Store(ml)

	workCtx, stopWork := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { n.del.work(workCtx) })
	close(n.ready)
	n.logger.Info("gossip started", "name", n.cfg.Name, "addr", n.LocalAddr())

	n.join(ctx, ml)
	wg.Go(func() { n.reconnect(ctx, ml) })
	wg.Go(func() { n.fan.run(ctx, ml, n.peers) })
	wg.Go(func() { n.sendReplies(ctx, ml) })
	<-ctx.Done()

	var errs []error
	if err := ml.Leave(n.leaveTimeout); err != nil {
		// Not a failure of this node: the peers may be stopping too (a whole cluster shut down
		// at once) or a busy machine's gossip rounds may take longer than the wait, and those
		// still up learn of the departure from failure detection instead.
		n.logger.Warn("the leave message went unacknowledged; the other nodes will notice the departure by probing",
			"timeout", n.leaveTimeout, "error", err)
	}
	if err := ml.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("gossip: shutdown: %w", err))
	}
	// Stop the worker only after memberlist: no callback can enqueue any more.
	stopWork()
	wg.Wait()
	// A stopped node is alone: it must not report the members it had, nor touch the dead memberlist.
	n.ml.Store(nil)
	n.del.forgetMembers()
	return errors.Join(errs...)
}

// cluster is what join and reconnect use of the memberlist, so that tests can run both loops
// against a fake on a synctest clock.
type cluster interface {
	Join(existing []string) (int, error)
	NumMembers() int
}

// join contacts the seeds until one answers or ctx ends.
func (n *Node) join(ctx context.Context, ml cluster) {
	if len(n.cfg.Seeds) == 0 {
		return
	}
	backoff := joinBackoffMin
	for {
		contacted, err := ml.Join(n.cfg.Seeds)
		if contacted > 0 {
			n.logger.Info("joined cluster", "seeds_contacted", contacted, "members", ml.NumMembers())
			return
		}
		// Jitter so nodes started together do not retry in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		n.logger.Warn("join failed, retrying", "seeds", n.cfg.Seeds, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, joinBackoffMax)
	}
}

// reconnect heals partitions: memberlist forgets a dead node after GossipToTheDeadTime and never
// contacts it again, so two halves of a healed partition would stay apart. Every
// ReconnectInterval it tries to join the departed nodes it still remembers, and the seeds (and
// FindPeers) when it has no peer left. A join that succeeds exchanges full state by push/pull, which merges what
// both sides wrote while apart.
func (n *Node) reconnect(ctx context.Context, ml cluster) {
	t := time.NewTicker(n.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var addrs []string
		for _, dep := range n.del.departedMembers() {
			addrs = append(addrs, dep.node.Address())
		}
		if ml.NumMembers() <= 1 {
			addrs = append(addrs, n.cfg.Seeds...)
			if n.cfg.FindPeers != nil {
				addrs = append(addrs, n.cfg.FindPeers()...)
			}
		}
		if len(addrs) == 0 {
			continue
		}
		if contacted, err := ml.Join(addrs); contacted > 0 {
			n.logger.Info("reconnected to cluster members", "contacted", contacted, "members", ml.NumMembers())
		} else {
			n.logger.Debug("reconnect found no member", "tried", addrs, "err", err)
		}
	}
}

// sendReplies sends catch-up answers over memberlist's reliable stream until ctx ends. It runs
// apart from the merge worker, so a slow peer holds up only other answers, never merging.
func (n *Node) sendReplies(ctx context.Context, ml *memberlist.Memberlist) {
	for {
		select {
		case <-ctx.Done():
			return
		case out := <-n.del.replies:
			peer, ok := n.del.member(out.peer)
			if !ok {
				n.metrics.messages.WithLabelValues(dirSent, resultDropped).Add(float64(len(out.msgs)))
				continue
			}
			for _, msg := range out.msgs {
				if err := ml.SendReliable(&peer, msg); err != nil {
					n.metrics.messages.WithLabelValues(dirSent, resultError).Inc()
					n.logger.Debug("catch-up message not sent", "peer", out.peer, "err", err)
					break
				}
				n.metrics.catchup.WithLabelValues(dirSent, catchupPart(msg)).Add(float64(len(msg)))
			}
		}
	}
}

// Ready is closed once Run has bound its sockets; LocalAddr is valid from then on.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// LocalAddr returns the host:port peers reach this node at, or "" before Run has bound.
func (n *Node) LocalAddr() string {
	if a := n.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// MaxMessageSize is the largest message Broadcast accepts.
func (n *Node) MaxMessageSize() int { return n.maxMsg }

// Broadcast queues msg for gossip to every member; msg is copied. Session pins also go straight
// to every live member in batched packets (see fanout). A message over MaxMessageSize is
// dropped, counted and reported with ErrMessageTooLarge: memberlist would never send it. When more
// than 4096 messages wait to be sent, the oldest are dropped and counted.
func (n *Node) Broadcast(msg []byte) error {
	if len(msg) > n.maxMsg {
		n.metrics.messages.WithLabelValues(dirSent, resultError).Inc()
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(msg), n.maxMsg)
	}
	q := n.bulk
	if urgent(msg) {
		q = n.urgent
	} else {
		n.fan.add(msg)
	}
	q.QueueBroadcast(queuedBroadcast{msg: append([]byte(nil), msg...)})
	n.metrics.messages.WithLabelValues(dirSent, resultOK).Inc()
	if over := q.NumQueued() - maxQueuedBroadcasts; over > 0 {
		q.Prune(maxQueuedBroadcasts)
		n.metrics.messages.WithLabelValues(dirSent, resultDropped).Add(float64(over))
	}
	return nil
}

// MustSpread reports whether the cluster has more members than a session move's writer sends
// it to, so that the members that learn it must pass it on (see Rebroadcast).
func (n *Node) MustSpread() bool { return n.numMembers()-1 > fullFanoutMax }

// Spread passes a session move learnt from a peer on through the fan-out alone: to
// spreadDegree random members, not into the broadcast queue. msg is copied.
func (n *Node) Spread(msg []byte) {
	if len(msg) > n.maxMsg {
		n.metrics.messages.WithLabelValues(dirSent, resultError).Inc()
		return
	}
	n.fan.add(msg)
}

// urgent tells the messages that must not wait behind session pins: health observations and
// drains are few and decide where traffic goes, pins are many and only cost stickiness if late.
// Anything that is not a store entry is urgent too (it is rare by nature).
func urgent(msg []byte) bool {
	return len(msg) < 2 || msg[0] != FormatVersion || Kind(msg[1]) != KindSession
}

// peers returns the live members other than this node.
func (n *Node) peers() []memberlist.Node {
	all := n.del.liveMembers()
	out := all[:0]
	for _, m := range all {
		if m.Name != n.cfg.Name {
			out = append(out, m)
		}
	}
	return out
}

// Members returns the live members (alive or suspect), including this node, sorted by name.
func (n *Node) Members() []Member {
	nodes := n.del.liveMembers()
	out := make([]Member, 0, len(nodes))
	for _, m := range nodes {
		out = append(out, memberOf(m, memberAlive))
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// AllMembers returns the live members, as Members does, followed by the departed nodes this node
// still remembers (State "departed"), each group sorted by name.
func (n *Node) AllMembers() []Member {
	out := n.Members()
	deps := n.del.departedMembers()
	gone := make([]Member, 0, len(deps))
	for _, dep := range deps {
		gone = append(gone, memberOf(dep.node, memberDeparted))
	}
	slices.SortFunc(gone, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return append(out, gone...)
}

func memberOf(m memberlist.Node, state string) Member {
	mem := Member{Name: m.Name, Addr: m.Address(), State: state}
	// A peer with undecodable metadata is still a member; it just shows no region or version.
	if meta, err := decodeMeta(m.Meta); err == nil {
		mem.Region, mem.Version, mem.Draining, mem.AdminPort = meta.Region, meta.Version, meta.Draining, int(meta.AdminPort)
	}
	return mem
}

// SetDraining sets this node's draining flag and, when running, gossips it to peers through a
// metadata update.
func (n *Node) SetDraining(draining bool) error {
	n.draining.Store(draining)
	ml := n.ml.Load()
	if ml == nil {
		return nil
	}
	if err := ml.UpdateNode(updateTimeout); err != nil {
		return fmt.Errorf("gossip: publish draining=%t: %w", draining, err)
	}
	return nil
}

// SetKeys makes the keyring hold exactly primary (used to encrypt) and others (accepted too),
// in the order that never leaves a message in flight unreadable here: install the new keys,
// switch the primary, then remove the keys no longer listed. Unchanged keys are left alone,
// so calling it with the current keys does nothing.
func (n *Node) SetKeys(primary []byte, others [][]byte) error {
	if n.keyring == nil {
		return ErrNoKeyring
	}
	want := append([][]byte{primary}, others...)
	for _, k := range want {
		if err := n.AddKey(k); err != nil {
			return err
		}
	}
	if err := n.UseKey(primary); err != nil {
		return err
	}
	for _, k := range n.keyring.GetKeys() {
		if !slices.ContainsFunc(want, func(w []byte) bool { return bytes.Equal(w, k) }) {
			if err := n.RemoveKey(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// Keys returns the installed keys, primary first; nil without encryption.
func (n *Node) Keys() [][]byte {
	if n.keyring == nil {
		return nil
	}
	return n.keyring.GetKeys()
}

// AddKey installs a key for decryption. Rotation: AddKey on every node, then UseKey, then
// RemoveKey of the old key; the cluster stays together throughout.
func (n *Node) AddKey(key []byte) error {
	if n.keyring == nil {
		return ErrNoKeyring
	}
	if err := n.keyring.AddKey(key); err != nil {
		return fmt.Errorf("gossip: add key: %w", err)
	}
	return nil
}

// UseKey makes an installed key the primary one, used to encrypt.
func (n *Node) UseKey(key []byte) error {
	if n.keyring == nil {
		return ErrNoKeyring
	}
	if err := n.keyring.UseKey(key); err != nil {
		return fmt.Errorf("gossip: use key: %w", err)
	}
	return nil
}

// RemoveKey uninstalls a key; the primary key cannot be removed.
func (n *Node) RemoveKey(key []byte) error {
	if n.keyring == nil {
		return ErrNoKeyring
	}
	if err := n.keyring.RemoveKey(key); err != nil {
		return fmt.Errorf("gossip: remove key: %w", err)
	}
	return nil
}

func (n *Node) numMembers() int {
	if ml := n.ml.Load(); ml != nil {
		return ml.NumMembers()
	}
	return 1
}

func (n *Node) localMeta() []byte {
	return encodeMeta(nodeMeta{Region: n.cfg.Region, Version: n.cfg.Version, Draining: n.draining.Load(), AdminPort: n.adminPort})
}

// nodeMeta is what we put in memberlist's per-node metadata (512 bytes at most); the node name is
// memberlist's own.
type nodeMeta struct {
	Region, Version string
	Draining        bool
	AdminPort       uint16 // 0: none
}

// metaVersion leads the encoding so a later release can change it and old nodes can tell.
const metaVersion = 1

const (
	metaDraining  = 1 << 0
	metaAdminPort = 1 << 1 // an admin port follows the version
)

// encodeMeta: version byte, flags byte, then region and version as uvarint-length-prefixed
// strings, then, with the metaAdminPort flag, the admin port as a uvarint. Compact because the
// 512 bytes are shared with nothing else but must fit any region name.
func encodeMeta(m nodeMeta) []byte {
	b := make([]byte, 0, 2+3*binary.MaxVarintLen16+len(m.Region)+len(m.Version))
	var flags byte
	if m.Draining {
		flags |= metaDraining
	}
	if m.AdminPort != 0 {
		flags |= metaAdminPort
	}
	b = append(b, metaVersion, flags)
	b = binary.AppendUvarint(b, uint64(len(m.Region)))
	b = append(b, m.Region...)
	b = binary.AppendUvarint(b, uint64(len(m.Version)))
	b = append(b, m.Version...)
	if m.AdminPort != 0 {
		b = binary.AppendUvarint(b, uint64(m.AdminPort))
	}
	return b
}

// decodeMeta parses a peer's metadata; peers are untrusted input, so every length is checked.
func decodeMeta(b []byte) (nodeMeta, error) {
	if len(b) < 2 {
		return nodeMeta{}, fmt.Errorf("gossip: node metadata: %d bytes, too short", len(b))
	}
	if b[0] != metaVersion {
		return nodeMeta{}, fmt.Errorf("gossip: node metadata: unknown version %d", b[0])
	}
	m := nodeMeta{Draining: b[1]&metaDraining != 0}
	rest := b[2:]
	var err error
	if m.Region, rest, err = readMetaString(rest); err != nil {
		return nodeMeta{}, fmt.Errorf("gossip: node metadata region: %w", err)
	}
	if m.Version, rest, err = readMetaString(rest); err != nil {
		return nodeMeta{}, fmt.Errorf("gossip: node metadata version: %w", err)
	}
	if b[1]&metaAdminPort != 0 {
		port, n := binary.Uvarint(rest)
		if n <= 0 || port == 0 || port > math.MaxUint16 {
			return nodeMeta{}, errors.New("gossip: node metadata: bad admin port")
		}
		m.AdminPort, rest = uint16(port), rest[n:]
	}
	if len(rest) != 0 {
		return nodeMeta{}, fmt.Errorf("gossip: node metadata: %d trailing bytes", len(rest))
	}
	return m, nil
}

func readMetaString(b []byte) (string, []byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 {
		return "", nil, errors.New("bad length")
	}
	b = b[n:]
	if l > uint64(len(b)) {
		return "", nil, fmt.Errorf("length %d beyond %d remaining bytes", l, len(b))
	}
	return string(b[:l]), b[l:], nil
}

// logWriter turns memberlist's "[LEVEL] memberlist: msg" lines into slog records at that level.
type logWriter struct{ logger *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	switch {
	case strings.HasPrefix(line, "[DEBUG]"):
		level = slog.LevelDebug
	case strings.HasPrefix(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.HasPrefix(line, "[ERR]"):
		level = slog.LevelError
	}
	if i := strings.IndexByte(line, ']'); strings.HasPrefix(line, "[") && i > 0 {
		line = strings.TrimSpace(line[i+1:])
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	w.logger.Log(context.Background(), level, line, "source", "memberlist")
	return len(p), nil
}

// splitAddr splits a validated ip:port for memberlist.
func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}
