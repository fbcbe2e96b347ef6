package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/attempt"
	"github.com/veloflux/veloflux/internal/fielderr"
	"github.com/veloflux/veloflux/internal/pace"
)

// ErrPassiveRunning is returned by Passive.Run when it is already running.
var ErrPassiveRunning = errors.New("health: passive checks already running")

// Outcome is what one attempt to send a request to a backend came to, as the proxy reports
// it. Only the failures count towards an ejection.
//
// It is an alias of attempt.Outcome, as proxy.Outcome is: one type, so that *Passive satisfies
// proxy.PassiveHealth directly (a method's parameter types must be identical for that) while
// neither package imports the other (see internal/attempt).
type Outcome = attempt.Outcome

// The outcomes, as attempt declares them.
const (
	OutcomeSuccess        = attempt.Success        // any response below 500, WebSocket upgrades included
	Outcome5xx            = attempt.Status5xx      // a response with a 5xx status
	OutcomeConnectFailure = attempt.ConnectFailure // not opened, or broken before a response
	OutcomeTimeout        = attempt.Timeout        // a connection or response that did not come in time

	// numOutcomes bounds what Report accepts; any other value is ignored.
	numOutcomes = attempt.NumOutcomes
)

// failureNames are the short names of the failure outcomes: the reason label of
// veloflux_health_ejections_total, and the words of Status reasons.
var failureNames = [numOutcomes]struct{ label, one, plural string }{
	Outcome5xx:            {"5xx", "a 5xx response", "5xx responses"},
	OutcomeConnectFailure: {"connect_failure", "a connection failure", "connection failures"},
	OutcomeTimeout:        {"timeout", "a timeout", "timeouts"},
}

// reasonMixed labels an ejection whose failures were of more than one kind.
const reasonMixed = "mixed"

// PassiveConfig is the outlier ejection of one pool (pools[].passive, inheriting from
// global.passive).
type PassiveConfig struct {
	// ConsecutiveFailures is how many failed attempts in a row (5xx, connection failure or
	// timeout, mixed) eject a backend. Default 5, >= 0; 0 turns ejection off for the pool.
	ConsecutiveFailures int `koanf:"consecutive_failures"`
	// EjectionTime is how long the first ejection lasts; the n-th in a row lasts n times as
	// long, up to MaxEjectionTime. Default 30s, > 0.
	EjectionTime time.Duration `koanf:"ejection_time"`
	// MaxEjectionTime caps one ejection, and is also the quiet time after which a backend's
	// count of ejections in a row starts again from 0. Default 5m, >= EjectionTime.
	MaxEjectionTime time.Duration `koanf:"max_ejection_time"`
	// MaxEjectionPercent is the largest share of the pool's backends that may be ejected at
	// once, rounded down but at least one; the last backend is never ejected, so passive
	// checks alone never empty a pool. Default 50, 0..100 (0: never eject).
	MaxEjectionPercent int `koanf:"max_ejection_percent"`
}

// DefaultPassiveConfig returns the settings used when the config file says nothing.
func DefaultPassiveConfig() PassiveConfig {
	return PassiveConfig{
		ConsecutiveFailures: 5,                // one slow GC or a deploy's few refused connections must not eject
		EjectionTime:        30 * time.Second, // about three active check intervals: long enough to matter
		MaxEjectionTime:     5 * time.Minute,  // a flapping backend is kept out for long, but never forgotten
		MaxEjectionPercent:  50,               // half the pool may go; the rest must carry the load
	}
}

// Validate returns every problem with c at once, with paths relative to the passive section
// (the caller knows whether that is global.passive or a pool's).
func (c PassiveConfig) Validate() error {
	var e fielderr.Errors
	e.AtLeast("consecutive_failures", c.ConsecutiveFailures, 0)
	e.Positive("ejection_time", c.EjectionTime)
	if c.EjectionTime > 0 && c.MaxEjectionTime < c.EjectionTime {
		e.Add("max_ejection_time", "must be at least ejection_time (%s), got %s", c.EjectionTime, c.MaxEjectionTime)
	}
	e.Between("max_ejection_percent", c.MaxEjectionPercent, 0, 100)
	return e.Err()
}

// maxEjected is how many of a pool's size backends may be ejected at once under percent:
// the share rounded down, at least one so that small pools are protected at all, and never
// the last one.
func maxEjected(size, percent int) int {
	if size <= 1 || percent <= 0 {
		return 0
	}
	return min(max(size*percent/100, 1), size-1)
}

// ejectionTime is how long the n-th ejection in a row lasts: n times base, capped.
func ejectionTime(base, limit time.Duration, n int) time.Duration {
	if n <= 0 {
		return base
	}
	if hi, lo := bits.Mul64(uint64(base), uint64(n)); hi != 0 || lo > uint64(limit) {
		return limit
	}
	return base * time.Duration(n)
}

// PassivePool is one pool as the passive checks see it. A backend ID listed in several pools
// is ejected only when every one of them has room for it under its MaxEjectionPercent, and is
// judged by the Config of the first pool that lists it.
type PassivePool struct {
	Name     string
	Config   PassiveConfig
	Backends []string // backend IDs
}

// Prober is the active checker as the passive checks use it.
type Prober interface {
	// ProbeNow asks for an immediate active probe of backendID and reports whether the
	// backend is actively checked at all. It must not call back into Passive.
	ProbeNow(backendID string) bool
}

// PassiveStatus is the passive state of one backend as shown by the admin API.
type PassiveStatus struct {
	ID   string
	Pool string // the pool whose settings judge it
	// Ejected is true from the ejection until the backend returns; AwaitingProbe is true
	// once its ejection time is over while it waits for a successful active probe.
	Ejected       bool
	AwaitingProbe bool
	// Reason says why it was ejected ("5 consecutive 5xx responses"); "" when not ejected.
	Reason string
	// Since and Until bound the ejection time; zero when not ejected.
	Since, Until time.Time
	// Ejections counts ejections in a row: the next one lasts Ejections+1 times
	// ejection_time. It starts again from 0 after max_ejection_time without an ejection.
	Ejections           int
	ConsecutiveFailures int
}

// passiveBackend is one backend's passive state. Its pointer survives SetPools for as long
// as the ID is listed, so Report can update the atomics without any lock.
type passiveBackend struct {
	id string
	// The request path's view, written by Report without locks.
	failures  atomic.Int64  // consecutive failed attempts; 0 after a success
	kinds     atomic.Uint32 // bit 1<<Outcome of every failure kind in the current run
	ejected   atomic.Bool   // mirrors ejectedAt != zero, so Report skips ejected backends
	threshold atomic.Int64  // cfg.ConsecutiveFailures, 0 = off

	// Guarded by Passive.mu.
	pools      []*passivePoolState // every pool listing it, in SetPools order
	prevPools  []*passivePoolState // SetPools' scratch: pools before the last SetPools
	cfg        PassiveConfig       // the first pool's
	removed    bool
	ejections  int       // in a row; see PassiveStatus.Ejections
	ejectedAt  time.Time // zero when not ejected
	until      time.Time
	awaiting   bool      // ejection time over, waiting for a successful probe
	recheck    time.Time // while awaiting: when to ask for a probe again
	returnedAt time.Time // when it last came back, for the decay of ejections
	reason     string
	label      string // failureNames label or reasonMixed
	warned     bool   // a refused ejection was logged; cleared by SetPools and ejections
	listed     uint64 // the SetPools call that last listed it (Passive.setPools)
}

type passivePoolState struct {
	name    string
	cfg     PassiveConfig
	size    int
	ejected int
}

// passiveEvent is one change for the OnChange hooks.
type passiveEvent struct {
	id      string
	ejected bool
	reason  string
}

// Passive ejects backends that fail real requests (outlier detection): the proxy reports the
// outcome of every attempt with Report, and a backend with ConsecutiveFailures failures in a
// row is ejected for a while. Ejected answers from an immutable snapshot. Run must be
// running for ejections to end. All methods are safe for concurrent use.
type Passive struct {
	prober  Prober
	logger  *slog.Logger
	metrics *passiveMetrics
	wake    chan struct{} // tells Run that an ejection started; capacity 1

	// index maps backend ID to its state for Report: the backends map of the last SetPools,
	// which nothing writes after it is stored.
	index atomic.Pointer[map[string]*passiveBackend]
	// ejected is the set of ejected backend IDs; replaced at every ejection and return.
	ejected atomic.Pointer[map[string]bool]

	mu       sync.Mutex
	backends map[string]*passiveBackend
	pools    map[string]*passivePoolState
	hooks    []func(id string, ejected bool, reason string)
	running  bool
	setPools uint64  // SetPools calls so far
	pace     stepper // steps aside between pools in SetPools, holding no lock; a nil *pace.Pacer never does

	// notifyMu is taken before mu is released whenever there are events to hand out, so the
	// hooks see one backend's changes in the order they happened.
	notifyMu sync.Mutex
}

// NewPassive returns a Passive with no pools; give it some with SetPools and start it with
// Run. prober nil means no backend is actively checked, so every ejection ends when its time
// is up. logger nil discards logs; reg nil leaves the metrics unregistered.
func NewPassive(prober Prober, logger *slog.Logger, reg prometheus.Registerer) (*Passive, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newPassiveMetrics(reg)
	if err != nil {
		return nil, err
	}
	p := &Passive{
		prober:   prober,
		logger:   logger,
		metrics:  m,
		wake:     make(chan struct{}, 1),
		backends: make(map[string]*passiveBackend),
		pools:    make(map[string]*passivePoolState),
	}
	p.index.Store(&map[string]*passiveBackend{})
	p.ejected.Store(&map[string]bool{})
	return p, nil
}

// Ejected reports whether the passive checks keep backendID out of traffic. It takes no
// lock and does not allocate; unknown IDs are not ejected.
func (p *Passive) Ejected(backendID string) bool { return (*p.ejected.Load())[backendID] }

// Report records the outcome of one attempt to send a request to backendID. It is called on
// the request path: it takes no lock and does not allocate, except on the failure that
// ejects a backend. Reports of unknown or already ejected backends are ignored.
func (p *Passive) Report(backendID string, o Outcome) {
	b := (*p.index.Load())[backendID]
	if b == nil || o >= numOutcomes {
		return
	}
	if o == OutcomeSuccess {
		// Read first: every success writing the same cache line would make the
		// backend's counters a point of contention between cores.
		if b.failures.Load() != 0 {
			b.failures.Store(0)
			b.kinds.Store(0)
		}
		return
	}
	if b.ejected.Load() {
		return // requests that were in flight at the ejection
	}
	b.kinds.Or(1 << o)
	n := b.failures.Add(1)
	if thr := b.threshold.Load(); thr > 0 && n >= thr {
		p.eject(b)
	}
}

// eject takes b out of traffic if its pools have room, else starts its count again.
func (p *Passive) eject(b *passiveBackend) {
	p.mu.Lock()
	n := b.failures.Load()
	if b.removed || !b.ejectedAt.IsZero() || b.cfg.ConsecutiveFailures <= 0 || n < int64(b.cfg.ConsecutiveFailures) {
		p.mu.Unlock()
		return
	}
	now := time.Now()
	kinds := b.kinds.Load()
	// Starting again from 0 rather than retrying at every further failure keeps a failing
	// backend that may not be ejected from taking this lock on each of its requests.
	b.failures.Store(0)
	b.kinds.Store(0)
	for _, pl := range b.pools {
		if pl.ejected+1 > maxEjected(pl.size, pl.cfg.MaxEjectionPercent) {
			p.metrics.skipped.WithLabelValues(pl.name).Inc()
			// Once per backend until the pools change or it is ejected: a failing backend
			// that may not go would otherwise log every few requests.
			if !b.warned {
				b.warned = true
				p.logger.Warn("backend not ejected: its pool already has as many ejected backends as max_ejection_percent allows",
					"backend", b.id, "pool", pl.name, "ejected", pl.ejected, "size", pl.size, "failures", n)
			}
			p.mu.Unlock()
			return
		}
	}
	b.warned = false
	if !b.returnedAt.IsZero() && now.Sub(b.returnedAt) >= b.cfg.MaxEjectionTime {
		b.ejections = 0 // quiet for long enough: a fresh start
	}
	b.ejections++
	b.ejectedAt = now
	b.until = now.Add(ejectionTime(b.cfg.EjectionTime, b.cfg.MaxEjectionTime, b.ejections))
	b.label, b.reason = describeFailures(n, kinds)
	b.ejected.Store(true)
	for _, pl := range b.pools {
		pl.ejected++
		p.metrics.ejected.WithLabelValues(pl.name).Set(float64(pl.ejected))
		p.metrics.ejections.WithLabelValues(pl.name, b.id, b.label).Inc()
	}
	p.publishLocked()
	p.logger.Info("backend ejected", "backend", b.id, "pool", b.pools[0].name, "reason", b.reason,
		"until", b.until, "ejections", b.ejections)
	p.unlockAndNotify([]passiveEvent{{b.id, true, b.reason}})
	p.poke()
}

// describeFailures names a run of n failures whose kinds are the bits of kinds: the metric
// label and the reason shown to operators ("5 consecutive 5xx responses").
func describeFailures(n int64, kinds uint32) (label, reason string) {
	var names []string
	var last Outcome
	for o := Outcome5xx; o < numOutcomes; o++ {
		if kinds&(1<<o) != 0 {
			last = o
			names = append(names, failureNames[o].plural)
		}
	}
	switch {
	case len(names) == 1 && n == 1:
		return failureNames[last].label, failureNames[last].one
	case len(names) == 1:
		return failureNames[last].label, fmt.Sprintf("%d consecutive %s", n, names[0])
	case len(names) == 0:
		return reasonMixed, fmt.Sprintf("%d consecutive failures", n)
	}
	return reasonMixed, fmt.Sprintf("%d consecutive failures (%s)", n, strings.Join(names, ", "))
}

// returnLocked puts b back into traffic. p.mu must be held.
func (p *Passive) returnLocked(b *passiveBackend, now time.Time) {
	for _, pl := range b.pools {
		pl.ejected--
		p.metrics.ejected.WithLabelValues(pl.name).Set(float64(pl.ejected))
	}
	b.clearEjection(now)
}

// clearEjection resets b to not ejected, leaving its pools' counts to the caller.
func (b *passiveBackend) clearEjection(now time.Time) {
	b.ejectedAt, b.until, b.recheck, b.awaiting, b.reason, b.label = time.Time{}, time.Time{}, time.Time{}, false, "", ""
	b.returnedAt = now
	b.failures.Store(0)
	b.kinds.Store(0)
	b.ejected.Store(false)
}

// ObserveProbe takes an active probe's result: a success returns a backend whose ejection
// time is over. Register it with Checker.OnResult. A probe during the ejection time does not
// shorten it.
func (p *Passive) ObserveProbe(r Result) {
	if !r.OK {
		return
	}
	b := (*p.index.Load())[r.ID]
	if b == nil || !b.ejected.Load() {
		return
	}
	p.mu.Lock()
	if b.removed || !b.awaiting {
		p.mu.Unlock()
		return
	}
	p.returnLocked(b, time.Now())
	p.publishLocked()
	p.logger.Info("ejected backend returns", "backend", b.id, "pool", b.pools[0].name, "after", "successful probe")
	p.unlockAndNotify([]passiveEvent{{b.id, false, "probe succeeded"}})
}

// OnChange registers fn to be called at every ejection (ejected true, with the reason) and
// return (ejected false, with why: "ejection time over", "probe succeeded", "no active
// check", "passive checks off", "removed"). Calls come one at a time, in the order the
// changes happened, from the goroutine that caused them, which may be a request's. fn must
// return quickly (copy and enqueue), and must call no method of the Passive but Ejected, nor
// wait for anything that does: it runs while the next change waits.
func (p *Passive) OnChange(fn func(id string, ejected bool, reason string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hooks = append(p.hooks, fn)
}

// unlockAndNotify releases p.mu and hands events to the hooks. notifyMu is taken before mu
// is released, so a later change, which needs mu first, cannot overtake these events.
func (p *Passive) unlockAndNotify(events []passiveEvent) {
	if len(events) == 0 || len(p.hooks) == 0 {
		p.mu.Unlock()
		return
	}
	p.notifyMu.Lock()
	hooks := p.hooks
	p.mu.Unlock()
	defer p.notifyMu.Unlock()
	for _, e := range events {
		for _, fn := range hooks {
			fn(e.id, e.ejected, e.reason)
		}
	}
}

// stepper is what SetPools needs of a *pace.Pacer.
type stepper interface{ Step() }

// SetPacer makes SetPools step aside with pc between pools, so that a table of thousands of
// backends does not hold up the requests. It steps aside while it reads the new pools, before
// it takes the lock, so a request that ejects a backend meanwhile does not wait for it. Call
// it before SetPools and Run.
func (p *Passive) SetPacer(pc *pace.Pacer) { p.setStepper(pc) }

func (p *Passive) setStepper(s stepper) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pace = s
}

// SetPools replaces the pools and their settings. A backend whose ID stays keeps its state,
// an ejection included, judged from now on by its first pool's new settings; a pool that
// turns passive checks off (ConsecutiveFailures 0) returns its ejected backends at once, and
// removed backends are forgotten along with their metric series. An invalid pool Config is
// logged and replaced by DefaultPassiveConfig; of duplicate pool names the first wins.
func (p *Passive) SetPools(pools []PassivePool) {
	// First, holding no lock and stepping aside between pools, read the new pools: their
	// settings, and the pools of every backend in the order SetPools lists them, all in
	// plan.refs. Only the swap into the backends' state below holds the lock.
	p.mu.Lock()
	step := p.pace
	p.mu.Unlock()
	var problems []string
	nextPools := make(map[string]*passivePoolState, len(pools))
	plan := poolPlan{index: make(map[string]int, len(*p.index.Load()))}
	for _, sp := range pools {
		if step != nil {
			step.Step()
		}
		if _, dup := nextPools[sp.Name]; dup {
			problems = append(problems, fmt.Sprintf("pool %q listed twice, keeping the first", sp.Name))
			continue
		}
		cfg := sp.Config
		if err := cfg.Validate(); err != nil {
			problems = append(problems, fmt.Sprintf("pool %q: %v", sp.Name, strings.ReplaceAll(fielderr.Prefix("passive", err).Error(), "\n", "; ")))
			cfg = DefaultPassiveConfig()
		}
		pl := &passivePoolState{name: sp.Name, cfg: cfg}
		nextPools[sp.Name] = pl
		for _, id := range sp.Backends {
			if plan.add(id, pl) {
				pl.size++
			}
		}
	}
	plan.fill(pools, nextPools)
	if len(problems) > 0 {
		p.logger.Error("invalid passive check settings", "problems", strings.Join(problems, "; "))
	}

	now := time.Now()
	p.mu.Lock()
	nextBackends := make(map[string]*passiveBackend, len(plan.backends))
	p.setPools++
	anyEjected := false
	for i := range plan.backends {
		e := &plan.backends[i]
		b := p.backends[e.id]
		if b == nil {
			b = &passiveBackend{id: e.id}
		}
		// The pools before stay in prevPools, to tell which series to delete; the two
		// slices swap, so a steady table allocates none.
		b.prevPools, b.pools = b.pools, append(b.prevPools[:0], plan.refs[e.first:e.first+e.n]...)
		b.cfg = e.judge.cfg
		b.warned = false
		b.threshold.Store(int64(b.cfg.ConsecutiveFailures))
		b.listed = p.setPools
		nextBackends[e.id] = b
		anyEjected = anyEjected || !b.ejectedAt.IsZero()
	}
	var events []passiveEvent
	for id, b := range p.backends {
		if b.listed == p.setPools { // in nextBackends
			// Series of a backend that left one pool but stays in another go too.
			for _, old := range b.prevPools {
				if !slices.ContainsFunc(b.pools, func(pl *passivePoolState) bool { return pl.name == old.name }) {
					p.metrics.forget(old.name, id)
				}
			}
			clear(b.prevPools) // no pointers to the old pool states kept alive
			continue
		}
		for _, old := range b.pools {
			p.metrics.forget(old.name, id)
		}
		b.removed = true
		if !b.ejectedAt.IsZero() {
			events = append(events, passiveEvent{id, false, "removed"})
		}
		b.clearEjection(now)
	}
	for name := range p.pools {
		if _, kept := nextPools[name]; !kept {
			p.metrics.forgetPool(name)
		}
	}
	p.pools, p.backends = nextPools, nextBackends
	for _, b := range nextBackends {
		if !anyEjected {
			break // the usual case: no backend to look at
		}
		if b.ejectedAt.IsZero() {
			continue
		}
		if b.cfg.ConsecutiveFailures == 0 {
			b.clearEjection(now) // not counted in the new pools yet
			events = append(events, passiveEvent{b.id, false, "passive checks off"})
			continue
		}
		// A backend waiting for a probe whose active check was just removed would wait
		// forever; one whose check remains gets its probe again, which costs one probe.
		if b.awaiting && (p.prober == nil || !p.prober.ProbeNow(b.id)) {
			b.clearEjection(now)
			events = append(events, passiveEvent{b.id, false, "no active check"})
			continue
		}
		for _, pl := range b.pools {
			pl.ejected++
		}
	}
	for _, pl := range nextPools {
		p.metrics.ejected.WithLabelValues(pl.name).Set(float64(pl.ejected))
	}
	// The map is never written once here (the next SetPools makes a new one), so Report can
	// read it without a lock.
	p.index.Store(&nextBackends)
	if anyEjected || len(*p.ejected.Load()) > 0 {
		p.publishLocked()
	}
	p.unlockAndNotify(events)
	p.poke()
}

// poolPlan is what SetPools reads from its pools before it takes the lock: each backend
// listed, in order, with its pools in refs[first:first+n], the first of them judging it.
type poolPlan struct {
	backends []plannedBackend
	index    map[string]int // backend ID to its place in backends
	refs     []*passivePoolState
}

type plannedBackend struct {
	id       string
	first, n int
	judge    *passivePoolState // its first pool, whose settings judge it
	last     *passivePoolState // the last pool that listed it, to skip an ID listed twice in one
	filled   int
}

// add counts pl as one of id's pools; false when id is listed in pl already.
func (pp *poolPlan) add(id string, pl *passivePoolState) bool {
	i, ok := pp.index[id]
	if !ok {
		pp.index[id] = len(pp.backends)
		pp.backends = append(pp.backends, plannedBackend{id: id, judge: pl, last: pl, n: 1})
		return true
	}
	e := &pp.backends[i]
	if e.last == pl {
		return false
	}
	e.last = pl
	e.n++
	return true
}

// fill lays out every backend's pools in refs, walking the pools again in the same order.
func (pp *poolPlan) fill(pools []PassivePool, states map[string]*passivePoolState) {
	total := 0
	for i := range pp.backends {
		pp.backends[i].first = total
		pp.backends[i].last = nil
		total += pp.backends[i].n
	}
	pp.refs = make([]*passivePoolState, total)
	seen := make(map[*passivePoolState]bool, len(states))
	for _, sp := range pools {
		pl := states[sp.Name]
		if seen[pl] {
			continue // a duplicate name: the first pool of that name was kept
		}
		seen[pl] = true
		for _, id := range sp.Backends {
			e := &pp.backends[pp.index[id]]
			if e.last == pl {
				continue
			}
			e.last = pl
			pp.refs[e.first+e.filled] = pl
			e.filled++
		}
	}
}

// Status returns every backend's passive state sorted by ID.
func (p *Passive) Status() []PassiveStatus {
	p.mu.Lock()
	out := make([]PassiveStatus, 0, len(p.backends))
	for _, b := range p.backends {
		st := PassiveStatus{
			ID:                  b.id,
			Ejected:             !b.ejectedAt.IsZero(),
			AwaitingProbe:       b.awaiting,
			Reason:              b.reason,
			Since:               b.ejectedAt,
			Until:               b.until,
			Ejections:           b.ejections,
			ConsecutiveFailures: int(b.failures.Load()),
		}
		if len(b.pools) > 0 {
			st.Pool = b.pools[0].name
		}
		out = append(out, st)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b PassiveStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Run ends ejections whose time is up until ctx ends, then returns nil: a backend with an
// active check gets an immediate probe and returns at its first success (ObserveProbe), one
// without returns at once. Run can be called again after it returned, but not twice at once
// (ErrPassiveRunning).
func (p *Passive) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return ErrPassiveRunning
	}
	p.running = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
	}()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := p.expire(time.Now())
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-timer.C:
		}
	}
}

// expire ends the ejections that are due at now and returns how long until the next one is.
// A backend that waits for a successful probe is asked about again every max_ejection_time:
// a probe can be lost (the checker stopped, its result went nowhere), and a backend whose
// active check is gone by then returns.
func (p *Passive) expire(now time.Time) time.Duration {
	p.mu.Lock()
	var events []passiveEvent
	next := time.Duration(-1)
	for _, b := range p.backends {
		if b.ejectedAt.IsZero() {
			continue
		}
		due := b.until
		if b.awaiting {
			due = b.recheck
		}
		if d := due.Sub(now); d > 0 {
			if next < 0 || d < next {
				next = d
			}
			continue
		}
		// The prober is called under p.mu: it takes only its own lock and never calls back,
		// and its results reach ObserveProbe from another goroutine after this returns.
		if p.prober != nil && p.prober.ProbeNow(b.id) {
			b.awaiting = true
			b.recheck = now.Add(b.cfg.MaxEjectionTime)
			if d := b.cfg.MaxEjectionTime; next < 0 || d < next {
				next = d
			}
			p.logger.Debug("ejection time over, waiting for a successful probe", "backend", b.id)
			continue
		}
		why := "ejection time over"
		if b.awaiting {
			why = "no active check"
		}
		p.returnLocked(b, now)
		p.logger.Info("ejected backend returns", "backend", b.id, "pool", b.pools[0].name, "after", why)
		events = append(events, passiveEvent{b.id, false, why})
	}
	if len(events) > 0 {
		p.publishLocked()
	}
	p.unlockAndNotify(events)
	if next < 0 {
		return time.Hour // eject pokes Run when there is something to wait for
	}
	return next
}

// publishLocked swaps in the set of ejected IDs. p.mu must be held, which also keeps
// snapshots from being published out of order.
func (p *Passive) publishLocked() {
	m := make(map[string]bool)
	for id, b := range p.backends {
		if !b.ejectedAt.IsZero() {
			m[id] = true
		}
	}
	p.ejected.Store(&m)
}

// poke wakes Run without blocking.
func (p *Passive) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}
