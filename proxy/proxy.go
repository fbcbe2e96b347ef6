package proxy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpguts"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/internal/localerr"
	"github.com/veloflux/veloflux/internal/pace"
	"github.com/veloflux/veloflux/internal/traceid"
	"github.com/veloflux/veloflux/proxy/balance"
	"github.com/veloflux/veloflux/proxy/h1client"
	"github.com/veloflux/veloflux/proxy/ratelimit"
)

// Options are the proxy's collaborators. Each nil field has the default its comment names.
type Options struct {
	// Health says which backends are up. Nil: every backend is up.
	Health HealthView
	// Passive receives the outcome of every attempt to a backend. Nil: outcomes are not
	// reported.
	Passive PassiveHealth
	// Sessions holds sticky-session moves (a cookie carries its first backend). Nil: a
	// LocalSessions of 100000 moves.
	Sessions SessionStore
	// Locator orders regions by distance from each client, for routes with geo routing
	// (discovery.Route.Geo). Nil: geo routes behave like geo: off.
	Locator Locator
	// GeoResponseHeader, when set, names a response header that tells the client of a geo
	// route which region served (or redirected) it, such as "X-VeloFlux-Region". Default ""
	// (no header).
	GeoResponseHeader string
	// RedirectHosts maps a region to the host[:port] that serves it, for routes with
	// geo: redirect. A region without an entry is never redirected to. Nil: no redirects.
	RedirectHosts map[string]string
	// Logger receives operational logs. Nil: discarded.
	Logger *slog.Logger
	// AccessLogger receives one "access" line per request when Config.AccessLog is on.
	// Nil: Logger.
	AccessLogger *slog.Logger
	// Registerer gets the proxy's metrics. Nil: metrics are kept but not exported.
	Registerer prometheus.Registerer
	// Transport tunes backend connections. Zero fields: DefaultTransportConfig's values.
	Transport TransportConfig
	// TracerProvider makes a server span per request and a client span per backend attempt;
	// trace context comes in and goes to backends as W3C traceparent, tracestate and baggage.
	// Nil: no spans, and those headers pass through to backends untouched.
	TracerProvider trace.TracerProvider
	// TraceSampler takes the TracerProvider's sampling decision for each request before any
	// span exists, so that an unsampled request costs no span, context or attribute: only
	// its IDs and the traceparent for the backend. Nil: every request starts a span of the
	// TracerProvider, which decides.
	TraceSampler TraceSampler
	// TraceTrust says whose incoming trace context is continued. Default TraceTrustTrusted.
	TraceTrust TraceTrust
	// Pacer lets Apply step aside between pools while it builds a table, so that requests
	// which arrive meanwhile are not held behind a table of thousands of backends. Nil: Apply
	// never steps aside.
	Pacer *pace.Pacer
}

// Proxy is the data plane's http.Handler. Create it with New, feed it routing tables with
// Apply and settings with Reconfigure; both may be called while it serves.
type Proxy struct {
	log        *slog.Logger
	access     *slog.Logger
	health     HealthView
	passive    PassiveHealth
	sessions   SessionStore
	geo        geoSettings
	transports *transports
	rp         *httputil.ReverseProxy
	metrics    *metrics
	tracing    *tracing // nil: tracing off
	pace       *pace.Pacer

	table    atomic.Pointer[table]
	settings atomic.Pointer[settings]

	mu        sync.Mutex // serialises Apply and Reconfigure
	upstreams map[string]*upstream
	cfg       Config
	applied   *discovery.Snapshot // the snapshot of the table in use, to skip no-op updates

	draining atomic.Bool
	inflight atomic.Int64
	upgrades atomic.Pointer[upgradeEpoch]
	states   sync.Pool
}

// settings is the compiled form of Config, swapped atomically on Reconfigure.
type settings struct {
	cfg     Config
	trusted trustedSet
	limiter *ratelimit.Limiter
	signer  *cookieSigner
}

// upgradeEpoch lets a drain cut long-lived upgraded connections (WebSockets) at its deadline.
type upgradeEpoch struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a proxy with an empty routing table (every request gets 404 until Apply).
func New(cfg Config, opts Options) (*Proxy, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.AccessLogger == nil {
		opts.AccessLogger = opts.Logger
	}
	if opts.Health == nil {
		opts.Health = allHealthy{}
	}
	if opts.Passive == nil {
		opts.Passive = noPassive{}
	}
	if opts.Sessions == nil {
		opts.Sessions = NewLocalSessions(0)
	}
	geo, err := newGeoSettings(opts)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p := &Proxy{
		log:        opts.Logger,
		access:     opts.AccessLogger,
		health:     opts.Health,
		passive:    opts.Passive,
		sessions:   opts.Sessions,
		geo:        geo,
		transports: newTransports(opts.Transport.withDefaults()),
		upstreams:  make(map[string]*upstream),
		tracing:    newTracing(opts),
		pace:       opts.Pacer,
	}
	p.states.New = func() any { return new(reqState) }
	p.rp = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: retryTransport{p},
		// FlushInterval 0: responses with a length go out in as few writes as the buffers
		// allow, while streamed ones (no length, or text/event-stream) are flushed on every
		// write by the reverse proxy itself.
		FlushInterval:  0,
		BufferPool:     newBufferPool(),
		ErrorLog:       slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
		ErrorHandler:   p.handleError,
		ModifyResponse: p.modifyRPResponse,
	}
	p.newUpgradeEpoch()
	p.table.Store(&table{router: newRouter(nil)})
	if err := p.Reconfigure(cfg); err != nil {
		return nil, err
	}
	m, err := newMetrics(p, opts.Registerer)
	if err != nil {
		return nil, err
	}
	p.metrics = m
	return p, nil
}

// Apply swaps in a routing table built from snap. An invalid snapshot (unknown pool in a
// route, unknown algorithm, unknown backend scheme, duplicate backend) is rejected whole,
// and the current table keeps serving. A snapshot equal to the one in use changes nothing.
func (p *Proxy) Apply(snap *discovery.Snapshot) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var specs map[string]*discovery.Pool // the pools of the table in use, as applied
	if p.applied != nil {
		if slices.EqualFunc(p.applied.Pools, snap.Pools, func(a, b discovery.Pool) bool { return samePool(&a, &b) }) &&
			slices.Equal(p.applied.Routes, snap.Routes) {
			return nil
		}
		specs = make(map[string]*discovery.Pool, len(p.applied.Pools))
		for i := range p.applied.Pools {
			specs[p.applied.Pools[i].Name] = &p.applied.Pools[i]
		}
	}
	old := p.table.Load()
	policies := make(map[string]*pool, len(old.pools))
	for _, pl := range old.pools {
		policies[pl.name] = pl
	}
	t, ups, err := buildTable(snap, p.upstreams, policies, specs, p.cfg.MaxConnsPerBackend, p.transports.forSettings, p.pace)
	if err != nil {
		return err
	}
	t.version = old.version + 1
	p.upstreams = ups
	p.applied = snap
	p.table.Store(t)
	for _, pl := range old.pools {
		if !slices.ContainsFunc(t.pools, func(n *pool) bool { return n.name == pl.name }) {
			p.metrics.forgetPool(pl.name)
		}
	}
	return nil
}

// Close releases the idle backend connections of every protocol. Call it once the proxy
// serves no more requests; connections in use close when their requests end.
func (p *Proxy) Close() { p.transports.closeIdle() }

// Reconfigure swaps in new runtime settings. Rate-limit buckets survive when the rate-limit
// settings are unchanged.
func (p *Proxy) Reconfigure(cfg Config) error {
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("proxy config: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &settings{cfg: cfg, trusted: trustedSet(append([]netip.Prefix(nil), cfg.TrustedProxies...))}
	old := p.settings.Load()
	switch {
	case !cfg.rateLimited():
	case old != nil && old.limiter != nil && sameRateLimit(old.cfg.RateLimit, cfg.RateLimit):
		s.limiter = old.limiter
	default:
		l, err := ratelimit.New(cfg.RateLimit)
		if err != nil {
			return fmt.Errorf("proxy config: rate limit: %w", err)
		}
		s.limiter = l
	}
	switch {
	case len(cfg.Sticky.Secret) == 0 && old != nil && len(old.cfg.Sticky.Secret) == 0:
		s.signer = old.signer // keep the generated key: cookies stay valid across reloads
	case len(cfg.Sticky.Secret) == 0:
		// No key given: sticky pools still work on this node, with cookies that die with the
		// process. cmd warns about this; a cluster needs a shared Sticky.Secret.
		key := make([]byte, 32)
		rand.Read(key)
		s.signer = newCookieSigner(key)
	case old != nil && old.cfg.Sticky.Secret == cfg.Sticky.Secret:
		s.signer = old.signer
	default:
		s.signer = newCookieSigner([]byte(cfg.Sticky.Secret))
	}
	p.cfg = cfg
	p.settings.Store(s)
	for _, u := range p.upstreams {
		u.conns.setLimit(connLimit(u.maxConns, cfg.MaxConnsPerBackend))
	}
	return nil
}

func sameRateLimit(a, b ratelimit.Config) bool {
	if a.RequestsPerSecond != b.RequestsPerSecond || a.Burst != b.Burst || a.MaxClients != b.MaxClients ||
		a.IPv6Prefix != b.IPv6Prefix || len(a.Rules) != len(b.Rules) {
		return false
	}
	for i := range a.Rules {
		if a.Rules[i] != b.Rules[i] {
			return false
		}
	}
	return true
}

// Drain makes the proxy refuse new requests with 503 and ask clients to close kept-alive
// connections; requests already in flight continue.
func (p *Proxy) Drain() { p.draining.Store(true) }

// Undrain accepts new requests again.
func (p *Proxy) Undrain() {
	p.draining.Store(false)
	if p.upgrades.Load().ctx.Err() != nil {
		p.newUpgradeEpoch()
	}
}

// Draining reports whether the proxy is draining.
func (p *Proxy) Draining() bool { return p.draining.Load() }

// InFlight returns the number of requests being served, upgraded connections included.
func (p *Proxy) InFlight() int64 { return p.inflight.Load() }

// CloseUpgrades ends every upgraded connection (WebSocket) in flight; a drain calls it when
// its deadline passes.
func (p *Proxy) CloseUpgrades() {
	old := p.upgrades.Load()
	p.newUpgradeEpoch()
	old.cancel()
}

func (p *Proxy) newUpgradeEpoch() {
	ctx, cancel := context.WithCancel(context.Background())
	p.upgrades.Store(&upgradeEpoch{ctx: ctx, cancel: cancel})
}

// reqState is what one request carries through the reverse proxy, in its context. Pooled.
type reqState struct {
	start      time.Time
	set        *settings
	peer       netip.Addr
	client     netip.Addr
	trusted    bool
	upgrade    bool // a WebSocket upgrade: only HTTP/1.1 transports can carry it
	refused    bool // the HTTP/1 guard refused the request head: nothing of it is logged
	protoMajor int
	reqID      string
	key        uint64 // client affinity hash for ip_hash
	route      *route
	pool       *pool
	backend    *upstream
	slot       *slotSem // the connection slot of the try that got a response, held to the end
	tried      [maxAttempts]*upstream
	ntried     int
	cands      []*balance.Backend
	ups        []*upstream
	body       *retryBody
	err        error
	rw         statusWriter
	switched   bool // the backend answered 101 Switching Protocols and the connection was handed over
	// clientGone: the client went away while the response body was copied to it (forward's
	// copy failed on the client's side).
	clientGone bool
	respBody   watchedBody // the reverse proxy's response body, wrapped by modifyRPResponse
	sticky     stickyHow
	// fwdVals back the values of the forwarding fields shape sets: X-Forwarded-For,
	// X-Forwarded-Proto, X-Forwarded-Host, X-Real-Ip, X-Request-Id.
	fwdVals [5]string
	// The outbound URL and header of forward when the fast client sends them; outHeader is
	// kept, emptied, from one request to the next.
	outURL    url.URL
	outHeader http.Header

	// Tracing, set only when it is on. sc names the server span, recorded or not; span and
	// tctx (the context holding it) exist when the TracerProvider started it, which with a
	// TraceSampler means only for sampled requests. pctx is the caller's trace context when
	// it is continued.
	sc   trace.SpanContext
	span trace.Span
	tctx context.Context
	pctx context.Context
	// tpField is the traceparent field line of an unsampled request in a new trace, which
	// its attempts hand to their transport (traceFields); zero until startAttempt writes it.
	// tpHeader says an attempt put it in the outbound header, forwarded that the outbound
	// header holds none of the client's trace fields (forward left them out).
	// ids draws the IDs of unsampled requests; it stays with the pooled state, seeded once.
	ids       traceid.Source
	tpField   [traceparentFieldLen]byte
	tpHeader  bool
	forwarded bool
	nearest   string // the client's nearest region with a healthy backend, for recorded spans

	// Geo routing, set only when the route uses it and a Locator is configured.
	geo       bool
	node      string   // the node's region: where backends without a region run
	order     []string // the client's regions, nearest first; the Locator's, read-only
	country   string   // the client's ISO country, "" unknown
	geoRegion string   // the region a redirect sent the client to
}

type stateKey struct{}

// stateCtx carries a request's state over the context the request was served in, as
// context.WithValue would, and passes AfterFunc on to it: the fast client and package context
// then register with the fast server's request context itself, at a fraction of the cost of
// a child context (h1client.AfterFunc).
type stateCtx struct {
	context.Context
	st *reqState
}

func (c *stateCtx) Value(key any) any {
	if _, ok := key.(stateKey); ok {
		return c.st
	}
	return c.Context.Value(key)
}

func (c *stateCtx) AfterFunc(f func()) (stop func() bool) {
	return h1client.AfterFunc(c.Context, f)
}

func stateFrom(ctx context.Context) *reqState {
	if c, ok := ctx.(*stateCtx); ok {
		return c.st
	}
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

func (st *reqState) markTried(u *upstream) {
	if st.ntried < len(st.tried) {
		st.tried[st.ntried] = u
		st.ntried++
	}
}

func (st *reqState) wasTried(u *upstream) bool {
	for _, t := range st.tried[:st.ntried] {
		if t == u {
			return true
		}
	}
	return false
}

// candidates fills st.cands/st.ups with the pool's healthy backends not tried yet, in every
// region; geo routes narrow them to one region afterwards.
func (st *reqState) candidates(h HealthView) {
	st.cands, st.ups = st.cands[:0], st.ups[:0]
	for _, u := range st.pool.backends {
		if st.wasTried(u) || !h.Healthy(u.id) {
			continue
		}
		st.cands = append(st.cands, &u.lb)
		st.ups = append(st.ups, u)
	}
}

func (p *Proxy) getState() *reqState { return p.states.Get().(*reqState) }

// maxPooledFields is the largest outbound header kept for the next request.
const maxPooledFields = 32

func (p *Proxy) putState(st *reqState) {
	cands, ups := st.cands[:0], st.ups[:0]
	clear(st.cands[:cap(st.cands)])
	clear(st.ups[:cap(st.ups)])
	hdr := st.outHeader
	if len(hdr) > maxPooledFields {
		hdr = nil // a rare large header does not stay in the pool
	}
	clear(hdr)
	*st = reqState{cands: cands, ups: ups, outHeader: hdr, ids: st.ids}
	p.states.Put(st)
}

// ServeHTTP proxies one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.inflight.Add(1)
	st := p.getState()
	st.start = time.Now()
	st.rw.reset(w)
	defer func() {
		p.finish(st, r)
		p.putState(st)
		p.inflight.Add(-1)
	}()

	set := p.settings.Load()
	st.set = set
	st.peer = peerAddr(r.RemoteAddr)
	st.client, st.trusted = set.trusted.clientIP(st.peer, r.Header["X-Forwarded-For"])
	if st.trusted {
		st.reqID = validRequestID(firstValue(r.Header, "X-Request-Id"))
	}
	if st.reqID == "" {
		st.reqID = newRequestID()
	}
	w = &st.rw

	upgrade := isUpgrade(r)
	st.upgrade = upgrade
	st.protoMajor = r.ProtoMajor
	if p.tracing != nil {
		p.tracing.startRequest(st, r)
	}
	if ci := connFrom(r.Context()); ci != nil {
		if r.TLS == nil && ci.tls != nil {
			r.TLS = ci.tls // HTTP/2 over the TLS listener (see h2Conn); set once, before any use
		}
		if ci.h1 != nil {
			if rej, ok := ci.h1.Rejected(r.RequestURI); ok {
				p.reject(w, st, rej)
				return
			}
		}
		// A refused upgrade closes: the guard passed the connection's later bytes through
		// unframed, expecting the protocol switch.
		st.rw.closeUnless101 = upgrade
		if ci.lastRequest() && !upgrade {
			w.Header().Set("Connection", "close")
			p.metrics.connsClosed.WithLabelValues("max_requests").Inc()
		}
	}
	if p.draining.Load() {
		p.writeError(w, st, http.StatusServiceUnavailable, errDraining)
		return
	}
	if set.limiter != nil {
		if ok, wait := set.limiter.Allow(st.client, st.start); !ok {
			p.metrics.rateLimited.Inc()
			w.Header().Set("Retry-After", retryAfterSeconds(wait))
			p.writeError(w, st, http.StatusTooManyRequests, errRateLimited)
			return
		}
	}
	if r.ProtoMajor == 2 && hasConnectionFields(r.Header) {
		// RFC 9113 section 8.2.2: such a request is malformed. Answered here, it never reaches
		// an HTTP/1 backend, where its Transfer-Encoding or Connection would mean something.
		p.writeError(w, st, http.StatusBadRequest, errH2ConnectionField)
		return
	}
	if upgrade && !strings.EqualFold(firstValue(r.Header, "Upgrade"), "websocket") {
		p.writeError(w, st, http.StatusBadRequest, errBadUpgrade)
		return
	}
	st.route = p.table.Load().router.match(r.Host, r.URL.Path)
	if st.route == nil {
		p.writeError(w, st, http.StatusNotFound, errNoRoute)
		return
	}
	st.pool = st.route.pool
	st.key = clientKey(st.client)
	if st.route.geo != geoOff && p.geo.locator != nil {
		st.geo = true
		st.node = p.geo.node.name
		// st.client, not the X-Forwarded-For of an untrusted peer: a client cannot pick its region.
		st.order, st.country = p.geo.locator.Order(st.client)
	}
	st.candidates(p.health)
	if len(st.cands) == 0 {
		p.writeError(w, st, http.StatusServiceUnavailable, errNoBackend)
		return
	}
	if st.geo && st.span != nil && st.span.IsRecording() {
		if rank := st.nearestRank(); rank < len(st.order) {
			st.nearest = st.order[rank]
		}
	}
	if st.geo && st.route.geo == geoRedirect {
		if region, host, ok := p.redirectTarget(st); ok {
			p.redirect(w, r, st, region, host)
			return
		}
	}
	st.backend = p.pick(st, w, r)
	st.markTried(st.backend)
	st.backend.lb.Acquire()
	// A deferred release keeps counts exact when the reverse proxy aborts the handler with a
	// panic (backend died mid-body) or a retry moved the request to another backend.
	defer func() {
		st.backend.lb.Release()
		st.slot.release()
	}()

	var ctx context.Context = &stateCtx{st.traceContext(r), st}
	if upgrade {
		// Upgraded connections outlive any read deadline, and a drain must be able to end them.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		stop := context.AfterFunc(p.upgrades.Load().ctx, cancel)
		defer stop()
		defer cancel()
	}
	st.rw.hold()
	if p.transports.fast != nil && !upgrade {
		p.forward(w, r, ctx)
		return
	}
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// pick chooses the backend for a request among st.cands (not empty): its sticky pin when the
// pool is sticky and the pin is healthy, otherwise the pool's policy, inside the nearest
// region for geo routes.
func (p *Proxy) pick(st *reqState, w http.ResponseWriter, r *http.Request) *upstream {
	if st.pool.sticky {
		return p.pickSticky(st, w, r)
	}
	if st.geo {
		st.narrow("")
	}
	return st.ups[st.pool.policy.Pick(st.cands, st.key)]
}

// pickSticky honours, in order: the session's move in the SessionStore, the backend its
// cookie names, and otherwise moves the session by rendezvous hashing of its ID over the
// healthy backends, which every node computes alike. Only that last case writes to the store,
// so a session whose backend stays up costs the cluster nothing and cannot move, whichever
// node each of its requests reaches. A move outranks the cookie because cookies signed
// before it (parallel requests, other tabs) may still name the failed backend after it
// comes back.
func (p *Proxy) pickSticky(st *reqState, w http.ResponseWriter, r *http.Request) *upstream {
	sc := &st.set.cfg.Sticky
	signer := st.set.signer
	now := st.start
	if c, err := r.Cookie(sc.CookieName); err == nil {
		if ck, ok := signer.verify(c.Value); ok && now.Before(ck.issued.Add(sc.TTL)) {
			key := st.pool.name + "|" + ck.session
			prefer := "" // the region of the backend the session leaves, for geo routes
			id, exp, moved := p.sessions.Get(key)
			if moved {
				if u := st.upByID(id); u != nil {
					if exp.Sub(now) < sc.TTL/2 {
						p.sessions.Put(key, id, now.Add(sc.TTL))
					}
					p.stickyCookieFor(w, st, ck, u, now)
					st.sticky = stickyMoved
					p.metrics.sticky.WithLabelValues(st.pool.name, st.sticky.String()).Inc()
					return u
				}
				prefer = st.pinnedRegion(id)
			} else {
				for _, u := range st.ups {
					if u.tagOf(signer) == ck.tag {
						p.stickyCookieFor(w, st, ck, u, now)
						st.sticky = stickyHit
						p.metrics.sticky.WithLabelValues(st.pool.name, st.sticky.String()).Inc()
						return u
					}
				}
				prefer = st.taggedRegion(signer, ck.tag)
			}
			// The session's backend is down, drained or gone: every node moves it to the
			// same backend by hashing its ID over the healthy set. A geo route keeps the
			// session in the region of its old backend while that region has one up, else
			// moves it to the client's nearest region with one.
			if st.geo {
				st.narrow(prefer)
			}
			u := st.ups[balance.Rendezvous(st.cands, balance.HashString(ck.session))]
			p.sessions.Put(key, u.id, now.Add(sc.TTL))
			setStickyCookie(w, sc, signer.sign(ck.raw, u.tagOf(signer), now))
			st.sticky = stickyRepin
			p.metrics.sticky.WithLabelValues(st.pool.name, st.sticky.String()).Inc()
			return u
		}
	}
	if st.geo {
		st.narrow("")
	}
	u := st.ups[st.pool.policy.Pick(st.cands, st.key)]
	setStickyCookie(w, sc, signer.newSession(u.tagOf(signer), now))
	st.sticky = stickyNew
	p.metrics.sticky.WithLabelValues(st.pool.name, st.sticky.String()).Inc()
	return u
}

// stickyCookieFor signs the cookie again when it names another backend than u (the session
// moved) or has lived more than half its TTL, so a client in use never sees it expire.
func (p *Proxy) stickyCookieFor(w http.ResponseWriter, st *reqState, ck verifiedCookie, u *upstream, now time.Time) {
	sc := &st.set.cfg.Sticky
	tag := u.tagOf(st.set.signer)
	if tag == ck.tag && now.Sub(ck.issued) < sc.TTL/2 {
		return
	}
	setStickyCookie(w, sc, st.set.signer.sign(ck.raw, tag, now))
}

// upByID returns the healthy candidate with backend ID id, or nil.
func (st *reqState) upByID(id string) *upstream {
	for _, u := range st.ups {
		if u.id == id {
			return u
		}
	}
	return nil
}

// taggedRegion returns the region of the pool's backend with tag, down or not, or "" when the
// pool has none.
func (st *reqState) taggedRegion(signer *cookieSigner, tag backendTag) string {
	for _, u := range st.pool.backends {
		if u.tagOf(signer) == tag {
			return st.regionOf(u)
		}
	}
	return ""
}

func setStickyCookie(w http.ResponseWriter, sc *StickyConfig, value string) {
	http.SetCookie(w, &http.Cookie{
		Name:     sc.CookieName,
		Value:    value,
		Path:     "/",
		MaxAge:   int(sc.TTL / time.Second),
		Secure:   sc.Secure,
		HttpOnly: sc.HTTPOnly,
		SameSite: sc.sameSite(),
	})
}

// rewrite shapes the outbound request. It runs after the reverse proxy removed hop-by-hop
// headers (including any named in Connection), so nothing a client lists in Connection can
// remove the headers set here.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	// The reverse proxy copied the trailer map before the body was read, when it held names
	// only; the server fills the values into the inbound one at the body's end, and the
	// transport reads them from this one then: the same map carries them through.
	pr.Out.Trailer = pr.In.Trailer
	p.shape(stateFrom(pr.In.Context()), pr.In, pr.Out)
}

// shape is rewrite's work, for the reverse proxy and for forward alike.
func (p *Proxy) shape(st *reqState, in, out *http.Request) {
	out.URL.Scheme = st.backend.scheme.urlScheme()
	out.URL.Host = st.backend.address
	if st.route.spec.StripPrefix {
		out.URL.Path = st.route.upstreamPath(in.URL.Path)
		out.URL.RawPath = ""
		if in.URL.RawPath != "" {
			out.URL.RawPath = st.route.upstreamPath(in.URL.RawPath)
		}
	}
	out.Host = in.Host

	// The forwarding fields' values live in the pooled request state: the outbound header is
	// read only while the attempt sends it, which ends before the state goes back to the pool.
	h := out.Header
	peer := peerString(in.RemoteAddr, st.peer)
	fv := &st.fwdVals
	if prior := in.Header["X-Forwarded-For"]; st.trusted && len(prior) > 0 {
		fv[0] = strings.Join(prior, ", ") + ", " + peer
	} else {
		fv[0] = peer
	}
	fwdHost := in.Host
	if st.trusted {
		if v := firstValue(in.Header, "X-Forwarded-Host"); v != "" {
			fwdHost = v
		}
	}
	fv[1] = st.proto(in)
	fv[2] = fwdHost
	if st.client == st.peer {
		fv[3] = peer
	} else {
		fv[3] = st.client.String()
	}
	fv[4] = st.reqID
	h["X-Forwarded-For"] = fv[0:1:1]
	h["X-Forwarded-Proto"] = fv[1:2:2]
	h["X-Forwarded-Host"] = fv[2:3:3]
	h["X-Real-Ip"] = fv[3:4:4]
	h["X-Request-Id"] = fv[4:5:5]

	if out.Body != nil && out.Body != http.NoBody {
		st.body = &retryBody{rc: out.Body}
		out.Body = st.body
	}
}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	st := stateFrom(resp.Request.Context())
	if err := st.body.failure(); err != nil {
		// The backend answered a request whose body broke off on the client's side: the
		// client gets the proxy's answer about its body (handleError), not the backend's.
		return err
	}
	resp.Header["X-Request-Id"] = []string{st.reqID}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The reverse proxy writes the 101 on the hijacked connection, past the status
		// writer: recorded here, so the access log, the metrics and the span say 101.
		st.switched = true
	}
	// An HTTP/2 backend may send a Content-Length along with trailers. HTTP/1.1 carries
	// trailers only in a chunked body, so the length is dropped and the body streamed.
	if len(resp.Trailer) > 0 && resp.ContentLength >= 0 {
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	}
	if p.draining.Load() && resp.StatusCode != http.StatusSwitchingProtocols {
		askClose(resp.Header, st.protoMajor)
	}
	if st.geo && p.geo.header != "" {
		p.setGeoHeader(st, resp)
	}
	return nil
}

// modifyRPResponse is modifyResponse for the reverse proxy, which tells no one why a body
// copy failed: the body it copies notes a read ended by the request's cancellation, which
// finish takes for a client gone mid-body when the client's own context has ended.
func (p *Proxy) modifyRPResponse(resp *http.Response) error {
	if err := p.modifyResponse(resp); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols { // the reverse proxy writes to a 101's body
		st := stateFrom(resp.Request.Context())
		st.respBody = watchedBody{ReadCloser: resp.Body}
		resp.Body = &st.respBody
	}
	return nil
}

// watchedBody notes a read that ended because the request's context was cancelled.
type watchedBody struct {
	io.ReadCloser
	canceled bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && errors.Is(err, context.Canceled) {
		b.canceled = true
	}
	return n, err
}

// retryTransport sends each try over the transport of the chosen backend's scheme and, when
// it is safe, tries another backend of the same pool after a failure.
type retryTransport struct{ p *Proxy }

func (t retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := t.p
	st := stateFrom(req.Context())
	attempts := 1
	for {
		resp, err := p.attempt(st, req)
		if err == nil || !st.retryable(req, err, attempts) {
			return resp, err
		}
		st.candidates(p.health)
		if len(st.cands) == 0 {
			return nil, err
		}
		if st.geo {
			// Stay in the failed backend's region while it has untried backends, then
			// fail over to the next region by the client's order.
			st.narrow(st.regionOf(st.backend))
		}
		next := st.ups[st.pool.policy.Pick(st.cands, st.key)]
		if p.log.Enabled(req.Context(), slog.LevelDebug) {
			p.log.Debug("retrying on another backend", st.logIDs([]any{"request_id", st.reqID, "pool", st.pool.name,
				"failed", st.backend.address, "next", next.address, "error", err})...)
		}
		st.markTried(next)
		st.backend.lb.Release()
		next.lb.Acquire()
		st.backend = next
		req.URL.Scheme = next.scheme.urlScheme()
		req.URL.Host = next.address
		attempts++
		p.metrics.retries.WithLabelValues(st.pool.name).Inc()
	}
}

// outcomeOf judges one attempt for the passive health checks; ok is false when the attempt
// says nothing about the backend: the client went away or sent a broken body, or the proxy
// refused a WebSocket upgrade for an h2c backend before sending anything.
func outcomeOf(st *reqState, req *http.Request, resp *http.Response, err error) (o Outcome, ok bool) {
	switch {
	case err == nil && resp.StatusCode >= 500:
		return Outcome5xx, true
	case err == nil:
		return OutcomeSuccess, true
	case req.Context().Err() != nil, errors.Is(err, errNoWebSocket), st.body.failure() != nil:
		return 0, false
	case localerr.Is(err): // this node ran out of descriptors, ports or memory: not the backend's fault
		return 0, false
	case isTimeout(err):
		return OutcomeTimeout, true
	}
	return OutcomeConnectFailure, true
}

// retryable says whether a failed try may be repeated on another backend: never once a
// request body byte went upstream, never past the attempt or time budget, and apart from
// dial failures and WebSocket upgrades refused for an h2c backend (nothing was sent) only for
// idempotent methods whose connection broke before any response byte — a timeout may mean
// the backend is still working on it.
func (st *reqState) retryable(req *http.Request, err error, attempts int) bool {
	rc := &st.set.cfg.Retry
	if attempts >= rc.Attempts || time.Since(st.start) > rc.Timeout || req.Context().Err() != nil {
		return false
	}
	if st.body != nil && st.body.read.Load() > 0 {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" || errors.Is(err, errNoWebSocket) || errors.Is(err, errAtCapacity) {
		return true // nothing was sent: the connection never opened, the upgrade was refused here, or no slot was free
	}
	if st.body != nil || !idempotent(req.Method) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// retryBody counts the request body bytes the transport has read and remembers why reading
// the client's body failed, and ignores Close so a body untouched by a failed dial can be
// offered to the next backend. The server closes the real body when the handler returns.
type retryBody struct {
	rc   io.ReadCloser
	read atomic.Int64
	err  atomic.Pointer[error] // the client's fault, not the backend's: set once
}

func (b *retryBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.read.Add(int64(n))
	if err != nil && err != io.EOF {
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// failure is the error that broke reading the client's body; nil when it did not break or
// there is no body (nil b).
func (b *retryBody) failure() error {
	if b == nil {
		return nil
	}
	if e := b.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (b *retryBody) Close() error { return nil }

// spliceSource is a request body whose rest the fast client may move from the client's
// socket by kernel copy (h1fast's body): see h1client.
type spliceSource interface {
	SpliceSource() (src *net.TCPConn, left int64, ok bool)
	Spliced(n int64, err error)
}

// SpliceSource passes the fast server body's offer of a kernel copy on.
func (b *retryBody) SpliceSource() (*net.TCPConn, int64, bool) {
	if s, ok := b.rc.(spliceSource); ok {
		return s.SpliceSource()
	}
	return nil, 0, false
}

// Spliced counts the bytes moved and keeps a read failure as the client's, as Read does.
func (b *retryBody) Spliced(n int64, err error) {
	if s, ok := b.rc.(spliceSource); ok {
		s.Spliced(n, err)
	}
	b.read.Add(n)
	if err != nil {
		b.err.CompareAndSwap(nil, &err)
	}
}

// hasConnectionFields reports whether an HTTP/2 request carries a connection-specific field,
// or TE with anything but "trailers".
func hasConnectionFields(h http.Header) bool {
	for _, k := range [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"} {
		if _, ok := h[k]; ok {
			return true
		}
	}
	te, ok := h["Te"]
	return ok && (len(te) != 1 || te[0] != "trailers")
}

func isUpgrade(r *http.Request) bool {
	return firstValue(r.Header, "Upgrade") != "" && httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade")
}

// firstValue is h.Get for a key already in canonical form: the request path's fields are
// named by constants, so the canonicalisation Get repeats on every call is skipped.
func firstValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// clientKey hashes a client address for affinity policies.
func clientKey(a netip.Addr) uint64 {
	b := a.As16()
	return balance.HashBytes(b[:])
}

func retryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return itoa(s)
}
