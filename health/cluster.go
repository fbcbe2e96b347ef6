package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/gossip"
)

// ErrClusterRunning is returned by Cluster.Run when it is already running.
var ErrClusterRunning = errors.New("health: cluster already running")

// minRunWait is the shortest sleep of Cluster.Run between two rounds of upkeep.
const minRunWait = 5 * time.Millisecond

// ClusterConfig tunes how the cluster shares probing and decides together.
type ClusterConfig struct {
	// NodeName is this node's gossip name (gossip.Config.Name): the observer written in its
	// observations and looked up in the member list. Required with a store; without one it only
	// names this node in Status (default "local").
	NodeName string
	// Probers is how many members probe each backend (k). Default 2: the smallest number where
	// no single node decides alone (quorum is a strict majority, so both must agree) and a
	// prober that dies leaves one vote standing while its share moves.
	Probers int
	// ObservationTTL is how long an observation counts after it was written; observations are
	// rewritten at half of it while the Checker keeps probing, so a prober that dies or whose
	// checks stop loses its vote on every node at the same moment. Default 0: max(10 × the
	// target's interval, 60s), as the Checker applies it, so a few slow probes never expire a
	// live vote. A set value is raised to 4 × the target's interval for the same reason.
	ObservationTTL time.Duration
	// MembershipPoll is how often the member list is read for joins, departures and region
	// changes, the delay before a dead prober's share moves. Default 1s: memberlist takes
	// seconds to declare a node dead, so polling faster gains nothing.
	MembershipPoll time.Duration
	// QueueSize bounds the store changes waiting for Run; more are dropped and counted (the
	// consensus is recomputed anyway, only Status may miss an expired observation). Default
	// 1024 changes.
	QueueSize int
}

// DefaultClusterConfig returns the defaults documented on ClusterConfig; NodeName stays empty.
func DefaultClusterConfig() ClusterConfig {
	return ClusterConfig{
		Probers:        2,
		MembershipPoll: time.Second,
		QueueSize:      1024,
	}
}

// Validate returns every problem at once, each prefixed with its config key.
func (c ClusterConfig) Validate() error {
	var errs []error
	if len(c.NodeName) > gossip.MaxNodeBytes {
		errs = append(errs, fmt.Errorf("cluster.name: %d bytes, max %d", len(c.NodeName), gossip.MaxNodeBytes))
	}
	if c.Probers < 1 {
		errs = append(errs, fmt.Errorf("cluster.health.probers: must be at least 1, got %d", c.Probers))
	}
	if c.ObservationTTL < 0 {
		errs = append(errs, fmt.Errorf("cluster.health.observation_ttl: must not be negative, got %s", c.ObservationTTL))
	}
	if c.MembershipPoll <= 0 {
		errs = append(errs, fmt.Errorf("cluster.health.membership_poll: must be positive, got %s", c.MembershipPoll))
	}
	if c.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("cluster.health.queue_size: must be at least 1, got %d", c.QueueSize))
	}
	return errors.Join(errs...)
}

// ttl is how long an observation lives for a target probed every interval.
func (c ClusterConfig) ttl(interval time.Duration) time.Duration {
	if c.ObservationTTL > 0 {
		return max(c.ObservationTTL, 4*interval)
	}
	return max(10*interval, time.Minute)
}

// configFor returns the settings the Checker applies to t right now, SetConfig included.
func (c *Checker) configFor(t Target) Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.forTarget(t)
}

// ttlFor is how long an observation of t lives.
func (c *Cluster) ttlFor(t Target) time.Duration {
	return c.cfg.ttl(c.checker.configFor(t).Interval)
}

// MemberLister lists the live cluster members, this node included (satisfied by *gossip.Node).
type MemberLister interface {
	Members() []gossip.Member
}

// Gossip is what a Cluster shares its observations through. The zero value means standalone.
type Gossip struct {
	// Store holds every node's observations as KindHealth entries. nil means standalone: this
	// node probes every backend and its own verdicts are the view.
	Store *gossip.Store
	// Broadcaster sends each observation written here at once (satisfied by *gossip.Node).
	// Required with a Store.
	Broadcaster gossip.Broadcaster
	// Members tells who is alive and in which region. Required with a Store.
	Members MemberLister
}

// Cluster shares the probing of backends among the cluster members and answers Healthy from the
// consensus of the members assigned to each backend. It sits between the wiring and a local
// Checker: give it every backend with SetTargets and it hands the Checker only this node's
// share. All methods are safe for concurrent use.
type Cluster struct {
	cfg     ClusterConfig
	self    string
	checker *Checker
	store   *gossip.Store
	bcast   gossip.Broadcaster
	members MemberLister
	logger  *slog.Logger
	metrics *clusterMetrics

	// changes carries KindHealth store changes from the store's hook to Run: the hook runs on
	// the gossip receive path and must not wait for this Cluster's lock.
	changes chan gossip.Entry
	// wake asks Run to recompute the view; capacity 1, since one pending recompute covers all.
	wake    chan struct{}
	running atomic.Bool

	// view maps backend ID to healthy. It is replaced, never modified, so Healthy reads it
	// without locks on the request path.
	view atomic.Pointer[map[string]bool]

	mu         sync.Mutex
	targets    []Target             // every backend, first of each ID, in SetTargets order
	byID       map[string]Target    // the same backends by ID
	partOf     map[string]string    // backend ID -> observation key part
	idOf       map[string]string    // observation key part -> backend ID
	ring       membership           // the member list the assignment was computed from
	probers    map[string][]string  // backend ID -> its assigned probers, sorted
	mine       map[string]*probed   // backends this node probes
	passive    map[string]*reported // latest passive report per backend
	seen       map[string]seenEntry // observation key -> latest observation seen, for Status
	down       map[string]string    // backend ID -> why, for the backends the view has down
	nextExpiry time.Time            // when the first down vote expires; zero if none
}

// probed is this node's share of one backend: the Checker's latest result, this node's vote
// built from it, and when that was last written.
type probed struct {
	target Target
	last   Result // the Checker's latest result; last.At is zero until the first
	reason string // latest failure reason, kept while down so a rising backend still says why
	// inherited is set when this node took the backend over while the view had it down. The
	// Checker starts every new target healthy, which would hand the backend 1 of 2 down votes,
	// and traffic, for Fall probes after every change of probers; so this node votes down until
	// its own checks either confirm it (the Checker's verdict takes over) or see Rise successes.
	inherited bool
	oks       int       // consecutive successful probes since the backend was assigned here
	healthy   bool      // this node's vote: the Checker's verdict, unless inherited
	voted     bool      // the Healthy of the observation last written
	written   time.Time // zero until the first observation since the backend was assigned here
}

// takenOverWhileDown is the reason of an inherited down vote.
const takenOverWhileDown = "taken over while down"

// observation is this node's current vote on p.
func (p *probed) observation() Observation {
	return Observation{Source: SourceActive, Healthy: p.healthy, LastProbeOK: p.last.OK, Reason: p.reason, At: p.last.At}
}

// reported is the passive layer's latest word on one backend.
type reported struct {
	obs     Observation
	written time.Time
}

// seenEntry is a decoded observation as the store last reported it.
type seenEntry struct {
	node    string
	part    string
	obs     Observation
	expires time.Time
	stamp   gossip.Timestamp
}

// NewCluster returns a Cluster driving checker, standalone until g's member list shows this node
// and a peer. It registers hooks on checker and g.Store, so give each Checker to one Cluster.
// logger nil discards logs; reg nil leaves the metrics unregistered.
func NewCluster(cfg ClusterConfig, checker *Checker, g Gossip, logger *slog.Logger, reg prometheus.Registerer) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("health: invalid cluster config: %w", err)
	}
	if checker == nil {
		return nil, errors.New("health: cluster: nil checker")
	}
	if g.Store != nil {
		var errs []error
		if g.Broadcaster == nil {
			errs = append(errs, errors.New("a store needs a broadcaster"))
		}
		if g.Members == nil {
			errs = append(errs, errors.New("a store needs a member list"))
		}
		if cfg.NodeName == "" {
			errs = append(errs, errors.New("a store needs the node name"))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("health: cluster: %w", err)
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newClusterMetrics(reg)
	if err != nil {
		return nil, err
	}
	self := cfg.NodeName
	if self == "" {
		self = "local"
	}
	c := &Cluster{
		cfg:     cfg,
		self:    self,
		checker: checker,
		store:   g.Store,
		bcast:   g.Broadcaster,
		members: g.Members,
		logger:  logger,
		metrics: m,
		changes: make(chan gossip.Entry, cfg.QueueSize),
		wake:    make(chan struct{}, 1),
		byID:    map[string]Target{},
		partOf:  map[string]string{},
		idOf:    map[string]string{},
		probers: map[string][]string{},
		mine:    map[string]*probed{},
		passive: map[string]*reported{},
		seen:    map[string]seenEntry{},
		down:    map[string]string{},
	}
	c.view.Store(&map[string]bool{})
	checker.OnResult(c.onResult)
	if c.store != nil {
		c.store.OnChange(c.onStoreChange)
	}
	return c, nil
}

// Healthy reports whether the backend may receive traffic according to the cluster's view.
// Unknown IDs are healthy, like the Checker's. It takes no lock and does not allocate.
func (c *Cluster) Healthy(id string) bool {
	h, ok := (*c.view.Load())[id]
	return h || !ok
}

// SetTargets replaces the full set of backends. This node's share goes to the Checker, which
// keeps the state of every target it already had; the view is recomputed before it returns.
// Of duplicate IDs the first wins.
func (c *Cluster) SetTargets(all []Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	targets := make([]Target, 0, len(all))
	fresh := make(map[string]bool)
	byID := make(map[string]Target, len(all))
	partOf := make(map[string]string, len(all))
	idOf := make(map[string]string, len(all))
	for _, t := range all {
		if _, dup := byID[t.ID]; dup {
			continue
		}
		byID[t.ID] = t
		if old, ok := c.byID[t.ID]; !ok || old.identity() != t.identity() {
			fresh[t.ID] = true
		}
		targets = append(targets, t)
		part := backendKeyPart(t.ID)
		partOf[t.ID], idOf[part] = part, t.ID
	}
	c.targets, c.byID, c.partOf, c.idOf = targets, byID, partOf, idOf
	for id := range c.passive {
		if _, ok := byID[id]; !ok {
			delete(c.passive, id)
		}
	}
	for key, s := range c.seen {
		if _, ok := idOf[s.part]; !ok {
			delete(c.seen, key)
		}
	}
	c.reassignLocked(fresh)
	c.recomputeLocked(time.Now())
}

// clusteredLocked reports whether probing is shared right now. c.mu must be held.
func (c *Cluster) clusteredLocked() bool {
	return c.store != nil && c.ring.clustered()
}

// reassignLocked recomputes every backend's probers from the current member list and hands the
// Checker this node's share. Backends without a health check path are never probed, so they
// get no probers and stay healthy. A backend taken over while the view has it down is voted
// down at once (see probed.inherited), unless it is fresh: new, or a new identity under an old
// ID, which the Checker also starts afresh. c.mu must be held.
func (c *Cluster) reassignLocked(fresh map[string]bool) {
	clustered := c.clusteredLocked()
	probers := make(map[string][]string, len(c.targets))
	var share []Target
	for _, t := range c.targets {
		if !t.checked() {
			continue
		}
		if !clustered {
			probers[t.ID] = []string{c.self}
			share = append(share, t)
			continue
		}
		p := c.ring.probers(t, c.cfg.Probers)
		probers[t.ID] = p
		if _, ok := slices.BinarySearch(p, c.self); ok {
			share = append(share, t)
		}
	}
	view := *c.view.Load()
	mine := make(map[string]*probed, len(share))
	var inherited []*probed
	for _, t := range share {
		// The Checker keeps the state of a target whose identity is unchanged, so this node's
		// record of it carries on too; anything else starts afresh, like the Checker's.
		if old, ok := c.mine[t.ID]; ok && old.target.identity() == t.identity() {
			old.target = t
			mine[t.ID] = old
			continue
		}
		p := &probed{target: t, healthy: true, voted: true}
		if up, known := view[t.ID]; known && !up && !fresh[t.ID] {
			p.inherited, p.healthy, p.reason = true, false, takenOverWhileDown
			inherited = append(inherited, p)
		}
		mine[t.ID] = p
	}
	c.probers, c.mine = probers, mine
	if c.store != nil {
		now := time.Now()
		for _, p := range inherited {
			if c.writeLocked(p.target.ID, p.observation(), c.ttlFor(p.target)) {
				p.written, p.voted = now, false
			}
		}
	}
	c.checker.SetTargets(share)
	c.metrics.probed.Set(float64(len(share)))
}

// onResult turns the Checker's results into observations: on the first result after a backend
// was assigned here, on every change of verdict, and when a refresh is due (Run refreshes too,
// but stops when results stop; see maintain).
func (c *Cluster) onResult(r Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.mine[r.ID]
	if !ok {
		return // a result of a backend no longer assigned here
	}
	p.last = r
	if r.OK {
		p.oks++
	} else {
		p.oks = 0
	}
	if p.inherited && (!r.Healthy || p.oks >= c.checker.configFor(p.target).Rise) {
		p.inherited = false
	}
	was := p.healthy
	p.healthy = r.Healthy && !p.inherited
	switch {
	case !r.OK:
		p.reason = r.Reason
	case p.healthy:
		p.reason = ""
	}
	now := time.Now()
	ttl := c.ttlFor(p.target)
	if c.store != nil && (p.written.IsZero() || p.healthy != p.voted || now.Sub(p.written) >= ttl/2) {
		if c.writeLocked(p.target.ID, p.observation(), ttl) {
			p.written, p.voted = now, p.healthy
		}
	}
	if (r.Changed || p.healthy != was) && !c.clusteredLocked() {
		c.recomputeLocked(now)
	}
}

// ReportLocal records the passive layer's verdict on a backend and shares it with the peers,
// who show it in Status. It never votes: one node's clients failing says little about the
// others'. An ejection is refreshed for as long as it lasts, and a reinstatement is written
// once and then left to expire. Repeating a report writes nothing, but it takes the Cluster's
// lock, so call it when the ejection state changes rather than per request. It never waits on
// the network. Unknown IDs are ignored.
func (c *Cluster) ReportLocal(id string, ejected bool, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.byID[id]
	if !ok {
		return
	}
	if !ejected {
		reason = ""
	}
	old := c.passive[id]
	if old == nil && !ejected {
		return // nothing was said, so there is nothing to take back
	}
	if old != nil && old.obs.Healthy == !ejected && old.obs.Reason == reason {
		return
	}
	rep := &reported{obs: Observation{Source: SourcePassive, Healthy: !ejected, LastProbeOK: !ejected,
		Reason: reason, At: time.Now()}}
	c.passive[id] = rep
	if c.store != nil && c.writeLocked(id, rep.obs, c.ttlFor(t)) {
		rep.written = time.Now()
	}
	c.poke() // Run's next refresh deadline may now be earlier
}

// writeLocked stores this node's observation of backend id and broadcasts it, reporting whether
// it was stored. A refused broadcast still counts as written: the entry is in the store and the
// next push/pull carries it. c.mu must be held (the store's hooks only enqueue).
func (c *Cluster) writeLocked(id string, o Observation, ttl time.Duration) bool {
	key := observationKey(o.Source, c.partOf[id], c.cfg.NodeName)
	e, err := c.store.Put(gossip.KindHealth, key, encodeObservation(o), ttl)
	if err != nil {
		c.metrics.observations.WithLabelValues(obsFailed).Inc()
		c.logger.Debug("observation not stored", "backend", id, "err", err)
		return false
	}
	msg, err := gossip.AppendEntry(nil, e)
	if err == nil {
		err = c.bcast.Broadcast(msg)
	}
	if err != nil {
		c.metrics.observations.WithLabelValues(obsFailed).Inc()
		c.logger.Debug("observation not broadcast, left to push/pull", "backend", id, "err", err)
		return true
	}
	c.metrics.observations.WithLabelValues(obsSent).Inc()
	return true
}

// onStoreChange hands a health entry to Run. It runs on the gossip receive path, so it never
// waits: when the queue is full the entry is dropped and counted, and Run is still woken,
// since the consensus is read from the store and only Status loses the entry.
func (c *Cluster) onStoreChange(e gossip.Entry) {
	if e.Kind != gossip.KindHealth {
		return
	}
	select {
	case c.changes <- e:
	default:
		c.metrics.observations.WithLabelValues(obsDropped).Inc()
		c.poke()
	}
}

// poke wakes Run without blocking.
func (c *Cluster) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run follows the member list, refreshes this node's observations, absorbs store changes and
// recomputes the view when they, the membership or an expiring vote call for it, until ctx
// ends; then it returns nil. It starts no other goroutine. The Checker runs separately (Checker.Run). Run can be called again after it
// returned, but not twice at once (ErrClusterRunning).
func (c *Cluster) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrClusterRunning
	}
	defer c.running.Store(false)

	timer := time.NewTimer(0)
	defer timer.Stop()
	var nextPoll time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-c.changes:
			c.absorb(e)
		case <-c.wake:
			c.absorb()
		case <-timer.C:
		}
		now := time.Now()
		if !now.Before(nextPoll) {
			c.pollMembers(now)
			nextPoll = now.Add(c.cfg.MembershipPoll)
		}
		next := c.maintain(now)
		if next.IsZero() || next.After(nextPoll) {
			next = nextPoll
		}
		// A floor, so a store clock that disagrees with ours about an expiry cannot spin Run.
		timer.Reset(max(next.Sub(now), minRunWait))
	}
}

// absorb records the given change and every other one queued, then recomputes the view once
// if any of them may have changed a verdict. Called with no change (a wake-up, which includes
// a change dropped on a full queue), it always recomputes.
func (c *Cluster) absorb(first ...gossip.Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	recompute := len(first) == 0
	for _, e := range first {
		recompute = c.seeLocked(e) || recompute
	}
	// At most one queue's worth, so a steady stream of changes cannot hold the lock forever.
drain:
	for range cap(c.changes) {
		select {
		case e := <-c.changes:
			recompute = c.seeLocked(e) || recompute
		default:
			break drain
		}
	}
	if recompute {
		c.recomputeLocked(time.Now())
	}
}

// seeLocked decodes one store change for Status and counts what peers sent. It reports whether
// the change may alter the view: anything but a refresh, which rewrites the same verdict every
// half TTL on every prober and would otherwise cost a full recomputation each time. The view
// itself is recomputed from the store, so nothing here decides anything. c.mu must be held.
func (c *Cluster) seeLocked(e gossip.Entry) bool {
	old, had := c.seen[e.Key]
	if e.Deleted {
		delete(c.seen, e.Key)
		return true
	}
	fromPeer := e.Node != c.cfg.NodeName
	part, obs, err := decodeObservationEntry(e)
	if err != nil {
		if fromPeer {
			c.metrics.observations.WithLabelValues(obsInvalid).Inc()
			c.logger.Debug("invalid observation", "node", e.Node, "err", err)
		}
		return true // it may have replaced a valid vote, which votesLocked now skips
	}
	if fromPeer {
		c.metrics.observations.WithLabelValues(obsReceived).Inc()
	}
	if _, known := c.idOf[part]; !known {
		return false
	}
	if had && old.stamp.Compare(e.Stamp) > 0 {
		return false // hooks run outside the store's lock, so an older version can arrive second
	}
	c.seen[e.Key] = seenEntry{node: e.Node, part: part, obs: obs, expires: time.Unix(0, e.Expires), stamp: e.Stamp}
	// An expired entry coming back counts as new: the view may have dropped its vote.
	return !had || old.obs.Healthy != obs.Healthy || !time.Now().Before(old.expires)
}

// pollMembers reassigns the backends when the member list changed.
func (c *Cluster) pollMembers(now time.Time) {
	if c.members == nil || c.store == nil {
		return
	}
	ring := newMembership(c.members.Members(), c.cfg.NodeName)
	c.mu.Lock()
	defer c.mu.Unlock()
	if ring.equal(c.ring) {
		return
	}
	was := c.clusteredLocked()
	c.ring = ring
	c.logger.Debug("members changed, reassigning backends", "members", len(ring.members), "clustered", c.clusteredLocked(), "was_clustered", was)
	c.reassignLocked(nil)
	c.recomputeLocked(now)
}

// maintain does what is due at now (refresh observations, recompute after a down vote expired,
// forget long-expired observations) and returns when it is next needed; zero means nothing is
// scheduled.
//
// An active observation is refreshed only while the Checker keeps reporting on its backend: its
// latest result announced the next probe (Result.Next), and that probe is not overdue by more
// than a timeout and an interval. Backoff can space the probes of a down backend wider than half
// a TTL, which is why the refresh cannot simply ride on results; a Checker that stopped is why
// it cannot simply run on a timer.
func (c *Cluster) maintain(now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	earlier := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if c.store != nil {
		for id, p := range c.mine {
			if p.written.IsZero() {
				continue // the first result writes it
			}
			cfg := c.checker.configFor(p.target)
			ttl := c.cfg.ttl(cfg.Interval)
			due := p.written.Add(ttl / 2)
			if now.Before(due) {
				earlier(due)
				continue
			}
			if now.After(p.last.Next.Add(cfg.Timeout + cfg.Interval)) {
				continue // the Checker went quiet: let the vote expire; a late result writes again
			}
			if c.writeLocked(id, p.observation(), ttl) {
				p.written, p.voted = now, p.healthy
			}
			earlier(now.Add(ttl / 2))
		}
		for id, rep := range c.passive {
			if rep.obs.Healthy {
				continue // a reinstatement is left to expire
			}
			ttl := c.ttlFor(c.byID[id])
			due := rep.written.Add(ttl / 2)
			if rep.written.IsZero() || !now.Before(due) {
				if c.writeLocked(id, rep.obs, ttl) {
					rep.written = now
				}
				due = now.Add(ttl / 2)
			}
			earlier(due)
		}
	}
	if !c.nextExpiry.IsZero() && !now.Before(c.nextExpiry) {
		c.recomputeLocked(now)
	}
	if !c.nextExpiry.IsZero() {
		earlier(c.nextExpiry)
	}
	// An expired observation stays in Status for one default TTL, then is forgotten.
	keep := c.ttlFor(Target{})
	for key, s := range c.seen {
		if now.Sub(s.expires) > keep {
			delete(c.seen, key)
		}
	}
	return next
}
