package consensus

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
	"github.com/veloflux/veloflux/health"
)

// ErrRunning is returned by View.Run when it is already running.
var ErrRunning = errors.New("consensus: already running")

// minRunWait is the shortest sleep of View.Run between two rounds of upkeep.
const minRunWait = 5 * time.Millisecond

// MemberLister lists the live cluster members, this node included (satisfied by *gossip.Node).
type MemberLister interface {
	Members() []gossip.Member
}

// Gossip is what a View shares its observations through. The zero value means standalone.
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

// View shares the probing of backends among the cluster members and answers Healthy from the
// consensus of the members assigned to each backend. It sits between the wiring and a local
// health.Checker: give it every backend with SetTargets and it hands the Checker only this
// node's share. All methods are safe for concurrent use.
type View struct {
	cfg     Config
	self    string
	checker *health.Checker
	store   *gossip.Store
	bcast   gossip.Broadcaster
	members MemberLister
	logger  *slog.Logger
	metrics *metrics

	// changes carries KindHealth store changes from the store's hook to Run: the hook runs on
	// the gossip receive path and must not wait for this View's lock.
	changes chan gossip.Entry
	// wake asks Run to recompute the view; capacity 1, since one pending recompute covers all.
	wake    chan struct{}
	running atomic.Bool

	// view maps backend ID to healthy. It is replaced, never modified, so Healthy reads it
	// without locks on the request path.
	view atomic.Pointer[map[string]bool]
	// known is byID as SetTargets last set it (replaced, never modified), for ReportLocal,
	// which must not take mu.
	known atomic.Pointer[map[string]health.Target]

	// reports are the passive layer's latest words, by backend ID, that Run has not applied
	// yet: at most one per known backend, so the map is bounded without dropping any.
	// reportsMu guards it and is only ever held to store one report or to swap the map, never
	// across other work, so ReportLocal, on a request's goroutine, cannot wait for a slow path.
	// Lock order: mu, then reportsMu.
	reportsMu sync.Mutex
	reports   map[string]passiveReport
	// reported tells Run that reports wait; capacity 1, since Run takes them all at once.
	reported chan struct{}

	mu         sync.Mutex
	targets    []health.Target          // every backend, first of each ID, in SetTargets order
	byID       map[string]health.Target // the same backends by ID
	partOf     map[string]string        // backend ID -> observation key part
	idOf       map[string]string        // observation key part -> backend ID
	ring       membership               // the member list the assignment was computed from
	probers    map[string][]string      // backend ID -> its assigned probers, sorted
	mine       map[string]*probed       // backends this node probes
	passive    map[string]*reported     // latest passive report per backend
	seen       map[string]seenEntry     // observation key -> latest observation seen, for Status
	down       map[string]string        // backend ID -> why, for the backends the view has down
	nextExpiry time.Time                // when the first down vote expires; zero if none
}

// probed is this node's share of one backend: the Checker's latest result, this node's vote
// built from it, and when that was last written.
type probed struct {
	target health.Target
	last   health.Result // the Checker's latest result; last.At is zero until the first
	reason string        // latest failure reason, kept while down so a rising backend still says why
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

// passiveReport is one ReportLocal call, waiting for Run.
type passiveReport struct {
	ejected bool
	reason  string
	at      time.Time
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

// New returns a View driving checker, standalone until g's member list shows this node and a
// peer. It registers hooks on checker and g.Store, so give each Checker to one View. logger nil
// discards logs; reg nil leaves the metrics unregistered.
func New(cfg Config, checker *health.Checker, g Gossip, logger *slog.Logger, reg prometheus.Registerer) (*View, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consensus: invalid config: %w", err)
	}
	if checker == nil {
		return nil, errors.New("consensus: nil checker")
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
			return nil, fmt.Errorf("consensus: %w", err)
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	self := cfg.NodeName
	if self == "" {
		self = "local"
	}
	byID := map[string]health.Target{}
	v := &View{
		cfg:      cfg,
		self:     self,
		checker:  checker,
		store:    g.Store,
		bcast:    g.Broadcaster,
		members:  g.Members,
		logger:   logger,
		metrics:  m,
		changes:  make(chan gossip.Entry, cfg.QueueSize),
		wake:     make(chan struct{}, 1),
		reports:  map[string]passiveReport{},
		reported: make(chan struct{}, 1),
		byID:     byID,
		partOf:   map[string]string{},
		idOf:     map[string]string{},
		probers:  map[string][]string{},
		mine:     map[string]*probed{},
		passive:  map[string]*reported{},
		seen:     map[string]seenEntry{},
		down:     map[string]string{},
	}
	v.view.Store(&map[string]bool{})
	v.known.Store(&byID)
	checker.OnResult(v.onResult)
	if v.store != nil {
		v.store.OnChange(v.onStoreChange)
	}
	return v, nil
}

// ttlFor is how long an observation of t lives.
func (v *View) ttlFor(t health.Target) time.Duration {
	return v.cfg.ttl(v.checker.ConfigFor(t).Interval)
}

// Healthy reports whether the backend may receive traffic according to the cluster's view.
// Unknown IDs are healthy, like the Checker's. It takes no lock and does not allocate.
func (v *View) Healthy(id string) bool {
	h, ok := (*v.view.Load())[id]
	return h || !ok
}

// SetTargets replaces the full set of backends. This node's share goes to the Checker, which
// keeps the state of every target it already had; the view is recomputed before it returns.
// Of duplicate IDs the first wins.
func (v *View) SetTargets(all []health.Target) {
	v.mu.Lock()
	defer v.mu.Unlock()
	targets := make([]health.Target, 0, len(all))
	fresh := make(map[string]bool)
	byID := make(map[string]health.Target, len(all))
	partOf := make(map[string]string, len(all))
	idOf := make(map[string]string, len(all))
	for _, t := range all {
		if _, dup := byID[t.ID]; dup {
			continue
		}
		byID[t.ID] = t
		if old, ok := v.byID[t.ID]; !ok || old.Identity() != t.Identity() {
			fresh[t.ID] = true
		}
		targets = append(targets, t)
		part := backendKeyPart(t.ID)
		partOf[t.ID], idOf[part] = part, t.ID
	}
	v.targets, v.byID, v.partOf, v.idOf = targets, byID, partOf, idOf
	v.known.Store(&byID)
	for id := range v.passive {
		if _, ok := byID[id]; !ok {
			delete(v.passive, id)
		}
	}
	for key, s := range v.seen {
		if _, ok := idOf[s.part]; !ok {
			delete(v.seen, key)
		}
	}
	v.reassignLocked(fresh)
	v.recomputeLocked(time.Now())
}

// clusteredLocked reports whether probing is shared right now. v.mu must be held.
func (v *View) clusteredLocked() bool {
	return v.store != nil && v.ring.clustered()
}

// reassignLocked recomputes every backend's probers from the current member list and hands the
// Checker this node's share. Backends without a health check path are never probed, so they
// get no probers and stay healthy. A backend taken over while the view has it down is voted
// down at once (see probed.inherited), unless it is fresh: new, or a new identity under an old
// ID, which the Checker also starts afresh. v.mu must be held.
func (v *View) reassignLocked(fresh map[string]bool) {
	clustered := v.clusteredLocked()
	probers := make(map[string][]string, len(v.targets))
	var share []health.Target
	for _, t := range v.targets {
		if !t.Checked() {
			continue
		}
		if !clustered {
			probers[t.ID] = []string{v.self}
			share = append(share, t)
			continue
		}
		p := v.ring.probers(t, v.cfg.Probers)
		probers[t.ID] = p
		if _, ok := slices.BinarySearch(p, v.self); ok {
			share = append(share, t)
		}
	}
	view := *v.view.Load()
	mine := make(map[string]*probed, len(share))
	var inherited []*probed
	for _, t := range share {
		// The Checker keeps the state of a target whose identity is unchanged, so this node's
		// record of it carries on too; anything else starts afresh, like the Checker's.
		if old, ok := v.mine[t.ID]; ok && old.target.Identity() == t.Identity() {
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
	v.probers, v.mine = probers, mine
	if v.store != nil {
		now := time.Now()
		for _, p := range inherited {
			if v.writeLocked(p.target.ID, p.observation(), v.ttlFor(p.target)) {
				p.written, p.voted = now, false
			}
		}
	}
	v.checker.SetTargets(share)
	v.metrics.probed.Set(float64(len(share)))
}

// onResult turns the Checker's results into observations: on the first result after a backend
// was assigned here, on every change of verdict, and when a refresh is due (Run refreshes too,
// but stops when results stop; see maintain).
func (v *View) onResult(r health.Result) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p, ok := v.mine[r.ID]
	if !ok {
		return // a result of a backend no longer assigned here
	}
	p.last = r
	if r.OK {
		p.oks++
	} else {
		p.oks = 0
	}
	if p.inherited && (!r.Healthy || p.oks >= v.checker.ConfigFor(p.target).Rise) {
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
	ttl := v.ttlFor(p.target)
	if v.store != nil && (p.written.IsZero() || p.healthy != p.voted || now.Sub(p.written) >= ttl/2) {
		if v.writeLocked(p.target.ID, p.observation(), ttl) {
			p.written, p.voted = now, p.healthy
		}
	}
	if (r.Changed || p.healthy != was) && !v.clusteredLocked() {
		v.recomputeLocked(now)
	}
}

// ReportLocal records the passive layer's verdict on a backend, for Run to share it with the
// peers, who show it in Status. It never votes: one node's clients failing says little about
// the others'. An ejection is refreshed for as long as it lasts, and a reinstatement is written
// once and then left to expire; repeating a report writes nothing.
//
// It is the Passive's OnChange hook, so it runs on the goroutine of the request whose failure
// ejected the backend, and it keeps OnChange's rule: copy and enqueue, never block. It stores
// the report and wakes Run, taking no lock that Run or any other method holds while it works,
// and never waits on the network. Reports that Run has not taken yet are coalesced: only a
// backend's latest state is shared. Unknown IDs are ignored.
func (v *View) ReportLocal(id string, ejected bool, reason string) {
	if _, ok := (*v.known.Load())[id]; !ok {
		return
	}
	if !ejected {
		reason = ""
	}
	r := passiveReport{ejected: ejected, reason: reason, at: time.Now()}
	v.reportsMu.Lock()
	v.reports[id] = r
	v.reportsMu.Unlock()
	select {
	case v.reported <- struct{}{}:
	default: // Run has a wake-up pending, and takes every report when it comes
	}
}

// applyReports writes the observations of the reports ReportLocal took since the last call.
// The map is swapped under mu, so once mu is free every report taken before is applied.
func (v *View) applyReports() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reportsMu.Lock()
	reports := v.reports
	if len(reports) > 0 {
		v.reports = make(map[string]passiveReport, len(reports))
	}
	v.reportsMu.Unlock()
	for id, r := range reports {
		v.reportLocked(id, r)
	}
}

// reportLocked records one passive report and, with a store, writes it. v.mu must be held.
func (v *View) reportLocked(id string, r passiveReport) {
	t, ok := v.byID[id]
	if !ok {
		return // removed since it was reported
	}
	old := v.passive[id]
	if old == nil && !r.ejected {
		return // nothing was said, so there is nothing to take back
	}
	if old != nil && old.obs.Healthy == !r.ejected && old.obs.Reason == r.reason {
		return
	}
	rep := &reported{obs: Observation{Source: SourcePassive, Healthy: !r.ejected, LastProbeOK: !r.ejected,
		Reason: r.reason, At: r.at}}
	v.passive[id] = rep
	if v.store != nil && v.writeLocked(id, rep.obs, v.ttlFor(t)) {
		rep.written = time.Now()
	}
}

// writeLocked stores this node's observation of backend id and broadcasts it, reporting whether
// it was stored. A refused broadcast still counts as written: the entry is in the store and the
// next push/pull carries it. v.mu must be held (the store's hooks only enqueue).
func (v *View) writeLocked(id string, o Observation, ttl time.Duration) bool {
	key := observationKey(o.Source, v.partOf[id], v.cfg.NodeName)
	e, err := v.store.Put(gossip.KindHealth, key, encodeObservation(o), ttl)
	if err != nil {
		v.metrics.observations.WithLabelValues(obsFailed).Inc()
		v.logger.Debug("observation not stored", "backend", id, "err", err)
		return false
	}
	msg, err := gossip.AppendEntry(nil, e)
	if err == nil {
		err = v.bcast.Broadcast(msg)
	}
	if err != nil {
		v.metrics.observations.WithLabelValues(obsFailed).Inc()
		v.logger.Debug("observation not broadcast, left to push/pull", "backend", id, "err", err)
		return true
	}
	v.metrics.observations.WithLabelValues(obsSent).Inc()
	return true
}

// onStoreChange hands a health entry to Run. It runs on the gossip receive path, so it never
// waits: when the queue is full the entry is dropped and counted, and Run is still woken,
// since the consensus is read from the store and only Status loses the entry.
func (v *View) onStoreChange(e gossip.Entry) {
	if e.Kind != gossip.KindHealth {
		return
	}
	select {
	case v.changes <- e:
	default:
		v.metrics.observations.WithLabelValues(obsDropped).Inc()
		v.poke()
	}
}

// poke wakes Run without blocking.
func (v *View) poke() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// Run follows the member list, refreshes this node's observations, absorbs store changes,
// writes the passive reports and recomputes the view when they, the membership or an expiring
// vote call for it, until ctx ends; then it returns nil. It starts no other goroutine; the
// Checker runs separately (Checker.Run). Run can be called again after it returned, but not
// twice at once (ErrRunning).
func (v *View) Run(ctx context.Context) error {
	if !v.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer v.running.Store(false)

	timer := time.NewTimer(0)
	defer timer.Stop()
	var nextPoll time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-v.changes:
			v.absorb(e)
		case <-v.wake:
			v.absorb()
		case <-v.reported:
			v.applyReports()
		case <-timer.C:
		}
		now := time.Now()
		if !now.Before(nextPoll) {
			v.pollMembers(now)
			nextPoll = now.Add(v.cfg.MembershipPoll)
		}
		next := v.maintain(now)
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
func (v *View) absorb(first ...gossip.Entry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	recompute := len(first) == 0
	for _, e := range first {
		recompute = v.seeLocked(e) || recompute
	}
	// At most one queue's worth, so a steady stream of changes cannot hold the lock forever.
drain:
	for range cap(v.changes) {
		select {
		case e := <-v.changes:
			recompute = v.seeLocked(e) || recompute
		default:
			break drain
		}
	}
	if recompute {
		v.recomputeLocked(time.Now())
	}
}

// seeLocked decodes one store change for Status and counts what peers sent. It reports whether
// the change may alter the view: anything but a refresh, which rewrites the same verdict every
// half TTL on every prober and would otherwise cost a full recomputation each time. The view
// itself is recomputed from the store, so nothing here decides anything. v.mu must be held.
func (v *View) seeLocked(e gossip.Entry) bool {
	old, had := v.seen[e.Key]
	if e.Deleted {
		delete(v.seen, e.Key)
		return true
	}
	fromPeer := e.Node != v.cfg.NodeName
	part, obs, err := decodeObservationEntry(e)
	if err != nil {
		if fromPeer {
			v.metrics.observations.WithLabelValues(obsInvalid).Inc()
			v.logger.Debug("invalid observation", "node", e.Node, "err", err)
		}
		return true // it may have replaced a valid vote, which votesLocked now skips
	}
	if fromPeer {
		v.metrics.observations.WithLabelValues(obsReceived).Inc()
	}
	if _, known := v.idOf[part]; !known {
		return false
	}
	if had && old.stamp.Compare(e.Stamp) > 0 {
		return false // hooks run outside the store's lock, so an older version can arrive second
	}
	v.seen[e.Key] = seenEntry{node: e.Node, part: part, obs: obs, expires: time.Unix(0, e.Expires), stamp: e.Stamp}
	// An expired entry coming back counts as new: the view may have dropped its vote.
	return !had || old.obs.Healthy != obs.Healthy || !time.Now().Before(old.expires)
}

// pollMembers reassigns the backends when the member list changed.
func (v *View) pollMembers(now time.Time) {
	if v.members == nil || v.store == nil {
		return
	}
	ring := newMembership(v.members.Members(), v.cfg.NodeName)
	v.mu.Lock()
	defer v.mu.Unlock()
	if ring.equal(v.ring) {
		return
	}
	was := v.clusteredLocked()
	v.ring = ring
	v.logger.Debug("members changed, reassigning backends", "members", len(ring.members), "clustered", v.clusteredLocked(), "was_clustered", was)
	v.reassignLocked(nil)
	v.recomputeLocked(now)
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
func (v *View) maintain(now time.Time) time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	var next time.Time
	earlier := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if v.store != nil {
		for id, p := range v.mine {
			if p.written.IsZero() {
				continue // the first result writes it
			}
			cfg := v.checker.ConfigFor(p.target)
			ttl := v.cfg.ttl(cfg.Interval)
			due := p.written.Add(ttl / 2)
			if now.Before(due) {
				earlier(due)
				continue
			}
			if now.After(p.last.Next.Add(cfg.Timeout + cfg.Interval)) {
				continue // the Checker went quiet: let the vote expire; a late result writes again
			}
			if v.writeLocked(id, p.observation(), ttl) {
				p.written, p.voted = now, p.healthy
			}
			earlier(now.Add(ttl / 2))
		}
		for id, rep := range v.passive {
			if rep.obs.Healthy {
				continue // a reinstatement is left to expire
			}
			ttl := v.ttlFor(v.byID[id])
			due := rep.written.Add(ttl / 2)
			if rep.written.IsZero() || !now.Before(due) {
				if v.writeLocked(id, rep.obs, ttl) {
					rep.written = now
				}
				due = now.Add(ttl / 2)
			}
			earlier(due)
		}
	}
	if !v.nextExpiry.IsZero() && !now.Before(v.nextExpiry) {
		v.recomputeLocked(now)
	}
	if !v.nextExpiry.IsZero() {
		earlier(v.nextExpiry)
	}
	// An expired observation stays in Status for one default TTL, then is forgotten.
	keep := v.ttlFor(health.Target{})
	for key, s := range v.seen {
		if now.Sub(s.expires) > keep {
			delete(v.seen, key)
		}
	}
	return next
}
