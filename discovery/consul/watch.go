package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/discovery"
)

// requestSlack is added to a blocking query's own deadline (WaitTime plus the up to
// WaitTime/16 of jitter Consul adds): a connection that silently died must not hold a watch
// for longer than that.
const requestSlack = 30 * time.Second

// Source watches Consul's catalog in every configured datacenter and publishes a snapshot of
// the routed services, which cmd merges after the static configuration's (discovery.Merge).
type Source struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	filter entryFilter
	token  string // removed from every error text the source shows
	dirty  chan struct{}
	// client is built by New with NewClient. Tests in this package replace it, before Run, with
	// a client whose transport counts requests; nothing else writes it.
	client  *api.Client
	running atomic.Bool

	mu        sync.Mutex
	dcs       []*dcState // the local datacenter first, then Config.Datacenters in order
	tagErrors []TagError
	conflicts []string
	published bool
}

// dcState is what the source knows about one datacenter. Guarded by Source.mu.
type dcState struct {
	query string // the datacenter sent in requests; "" = the agent's own
	name  string // "" until the agent's own datacenter has told its name
	// dup marks the agent's own datacenter when Config.Datacenters names it too: that entry
	// watches it, this one stops.
	dup      bool
	state    string
	lastErr  string
	lastOK   time.Time
	index    uint64
	listed   bool              // the service list was read at least once
	failing  map[string]string // failing watch ("services", "health web", "agent") -> error text
	services map[string]*serviceState
}

// complete reports whether the datacenter has had a full read: its service list and the
// instances of every watched service.
func (d *dcState) complete() bool {
	if !d.listed {
		return false
	}
	for _, svc := range d.services {
		if !svc.read {
			return false
		}
	}
	return true
}

// serviceState is the last good read of one watched service. Guarded by Source.mu.
type serviceState struct {
	read      bool
	instances []instance
	errs      []TagError
}

// New checks cfg, builds its Consul client and registers the source's metrics with reg (nil:
// not exported). logger is used as given (the caller names the component); nil discards.
// Nothing is contacted before Run.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Source, error) {
	client, err := NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul source: %w", err)
	}
	token := cfg.Token
	if token == "" && cfg.TokenFile != "" {
		// NewClient has just read it; read again to keep it out of error texts.
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("consul source: discovery.consul.token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("consul source: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		cfg:    cfg,
		log:    logger,
		m:      m,
		filter: entryFilter{tags: newTagParser(cfg.TagPrefix), exposedByDefault: cfg.ExposedByDefault, acceptWarning: cfg.AcceptWarning},
		token:  token,
		dirty:  make(chan struct{}, 1),
		client: client,
	}
	s.dcs = s.newStates()
	return s, nil
}

func (s *Source) newStates() []*dcState {
	mk := func(query, name string) *dcState {
		return &dcState{query: query, name: name, state: StateStarting,
			failing: make(map[string]string), services: make(map[string]*serviceState)}
	}
	dcs := []*dcState{mk(s.cfg.Datacenter, s.cfg.Datacenter)}
	for _, dc := range s.cfg.Datacenters {
		dcs = append(dcs, mk(dc, dc))
	}
	return dcs
}

// Run watches until ctx ends, then returns nil once all its goroutines have ended. Nothing
// is published until every datacenter has been read in full (an extra datacenter that is
// failing does not hold the local one back); after that, each change is published once a
// burst of changes has been quiet for Config.Coalesce (at most 10 × Coalesce after the first
// change), and never a snapshot equal to the previous one. On errors the last good data of
// each service is kept, so an outage publishes nothing. publish is never given nil and must not
// block for long.
func (s *Source) Run(ctx context.Context, publish func(*discovery.Snapshot)) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("consul source: Run is already running")
	}
	defer s.running.Store(false)
	s.mu.Lock()
	s.dcs, s.tagErrors, s.conflicts, s.published = s.newStates(), nil, nil, false
	dcs := s.dcs
	s.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, dc := range dcs {
		wg.Go(func() { s.watchDatacenter(ctx, dc) })
	}
	s.publishLoop(ctx, publish)
	cancel()
	wg.Wait()
	return nil
}

// Status returns a copy of the source's state.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		Datacenters:   []DatacenterStatus{},
		TagErrors:     append([]TagError{}, s.tagErrors...),
		PoolConflicts: append([]string{}, s.conflicts...),
		Published:     s.published,
	}
	for _, dc := range s.dcs {
		if dc.dup {
			continue
		}
		st.Datacenters = append(st.Datacenters, DatacenterStatus{
			Name:        dc.name,
			State:       dc.state,
			LastError:   dc.lastErr,
			LastSuccess: dc.lastOK,
			Index:       dc.index,
			Services:    slices.Sorted(maps.Keys(dc.services)),
		})
	}
	return st
}

// watchDatacenter runs the blocking query on the service list and one health watch per routed
// service, until ctx ends.
func (s *Source) watchDatacenter(ctx context.Context, dc *dcState) {
	name := dc.query
	if name == "" {
		var ok bool
		if name, ok = s.learnDatacenter(ctx, dc); !ok {
			return
		}
	}
	var wg sync.WaitGroup
	stops := make(map[string]context.CancelFunc)
	defer func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	}()
	bo := newBackoff(s.cfg.MinBackoff, s.cfg.MaxBackoff)
	var wait, last uint64
	resync := false
	for {
		q, cancel := s.query(ctx, dc.query, wait)
		list, meta, err := s.client.Catalog().Services(q)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.failed(dc, watchID{key: "services", endpoint: endpointServices}, fmt.Errorf("list services: %w", err))
			// A restarted agent answers with a lower index; waiting on the old one would
			// block for the whole WaitTime, so ask afresh. Its index may also have come back
			// to the very value we know, with other data: read the answer whatever its index.
			wait, resync = 0, true
			if !sleep(ctx, bo.next()) {
				return
			}
			continue
		}
		bo.reset()
		s.succeeded(dc, watchID{key: "services", endpoint: endpointServices})
		var changed bool
		wait, changed = nextIndex(last, meta.LastIndex)
		last = max(meta.LastIndex, 1)
		changed, resync = changed || resync, false
		s.mu.Lock()
		dc.index = last
		s.mu.Unlock()
		if !changed {
			continue
		}

		want := make(map[string]bool)
		for svc, tags := range list {
			if s.filter.tags.watched(svc, tags, s.cfg.ExposedByDefault) {
				want[svc] = true
			}
		}
		s.mu.Lock()
		dirty := !dc.listed // the first listing may complete the first full read
		for svc, stop := range stops {
			if !want[svc] {
				stop()
				delete(stops, svc)
				delete(dc.services, svc)
				delete(dc.failing, "health "+svc)
				dirty = true
			}
		}
		for svc := range want {
			if _, ok := stops[svc]; ok {
				continue
			}
			sctx, stop := context.WithCancel(ctx)
			stops[svc] = stop
			st := &serviceState{}
			dc.services[svc] = st
			wg.Go(func() { s.watchService(sctx, dc, name, svc, st) })
		}
		dc.listed = true
		recovered := s.settleLocked(dc)
		s.mu.Unlock()
		s.m.watched.WithLabelValues(name).Set(float64(len(stops)))
		if recovered {
			s.logRecovered(name)
		}
		if dirty {
			s.markDirty() // a new service marks it once its instances are read
		}
	}
}

// watchService runs the blocking health query of one service until ctx ends (Run ends or the
// service left the list). It writes only while st is still the service's state, so a loop
// being stopped cannot overwrite its successor.
func (s *Source) watchService(ctx context.Context, dc *dcState, dcName, svc string, st *serviceState) {
	watch := watchID{key: "health " + svc, endpoint: endpointHealth, service: svc, st: st}
	bo := newBackoff(s.cfg.MinBackoff, s.cfg.MaxBackoff)
	var wait, last uint64
	resync := false
	for {
		q, cancel := s.query(ctx, dc.query, wait)
		entries, meta, err := s.client.Health().Service(svc, "", false, q)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.failed(dc, watch, fmt.Errorf("instances of %s: %w", svc, err))
			wait, resync = 0, true // as in watchDatacenter
			if !sleep(ctx, bo.next()) {
				return
			}
			continue
		}
		bo.reset()
		s.succeeded(dc, watch)
		var changed bool
		wait, changed = nextIndex(last, meta.LastIndex)
		last = max(meta.LastIndex, 1)
		changed, resync = changed || resync, false
		if !changed {
			continue
		}
		insts, errs := s.filter.instances(dcName, entries)
		s.mu.Lock()
		current := dc.services[svc] == st
		update := current && (!st.read || !reflect.DeepEqual(st.instances, insts) || !reflect.DeepEqual(st.errs, errs))
		if update {
			st.read, st.instances, st.errs = true, insts, errs
		}
		s.mu.Unlock()
		if update {
			s.markDirty()
		}
	}
}

// learnDatacenter asks the agent for its datacenter's name, retrying until it answers or ctx
// ends. ok is false when the watch must stop.
func (s *Source) learnDatacenter(ctx context.Context, dc *dcState) (name string, ok bool) {
	agentWatch := watchID{key: "agent", endpoint: endpointAgent}
	bo := newBackoff(s.cfg.MinBackoff, s.cfg.MaxBackoff)
	for {
		var self struct{ Config struct{ Datacenter string } }
		rctx, cancel := context.WithTimeout(ctx, requestSlack)
		_, err := s.client.Raw().Query("/v1/agent/self", &self, (&api.QueryOptions{}).WithContext(rctx))
		cancel()
		if ctx.Err() != nil {
			return "", false
		}
		if err == nil && self.Config.Datacenter == "" {
			err = errors.New("the answer names no datacenter")
		}
		if err != nil {
			s.failed(dc, agentWatch, fmt.Errorf("learn the agent's datacenter (setting discovery.consul.datacenter skips this): %w", err))
			if !sleep(ctx, bo.next()) {
				return "", false
			}
			continue
		}
		name = self.Config.Datacenter
		dup := slices.Contains(s.cfg.Datacenters, name)
		s.m.renameDatacenter(name, dup)
		s.mu.Lock()
		dc.name, dc.dup = name, dup
		s.mu.Unlock()
		if dup {
			// The entry of Config.Datacenters owns the name's series and status.
			s.m.requests.WithLabelValues(name, endpointAgent, "ok").Inc()
			s.log.Warn("discovery.consul.datacenters names the agent's own datacenter; it is watched once", "datacenter", name)
			s.markDirty()
			return name, false
		}
		s.succeeded(dc, agentWatch)
		return name, true
	}
}

// query returns the options of one blocking query and the cancel func of its deadline.
func (s *Source) query(ctx context.Context, dc string, index uint64) (*api.QueryOptions, context.CancelFunc) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.WaitTime+s.cfg.WaitTime/16+requestSlack)
	q := &api.QueryOptions{Datacenter: dc, WaitIndex: index, WaitTime: s.cfg.WaitTime}
	return q.WithContext(rctx), cancel
}

// nextIndex applies Consul's rules for blocking-query indexes to the index a response carried
// after the previous one, last (0 before the first): it returns the index to wait on next and
// whether the response may hold new data.
func nextIndex(last, got uint64) (wait uint64, changed bool) {
	if got == 0 {
		got = 1 // 0 would make every following query return at once: a hot loop
	}
	if got < last {
		// The index went backwards (servers lost or restored state): take the data, and
		// start the loop again from 0 rather than wait on an index that may not come.
		return 0, true
	}
	return got, got != last
}

// watchID names one watch of a datacenter for its state and metrics.
type watchID struct {
	key      string // "services", "health <service>", "agent"
	endpoint string // the endpoint label of its requests
	// service and st identify a health watch: its results count only while st is still the
	// service's state, so a stopped watch cannot mark the datacenter failing.
	service string
	st      *serviceState
}

func (w watchID) liveLocked(dc *dcState) bool {
	return w.st == nil || dc.services[w.service] == w.st
}

// failed records a failed request of one watch of dc, and logs when dc goes from ok (or
// starting) to error.
func (s *Source) failed(dc *dcState, w watchID, err error) {
	msg := s.redact(err.Error())
	s.mu.Lock()
	label := dc.name
	live := w.liveLocked(dc)
	prev := dc.state
	if live {
		dc.failing[w.key] = msg
		dc.lastErr = msg
		dc.state = StateError
	}
	s.mu.Unlock()
	s.m.requests.WithLabelValues(label, w.endpoint, "error").Inc()
	if !live {
		return
	}
	s.m.up.WithLabelValues(label).Set(0)
	if prev != StateError {
		s.log.Warn("consul datacenter failing; its last good data stays in use", "datacenter", dcLabel(dc.query, label), "error", msg)
		s.markDirty() // a failing extra datacenter no longer holds back the first snapshot
	}
}

// succeeded records a successful request of one watch of dc.
func (s *Source) succeeded(dc *dcState, w watchID) {
	now := time.Now()
	s.mu.Lock()
	label := dc.name
	delete(dc.failing, w.key)
	dc.lastOK = now
	recovered := s.settleLocked(dc)
	up := dc.state == StateOK
	s.mu.Unlock()
	s.m.requests.WithLabelValues(label, w.endpoint, "ok").Inc()
	s.m.lastSuccess.WithLabelValues(label).Set(float64(now.UnixNano()) / 1e9)
	if up {
		s.m.up.WithLabelValues(label).Set(1)
	}
	if recovered {
		s.logRecovered(dcLabel(dc.query, label))
	}
}

// settleLocked moves dc to ok when no watch is failing and one has succeeded, and reports
// whether it left the error state.
func (s *Source) settleLocked(dc *dcState) (recovered bool) {
	if len(dc.failing) > 0 || dc.lastOK.IsZero() || dc.state == StateOK {
		return false
	}
	recovered = dc.state == StateError
	dc.state, dc.lastErr = StateOK, ""
	return recovered
}

func (s *Source) logRecovered(dc string) {
	s.log.Info("consul datacenter answering again", "datacenter", dc)
}

func dcLabel(query, name string) string {
	if name == "" && query == "" {
		return "(the agent's)"
	}
	return name
}

// redact removes the ACL token from text that leaves the source.
func (s *Source) redact(text string) string {
	if s.token == "" {
		return text
	}
	return strings.ReplaceAll(text, s.token, "REDACTED")
}

func (s *Source) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default: // already marked; the publisher reads the whole state anyway
	}
}

// publishLoop is the single publisher: it builds a snapshot from the current state once
// changes have settled.
func (s *Source) publishLoop(ctx context.Context, publish func(*discovery.Snapshot)) {
	p := publisher{s: s, publish: publish, series: make(map[string]bool)}
	coalesce(ctx, s.dirty, s.cfg.Coalesce, 10*s.cfg.Coalesce, p.rebuild)
}

// coalesce calls fire once signals on dirty have stopped for quiet, or maxDelay after the
// first signal of a burst, whichever comes first, so constant churn still fires.
func coalesce(ctx context.Context, dirty <-chan struct{}, quiet, maxDelay time.Duration, fire func()) {
	timer := time.NewTimer(quiet)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-dirty:
		}
		deadline := time.Now().Add(maxDelay)
		timer.Reset(quiet)
	settle:
		for {
			select {
			case <-ctx.Done():
				return
			case <-dirty:
				timer.Reset(min(quiet, time.Until(deadline)))
			case <-timer.C:
				break settle
			}
		}
		fire()
	}
}

// publisher holds what the publish loop remembers between builds.
type publisher struct {
	s       *Source
	publish func(*discovery.Snapshot)
	prev    *discovery.Snapshot
	series  map[string]bool // services with a veloflux_consul_tag_errors series
	errs    []TagError
	confl   []string
}

func (p *publisher) rebuild() {
	s := p.s
	s.mu.Lock()
	var insts []instance
	var errs []TagError
	watched := make(map[string]bool)
	for _, dc := range s.dcs {
		if dc.dup {
			continue
		}
		for name, svc := range dc.services {
			watched[name] = true
			insts = append(insts, svc.instances...)
			errs = append(errs, svc.errs...)
		}
	}
	ready := s.published || s.readyLocked()
	s.mu.Unlock()

	snap, conflicts := buildSnapshot(insts)
	slices.SortFunc(errs, compareTagErrors)
	p.report(watched, errs, conflicts)
	s.mu.Lock()
	s.tagErrors, s.conflicts = errs, conflicts
	s.mu.Unlock()

	if !ready || p.prev != nil && reflect.DeepEqual(p.prev, snap) {
		return
	}
	p.publish(snap)
	p.prev = snap
	s.m.published.Inc()
	s.mu.Lock()
	s.published = true
	s.mu.Unlock()
}

// report updates the tag error gauges and logs tag errors and conflicts once, when they
// first appear.
func (p *publisher) report(watched map[string]bool, errs []TagError, conflicts []string) {
	count := make(map[string]int)
	for _, e := range errs {
		count[e.Service]++
		if !slices.Contains(p.errs, e) {
			p.s.log.Warn("consul tag error", "error", e.Error())
		}
	}
	for svc := range watched {
		p.s.m.tagErrors.WithLabelValues(svc).Set(float64(count[svc]))
	}
	for svc := range p.series {
		if !watched[svc] {
			p.s.m.tagErrors.DeleteLabelValues(svc)
		}
	}
	p.series = watched
	for _, c := range conflicts {
		if !slices.Contains(p.confl, c) {
			p.s.log.Warn("consul pool conflict", "conflict", c)
		}
	}
	p.errs, p.confl = errs, conflicts
}

// readyLocked reports whether the first snapshot may be published: every datacenter has been
// read in full, except extra datacenters that are failing.
func (s *Source) readyLocked() bool {
	for i, dc := range s.dcs {
		if dc.dup || dc.complete() || i > 0 && dc.state == StateError {
			continue
		}
		return false
	}
	return true
}

// backoff is an exponential delay with jitter between min and max.
type backoff struct{ min, max, cur time.Duration }

func newBackoff(lo, hi time.Duration) backoff { return backoff{min: lo, max: hi, cur: lo} }

// next returns a delay in [max(step/2, min), step] and doubles the step up to max. The jitter
// spreads the retries of many watches that failed together.
func (b *backoff) next() time.Duration {
	step := b.cur
	if b.cur > b.max/2 {
		b.cur = b.max
	} else {
		b.cur *= 2
	}
	half := step / 2
	return max(half+rand.N(step-half+1), b.min)
}

func (b *backoff) reset() { b.cur = b.min }

// sleep waits d or until ctx ends; false means ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
