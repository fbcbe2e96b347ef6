package health

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// maxConcurrentProbes bounds the probes in flight per Checker. Probes mostly wait on the
// network, so 32 keeps up with thousands of targets at the default interval while a slow
// network (every probe hitting its timeout) cannot grow goroutines or sockets without bound.
const maxConcurrentProbes = 32

// ErrRunning is returned by Run when the Checker is already running.
var ErrRunning = errors.New("health: checker already running")

// Target is one backend to check. Interval, Timeout and Fall override the Checker's Config
// for this target alone, which is how a pool's own health_check settings are honoured; 0
// means the Checker's value, which then follows SetConfig. SetTargets logs a negative
// override and uses the Checker's value instead.
type Target struct {
	ID      string // backend ID, the unique key across all pools
	Pool    string // pool name, used as a metrics label
	Address string // host:port
	Path    string // HTTP path probed; "" means not actively checked and always healthy
	Host    string // Host header sent; "" means Address
	// Scheme is how the backend speaks, as in discovery.Backend: "" or "http", "https"
	// (verified TLS unless TLSSkipVerify) or "h2c" (HTTP/2 without TLS).
	Scheme        string
	TLSSkipVerify bool
	// Region is the backend's region ("" = the node's own); with a cluster, the backend is
	// probed by members of that region.
	Region string

	Interval time.Duration // 0 = Checker's Config.Interval
	Timeout  time.Duration // 0 = Checker's Config.Timeout
	Fall     int           // 0 = Checker's Config.Fall
}

// identity is t without its overrides: what is probed, as opposed to how it is judged and
// scheduled. A change of identity under the same ID is a new backend; a change of overrides
// is not.
func (t Target) identity() Target {
	t.Interval, t.Timeout, t.Fall = 0, 0, 0
	return t
}

// withValidOverrides returns t with negative overrides zeroed, so the Checker's value applies
// to them, and whether any had to be.
func (t Target) withValidOverrides() (Target, bool) {
	ok := true
	if t.Interval < 0 {
		t.Interval, ok = 0, false
	}
	if t.Timeout < 0 {
		t.Timeout, ok = 0, false
	}
	if t.Fall < 0 {
		t.Fall, ok = 0, false
	}
	return t, ok
}

// TargetStatus is the state of one target as shown by the admin API.
type TargetStatus struct {
	ID      string
	Pool    string
	Address string
	Path    string
	Healthy bool
	// LastError is the reason the latest probe failed ("status 503", "timeout"), "" if it
	// succeeded or none has run yet.
	LastError string
	// LastCheck is when the latest probe finished; zero if none has (always for Path "").
	LastCheck            time.Time
	ConsecutiveFailures  int
	ConsecutiveSuccesses int
}

// target is a Target plus its schedule and state. The embedded Target's identity never
// changes: a changed identity under the same ID replaces the whole target. Its overrides are
// updated in place by SetTargets, so the embedded Target is guarded by Checker.mu like
// everything else, and a probe works on a copy taken under the lock.
type target struct {
	Target
	state
	lastError string
	lastCheck time.Time

	next    time.Time          // when the next probe is due, while queued
	index   int                // position in Checker.queue, -1 when not queued
	removed bool               // dropped by SetTargets; an in-flight result is discarded
	cancel  context.CancelFunc // cancels the in-flight probe, nil when none
}

// Checker actively probes targets and answers Healthy from an immutable snapshot. All methods
// are safe for concurrent use.
type Checker struct {
	client *http.Client
	// insecure and h2c probe https backends that skip verification and h2c backends; nil when
	// the caller gave its own client, which then probes every target.
	insecure, h2c *http.Client
	logger        *slog.Logger
	metrics       *metrics
	sem           chan struct{} // one slot per probe in flight
	wake          chan struct{} // tells Run the queue head or interval changed; capacity 1

	// snap maps target ID to healthy. It is replaced, never modified, so Healthy reads it
	// without locks on the request path.
	snap atomic.Pointer[map[string]bool]

	mu      sync.Mutex
	cfg     Config
	targets map[string]*target
	queue   queue
	running bool
	hooks   []func(Result)
}

// Result is one finished probe, as handed to the OnResult hooks.
type Result struct {
	ID, Pool string
	// OK is this probe's outcome; Reason says why it failed ("" when OK).
	OK     bool
	Reason string
	// Healthy is the target's verdict after this probe (rise/fall applied) and Changed
	// whether this probe flipped it.
	Healthy, Changed bool
	At               time.Time     // when the probe finished
	Took             time.Duration // how long it ran
}

// OnResult registers fn to be called after every finished probe, in the probing goroutine and
// outside the Checker's lock; fn must return quickly. Cancelled probes are not reported.
func (c *Checker) OnResult(fn func(Result)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks = append(c.hooks, fn)
}

// NewChecker returns a Checker with no targets; give it some with SetTargets and start it
// with Run. client nil means a client that dials afresh for every probe, ignores proxy
// environment variables and does not follow redirects; a given client is used as is, so its
// redirect policy decides whether a 3xx is judged itself or by where it leads. logger nil
// discards logs. reg nil leaves the metrics unregistered.
func NewChecker(cfg Config, client *http.Client, logger *slog.Logger, reg prometheus.Registerer) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("health: invalid config: %w", err)
	}
	var insecure, h2c *http.Client
	if client == nil {
		client, insecure, h2c = newDefaultClient(), newInsecureClient(), newH2CClient()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	c := &Checker{
		client:   client,
		insecure: insecure,
		h2c:      h2c,
		logger:   logger.With("component", "health"),
		metrics:  m,
		sem:      make(chan struct{}, maxConcurrentProbes),
		wake:     make(chan struct{}, 1),
		cfg:      cfg,
		targets:  make(map[string]*target),
	}
	c.snap.Store(&map[string]bool{})
	return c, nil
}

// Healthy reports whether the backend may receive traffic. Unknown IDs are healthy: a
// backend the checker has not been told about yet must not be blackholed. It takes no lock
// and does not allocate.
func (c *Checker) Healthy(id string) bool {
	h, ok := (*c.snap.Load())[id]
	return h || !ok
}

// SetTargets replaces the set of checked targets. A target whose ID and identity (pool,
// address, path, host) are unchanged keeps its state and schedule, even if its Interval,
// Timeout or Fall changed: those are new rules for judging the same backend, and forgetting
// a down verdict on a reload that only retunes the pool would send it traffic again. New
// rules apply as SetConfig's do (see retuneLocked). New targets, and targets whose identity
// changed, start healthy so a fresh backend serves at once, and get their first probe at a
// random point within one interval so targets added together don't fire together. Removed
// targets stop being probed, an in-flight probe of theirs is cancelled and their metric
// series are deleted. Of duplicate IDs the first wins.
func (c *Checker) SetTargets(targets []Target) {
	now := time.Now()
	c.mu.Lock()
	next := make(map[string]*target, len(targets))
	var dups, invalid []string
	for _, spec := range targets {
		if _, dup := next[spec.ID]; dup {
			dups = append(dups, spec.ID)
			continue
		}
		spec, valid := spec.withValidOverrides()
		if !valid {
			invalid = append(invalid, spec.ID)
		}
		if old, ok := c.targets[spec.ID]; ok && old.identity() == spec.identity() {
			c.retuneLocked(old, spec, now)
			next[spec.ID] = old
			continue
		}
		t := &target{Target: spec, state: state{healthy: true}, index: -1}
		if spec.Path != "" {
			t.next = now.Add(spread(c.cfg.forTarget(spec).Interval))
			heap.Push(&c.queue, t)
		}
		next[spec.ID] = t
	}
	pools := make(map[string]bool, len(next))
	for _, t := range next {
		pools[t.Pool] = true
	}
	for id, old := range c.targets {
		kept, ok := next[id]
		if ok && kept == old {
			continue
		}
		old.removed = true
		c.queue.remove(old)
		if old.cancel != nil {
			old.cancel()
		}
		// A replacement in the same pool reuses the series; anything else would leave
		// stale series for a backend that is gone.
		if !ok || kept.Pool != old.Pool {
			c.metrics.forgetBackend(old.Pool, old.ID)
		}
		if !pools[old.Pool] {
			c.metrics.forgetPool(old.Pool)
		}
	}
	c.targets = next
	c.publishLocked()
	c.mu.Unlock()
	c.poke()
	if len(dups) > 0 {
		c.logger.Error("duplicate health check target IDs, keeping the first of each", "ids", strings.Join(dups, ","))
	}
	if len(invalid) > 0 {
		c.logger.Error("negative health check overrides, using the checker's values instead", "ids", strings.Join(invalid, ","))
	}
}

// retuneLocked gives a kept target its new overrides, keeping its state. They apply as a
// SetConfig does: a new timeout to the next probe started, a new fall from the next result
// on (so a healthy target that already has as many consecutive failures as the new fall goes
// down at its next failure, not at once), and a shorter interval pulls a probe due later than
// one new interval from now forward, spread over that interval; a longer interval applies
// after the probe already scheduled. c.mu must be held.
func (c *Checker) retuneLocked(t *target, spec Target, now time.Time) {
	before := c.cfg.forTarget(t.Target).Interval
	t.Target = spec
	after := c.cfg.forTarget(spec).Interval
	if after < before && t.index >= 0 && t.next.After(now.Add(after)) {
		t.next = now.Add(spread(after))
		heap.Fix(&c.queue, t.index)
	}
}

// SetConfig changes interval, timeout, fall and rise while running, for every target that
// does not override them. A shorter interval pulls probes that were due later than one new
// interval from now forward (spread again over that interval); timeout applies to the next
// probe started, fall and rise to the next result. An invalid cfg is logged and ignored: the
// last good config stays, so validate it first (Config.Validate) when the reload can still be
// refused.
func (c *Checker) SetConfig(cfg Config) {
	if err := cfg.Validate(); err != nil {
		c.logger.Error("ignoring invalid health check config, keeping the previous one", "error", err)
		return
	}
	now := time.Now()
	c.mu.Lock()
	shorter := cfg.Interval < c.cfg.Interval
	c.cfg = cfg
	if shorter {
		limit := now.Add(cfg.Interval)
		for _, t := range c.queue {
			if t.Interval == 0 && t.next.After(limit) {
				t.next = now.Add(spread(cfg.Interval))
			}
		}
		heap.Init(&c.queue)
	}
	c.mu.Unlock()
	c.poke()
}

// Status returns every target's state sorted by ID.
func (c *Checker) Status() []TargetStatus {
	c.mu.Lock()
	out := make([]TargetStatus, 0, len(c.targets))
	for _, t := range c.targets {
		out = append(out, TargetStatus{
			ID:                   t.ID,
			Pool:                 t.Pool,
			Address:              t.Address,
			Path:                 t.Path,
			Healthy:              t.healthy,
			LastError:            t.lastError,
			LastCheck:            t.lastCheck,
			ConsecutiveFailures:  t.failures,
			ConsecutiveSuccesses: t.successes,
		})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b TargetStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Run probes targets until ctx ends, then cancels the probes in flight, waits for them and
// returns nil. Their results are discarded: shutting down says nothing about a backend's
// health. Run can be called again after it returned, but not twice at once (ErrRunning).
func (c *Checker) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return ErrRunning
	}
	c.running = true
	c.mu.Unlock()

	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		// h2c probes share pooled connections; nothing else keeps any.
		if c.h2c != nil {
			c.h2c.CloseIdleConnections()
		}
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		t, wait := c.nextDue(time.Now())
		if t == nil {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case <-c.wake:
			case <-timer.C:
			}
			continue
		}
		// Waiting for a slot here, rather than in a goroutine per due target, is what keeps
		// goroutines bounded when probes are slower than they are due.
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			c.requeue(t)
			return nil
		}
		wg.Go(func() {
			defer func() { <-c.sem }()
			c.check(ctx, t)
		})
	}
}

// nextDue pops the target whose probe is due at now; if none is due it returns how long to
// sleep instead.
func (c *Checker) nextDue(now time.Time) (t *target, wait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return nil, time.Hour // SetTargets wakes Run when there is something to do
	}
	if d := c.queue[0].next.Sub(now); d > 0 {
		return nil, d
	}
	return heap.Pop(&c.queue).(*target), 0
}

// check runs one probe of t and records its result.
func (c *Checker) check(ctx context.Context, t *target) {
	c.mu.Lock()
	if t.removed {
		c.mu.Unlock()
		return
	}
	// A copy, because SetTargets may retune t while the probe runs.
	spec := t.Target
	pctx, cancel := context.WithTimeout(ctx, c.cfg.forTarget(spec).Timeout)
	defer cancel()
	t.cancel = cancel
	c.mu.Unlock()

	start := time.Now()
	reason := probe(pctx, c.clientFor(spec), spec)
	end := time.Now()

	c.mu.Lock()
	t.cancel = nil
	if t.removed {
		c.mu.Unlock()
		return
	}
	cfg := c.cfg.forTarget(t.Target)
	if ctx.Err() != nil {
		// Cancelled by shutdown, not failed: keep it scheduled for a later Run.
		t.next = end.Add(spread(cfg.Interval))
		heap.Push(&c.queue, t)
		c.mu.Unlock()
		return
	}
	result := resultSuccess
	if reason != "" {
		result = resultFailure
	}
	c.metrics.observe(t.Pool, t.ID, result, end.Sub(start))
	t.lastCheck = end
	t.lastError = reason
	changed := t.observe(reason == "", cfg.Fall, cfg.Rise)
	if changed {
		// Logged under the lock (changes are rare enough to afford it) and before publishing,
		// so one backend's ups and downs are logged in the order they happened and the line
		// is written before Healthy or Status can show the new state.
		if t.healthy {
			c.logger.Info("backend up", "backend", t.ID, "pool", t.Pool, "address", t.Address, "successes", t.successes)
		} else {
			c.logger.Info("backend down", "backend", t.ID, "pool", t.Pool, "address", t.Address, "reason", reason, "failures", t.failures)
		}
		c.publishLocked()
	}
	res := Result{ID: t.ID, Pool: t.Pool, OK: reason == "", Reason: reason, Healthy: t.healthy,
		Changed: changed, At: end, Took: end.Sub(start)}
	t.next = end.Add(period(cfg.Interval))
	heap.Push(&c.queue, t)
	hooks := c.hooks
	c.mu.Unlock()
	c.poke()
	for _, fn := range hooks {
		fn(res)
	}
}

// requeue puts back a target that was popped but never probed.
func (c *Checker) requeue(t *target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.removed && t.index < 0 {
		t.next = time.Now().Add(spread(c.cfg.forTarget(t.Target).Interval))
		heap.Push(&c.queue, t)
	}
}

// publishLocked swaps in a new snapshot if any target's health differs from the current
// one. c.mu must be held, which also keeps snapshots from being published out of order.
func (c *Checker) publishLocked() {
	m := make(map[string]bool, len(c.targets))
	for id, t := range c.targets {
		m[id] = t.healthy
	}
	if maps.Equal(m, *c.snap.Load()) {
		return
	}
	c.snap.Store(&m)
}

// poke wakes Run without blocking; one pending wake-up is enough since Run re-reads the queue.
func (c *Checker) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// spread returns a uniformly random delay in [0, d), so targets added or rescheduled
// together do not probe together.
func spread(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// period is the delay until a target's next probe: the interval plus up to a tenth of it,
// so targets that happen to line up drift apart again.
func period(interval time.Duration) time.Duration {
	return interval + spread(interval/10)
}

// clientFor picks the client that speaks t's scheme.
func (c *Checker) clientFor(t Target) *http.Client {
	switch {
	case t.Scheme == "h2c" && c.h2c != nil:
		return c.h2c
	case t.Scheme == "https" && t.TLSSkipVerify && c.insecure != nil:
		return c.insecure
	}
	return c.client
}
