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
	"golang.org/x/net/http/httpguts"

	"github.com/veloflux/veloflux/health/statusset"
	"github.com/veloflux/veloflux/internal/backendtls"
)

// maxConcurrentProbes bounds the probes in flight per Checker. Probes mostly wait on the
// network, so 32 keeps up with thousands of targets at the default interval while a slow
// network (every probe hitting its timeout) cannot grow goroutines or sockets without bound.
const maxConcurrentProbes = 32

// localErrorLogEvery spaces the warnings about probes that failed for lack of local
// resources: when the node runs out of file descriptors every probe fails that way, and a
// line per probe would add disk pressure to the problem.
const localErrorLogEvery = 10 * time.Second

// ErrRunning is returned by Run when the Checker is already running.
var ErrRunning = errors.New("health: checker already running")

// Probe types of Target.Type.
const (
	// TypeHTTP sends an HTTP request and judges its status. It is the default.
	TypeHTTP = "http"
	// TypeTCP only opens a TCP connection: for backends without an HTTP health endpoint.
	TypeTCP = "tcp"
)

// Target is one backend to check. Interval, Timeout, Fall, Rise and MaxInterval override the
// Checker's Config for this target alone, which is how a pool's own health_check settings are
// honoured; 0 means the Checker's value, which then follows SetConfig. SetTargets logs a
// negative override and uses the Checker's value instead, and likewise logs an invalid Type,
// Method or ExpectStatus and uses its default.
type Target struct {
	ID      string // backend ID, the unique key across all pools
	Pool    string // pool name, used as a metrics label
	Address string // host:port
	// Type is TypeHTTP ("" means it) or TypeTCP. An http target with Path "" is not actively
	// checked and always healthy; a tcp target is checked whatever Path says.
	Type string
	Path string // HTTP path probed
	Host string // Host header sent; "" means Address
	// Method is the HTTP method of the probe: "" means GET; HEAD saves the body, and any
	// other RFC 9110 token is sent as is.
	Method string
	// ExpectStatus lists the statuses that pass, in statusset syntax ("200-299,301"); ""
	// means statusset.Default, 200-399.
	ExpectStatus string
	// Scheme is how the backend speaks, as in discovery.Backend: "" or "http", "https"
	// (verified TLS unless TLSSkipVerify) or "h2c" (HTTP/2 without TLS).
	Scheme        string
	TLSSkipVerify bool
	// TLS is the pool's client TLS settings for an https target (private CA, server name,
	// client certificate), so that the probe verifies and presents what proxied requests do.
	TLS backendtls.Settings
	// Region is the backend's region ("" = the node's own); with a cluster, the backend is
	// probed by members of that region.
	Region string

	Interval    time.Duration // 0 = Checker's Config.Interval
	Timeout     time.Duration // 0 = Checker's Config.Timeout
	Fall        int           // 0 = Checker's Config.Fall
	Rise        int           // 0 = Checker's Config.Rise
	MaxInterval time.Duration // 0 = Checker's Config.MaxInterval
}

// Identity is t without its overrides: what is probed and what it must answer, as opposed to
// how often it is probed and how many results flip it. A change of identity under the same ID
// is a new backend, which SetTargets starts afresh; a change of overrides is not.
func (t Target) Identity() Target {
	t.Interval, t.Timeout, t.Fall, t.Rise, t.MaxInterval = 0, 0, 0, 0, 0
	return t
}

// Checked reports whether t is actively probed at all.
func (t Target) Checked() bool { return t.Type == TypeTCP || t.Path != "" }

// normalized returns t with the defaults of Type, Method and ExpectStatus written out, so
// that "" and the default compare equal in identity, and the parsed ExpectStatus. A tcp
// target's Method and ExpectStatus are cleared: they play no part in its check. Invalid
// values are replaced by their defaults and described in problems.
func (t Target) normalized() (_ Target, expect statusset.Set, problems []string) {
	switch t.Type {
	case "", TypeHTTP:
		t.Type = TypeHTTP
	case TypeTCP:
		t.Method, t.ExpectStatus = "", ""
		return t, statusset.Set{}, nil
	default:
		problems = append(problems, fmt.Sprintf("type %q is not http or tcp", t.Type))
		t.Type = TypeHTTP
	}
	switch {
	case t.Method == "":
		t.Method = http.MethodGet
	case !isToken(t.Method):
		problems = append(problems, fmt.Sprintf("method %q is not an HTTP token", t.Method))
		t.Method = http.MethodGet
	}
	if t.ExpectStatus == "" {
		t.ExpectStatus = statusset.Default
	}
	expect, err := statusset.Parse(t.ExpectStatus)
	if err != nil {
		problems = append(problems, "expect_status "+err.Error())
		expect, _ = statusset.Parse(statusset.Default)
	}
	t.ExpectStatus = expect.String()
	return t, expect, problems
}

// isToken reports whether s is an RFC 9110 token, which a method must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !httpguts.IsTokenRune(r) {
			return false
		}
	}
	return true
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
	if t.Rise < 0 {
		t.Rise, ok = 0, false
	}
	if t.MaxInterval < 0 {
		t.MaxInterval, ok = 0, false
	}
	return t, ok
}

// TargetStatus is the state of one target as shown by the admin API.
type TargetStatus struct {
	ID      string
	Pool    string
	Address string
	Type    string // TypeHTTP or TypeTCP
	Path    string
	Healthy bool
	// LastError is the reason the latest probe failed ("status 503", "timeout"), "" if it
	// succeeded or none has run yet.
	LastError string
	// LastCheck is when the latest probe finished; zero if none has (always for a target
	// that is not actively checked).
	LastCheck time.Time
	// NextCheck is when the next probe is due, which shows the backoff of a down target;
	// zero while a probe runs and for a target that is not actively checked.
	NextCheck            time.Time
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
	expect    statusset.Set // Target.ExpectStatus parsed
	lastError string
	lastCheck time.Time

	next    time.Time          // when the next probe is due, while queued
	index   int                // position in Checker.queue, -1 when not queued
	removed bool               // dropped by SetTargets; an in-flight result is discarded
	cancel  context.CancelFunc // cancels the in-flight probe, nil when none
	// reported is closed once the OnResult hooks of the target's latest result have run: the
	// next result waits for it, so hooks see one target's results in the order of its probes
	// even when the goroutine of an earlier one is slow to reach them.
	reported chan struct{}
}

// Checker actively probes targets and answers Healthy from an immutable snapshot. All methods
// are safe for concurrent use.
type Checker struct {
	client *http.Client
	// insecure and h2c probe https backends that skip verification and h2c backends; nil when
	// the caller gave its own client, which then probes every target.
	insecure, h2c *http.Client
	// tlsClients probe https targets with tls settings, one client per distinct settings,
	// built when first needed; nil when the caller gave its own client.
	tlsMu      sync.Mutex
	tlsClients map[backendtls.Settings]*http.Client
	logger     *slog.Logger
	metrics    *metrics
	sem        chan struct{} // one slot per probe in flight
	wake       chan struct{} // tells Run the queue head or interval changed; capacity 1

	// snap maps target ID to healthy. It is replaced, never modified, so Healthy reads it
	// without locks on the request path.
	snap atomic.Pointer[map[string]bool]

	mu      sync.Mutex
	cfg     Config
	targets map[string]*target
	queue   queue
	running bool
	hooks   []func(Result)

	// localWarned is when the last warning about a local probe failure was logged and
	// localQuiet how many such failures were not logged since.
	localWarned time.Time
	localQuiet  int
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
	// Next is when the following probe is due: At plus the interval, or the backed-off
	// interval while the target is down and failing.
	Next time.Time
}

// OnResult registers fn to be called after every finished probe, in the probing goroutine and
// outside the Checker's lock, one target's results in the order of its probes; fn must return
// quickly. Cancelled probes are not reported, nor
// probes that failed for a reason local to this node (see check): they have no result.
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
	if err := cfg.validateRun(); err != nil {
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
		client:     client,
		insecure:   insecure,
		tlsClients: map[backendtls.Settings]*http.Client{},
		h2c:        h2c,
		logger:     logger,
		metrics:    m,
		sem:        make(chan struct{}, maxConcurrentProbes),
		wake:       make(chan struct{}, 1),
		cfg:        cfg,
		targets:    make(map[string]*target),
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

// ConfigFor returns the settings the Checker applies to t right now: its Config, as SetConfig
// last set it, with t's overrides.
func (c *Checker) ConfigFor(t Target) Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.forTarget(t)
}

// ProbeNow moves the next probe of backend id to now, so that a backend the passive checks
// ejected can prove itself at once instead of at its next turn, which backoff may have put a
// minute away. A probe already running counts as that probe. It reports whether id is
// actively checked: false means no probe will come, ever. The probe runs while Run does; its
// result reaches the OnResult hooks like any other, and the schedule after it is the usual
// one.
func (c *Checker) ProbeNow(id string) bool {
	c.mu.Lock()
	t, ok := c.targets[id]
	if !ok || !t.Checked() {
		c.mu.Unlock()
		return false
	}
	if t.index >= 0 {
		t.next = time.Now()
		heap.Fix(&c.queue, t.index)
	}
	c.mu.Unlock()
	c.poke()
	return true
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
	var dups, invalid, bad []string
	for _, spec := range targets {
		if _, dup := next[spec.ID]; dup {
			dups = append(dups, spec.ID)
			continue
		}
		spec, valid := spec.withValidOverrides()
		if !valid {
			invalid = append(invalid, spec.ID)
		}
		spec, expect, problems := spec.normalized()
		for _, p := range problems {
			bad = append(bad, spec.ID+": "+p)
		}
		if old, ok := c.targets[spec.ID]; ok && old.Identity() == spec.Identity() {
			c.retuneLocked(old, spec, now)
			next[spec.ID] = old
			continue
		}
		t := &target{Target: spec, state: state{healthy: true}, expect: expect, index: -1}
		if spec.Checked() {
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
	if len(bad) > 0 {
		c.logger.Error("invalid health check settings, using their defaults instead", "problems", strings.Join(bad, "; "))
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

// SetConfig changes interval, timeout, fall, rise and max interval while running, for every
// target that does not override them. A shorter interval pulls probes that were due later than one new
// interval from now forward (spread again over that interval); timeout applies to the next
// probe started, fall and rise to the next result. An invalid cfg is logged and ignored: the
// last good config stays, so validate it first (Config.Validate) when the reload can still be
// refused.
func (c *Checker) SetConfig(cfg Config) {
	if err := cfg.validateRun(); err != nil {
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
		st := TargetStatus{
			ID:                   t.ID,
			Pool:                 t.Pool,
			Address:              t.Address,
			Type:                 t.Type,
			Path:                 t.Path,
			Healthy:              t.healthy,
			LastError:            t.lastError,
			LastCheck:            t.lastCheck,
			ConsecutiveFailures:  t.failures,
			ConsecutiveSuccesses: t.successes,
		}
		if t.index >= 0 {
			st.NextCheck = t.next
		}
		out = append(out, st)
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
	spec, expect := t.Target, t.expect
	pctx, cancel := context.WithTimeout(ctx, c.cfg.forTarget(spec).Timeout)
	defer cancel()
	t.cancel = cancel
	c.mu.Unlock()

	start := time.Now()
	var reason string
	var local bool
	if client, err := c.clientFor(spec); err != nil {
		reason = "tls settings: " + err.Error() // the files did not load: nothing was sent
	} else {
		reason, local = probe(pctx, client, spec, expect)
	}
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
	if local {
		c.noResultLocked(t, reason, end, cfg)
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
	t.next = end.Add(nextDelay(cfg.Interval, cfg.MaxInterval, t.downFailures, spread))
	heap.Push(&c.queue, t)
	res := Result{ID: t.ID, Pool: t.Pool, OK: reason == "", Reason: reason, Healthy: t.healthy,
		Changed: changed, At: end, Took: end.Sub(start), Next: t.next}
	hooks := c.hooks
	prev, done := t.reported, make(chan struct{})
	t.reported = done
	c.mu.Unlock()
	c.poke()
	if prev != nil {
		<-prev
	}
	for _, fn := range hooks {
		fn(res)
	}
	close(done)
}

// noResultLocked ends a probe that failed for a reason local to this node: no file
// descriptor, buffer, memory or local port for the connection (localerr). Such a failure says
// nothing about the backend, so it is no result at all: the target's state, streaks and
// LastCheck stay as they were, no OnResult hook runs (a cluster gets no observation from it)
// and the next probe comes when it would have after the previous result. It is counted, and
// logged at warn level at most once per localErrorLogEvery. c.mu must be held; it is released.
func (c *Checker) noResultLocked(t *target, reason string, end time.Time, cfg Config) {
	c.metrics.localErrors.Inc()
	t.next = end.Add(nextDelay(cfg.Interval, cfg.MaxInterval, t.downFailures, spread))
	heap.Push(&c.queue, t)
	warn := end.Sub(c.localWarned) >= localErrorLogEvery
	suppressed := c.localQuiet
	if warn {
		c.localWarned, c.localQuiet = end, 0
	} else {
		c.localQuiet++
	}
	id, pool, addr := t.ID, t.Pool, t.Address
	c.mu.Unlock()
	c.poke()
	if warn {
		c.logger.Warn("health probe failed for lack of local resources; not counted against the backend",
			"backend", id, "pool", pool, "address", addr, "reason", reason, "suppressed", suppressed)
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

// clientFor picks the client that speaks t's scheme, with t's TLS settings.
func (c *Checker) clientFor(t Target) (*http.Client, error) {
	switch {
	case t.Scheme == "h2c" && c.h2c != nil:
		return c.h2c, nil
	case t.Scheme == "https" && !t.TLS.IsZero() && c.tlsClients != nil:
		return c.tlsClient(t.TLS)
	case t.Scheme == "https" && t.TLSSkipVerify && c.insecure != nil:
		return c.insecure, nil
	}
	return c.client, nil
}

// tlsClient returns the client of https targets with settings s, reading its files the first
// time s is asked for; a failed read is tried again at the next probe.
func (c *Checker) tlsClient(s backendtls.Settings) (*http.Client, error) {
	c.tlsMu.Lock()
	defer c.tlsMu.Unlock()
	if cl, ok := c.tlsClients[s]; ok {
		return cl, nil
	}
	cfg, err := s.Config()
	if err != nil {
		return nil, err
	}
	cl := newDefaultClient()
	cl.Transport.(*http.Transport).TLSClientConfig = cfg
	c.tlsClients[s] = cl
	return cl, nil
}
